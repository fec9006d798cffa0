"""The C decoder's entry points guard themselves (issue 28, low findings), whatever the Python wrapper checks.

``decode()`` and ``decode_hash()`` are called directly with hostile arguments: sizes whose products overflow
(``rows = 2**62`` used to wrap every expected length to 0 and write past an empty buffer), negative sizes
(they used to return NULL with no exception set: SystemError), short buffers, and hashers that keep what
``update()`` got and read it after the call (the chunk buffer used to be freed, or reused, under their view).
Each case runs in a fresh interpreter that loads only the extension, so a crash is a failed test, not a
crashed test run.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

from uc_attest.quant import decode

pytestmark = pytest.mark.skipif(not decode.native_available(), reason="C decoder not compiled (pip install -e .)")

_SPEC = importlib.util.find_spec("uc_attest.quant._decode")
PRELUDE = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_decode", {_SPEC.origin if _SPEC else ""!r})
d = importlib.util.module_from_spec(spec)
spec.loader.exec_module(d)

def outcome(fn, *args):
    try:
        fn(*args)
    except BaseException as exc:
        return f"{{type(exc).__name__}}: {{exc}}"
    return "ok"
"""

BIG = 1 << 62  # times 4 groups of 128 codes of 8 bits: every length the old code checked wrapped to 0


def run(body: str) -> str:
    """Run ``body`` after PRELUDE in a fresh interpreter; its stdout (the test fails if it crashes or hangs)."""
    code = PRELUDE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"interpreter died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout.strip()


# decode(codes, scales, zeros, exponent, rows, cols, group, bits, dtype, out, rotated, key, first_group, period)
@pytest.mark.parametrize(
    ("args", "error", "names"),
    [
        # the products of the sizes overflow: refused before any byte is written
        (f"b'', b'', b'', 0, {BIG}, 512, 128, 8, 0, bytearray(), False, 0, 0, 0", "OverflowError", "rows"),
        (f"b'', b'', b'', 0, 2, {(1 << 63) - 1}, 128, 8, 2, bytearray(), False, 0, 0, 0", "OverflowError", "cols"),
        (f"b'', b'', b'', 0, 0, {(1 << 63) - 1}, 8, 8, 0, bytearray(), False, 0, 0, 0", "OverflowError", "cols"),
        (
            f"bytes(64), bytes(2), bytes(1), 0, 1, 128, 128, 4, 0, bytearray(512), True, 0, {(1 << 63) - 1}, 0",
            "OverflowError",
            "first_group",
        ),
        # negative sizes: a ValueError naming the argument, never a NULL without an exception (SystemError)
        ("b'', b'', b'', 0, -1, 128, 128, 8, 0, bytearray(), False, 0, 0, 0", "ValueError", "rows"),
        ("b'', b'', b'', 0, 1, -128, 128, 8, 0, bytearray(), False, 0, 0, 0", "ValueError", "cols"),
        (
            "bytes(128), bytes(2), bytes(1), 0, 1, 128, 128, 8, 0, bytearray(512), False, 0, -1, 0",
            "ValueError",
            "first_group",
        ),
        (
            "bytes(128), bytes(2), bytes(1), 0, 1, 128, 128, 8, 0, bytearray(512), False, 0, 0, -1",
            "ValueError",
            "period",
        ),
        # short or long buffers, each named
        ("bytes(127), bytes(2), bytes(1), 0, 1, 128, 128, 8, 0, bytearray(512), False, 0, 0, 0", "ValueError", "codes"),
        (
            "bytes(128), bytes(1), bytes(1), 0, 1, 128, 128, 8, 0, bytearray(512), False, 0, 0, 0",
            "ValueError",
            "scales",
        ),
        ("bytes(128), bytes(2), bytes(0), 0, 1, 128, 128, 8, 0, bytearray(512), False, 0, 0, 0", "ValueError", "zeros"),
        ("bytes(128), bytes(2), bytes(1), 0, 1, 128, 128, 8, 0, bytearray(511), False, 0, 0, 0", "ValueError", "out"),
        (
            "bytes(128), bytes(2), bytes(1), 0, 1, 128, 128, 8, 1, memoryview(bytearray(257))[1:], False, 0, 0, 0",
            "ValueError",
            "out",
        ),  # a misaligned F16 output
        (
            "bytes(128), memoryview(bytes(3))[1:], bytes(1), 0, 1, 128, 128, 8, 0, bytearray(512), False, 0, 0, 0",
            "ValueError",
            "scales",
        ),  # misaligned fp16 scales
        # bad parameters: still a ValueError naming what is wrong
        ("bytes(128), bytes(2), bytes(1), 0, 1, 128, 128, 9, 0, bytearray(512), False, 0, 0, 0", "ValueError", "bits"),
        ("bytes(128), bytes(2), bytes(1), 0, 1, 128, 0, 8, 0, bytearray(512), False, 0, 0, 0", "ValueError", "group"),
        ("bytes(128), bytes(2), bytes(1), 0, 1, 128, 128, 8, 3, bytearray(512), False, 0, 0, 0", "ValueError", "dtype"),
    ],
)
def test_decode_refuses_hostile_sizes(args: str, error: str, names: str) -> None:
    got = run(f"print(outcome(d.decode, {args}))")
    assert got.startswith(error + ": "), got
    assert names in got.split(": ", 1)[1], got


