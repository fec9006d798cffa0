"""Verification policies: a strict YAML model, loading with line-numbered errors, and the checks."""

from .model import Policy, Signer, load_policy, policy_schema, read_policy

__all__ = ["Policy", "Signer", "load_policy", "policy_schema", "read_policy"]
