"""Packs and their attestations in an OCI registry: push, pull by digest (every blob checked), referrers."""

from ..errors import RegistryMisbehaved, RegistryUnreachable
from .artifact import PACK_TYPE, Layout, PullResult, PushResult, pull_pack, push_pack
from .registry import Reference

__all__ = [
    "PACK_TYPE",
    "Layout",
    "PullResult",
    "PushResult",
    "Reference",
    "RegistryMisbehaved",
    "RegistryUnreachable",
    "pull_pack",
    "push_pack",
]
