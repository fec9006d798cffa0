"""The native moments-weighted energy (``_quantize.c`` block_energy, measure.py ``Energy.of``) as an attacker calls it.

Properties, on every path this CPU has (scalar, avx512): the exact integer Σ over rows [r0, r1) and w-wide blocks of
columns [a, a + cols) of v_b H_b v_bᵀ for any w in 1..2048, offset, stride and row range, values over the whole int8
and int16 ranges (-128 and -32768 included); the sums over split row ranges and over single blocks add up; and any
other arguments (negative, past int64, r1·stride overflowing, buffers short by a byte, h of another length or at an
odd address, w past 2048, cols not a multiple of w, a + cols past the stride, objects that are not buffers) are
refused with TypeError, ValueError or OverflowError, never a crash or a read outside the buffers given (every
buffer handed over is a window of a larger one whose bytes outside the window would change the answer).

``UC_FUZZ_EXAMPLES`` sets the examples per property (default 200).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import operator
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from uc_attest.core import threads
from uc_attest.quant import measure, native

pytestmark = pytest.mark.skipif(not native.available(), reason="the native helpers are not compiled")

EXAMPLES = int(os.environ.get("UC_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ISAS: list[str] = native.module().supported_isas() if native.available() else []
MAX_W = 2048
SSIZE_MAX, INT_MAX = 2**63 - 1, 2**31 - 1
REFUSED = (TypeError, ValueError, OverflowError, BufferError)
_ISA_LOCK = threading.Lock()


@contextlib.contextmanager
def _isa(name: str) -> Iterator[Any]:
    q = native.module()
    with _ISA_LOCK:
        before = q.get_isa()
        q.set_isa(name)
        try:
            yield q
        finally:
            q.set_isa(before)


def _on_every_isa(*args: Any) -> int:
    """block_energy(*args) on each path; they must agree."""
    got = {}
    for name in ISAS:
        with _isa(name) as q:
            got[name] = q.block_energy(*args)
    values = set(got.values())
    assert len(values) == 1, got
    return int(values.pop())


# --- the exact reference ---------------------------------------------------------------------------------------


def reference(v: bytes, stride: int, a: int, cols: int, h: bytes, w: int, r0: int, r1: int) -> int:
    """Σ_{r0 <= r < r1} Σ_b x_b H_b x_bᵀ over the raw bytes (v int8, h int16 native order), exactly: each
    (row, block) term is below 2^51 in magnitude, so int64 per term, a Python int for the total."""
    if r1 == r0 or cols == 0:
        return 0
    nb = cols // w
    rows = np.frombuffer(v, dtype=np.int8, count=r1 * stride).reshape(r1, stride)
    seg = rows[r0:r1, a : a + cols].astype(np.int64).reshape(r1 - r0, nb, w)
    hm = np.frombuffer(h, dtype=np.int16).astype(np.int64).reshape(nb, w, w)
    hx = np.einsum("bij,rbj->rbi", hm, seg)  # |.| <= 2048 * 2^22 = 2^33
    per = (hx * seg).sum(axis=-1)  # |.| <= 2^51 per (row, block)
    return sum(int(t) for t in per.ravel())


def reference_python(v: bytes, stride: int, a: int, cols: int, h: bytes, w: int, r0: int, r1: int) -> int:
    """The same sum with nothing but Python ints (a check of the NumPy reference on small cases)."""
    hv = np.frombuffer(h, dtype=np.int16).tolist()
    xs = np.frombuffer(v, dtype=np.int8).tolist()
    total = 0
    for r in range(r0, r1):
        for b in range(cols // w):
            x = xs[r * stride + a + b * w : r * stride + a + (b + 1) * w]
            hb = hv[b * w * w : (b + 1) * w * w]
            total += sum(x[i] * hb[i * w + j] * x[j] for i in range(w) for j in range(w))
    return total


# --- cases -----------------------------------------------------------------------------------------------------

#: Widths at the edges of the int32 runs (256 terms) and of the block limit.
EDGE_W = [1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 255, 256, 257, 511, 512, 513, 1024, 2047, 2048]
V_EDGES = np.array([-128, -127, -1, 0, 1, 126, 127], dtype=np.int8)
H_EDGES = np.array([-32768, -32767, -1, 0, 1, 32766, 32767], dtype=np.int16)


@dataclass(frozen=True)
class Case:
    """A valid call: v int8 [rows, stride], h int16 [cols / w, w, w], rows [r0, r1); ``guard`` bytes of poison
    around each buffer handed to the C code."""

    w: int
    blocks: int
    a: int
    stride: int
    rows: int
    r0: int
    r1: int
    v_fill: str
    h_fill: str
    seed: int
    guard: int

    @property
    def cols(self) -> int:
        return self.w * self.blocks

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(v window, h window, v parent, h parent): the windows are views into parents with random bytes around."""
        rng = np.random.default_rng(self.seed)
        nv, nh = self.rows * self.stride, self.blocks * self.w * self.w
        vp = rng.integers(-128, 128, size=nv + 2 * self.guard, dtype=np.int8)
        hp = rng.integers(-32768, 32768, size=nh + 2 * self.guard, dtype=np.int16)
        v, h = vp[self.guard : self.guard + nv], hp[self.guard : self.guard + nh]
        v[:] = _fill(rng, self.v_fill, nv, np.int8, V_EDGES)
        h[:] = _fill(rng, self.h_fill, nh, np.int16, H_EDGES)
        return v, h, vp, hp

    def args(self, v: Any, h: Any) -> tuple[Any, ...]:
        return (v, self.stride, self.a, self.cols, h, self.w, self.r0, self.r1)

    def want(self, v: np.ndarray, h: np.ndarray, exact: Any = None) -> int:
        return int(
            (exact or reference)(v.tobytes(), self.stride, self.a, self.cols, h.tobytes(), self.w, self.r0, self.r1)
        )