# decode_hash(codes, scales, zeros, exponent, n, group, bits, dtype, rotated, key, period, hasher, chunk_groups)
@pytest.mark.parametrize(
    ("args", "error", "names"),
    [
        ("b'', b'', b'', 0, -1, 128, 8, 0, False, 0, 0, H(), 1", "ValueError", "n"),
        ("bytes(128), bytes(2), bytes(1), 0, 128, 128, 8, 0, False, 0, 0, H(), 0", "ValueError", "chunk_groups"),
        ("bytes(128), bytes(2), bytes(1), 0, 128, 128, 8, 0, False, 0, 0, H(), -5", "ValueError", "chunk_groups"),
        ("bytes(128), bytes(2), bytes(1), 0, 128, 128, 8, 0, False, 0, -8, H(), 1", "ValueError", "period"),
        (f"b'', b'', b'', 0, {(1 << 63) - 1}, 128, 8, 0, False, 0, 0, H(), 1", "OverflowError", "n"),
        (f"b'', b'', b'', 0, {(1 << 63) - 1}, 8, 2, 0, False, 0, 0, H(), 1", "OverflowError", "n"),
        ("bytes(127), bytes(2), bytes(1), 0, 128, 128, 8, 0, False, 0, 0, H(), 1", "ValueError", "codes"),
        ("bytes(128), bytes(4), bytes(1), 0, 128, 128, 8, 0, False, 0, 0, H(), 1", "ValueError", "scales"),
        ("bytes(128), bytes(2), bytes(2), 0, 128, 128, 8, 0, False, 0, 0, H(), 1", "ValueError", "zeros"),
    ],
)
def test_decode_hash_refuses_hostile_sizes(args: str, error: str, names: str) -> None:
    got = run(
        f"""
        class H:
            def update(self, data):
                raise AssertionError("update called")
        print(outcome(d.decode_hash, {args}))
        """
    )
    assert got.startswith(error + ": "), got
    assert names in got.split(": ", 1)[1], got


