"""An embedded instance served over real HTTP on 127.0.0.1 for the integration tests."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import uc_attest as uc
from tests.conftest import make_model
from tests.integration.http_apps import App, Server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    dir: Path
    state: Any
    server: Any
    trust_config_path: Path

    @property
    def url(self) -> str:
        return str(self.state.url)

    @property
    def issuer(self) -> str:
        return str(self.state.issuer)

    def token(self, identity: str, **kw: Any) -> str:
        return uc.dev_token(self.dir, identity, **kw)


def start_instance(root: Path, rekor_version: int = 2) -> Running:
    state = uc.init_instance(root, free_port(), rekor_version=rekor_version)
    server = uc.instance_server(root).start()
    return Running(root, state, server, root / "trust_config.json")


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The default instance: signers are offered Rekor v2 (tiles) and a TSA."""
    r = start_instance(tmp_path_factory.mktemp("instance") / "dev")
    yield r
    r.server.stop()


@pytest.fixture(scope="module")
def instance_v1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """An instance whose signing config prefers Rekor v1 (SET, dsse entries), as before Rekor v2."""
    r = start_instance(tmp_path_factory.mktemp("instance-v1") / "dev", rekor_version=1)
    yield r
    r.server.stop()


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pack")
    uc.write_pack(make_model(root / "src"), root / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    return root / "pack"


def serve_in_subprocess(root: Path) -> Any:
    """`uc-attest instance serve ROOT` as a real process; returns the Popen once it answers."""
    import json
    import subprocess
    import sys
    import time
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "uc_attest.cli", "instance", "serve", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = json.loads((root / "instance.json").read_text())["port"]
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/log", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("instance did not start")


@pytest.fixture
def serve() -> Iterator[Callable[[App], Server]]:
    """Start recording HTTP servers (tests/integration/http_apps.py); all closed after the test."""
    servers: list[Server] = []

    def start(app: App) -> Server:
        servers.append(Server(app))
        return servers[-1]

    yield start
    for s in servers:
        s.close()
