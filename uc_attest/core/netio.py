"""Reading an HTTP answer within a total deadline.

A socket timeout bounds each wait for bytes, not the answer: a peer that sends one byte just before every
timeout holds a reader open for as long as it likes. :class:`Deadline` bounds the whole answer — a fixed time
plus what the bytes received so far may take at a minimum rate (so a large blob from a slow but honest registry
still arrives) — and :func:`read_within` reads in pieces of at most one socket read each, checking it between
them. Exceeding it raises ``TimeoutError`` (an ``OSError``): callers already treat that as "unreachable".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

#: Pieces read at a time: one socket read at most (``read1``), so a trickle is seen between pieces.
PIECE = 1 << 16


@dataclass
class Deadline:
    """``seconds`` for the answer, plus one second per ``min_rate`` bytes received (0: a fixed deadline)."""

    seconds: float
    min_rate: float = 0.0
    what: str = "answer"
    start: float = field(default_factory=time.monotonic)
    received: int = 0

    def check(self) -> None:
        allowed = self.seconds + (self.received / self.min_rate if self.min_rate else 0.0)
        if time.monotonic() - self.start > allowed:
            rate = f", under {self.min_rate / 1e6:g} MB/s" if self.min_rate else ""
            raise TimeoutError(f"{self.what}: not complete after {allowed:.0f} s{rate} (a peer trickling bytes?)")


def read_piece(resp: Any, n: int, deadline: Deadline) -> bytes:
    """At most ``n`` bytes of ``resp`` with at most one socket read, within ``deadline`` (checked before it)."""
    deadline.check()
    read1 = getattr(resp, "read1", None)
    data: bytes = read1(min(n, PIECE)) if read1 is not None else resp.read(min(n, PIECE))
    deadline.received += len(data)
    return data


def read_within(resp: Any, limit: int, deadline: Deadline) -> bytes:
    """The answer's bytes, at most ``limit + 1`` (one more than allowed: the caller says "too large"), within
    ``deadline``."""
    out = bytearray()
    while len(out) <= limit:
        piece = read_piece(resp, limit + 1 - len(out), deadline)
        if not piece:
            break
        out += piece
    return bytes(out)
