"""A pack check split over the ranks of a torchrun job (pack/check.py ``group``): the ranks' parts equal the
one-process check, ranks that see different packs or leave a tensor unchecked stop it, and what another rank
sends is data. Here two threads play the ranks over an in-memory exchange; torchrun itself runs in
tests/integration/test_distributed_pack.py."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uc_attest as uc
from uc_attest.core.stfile import SafetensorsFile
from uc_attest.errors import OperationalError
from uc_attest.manifest import Manifest
from uc_attest.pack.check import PackCheck, _view, check_pack
from uc_attest.pack.facts import PackFacts
from uc_attest.pack.layout import MANIFEST_NAME
from uc_attest.pack.world import Group, World

FUZZ = settings(
    max_examples=int(os.environ.get("UC_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class _Exchange:
    """Two ranks' messages, met at a barrier (the gather of torch.distributed, in memory)."""

    def __init__(self) -> None:
        self.slots: list[Any] = [None, None]
        self.barrier = threading.Barrier(2, timeout=60)

    def group(self, rank: int) -> Group:
        ex = self

        class _G(Group):
            def gather(self, value: Any) -> list[Any]:
                ex.slots[rank] = value
                ex.barrier.wait()
                out = list(ex.slots)
                ex.barrier.wait()
                return out

        return _G(World(rank, 2))


class _Sent(Group):
    """Rank 0 of two, whose other rank sends ``other`` as its part (and agrees at every step)."""

    def __init__(self, other: Any) -> None:
        super().__init__(World(0, 2))
        self.other = other

    def gather(self, value: Any) -> list[Any]:
        return [value, value if isinstance(value, dict) and "failed" in value else self.other]


def _packed(model_factory: Callable[..., Path], tmp_path: Path) -> Path:
    pack = tmp_path / "pack"
    uc.write_pack(model_factory(shards=3), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    return pack


def _manifest(pack: Path) -> Manifest:
    return uc.load_manifest(pack / MANIFEST_NAME)


def _one(pack: Path) -> PackCheck:
    return check_pack(PackFacts(pack), _manifest(pack), "own")


def _split(packs: tuple[Path, Path], manifest: Manifest) -> list[PackCheck | BaseException]:
    """Each rank's check of its own view of the pack (two threads over one exchange)."""
    ex = _Exchange()

    def rank(r: int) -> PackCheck | BaseException:
        try:
            return check_pack(PackFacts(packs[r]), manifest, "own", group=ex.group(r))
        except Exception as exc:  # noqa: BLE001 - the test compares what each rank raised
            return exc

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(rank, (0, 1)))


def _flip(pack: Path, name: str) -> None:
    """One code byte of a quantized tensor changed."""
    for shard in pack.glob("*.safetensors"):
        with SafetensorsFile(shard) as f:
            info = f.infos.get(name + ".uc_codes")
            at = f.data_start + info.begin if info else None
        if at is not None:
            raw = bytearray(shard.read_bytes())
            raw[at] ^= 0xFF
            shard.write_bytes(bytes(raw))
            return
    raise AssertionError(name)


def test_the_split_check_is_the_one_process_check(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    pack = _packed(model_factory, tmp_path)
    (pack / "stray.txt").write_text("x")  # a file the manifest does not list: rank 0's finding, once
    quantized = sorted(e.name for e in _manifest(pack).tensors if e.quant is not None)
    _flip(pack, quantized[0])
    _flip(pack, quantized[-1])
    one = _one(pack)
    got = _split((pack, pack), _manifest(pack))
    assert all(isinstance(g, PackCheck) for g in got)
    for g in got:
        assert isinstance(g, PackCheck)
        assert (g.tensors_checked, g.files_checked) == (one.tensors_checked, one.files_checked)
        assert sorted(map(str, g.findings)) == sorted(map(str, one.findings)) and len(one.findings) == 3
        kinds = sorted((str(f), f.kind.name if f.kind else "") for f in g.findings)  # a finding keeps its kind
        assert kinds == sorted((str(f), f.kind.name if f.kind else "") for f in one.findings)


def test_ranks_that_see_different_files_stop_the_check(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    """A rank reading another copy (a node-local one, or files swapped between the ranks' reads) could pass what
    the other sees tampered: the ranks compare what they see first (found by review)."""
    pack = _packed(model_factory, tmp_path)
    other = tmp_path / "other"
    shutil.copytree(pack, other)
    _flip(other, min(e.name for e in _manifest(pack).tensors if e.quant is not None))
    for got in _split((pack, other), _manifest(pack)):
        assert isinstance(got, OperationalError), got
        assert "checked another manifest or other files than this rank" in str(got)


def _message(pack: Path, **change: Any) -> dict[str, Any]:
    """A well-formed part from rank 1 that hashed nothing (edited by ``change``)."""
    return {"root": str(_manifest(pack).root), "view": _view(PackFacts(pack)), "hashed": [], "findings": [], **change}


def test_a_tensor_no_rank_checked_stops_the_check(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    pack = _packed(model_factory, tmp_path)
    with pytest.raises(OperationalError, match=r"no rank checked tensor '.*' \(\d+ in all\)"):
        check_pack(PackFacts(pack), _manifest(pack), "own", group=_Sent(_message(pack)))


def test_a_tensor_two_ranks_hashed_is_refused(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    pack = _packed(model_factory, tmp_path)
    everything = [e.name for e in _manifest(pack).tensors]
    with pytest.raises(OperationalError, match="not well formed"):
        check_pack(PackFacts(pack), _manifest(pack), "own", group=_Sent(_message(pack, hashed=everything)))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
_FINDING = {"subject": "w", "problem": "p", "kind": None}


@pytest.fixture(scope="module")
def one_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import make_model

    root = tmp_path_factory.mktemp("split")
    pack = root / "pack"
    uc.write_pack(make_model(root / "src", shards=3), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    return pack


@FUZZ
@given(
    change=st.one_of(
        st.builds(lambda k, v: {k: v}, st.sampled_from(["root", "view", "hashed", "findings", "other"]), _JSON),
        st.builds(lambda v: {"findings": [v]}, _JSON),
        st.builds(
            lambda k, v: {"findings": [{**_FINDING, k: v}]},
            st.sampled_from(["subject", "problem", "expected", "actual", "kind", "extra"]),
            _JSON,
        ),
    ),
    whole=st.one_of(st.none(), _JSON),
)
def test_any_part_another_rank_sends_merges_or_is_one_operational_error(
    one_pack: Path, change: dict[str, Any], whole: Any
) -> None:
    """Rank 1 sends anything (a whole message, or a well-formed one with a field changed): rank 0 merges it (and
    then every tensor is named) or stops with one OperationalError, never another exception."""
    sent = whole if whole is not None else _message(one_pack, **change)
    try:
        got = check_pack(PackFacts(one_pack), _manifest(one_pack), "own", group=_Sent(sent))
    except OperationalError as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(f.subject, str) and isinstance(f.problem, str) for f in got.findings)
