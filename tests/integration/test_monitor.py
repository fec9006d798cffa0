"""The witness (`log watch`) and the verifying log client against the embedded instance over HTTP,
including a forked log (two trees of the same size under the same key) and a rollback."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

import uc_attest as uc
from tests.e2e.test_cli import assert_clean_error, cli
from tests.integration.conftest import free_port
from tests.integration.test_instance import http
from uc_attest.errors import LogMisbehaved
from uc_attest.transparency.rekor_v1 import RekorClient

KEY = ec.generate_private_key(ec.SECP256R1())
PEM = base64.b64encode(
    KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()


def append(url: str, text: str) -> dict[str, Any]:
    d = hashlib.sha256(text.encode()).digest()
    sig = base64.b64encode(KEY.sign(d, ec.ECDSA(Prehashed(hashes.SHA256())))).decode()
    status, resp = http(
        f"{url}/api/v1/log/entries",
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": d.hex()}},
                "signature": {"content": sig, "publicKey": {"content": PEM}},
            },
        },
    )
    assert status == 201, resp
    return resp  # type: ignore[no-any-return]


def client(inst: Path) -> RekorClient:
    (log,) = uc.select_trust(inst / "trust_config.json", None).logs()
    return RekorClient(log)


def test_watch_accepts_growth_and_catches_fork_and_rollback(tmp_path: Path) -> None:
    a, state = tmp_path / "a", tmp_path / "state.json"
    uc.init_instance(a, free_port())
    srv = uc.instance_server(a).start()
    try:
        url = uc.load_instance(a).url
        for i in range(5):
            append(url, f"common {i}")
        r = uc.watch_log(state, uc.TrustRoot.instance(a))[0]  # the Rekor v1 log (its v2 log is followed too)
        assert r.ok and r.previous is None and r.current.size == 5
        for i in range(3):
            append(url, f"more {i}")
        r = uc.watch_log(state, uc.TrustRoot.instance(a))[0]  # the Rekor v1 log (its v2 log is followed too)
        assert r.ok and r.previous.size == 5 and r.current.size == 8
    finally:
        srv.stop()
    # An operator with the log key keeps a second tree: copy the state at size 8, then diverge.
    b = tmp_path / "b"
    shutil.copytree(a, b)
    srv = uc.instance_server(a).start()
    append(url, "honest 9")
    r = uc.watch_log(state, uc.TrustRoot.instance(a))[0]
    assert r.ok and r.current.size == 9
    srv.stop()
    srv = uc.instance_server(b).start()  # same key, same URL, a different entry at index 8
    try:
        append(url, "forged 9")
        out = cli("log", "watch", "--state", state, "--instance", b)
        assert out.returncode == 1 and "fork" in out.stderr and "LOG MISBEHAVED" in out.stderr
        saved = json.loads(state.read_text())
        assert next(iter(saved["logs"].values()))["size"] == 9  # the evidence is kept
    finally:
        srv.stop()
    c = tmp_path / "c"  # rollback: the tree of size 8 served again after 9 was seen
    shutil.copytree(b, c)
    import sqlite3

    db = sqlite3.connect(c / "log.sqlite3")
    db.execute("DELETE FROM entries WHERE idx >= 8")
    db.execute("DELETE FROM checkpoints WHERE size > 8")
    db.commit()
    db.close()
    srv = uc.instance_server(c).start()
    try:
        r = uc.watch_log(state, uc.TrustRoot.instance(c))[0]
        assert not r.ok and "rollback" in r.problem
    finally:
        srv.stop()


def test_client_verifies_entries_and_refuses_tampered_answers(tmp_path: Path) -> None:
    inst = tmp_path / "i"
    uc.init_instance(inst, free_port())
    srv = uc.instance_server(inst).start()
    try:
        url = uc.load_instance(inst).url
        resp = append(url, "entry 0")
        for i in range(4):
            append(url, f"entry {i + 1}")
        c = client(inst)
        latest = c.checkpoint()
        e = c.entry_by_index(0, latest)
        assert e.uuid == next(iter(resp)) and e.kind == "hashedrekord"
        assert c.entry_by_uuid(e.uuid, latest).body == e.body
        digest = "sha256:" + hashlib.sha256(b"entry 0").hexdigest()
        assert c.search(digest) == [e.uuid]
        answer = c._call("/api/v1/log/entries?logIndex=0")
        ((uuid, body),) = answer.items()
        bad_body = copy.deepcopy(answer)
        bad_body[uuid]["body"] = base64.b64encode(b'{"kind":"x"}').decode()
        bad_set = copy.deepcopy(answer)
        sig = bytearray(base64.b64decode(body["verification"]["signedEntryTimestamp"]))
        sig[-3] ^= 1
        bad_set[uuid]["verification"]["signedEntryTimestamp"] = base64.b64encode(bytes(sig)).decode()
        bad_proof = copy.deepcopy(answer)
        bad_proof[uuid]["verification"]["inclusionProof"]["hashes"][0] = "00" * 32
        for tampered in (bad_body, bad_set, bad_proof):
            with pytest.raises(LogMisbehaved):
                c.verify_entry(tampered, latest)
    finally:
        srv.stop()


def test_unreachable_log_is_an_operational_error_naming_the_url(tmp_path: Path) -> None:
    inst = tmp_path / "i"
    state = uc.init_instance(inst, free_port())
    assert_clean_error(cli("log", "watch", "--state", tmp_path / "s.json", "--instance", inst), 4, state.url)
