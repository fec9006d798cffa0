"""The embedded DEV instance as the facade names it: create, load, serve, mint a dev token."""

from __future__ import annotations

from pathlib import Path

from .http import InstanceServer
from .oidc import mint_token
from .state import InstanceState
from .state import init_instance as _init


def init_instance(root: Path, port: int = 8787, *, force: bool = False, rekor_version: int = 2) -> InstanceState:
    """Create an embedded instance state directory (DEV: its issuer can mint any identity); its signing
    config prefers Rekor ``rekor_version`` (2: tiles + TSA timestamps; 1: Rekor v1 with its SET)."""
    return _init(root, port, force=force, rekor_version=rekor_version)


def load_instance(root: Path) -> InstanceState:
    return InstanceState.load(root)


def instance_server(root: Path, port: int | None = None, *, move: bool = False) -> InstanceServer:
    """The instance's HTTP service (``.start()`` in a thread, ``.serve_forever()``). Another port than the
    trust config names is refused unless ``move`` rewrites the trust config for it."""
    return InstanceServer(load_instance(root), port, move=move)


def dev_token(root: Path, identity: str, lifetime_s: int = 600) -> str:
    """Mint a dev identity token from an embedded instance's OIDC key."""
    state = load_instance(root)
    return mint_token(state.oidc_key, state.issuer, identity, lifetime_s=lifetime_s)
