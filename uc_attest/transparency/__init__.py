"""Transparency logs, client side: signed-note checkpoints, the verifying Rekor v1 client, the witness."""
