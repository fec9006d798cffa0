"""DSSE pre-authentication encoding against the secure-systems-lab / go-securesystemslib vectors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SHARED
from uc_attest.core.dsse import pae


def _cases() -> list[dict[str, Any]]:
    p = SHARED / "vectors" / "dsse" / "dsse_vectors.json"
    return json.loads(p.read_text())["pae_cases"] if p.exists() else []  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["id"])
def test_pae_vectors(case: dict[str, Any]) -> None:
    got = pae(case["payloadType"], case["payload_utf8"].encode())
    assert got == case["pae_utf8"].encode()


def test_pae_agrees_with_sigstore() -> None:
    from sigstore.dsse import _pae  # sigstore-python's own encoder, private but the reference we sign with

    for t, body in (("application/vnd.in-toto+json", b"{}"), ("", b""), ("x", "ಠ".encode())):
        assert pae(t, body) == _pae(t, body)
