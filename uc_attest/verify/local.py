"""The facts of a verification that need no signer: the pack checked against the manifest it must match, and
the source rebuilt. NumPy-free and signature-free (the C decoder hashes), so ``verify --manifest`` and
``--integrity-only`` import neither the signature stack nor the policy model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.device import Device
from ..errors import InvalidInput, MalformedPack
from ..manifest import Manifest
from ..pack.check import PackCheck, Progress, check_pack
from ..pack.facts import PackFacts, load_manifest
from ..pack.world import Group, World, joined
from ..policy.rules import Facts, RebuildOutcome


@dataclass(frozen=True)
class Expected:
    """The manifest a pack must match and where it comes from (a kept file, the signed statement, the pack)."""

    manifest: Manifest
    source: str


def expected_manifest(facts: Facts, manifest: Path | None = None) -> Expected | None:
    """The manifest the pack must match, and where it comes from: a separately kept (validated) one when
    given; the signed one when it is inline in the release payload; else the pack's own (bound to the
    signature by the pack.manifest rule, or trusted as is without a signer). None when it cannot be read
    (recorded as the pack error)."""
    try:
        if manifest is not None:
            found = load_manifest(manifest), str(manifest)
        elif facts.claim is not None and facts.claim.manifest_bytes is not None:
            found = Manifest.from_json(facts.claim.manifest_bytes, "the signed statement"), "the signed statement"
        else:
            found = facts.pack.manifest, str(facts.pack.manifest_path)
    except (MalformedPack, InvalidInput) as exc:
        facts.pack_error = exc.message
        return None
    facts.expected_source = found[1]
    return Expected(*found)


def tensors(
    facts: Facts,
    expected: Expected,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    shard_digests: bool = False,
    split: bool = False,
) -> None:
    """Reconstruct and match every tensor (and file; a shard's file digest with ``shard_digests``) against the
    expected manifest; ``split``: shared with the other ranks of a torchrun job (one process otherwise)."""
    world = World.from_env() if split else World()

    def check(group: Group | None) -> PackCheck:
        m = expected.manifest
        return check_pack(facts.pack, m, expected.source, workers=workers, progress=progress,
                          shard_digests=shard_digests, group=group)  # fmt: skip

    try:
        if not world.distributed:
            facts.pack_check = check(None)
            return
        with joined(world) as group:  # torchrun: the ranks split the tensors, every rank gives the one verdict
            facts.pack_check = check(group)
    except (MalformedPack, InvalidInput) as exc:
        facts.pack_error = exc.message


def rebuilt(facts: Facts, source: Path, device: Device | str, expected: Manifest | None) -> None:
    if expected is None:
        try:
            expected = facts.pack.manifest
        except MalformedPack as exc:
            facts.rebuild = RebuildOutcome([], [], 0, 0.0, device, exc.message)
            return
    from .rebuild import rebuild  # torch: only when a rebuild is asked for

    resolved = facts.claim.resolved if facts.claim is not None else None
    facts.rebuild = rebuild(facts.pack.dir, source, expected, device, resolved)


def new_facts(pack_dir: Path, now: float) -> Facts:
    return Facts(now=now, pack=PackFacts(pack_dir))
