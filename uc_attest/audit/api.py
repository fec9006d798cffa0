"""The audit stages as the facade names them, each under one trust root (:class:`uc_attest.TrustRoot`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.digest import Digest
from ..errors import InvalidInput, LogMisbehaved
from ..signing.trust import Trust
from ..transparency.follow import FollowResult, TileIndex, Watch
from ..transparency.monitor import WatchResult, watch
from ..transparency.rekor_v1 import RekorClient
from .custody import AuditReport, index_for
from .custody import audit as _audit
from .inventory import inventory as _inventory
from .tilelog import follow_logs


def watch_log(
    state: Path,
    trust: Trust,
    *,
    index: Path | None = None,
    identities: Sequence[str] = (),
    identity_regexes: Sequence[str] = (),
    digests: Sequence[str] = (),
    mirror: str | None = None,
) -> list[WatchResult | FollowResult]:
    """Witness every log of the trust root: Rekor v1 logs by checkpoint and consistency proof (``state``,
    JSON); tile logs (Rekor v2) by catching up from their tiles into the index (default beside ``state``),
    indexing the entries by the watched identities / digests (all when none). A fork, rollback or a tile
    or entry that does not verify → a failed result naming it. Unreachable log → OperationalError."""
    w = Watch(tuple(identities), tuple(identity_regexes), tuple(digests))
    results: list[WatchResult | FollowResult] = []
    for log in trust.logs():
        try:
            results.append(watch(Path(state), RekorClient(log)))
        except LogMisbehaved as exc:
            results.append(WatchResult(log.base_url, None, None, False, exc.message))
    if trust.tile_logs():
        idx = TileIndex(index_for(Path(state), index))
        try:
            results += [r for r, _ in follow_logs(trust, idx, w, mirror)]
        finally:
            idx.close()
    return results


def audit(
    target: Path | None,
    trust: Trust,
    *,
    manifest_root: str | None = None,
    digest: str | None = None,
    state: Path | None = None,
    index: Path | None = None,
    bundles: Sequence[Path] = (),
) -> AuditReport:
    """Find and verify every log entry about a pack / manifest root (``sha256:<hex>`` or hex) / digest.
    On a Rekor v2 log the pack's bundles and ``bundles`` are proven from the tiles; ``index`` (default
    beside ``state``; none: the log is scanned) lists every other entry by their signers."""
    root = None
    if manifest_root is not None:
        try:
            root = Digest.parse(manifest_root) if manifest_root.startswith("sha256:") else Digest(manifest_root)
        except ValueError:
            raise InvalidInput(
                "{0:={manifest_root!r}} is not sha256:<64 hex>", option="manifest_root", manifest_root=manifest_root
            ) from None
    return _audit(
        Path(target) if target else None,
        trust,
        manifest_root=root,
        digest=digest,
        state=state,
        index=index,
        bundles=bundles,
    )


def inventory(trust: Trust, *, index: Path | None = None, bundle_dirs: Sequence[Path] = ()) -> list[dict[str, Any]]:
    """Every release in the logs grouped by source model, with validations and status; bad entries listed.
    On a Rekor v2 log statements come from the bundles in ``bundle_dirs`` (the index: as in ``audit``)."""
    return _inventory(trust, index=index, bundle_dirs=bundle_dirs)
