"""Property tests of the policy boundary (issue 21): any YAML text gives a Policy or InvalidInput naming the file,
never another exception; mutated shipped policies too; and the validation rule fails closed on every number.

Examples per target: UC_FUZZ_EXAMPLES (200 by default; `make fuzz` runs 10,000)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uc_attest.errors import InvalidInput
from uc_attest.policy.model import Policy, Threshold, read_policy

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("UC_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SHIPPED = [(REPO / "policies" / n).read_text() for n in ("default.yaml", "model-risk.yaml", "github-release.yaml")]


def _load(tmp: Path, text: str) -> Policy | None:
    p = tmp / "p.yaml"
    p.write_text(text, encoding="utf-8")
    try:
        return read_policy(p)[0]
    except InvalidInput as exc:
        assert str(p) in exc.message and "\n" not in exc.message.strip()
        return None


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20,
)


@FUZZ
@given(text=st.text(max_size=400))
def test_any_text_is_a_policy_or_invalid_input(tmp_path: Path, text: str) -> None:
    _load(tmp_path, text)


@FUZZ
@given(data=yaml_values)
def test_any_yaml_document_is_a_policy_or_invalid_input(tmp_path: Path, data: Any) -> None:
    _load(tmp_path, yaml.safe_dump(data))


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@FUZZ
@given(which=st.integers(0, len(SHIPPED) - 1), pick=st.integers(0, 10_000), value=yaml_values)
def test_a_mutated_shipped_policy_is_a_policy_or_invalid_input(tmp_path: Path, which: int, pick: int,
                                                                value: Any) -> None:  # fmt: skip
    doc = yaml.safe_load(SHIPPED[which])
    paths = [p for p in _paths(doc) if p]
    path = paths[pick % len(paths)]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    pol = _load(tmp_path, yaml.safe_dump(doc))
    if pol is not None and pol.validation is not None:  # whatever was accepted is finite
        for th in pol.validation.thresholds.values():
            assert all(v is None or math.isfinite(v) for v in (th.min, th.max))


@FUZZ
@given(lo=st.none() | st.floats(allow_nan=False, allow_infinity=False),
       hi=st.none() | st.floats(allow_nan=False, allow_infinity=False), x=st.floats())  # fmt: skip
def test_a_threshold_admits_only_finite_values_within_it(lo: float | None, hi: float | None, x: float) -> None:
    if lo is None and hi is None:
        return
    th = Threshold(min=lo, max=hi)
    want = math.isfinite(x) and (lo is None or x >= lo) and (hi is None or x <= hi)
    assert th.admits(x) == want
