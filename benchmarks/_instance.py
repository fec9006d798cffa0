"""Shared helpers of the log benchmarks: an instance served in its own process, signed test entries."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

REPO = Path(__file__).resolve().parents[1]


def serve(root: Path, rekor_version: int = 2) -> tuple[Any, subprocess.Popen[bytes]]:
    """Init an instance at ``root`` on a free port and serve it in a subprocess; returns (state, process)."""
    import uc_attest as uc

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = uc.init_instance(root, port, rekor_version=rekor_version)
    return state, start_server(root, state)


def start_server(root: Path, state: Any) -> subprocess.Popen[bytes]:
    """`uc-attest instance serve ROOT` in a subprocess, once it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "uc_attest.cli", "instance", "serve", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{state.url}/api/v1/log", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the instance did not start")


class EntrySigner:
    """Makes hashedrekord 0.0.1 entries for distinct texts, signed by one ephemeral key."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.pem = base64.b64encode(
            self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode()

    def entry(self, text: str) -> dict[str, Any]:
        d = hashlib.sha256(text.encode()).digest()
        sig = base64.b64encode(self.key.sign(d, ec.ECDSA(Prehashed(hashes.SHA256())))).decode()
        return {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": d.hex()}},
                "signature": {"content": sig, "publicKey": {"content": self.pem}},
            },
        }


def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read())
