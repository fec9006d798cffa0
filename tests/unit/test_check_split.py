"""A pack check split over the ranks of a torchrun job (pack/check.py ``world``, ``merged``): each rank's part,
their sum equal to the one-process check, and what another rank sends treated as data. The ranks themselves run
in tests/integration/test_distributed_pack.py."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uc_attest as uc
from uc_attest.core.digest import Digest
from uc_attest.errors import FindingKind, OperationalError
from uc_attest.pack.check import PackCheck, check_pack, merged
from uc_attest.pack.facts import PackFacts
from uc_attest.pack.layout import MANIFEST_NAME
from uc_attest.pack.world import Group, World

FUZZ = settings(
    max_examples=int(os.environ.get("UC_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class _Sent(Group):
    """A group whose other rank sends ``other`` (rank 0 here, the other rank 1)."""

    def __init__(self, other: Any) -> None:
        super().__init__(World(0, 2))
        self.other = other

    def gather(self, value: Any) -> list[Any]:
        return [value, self.other]


def _packed(model_factory: Callable[..., Path], tmp_path: Path) -> Path:
    pack = tmp_path / "pack"
    uc.write_pack(model_factory(shards=3), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    return pack


def _check(pack: Path, world: World) -> PackCheck:
    manifest = uc.load_manifest(pack / MANIFEST_NAME)
    return check_pack(PackFacts(pack), manifest, "the pack's own", world=world)


def test_the_parts_add_up_to_the_one_process_check(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    pack = _packed(model_factory, tmp_path)
    (pack / "stray.txt").write_text("x")  # a file the manifest does not list: rank 0's finding, once
    one = _check(pack, World())
    parts = [_check(pack, World(rank, 2)) for rank in (0, 1)]
    assert all(p.tensors_checked > 0 for p in parts)
    assert sum(p.tensors_checked for p in parts) == one.tensors_checked
    assert [f.subject for f in parts[0].findings] == ["stray.txt"] and parts[1].findings == []
    got = merged(_Sent(_sent(parts[1])), parts[0])
    assert (got.tensors_checked, got.files_checked, got.findings) == (
        one.tensors_checked,
        one.files_checked,
        one.findings,
    )


def _sent(part: PackCheck) -> dict[str, Any]:
    """What a rank sends of its part (as ``merged`` does)."""
    found = [{**f.to_dict(), "kind": f.kind.name if f.kind else None} for f in part.findings]
    return {"hashed": part.tensors_checked, "findings": found}


def test_a_finding_keeps_its_kind_across_ranks(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    pack = _packed(model_factory, tmp_path)
    mine = _check(pack, World(0, 2))
    other = {"hashed": 3, "findings": [{"subject": "w", "problem": "reconstructed digest differs",
                                        "expected": "a", "actual": "b", "kind": "DIGEST_DIFFERS"}]}  # fmt: skip
    got = merged(_Sent(other), mine)
    assert got.tensors_checked == mine.tensors_checked + 3
    assert got.findings[-1].kind is FindingKind.DIGEST_DIFFERS and got.findings[-1].subject == "w"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
_FINDING = {"subject": "w", "problem": "p", "kind": None}


@FUZZ
@given(
    st.one_of(
        _JSON,
        st.builds(lambda v: {"hashed": v, "findings": []}, _JSON),
        st.builds(lambda v: {"hashed": 1, "findings": v}, _JSON),
        st.builds(
            lambda k, v: {"hashed": 1, "findings": [{**_FINDING, k: v}]},
            st.sampled_from(["subject", "problem", "expected", "actual", "kind", "extra"]),
            _JSON,
        ),
    )
)
def test_any_part_another_rank_sends_merges_or_is_one_operational_error(value: Any) -> None:
    part = PackCheck(Path("p"), "s", Digest("0" * 64), 2, 1, [])
    try:
        got = merged(_Sent(value), part)
    except OperationalError as exc:
        assert str(exc) == "a rank sent a part of the pack check that is not well formed"
        return
    assert got.tensors_checked >= 2
    assert all(isinstance(f.subject, str) and isinstance(f.problem, str) for f in got.findings)


@pytest.mark.parametrize("hashed", [-1, True, 1.0, "2", None])
def test_a_count_that_is_not_a_count_is_refused(hashed: Any) -> None:
    part = PackCheck(Path("p"), "s", Digest("0" * 64), 2, 1, [])
    with pytest.raises(OperationalError, match="not well formed"):
        merged(_Sent({"hashed": hashed, "findings": []}), part)
