"""Signed notes and checkpoints against the C2SP / transparency-dev vectors in ../shared."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import SHARED
from uc_attest.transparency.checkpoint import Checkpoint, NoteError, ecdsa_verifier, open_note, parse_vkey, sign_note

VEC = SHARED / "vectors" / "signed-note"


def _load(name: str, key: str) -> list[dict[str, Any]]:
    p = VEC / name
    return json.loads(p.read_text())[key] if p.exists() else []  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", _load("transparency_dev_formats.json", "cases"), ids=lambda c: c["id"])
def test_real_checkpoints(case: dict[str, Any]) -> None:
    if case["expect"] in ("verify-sth",) or "rfc6962" in case["id"]:
        pytest.skip("RFC 6962 tree-head-signature notes (type 0x05) are not used by Rekor v1 checkpoints")
    try:
        v = parse_vkey(case["vkey"])
        note = open_note(case["note"], [v])
        body = Checkpoint.parse(note.text)
        if "wrong-origin" in case["id"]:
            assert body.origin == case.get("origin", "sum.golang.org")
        ok = True
    except (NoteError, AssertionError):
        ok = False
    assert ok == case["expect"].startswith("verify"), case.get("desc")


@pytest.mark.parametrize(
    "case", _load("transparency_dev_formats.json", "vkey_parse_cases"), ids=lambda c: c["vkey"][:30]
)
def test_vkey_parsing(case: dict[str, Any]) -> None:
    try:
        parse_vkey(case["vkey"])
        ok = True
    except NoteError:
        ok = False
    assert ok == (case["expect"] == "ok"), case.get("desc")


@pytest.mark.parametrize(
    "case", _load("transparency_dev_formats.json", "checkpoint_body_parse_cases"), ids=lambda c: c["desc"]
)
def test_checkpoint_body_parsing(case: dict[str, Any]) -> None:
    try:
        Checkpoint.parse(case["text"].encode())
        ok = True
    except NoteError:
        ok = False
    assert ok == (case["expect"] == "ok")


@pytest.mark.parametrize("case", _load("c2sp_spec_examples.json", "cases"), ids=lambda c: c["id"])
def test_c2sp_examples(case: dict[str, Any]) -> None:
    if case["expect"] == "verify":
        open_note(case["note"], [parse_vkey(case["vkey"])])
    else:
        from uc_attest.transparency.checkpoint import parse_note

        parse_note(case["note"])


def test_sign_and_open_roundtrip_and_tamper() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    body = Checkpoint("local-rekor - 1", 7, bytes(range(32)), ("Timestamp: 1",))
    note = sign_note(body.text(), "local-rekor", key)
    v = ecdsa_verifier("local-rekor", key.public_key())
    assert Checkpoint.parse(open_note(note, [v]).text) == body
    with pytest.raises(NoteError):
        open_note(note.replace("\n7\n", "\n8\n"), [v])
    with pytest.raises(NoteError):
        open_note(note, [ecdsa_verifier("other", key.public_key())])