def _fill(rng: np.random.Generator, how: str, n: int, dtype: type, edges: np.ndarray) -> np.ndarray:
    info = np.iinfo(dtype)
    if how == "uniform":
        return rng.integers(info.min, info.max + 1, size=n, dtype=dtype)
    if how == "edges":
        return rng.choice(edges, size=n)
    if how == "min":
        return np.full(n, info.min, dtype=dtype)
    if how == "max":
        return np.full(n, info.max, dtype=dtype)
    if how == "signs":  # the extremes with random signs: the largest |terms| in both directions
        return np.where(rng.integers(0, 2, size=n) == 1, info.min, info.max).astype(dtype)
    raise AssertionError(how)


FILLS = ["uniform", "edges", "min", "max", "signs"]


@st.composite
def cases(draw: st.DrawFn, max_rows: int = 5) -> Case:
    w = draw(st.one_of(st.integers(1, 24), st.integers(1, 24), st.integers(1, 24), st.sampled_from(EDGE_W)))
    big = w > 256
    blocks = draw(st.integers(0 if not big else 1, 1 if big else 4 if w <= 64 else 2))
    rows = draw(st.integers(0 if not big else 1, 2 if big else max_rows))
    r0 = draw(st.integers(0, rows))
    r1 = draw(st.one_of(st.just(rows), st.integers(r0, rows)))  # often the last row: the buffer's end
    a = draw(st.integers(0, 9))
    stride = max(1, a + w * blocks + draw(st.one_of(st.just(0), st.integers(0, 9))))  # often a + cols = stride
    return Case(
        w=w,
        blocks=blocks,
        a=a,
        stride=stride,
        rows=rows,
        r0=r0,
        r1=r1,
        v_fill=draw(st.sampled_from(FILLS)),
        h_fill=draw(st.sampled_from(FILLS)),
        seed=draw(st.integers(0, 2**32 - 1)),
        guard=draw(st.sampled_from([0, 1, 2, 64])),
    )


