"""Utilities every stage may use: digests and RFC 8785 JSON, RFC 6962 Merkle trees, strict safetensors,
atomic file output, DSSE's pre-authentication encoding."""
