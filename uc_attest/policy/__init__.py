"""Verification policies: a strict YAML model (``model``: pydantic, loading with line-numbered errors) and the
checks (``rules``: pure functions over facts). The package imports nothing itself: a check without a policy
needs neither pydantic nor YAML."""
