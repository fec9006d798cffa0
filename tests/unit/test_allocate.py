"""The measured allocation: an exact damage proxy and a budgeted greedy choice, the same on every run."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import uc_attest as uc
from tests.conftest import make_model
from uc_attest.quant.allocate import allocate_bits, damage, stored_bits
from uc_attest.quant.measure import _LEVEL
from uc_attest.quant.scheme import LDLQ_ID


def _brute(original: torch.Tensor, recon: torch.Tensor, h: torch.Tensor | None, w: int) -> Fraction:
    """The docstring's formula with Python integers only."""

    def scaled(x: list[list[float]]) -> tuple[list[list[int]], int]:
        amax = max(abs(v) for row in x for v in row)
        k = _LEVEL - 1 - math.frexp(amax)[1]
        return [[round(v * 2.0**k) for v in row] for row in x], k

    def energy(v: list[list[int]]) -> int:
        if h is None:
            return sum(a * a for row in v for a in row)
        hh = h.tolist()
        total = 0
        for row in v:
            for b in range(len(row) // w):
                seg = row[b * w : (b + 1) * w]
                total += sum(seg[i] * hh[b][i][j] * seg[j] for i in range(w) for j in range(w))
        return total

    o = original.double().tolist()
    e, ke = scaled(
        [[a - b for a, b in zip(r1, r2, strict=True)] for r1, r2 in zip(o, recon.double().tolist(), strict=True)]
    )
    ref, kw = scaled(o)
    return Fraction(energy(e) * 4**kw, energy(ref) * 4**ke)


@pytest.mark.parametrize("with_h", [False, True])
def test_damage_is_exact(with_h: bool) -> None:
    g = torch.Generator().manual_seed(7)
    w = torch.randn(6, 16, generator=g)
    r = (w * 8).round() / 8
    h = None
    if with_h:
        a = torch.randint(-300, 300, (2, 8, 8), generator=g)
        h = a @ a.transpose(1, 2) // 64  # symmetric, int64
    assert damage(w, r, h, 8) == _brute(w, r, h, 8)
    assert damage(w, w.clone(), h, 8) == 0


def test_allocation_spends_the_budget_on_the_largest_gains_and_is_recorded(tmp_path: Path) -> None:
    src = make_model(tmp_path / "m", torch.float32)
    base = uc.Scheme(id=LDLQ_ID)
    sizes = {t.name: math.prod(t.shape) for t in uc.write_pack(src, tmp_path / "p0", base, "cpu",
                                                               calibration=None, allocation=None).manifest.tensors
             if t.quant}  # fmt: skip
    s1 = allocate_bits(src, base, 5.6, None, "cpu")
    s2 = allocate_bits(src, base, 5.6, None, "cpu")
    assert s1 == s2 and dict(s1.allocation)["method"] == "uc-alloc/2"
    used = sum(stored_bits(n, s1.bits_for(name), 128) for name, n in sizes.items())
    assert used <= 5.6 * sum(sizes.values()) and float(dict(s1.allocation)["bpw"]) == pytest.approx(
        used / sum(sizes.values()), abs=1e-4
    )
    assert any(s1.bits_for(n) == 6 for n in sizes)
    # the pack records the choice: a rebuild reads it from the scheme, and the scheme round-trips
    assert uc.Scheme.from_dict(s1.to_dict()) == s1
    with pytest.raises(uc.UsageError, match=r"^budget=5.0: the lowest widths alone take"):
        allocate_bits(src, base, 5.0, None, "cpu")  # below what 5 bits alone take
    assert allocate_bits(src, base, 5.0, None, "cpu", strict=False) == base  # the CLI's default budget: no-op


def test_the_recorded_bits_per_weight_are_the_bytes_stored(tmp_path: Path) -> None:
    """uc-alloc/2 counts what the shards hold: codes, fp16 scales and u8 zero-points of the quantized tensors."""
    import uc_attest as uc
    from tests.conftest import make_model
    from uc_attest.core.stfile import SafetensorsFile

    res = uc.write_pack(
        make_model(tmp_path / "src"), tmp_path / "pack", calibration=None, allocation=uc.Allocation(5.6)
    )
    alloc = res.manifest.scheme["allocation"]
    n = sum(math.prod(e.shape) for e in res.manifest.tensors if e.quant)
    stored = 0
    for shard in (tmp_path / "pack").glob("*.safetensors"):
        with SafetensorsFile(shard) as f:
            stored += sum(i.end - i.begin for name, i in f.infos.items()
                          if name.endswith((".uc_codes", ".uc_scales", ".uc_zeros")))  # fmt: skip
    assert alloc["method"] == "uc-alloc/2" and float(alloc["bpw"]) == pytest.approx(8 * stored / n, abs=1e-4)


class _Weighted:
    """A moments source with output sensitivities only (no moments): what allocate() reads from a calibration."""

    def __init__(self, sensitivity: dict[str, float]) -> None:
        self.sensitivity = sensitivity

    def __call__(self, _name: str, _shape: tuple[int, ...]) -> None:
        return None


def test_output_sensitivity_moves_the_bits_to_the_layers_that_matter(tmp_path: Path) -> None:
    """uc-alloc/3: each damage weighed by its layer's output sensitivity. Making one tensor 1000x as sensitive as
    the others promotes it first; with a sensitivity missing for a tensor, the relative errors decide (uc-alloc/2)."""
    src = make_model(tmp_path / "m", torch.float32)
    base = uc.Scheme(id=LDLQ_ID)
    names = sorted(t.name for t in uc.write_pack(src, tmp_path / "p0", base, "cpu", calibration=None,
                                                 allocation=None).manifest.tensors if t.quant)  # fmt: skip
    plain = allocate_bits(src, base, 5.6, None, "cpu")
    promoted = sorted(n for n in names if plain.bits_for(n) == 6)
    assert promoted and len(promoted) < len(names)
    target = next(n for n in names if n not in promoted and "q_proj" in n)
    weights = {n: 1000.0 if n == target else 1.0 for n in names}
    weighed = allocate_bits(src, base, 5.6, _Weighted(weights), "cpu")
    assert weighed.bits_for(target) == 6 and dict(weighed.allocation)["method"] == "uc-alloc/3"
    del weights[names[0]]
    assert allocate_bits(src, base, 5.6, _Weighted(weights), "cpu") == plain


def test_a_calibration_file_carries_the_sensitivity_and_bad_metadata_is_refused(tmp_path: Path) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from safetensors.torch import save_file

    from uc_attest.calibration.file import META_SENSITIVITY, Calibration, write
    from uc_attest.errors import InvalidInput

    scheme = uc.Scheme(id=LDLQ_ID)
    good = tmp_path / "good.safetensors"
    write(good, {"a.weight": torch.eye(128)}, "test", {"a.weight": 0.25, "b.weight": 3.0})
    cal = Calibration(good, scheme)
    assert cal.sensitivity == {"a.weight": 0.25, "b.weight": 3.0}
    cal.close()
    path = tmp_path / "bad.safetensors"

    @settings(max_examples=60, deadline=None)
    @given(
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(
                ['{"a": NaN}', '{"a": -1}', '{"a": "1"}', "[1]", '{"a": Infinity}', "[" * 5000, '{"a": true}']
            ),
        )
    )
    def check(text: str) -> None:
        save_file({"a.weight": torch.eye(128)}, str(path), metadata={META_SENSITIVITY: text})
        try:
            cal = Calibration(path, scheme)
        except InvalidInput as exc:
            assert META_SENSITIVITY in str(exc)
            return
        assert all(v >= 0 and math.isfinite(v) for v in cal.sensitivity.values())
        cal.close()

    check()
