"""The registry stages as the facade names them: references given as ``oci://`` strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError
from .artifact import Layout, PullResult, PushResult, pull_pack, push_pack
from .artifact import list_repository as _list
from .registry import Reference


def push(
    pack_dir: Path, reference: str, *, plain_http: bool = False, layout: Layout | str = Layout.MODELPACK
) -> PushResult:
    """Push a pack and the bundles beside it to an OCI registry (``oci://HOST/REPO[:TAG]``), in the CNCF
    ModelPack layout unless ``layout`` says otherwise (a Layout or its name); a PushResult with the pack
    manifest's digest and what was uploaded (nothing the registry already has)."""
    if not isinstance(layout, Layout):
        names = [x.value for x in Layout]
        if layout not in names:
            raise UsageError(f"layout {layout!r} is not one of {', '.join(names)}")
        layout = Layout(layout)
    return push_pack(Path(pack_dir), Reference.parse(reference), plain_http=plain_http, layout=layout)


def pull(reference: str, out_dir: Path, *, plain_http: bool = False, force: bool = False) -> PullResult:
    """Pull a pack (by digest; a tag is resolved to one, which the result names) and its bundles: every blob
    checked against its descriptor while streaming, the directory written atomically."""
    return pull_pack(Reference.parse(reference), Path(out_dir), plain_http=plain_http, force=force)


def list_repository(reference: str, *, plain_http: bool = False) -> list[dict[str, Any]]:
    """What an OCI repository holds: tag -> digest -> manifest root -> referrer bundles by role -> status."""
    return _list(Reference.parse(reference), plain_http=plain_http)
