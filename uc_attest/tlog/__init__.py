"""Transparency log: signed checkpoints (C2SP signed notes), durable SQLite store, proofs."""