def _full(w: int, blocks: int, rows: int, v_fill: str, h_fill: str) -> Case:
    return Case(w, blocks, 3, 3 + w * blocks + 5, rows, 0, rows, v_fill, h_fill, w, 8)


# --- (1) exact on every path -------------------------------------------------------------------------------------


@FUZZ
@given(cases())
@example(_full(2048, 1, 2, "min", "min"))  # every term (-128)(-32768)(-128): int32 runs of 256 at 2^30
@example(_full(2048, 1, 2, "min", "max"))
@example(_full(256, 2, 2, "min", "min"))  # exactly one int32 run per row of H
@example(_full(257, 1, 2, "signs", "signs"))
@example(_full(2047, 1, 1, "edges", "signs"))
@example(_full(1, 7, 3, "min", "min"))
def test_block_energy_is_the_exact_integer_sum(case: Case) -> None:
    v, h, _vp, _hp = case.arrays()
    want = case.want(v, h)
    if case.w * case.cols * (case.r1 - case.r0) <= 4096:
        assert case.want(v, h, reference_python) == want
    assert _on_every_isa(*case.args(v, h)) == want
    # the same bytes through other buffer types: bytes, bytearray, a memoryview, an int16 h as raw bytes
    assert _on_every_isa(*case.args(v.tobytes(), bytearray(h.tobytes()))) == want
    assert _on_every_isa(*case.args(v.data, h.view(np.uint8))) == want
    # v cut at the last byte the rows [0, r1) need: the parent's bytes after it are poison
    assert _on_every_isa(*case.args(v[: case.r1 * case.stride], h)) == want


# --- (2) sums over split rows and single blocks add up -----------------------------------------------------------


@FUZZ
@given(cases(max_rows=9), st.lists(st.integers(0, 9), max_size=4))
def test_block_energy_adds_up_over_row_runs_and_blocks(case: Case, cuts: list[int]) -> None:
    v, h, _vp, _hp = case.arrays()
    whole = _on_every_isa(*case.args(v, h))
    edges = sorted({case.r0, case.r1, *(min(max(c, case.r0), case.r1) for c in cuts)})
    runs = sum(_on_every_isa(v, case.stride, case.a, case.cols, h, case.w, x, y) for x, y in itertools.pairwise(edges))
    assert runs == whole
    hb = h.reshape(case.blocks, case.w, case.w) if case.blocks else h
    one_by_one = sum(
        _on_every_isa(v, case.stride, case.a + b * case.w, case.w, hb[b], case.w, case.r0, case.r1)
        for b in range(case.blocks)
    )
    assert one_by_one == whole


def test_block_energy_from_many_threads_at_once() -> None:
    """The GIL is released during the sum: concurrent calls on shared buffers give the one answer."""
    case = _full(64, 4, 40, "signs", "uniform")
    v, h, _vp, _hp = case.arrays()
    want = case.want(v, h)
    q = native.module()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: q.block_energy(*case.args(v, h)), range(32)))
    assert got == [want] * 32


@pytest.mark.slow
@pytest.mark.parametrize("sign", [1, -1])
def test_block_energy_past_two_to_the_64(sign: int) -> None:
    """A total whose magnitude needs the high 64 bits of the 128-bit sum (8193 rows of one 2048-wide block at the
    extremes, plus one random row): the Python int is exact, of either sign."""
    w, rows = MAX_W, 8194
    v = np.full((rows, w), -128, dtype=np.int8)
    v[-1] = np.random.default_rng(1).integers(-128, 128, size=w, dtype=np.int8)
    h = np.full((1, w, w), 32767 if sign > 0 else -32768, dtype=np.int16)
    last = reference(v[-1].tobytes(), w, 0, w, h.tobytes(), w, 0, 1)
    want = (rows - 1) * w * w * 128 * 128 * int(h[0, 0, 0]) + last
    assert abs(want) > 2**64
    assert _on_every_isa(v, w, 0, w, h, w, 0, rows) == want


# --- Energy.of (the caller) against its float64 reference ------------------------------------------------------


