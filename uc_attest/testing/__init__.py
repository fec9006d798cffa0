"""For tests and benchmarks only (not used by the product): deterministic synthetic models."""