KEEPERS = {
    "the object itself": "data",
    "a memoryview of it": "memoryview(data)",
    "a slice of it": "memoryview(data)[1:]",
    "a NumPy view of it": "__import__('numpy').frombuffer(data, dtype='uint8')",
}


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("keep", list(KEEPERS))
def test_a_hasher_that_keeps_its_chunks_reads_them_intact_after_the_call(isa: str, keep: str) -> None:
    """Each chunk a hasher got stays valid, and keeps the bytes it had, after update() returns and after
    decode_hash() returns (the chunk buffer used to be released, reused for the next chunk, then freed)."""
    if isa not in decode.native_isas():
        pytest.skip(f"this CPU lacks {isa}")
    got = run(
        f"""
        import hashlib, random
        d.set_isa({isa!r})
        rng = random.Random(1)
        group, bits, n = 128, 5, 128 * 40 + 17
        groups = -(-n // group)
        codes = bytes(rng.randrange(256) for _ in range(groups * group * bits // 8))
        scales = b"".join(rng.randrange(0x2000, 0x3C00).to_bytes(2, "little") for _ in range(groups))
        zeros = bytes(rng.randrange(1 << bits) for _ in range(groups))
        want = bytearray(n * 2)
        d.decode(codes, scales, zeros, -8, 1, n, group, bits, 2, want, True, 99, 0, 0)

        class Keeper:
            def __init__(self):
                self.kept, self.h = [], hashlib.sha256()
            def update(self, data):
                self.h.update(data)
                self.kept.append({KEEPERS[keep]})

        k = Keeper()
        d.decode_hash(codes, scales, zeros, -8, n, group, bits, 2, True, 99, 0, k, 3)
        assert len(k.kept) == 14, len(k.kept)
        junk = [bytearray(b"x" * 3 * group * 2) for _ in range(64)]  # would take freed chunk memory
        step = 3 * group * 2
        chunks = [bytes(want[i : i + step]) for i in range(0, len(want), step)]
        expect = [c[1:] for c in chunks] if {keep!r} == "a slice of it" else chunks
        assert [bytes(v) for v in k.kept] == expect, "kept chunks differ from the decoded tensor"
        assert k.h.digest() == hashlib.sha256(want).digest()
        print("intact")
        """
    )
    assert got == "intact"


def test_a_hasher_that_reads_a_kept_chunk_during_the_next_update_sees_its_own_bytes() -> None:
    """While decode_hash() runs: the chunk kept from the previous update() is not overwritten by the next."""
    got = run(
        """
        group, bits, n = 16, 8, 16 * 6
        codes = bytes(range(n))
        scales = (0x3C00).to_bytes(2, "little") * (n // group)
        zeros = bytes(n // group)
        want = bytearray(n * 4)
        d.decode(codes, scales, zeros, 0, 1, n, group, bits, 0, want, False, 0, 0, 0)

        class Checker:
            def __init__(self):
                self.prev, self.prev_copy, self.bad = None, None, 0
            def update(self, data):
                if self.prev is not None and bytes(self.prev) != self.prev_copy:
                    self.bad += 1
                self.prev, self.prev_copy = memoryview(data), bytes(data)

        c = Checker()
        d.decode_hash(codes, scales, zeros, 0, n, group, bits, 0, False, 0, 0, c, 1)
        print("bad", c.bad)
        """
    )
    assert got == "bad 0"


def test_a_hasher_that_raises_propagates_its_exception() -> None:
    got = run(
        """
        class Boom:
            calls = 0
            def update(self, data):
                Boom.calls += 1
                raise KeyError("boom")
        print(outcome(d.decode_hash, bytes(128 * 4), bytes(8), bytes(4), 0, 512, 128, 8, 0, False, 0, 0, Boom(), 1),
              Boom.calls)
        print(outcome(d.decode_hash, bytes(128), bytes(2), bytes(1), 0, 128, 128, 8, 0, False, 0, 0, object(), 1))
        """
    )
    first, second = got.splitlines()
    assert first == "KeyError: 'boom' 1"
    assert second.startswith("AttributeError: ")


def test_empty_rows_return_at_once_whatever_their_number() -> None:
    """rows = 2^62 of 0 columns: every buffer is legitimately empty; the decoder returns instead of looping
    with the GIL released (review of issue 28)."""
    import subprocess
    import sys

    code = ("from uc_attest.quant import _decode as d;"
            "d.decode(b'', b'', b'', 0, 2**62, 0, 128, 5, 0, bytearray(), False, 0, 0, 0)")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