@settings(max_examples=max(1, EXAMPLES // 4), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_energy_of_parts_equals_the_float64_products(data: st.DataObject) -> None:
    rows = data.draw(st.integers(1, 12))
    w = data.draw(st.sampled_from([1, 2, 3, 4, 8, 16]))
    nparts = data.draw(st.integers(1, 3))
    widths = [w * data.draw(st.integers(1, 3)) for _ in range(nparts)]
    gaps = [data.draw(st.integers(0, 3)) for _ in range(nparts + 1)]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    parts, a = [], gaps[0]
    for c, gap in zip(widths, gaps[1:], strict=True):
        h = torch.from_numpy(_fill(rng, data.draw(st.sampled_from(FILLS)), c * w, np.int16, H_EDGES).astype(np.int64))
        parts.append((a, c, h.reshape(c // w, w, w), w))
        a += c + gap
    cols = a
    v = _fill(rng, data.draw(st.sampled_from(FILLS)), rows * cols, np.int8, V_EDGES)
    energy = measure.Energy.of_parts((rows, cols), parts)
    want = energy._of_products(v)
    for name in ISAS:
        for budget, run in [(1, measure.RUN), (3, cols * data.draw(st.integers(1, 3)))]:
            threads.set_budget(budget)
            saved, measure.RUN = measure.RUN, run  # runs of rows split between the pool's threads
            try:
                with _isa(name):
                    assert energy.of(v, -1) == want
            finally:
                measure.RUN = saved
                threads.set_budget(None)


# --- (3) hostile arguments ----------------------------------------------------------------------------------------

HUGE = [-(2**64), -(2**63) - 1, -(2**63), -(2**31) - 1, -(2**31), -2, -1, 0, 1, 2, 3, 2047, 2048, 2049, 4096,
        2**31 - 1, 2**31, 2**32 + 1, 2**62, 2**63 - 1, 2**63, 2**64, 10**30, True, False]  # fmt: skip
NOT_INTS = [None, 1.0, float("nan"), "3", b"3", [], (), object(), np.float64(2.0), 1j]
NOT_BUFFERS = [None, 0, "abc", [1, 2], 3.5, object(), {"a": 1}]
INT_SLOTS = {1: "stride", 2: "a", 3: "cols", 5: "w", 6: "r0", 7: "r1"}


def _int_value(x: Any, limit: int) -> int | None:
    """The C value a PyArg 'n' (limit SSIZE_MAX) or 'i' (INT_MAX) would parse ``x`` to; None: refused."""
    try:
        n = operator.index(x)
    except TypeError:
        return None
    return n if -limit - 1 <= n <= limit else None


class _PyBuffer(ctypes.Structure):
    _fields_ = [  # the C layout of Py_buffer
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None


def _buffer(x: Any) -> tuple[bytes, int] | None:
    """A contiguous buffer's bytes and address as 'y*' sees them (PyBUF_SIMPLE); None: refused."""
    view = _PyBuffer()
    try:
        _get_buffer(x, ctypes.byref(view), 0)
    except (TypeError, ValueError, BufferError):
        return None
    try:
        return ctypes.string_at(view.buf, view.len) if view.len else b"", int(view.buf or 0)
    finally:
        _release_buffer(ctypes.byref(view))


def expected(args: tuple[Any, ...]) -> int | None:
    """The answer block_energy must give, or None when it must refuse (the contract, written out in Python)."""
    vb, hb = _buffer(args[0]), _buffer(args[4])
    n = {i: _int_value(args[i], INT_MAX if i == 5 else SSIZE_MAX) for i in INT_SLOTS}
    if vb is None or hb is None or any(x is None for x in n.values()):
        return None
    stride, a, cols, w, r0, r1 = (int(n[i]) for i in sorted(INT_SLOTS))  # type: ignore[arg-type]
    (v, _), (h, h_addr) = vb, hb
    ok = (
        1 <= w <= MAX_W
        and stride >= 1
        and a >= 0
        and cols >= 0
        and cols % w == 0
        and a + cols <= stride
        and 0 <= r0 <= r1
        and r1 * stride <= SSIZE_MAX
        and r1 * stride <= len(v)
        and cols * w * 2 <= SSIZE_MAX
        and len(h) == cols * w * 2
        and h_addr % 2 == 0
    )
    return reference(v, stride, a, cols, h, w, r0, r1) if ok else None


def _odd_address(raw: bytes) -> memoryview:
    """``raw`` in a buffer that starts at an odd address (a memoryview: NumPy moves an empty slice's pointer)."""
    parent = np.zeros(len(raw) + 2, dtype=np.uint8)
    off = 1 if parent.ctypes.data % 2 == 0 else 0
    parent[off : off + len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    out = parent.data[off : off + len(raw)]
    assert _buffer(out) == (raw, parent.ctypes.data + off)
    return out


@st.composite
def hostile(draw: st.DrawFn) -> tuple[tuple[Any, ...], list[bytearray]]:
    """A valid small call with one to three arguments replaced by something hostile; also the bytearrays handed
    over (their exports must be released after the call, whatever it answered)."""
    case = draw(cases(max_rows=4).filter(lambda c: c.w <= 64))
    v, h, vp, hp = case.arrays()
    args: list[Any] = list(case.args(v, h))
    arrays: list[bytearray] = []
    for _ in range(draw(st.integers(1, 3))):
        slot = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]))
        if slot in INT_SLOTS:
            cur = operator.index(args[slot]) if _int_value(args[slot], SSIZE_MAX) is not None else 0
            c32 = max(-(2**31), min(cur, INT_MAX))
            args[slot] = draw(
                st.one_of(
                    st.sampled_from(HUGE),
                    st.sampled_from(NOT_INTS),
                    st.integers(cur - 3, cur + 3),  # just past a bound
                    st.integers(-(2**70), 2**70),
                    st.sampled_from([np.int64(cur), np.int32(c32), np.uint8(cur % 256)]),
                )
            )
            continue
        raw = (v if slot == 0 else h).tobytes()
        parent = (vp if slot == 0 else hp).view(np.uint8)
        start = case.guard * (1 if slot == 0 else 2)
        need = case.r1 * case.stride if slot == 0 else case.cols * case.w * 2
        kind = draw(
            st.sampled_from(
                ["short", "exact", "long", "bytes", "bytearray", "odd", "noncontig", "retype", "empty", "not"]
            )
        )
        if kind in ("short", "exact"):  # a window of the bytes needed, or one or two short; poison after it
            cut = 0 if kind == "exact" else draw(st.integers(1, 2))
            args[slot] = parent.data[start : start + max(0, need - cut)]
        elif kind == "long":
            args[slot] = raw + bytes(draw(st.integers(1, 3)))
        elif kind == "bytes":
            args[slot] = raw
        elif kind == "bytearray":
            arrays.append(bytearray(raw))
            args[slot] = arrays[-1]
        elif kind == "odd":
            args[slot] = _odd_address(raw)
        elif kind == "noncontig":
            doubled = np.repeat(np.frombuffer(raw, dtype=np.uint8), 2)
            args[slot] = doubled[::2] if len(raw) else np.zeros((2, 2), np.uint8)[:, ::2]
        elif kind == "retype":  # the same bytes, another element type
            args[slot] = np.frombuffer(raw, dtype=np.uint8).view(np.int16) if len(raw) % 2 == 0 else raw
        elif kind == "empty":
            args[slot] = b""
        else:
            args[slot] = draw(st.sampled_from(NOT_BUFFERS))
    return tuple(args), arrays


@FUZZ
@given(hostile())
@example(((np.zeros(8, np.int8), 2**62, 0, 1, np.zeros(1, np.int16), 1, 0, 4), []))  # r1 * stride overflows
@example(((np.zeros(8, np.int8), 4, 0, 4, np.zeros(16, np.int16), 4, 2**62, 2**62), []))  # r0 = r1, r1 * stride over
@example(((np.zeros(8, np.int8), 8, 0, 2**61, np.zeros(16, np.int16), 2048, 0, 1), []))  # cols * w * 2 overflows
@example(((np.zeros(8, np.int8), 8, 2**63 - 1, 1, np.zeros(1, np.int16), 1, 0, 1), []))  # a + cols overflows
@example(((np.zeros(8, np.int8), 8, 0, 4, np.zeros(16, np.int16), 0, 0, 1), []))  # w = 0: no division by it
@example(((np.zeros(8, np.int8), 8, 0, 0, b"", 4, 0, 1), []))  # no columns: 0
@example(((np.zeros(4096, np.int8), 4096, 0, 0, b"", 2049, 0, 1), []))  # w > 2048
@example(((np.zeros(8, np.int8), 8, 0, 2, np.zeros(4, np.int16), 2, 0, 1), []))  # h twice too long
@example(((np.zeros(8, np.int8), 8, 0, 2, _odd_address(bytes(8)), 2, 0, 1), []))  # h at an odd address
@example(((np.zeros(8, np.int8), 8, 0, 0, _odd_address(b""), 4, 0, 1), []))  # an odd empty h: refused too
@example(((np.zeros(8, np.int8), 8, -1, 2, np.zeros(4, np.int16), 1, 0, 1), []))  # a < 0
@example(((np.zeros(8, np.int8), 8, 7, 2, np.zeros(4, np.int16), 1, 0, 1), []))  # a + cols = stride + 1
@example(((np.zeros(8, np.int8), -8, 0, 0, b"", 1, -2, -1), []))  # negative stride and rows
@example(((np.arange(16, dtype=np.int8)[8:], 4, 0, 4, np.ones(16, np.int16), 4, -1, 1), []))  # r0 = -1: row -1
@example(((np.zeros(7, np.int8), 4, 0, 4, np.zeros(16, np.int16), 4, 0, 2), []))  # v one byte short of r1 rows
@example(((np.zeros(8, np.int8), 4, 1, 4, np.zeros(16, np.int16), 4, 0, 1), []))  # a + cols = stride + 1
def test_block_energy_refuses_hostile_arguments(call: tuple[tuple[Any, ...], list[bytearray]]) -> None:
    args, arrays = call
    want = expected(args)
    for name in ISAS:
        with _isa(name) as q:
            if want is None:
                with pytest.raises(REFUSED):
                    q.block_energy(*args)
            else:
                assert q.block_energy(*args) == want
    for ba in arrays:  # no export left behind: the bytearray can still be resized
        ba.append(0)
        del ba[-1]


def test_block_energy_refusals_are_the_documented_types() -> None:
    """Out of the C ranges: OverflowError (PyArg's, before any check); wrong types: TypeError; the contract:
    ValueError naming block_energy."""
    q, v, h = native.module(), np.zeros((2, 4), np.int8), np.zeros((1, 4, 4), np.int16)
    with pytest.raises(OverflowError):
        q.block_energy(v, 2**63, 0, 4, h, 4, 0, 2)
    with pytest.raises(OverflowError):
        q.block_energy(v, 4, 0, 4, h, 2**31, 0, 2)
    with pytest.raises(TypeError):
        q.block_energy(v, 4.0, 0, 4, h, 4, 0, 2)
    with pytest.raises(TypeError):
        q.block_energy("v", 4, 0, 4, h, 4, 0, 2)
    with pytest.raises(TypeError):
        q.block_energy(v, 4, 0, 4, h, 4, 0)
    with pytest.raises(ValueError, match="block_energy"):
        q.block_energy(v, 4, 0, 4, h.reshape(-1)[:8], 4, 0, 2)
    with pytest.raises(ValueError, match="block_energy"):
        q.block_energy(v, 4, 0, 4, h, 2049, 0, 2)
    assert q.block_energy(v, 4, 0, 4, h, 4, 0, 2) == 0
