"""Digest type and RFC 8785 canonical JSON (checked against the rfc8785 package)."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from uc_attest.core.digest import Digest, canonical_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_json_matches_rfc8785(value: object) -> None:
    try:
        want = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        pytest.skip("value not representable (lone surrogate)")
    try:
        got = canonical_json(value)
    except UnicodeEncodeError:
        pytest.fail("rfc8785 accepted a value we cannot encode")
    assert got == want


def test_canonical_json_sorts_by_utf16_code_units() -> None:
    assert canonical_json({"\U0001f600": 1, "\ufb01": 2}) == rfc8785.dumps({"\U0001f600": 1, "\ufb01": 2})


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        canonical_json({"x": 1.5})


def test_digest_parse_and_format() -> None:
    d = Digest.of_bytes(b"abc")
    assert str(d) == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert Digest.parse(str(d)) == d
    for bad in ("sha256:xyz", "sha512:" + "0" * 64, "sha256:" + "A" * 64):
        with pytest.raises(ValueError):
            Digest.parse(bad)
