"""One thread budget per process (DESIGN §10): sized from the cores this process may actually use, shared by
torch's intra-op pool and every pool of uc-attest's own (the native quantizer and decoder).

Two pools of N threads on N cores is how a CPU path loses 10x on a busy machine; so the budget is set once at
the edge (``--threads``, ``UC_ATTEST_THREADS``, else the CPUs in the affinity mask and the cgroup's quota) and
every pool asks :func:`budget`. Work is split by whole units (tensors, groups, rows), never the reduction
dimension, so the results never depend on it.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_budget: int | None = None
_pool: ThreadPoolExecutor | None = None


def available_cores() -> int:
    """CPUs this process may run on: the affinity mask, bounded by a cgroup v2 CPU quota when one is set."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def budget() -> int:
    """The process's thread budget: set by :func:`set_budget`, else ``UC_ATTEST_THREADS``, else ``OMP_NUM_THREADS``
    (the usual way to limit a process's threads), else the cores available (never more than those)."""
    global _budget
    if _budget is None:
        _budget = available_cores()
        for var in ("UC_ATTEST_THREADS", "OMP_NUM_THREADS"):
            env = os.environ.get(var, "")
            if env.isdigit() and int(env) > 0:
                _budget = min(int(env), _budget)
                break
    return _budget


def set_budget(n: int | None) -> int:
    """Set the budget (None: back to the default) and size torch's intra-op pool to it when torch is loaded."""
    global _budget, _pool
    if n is not None and n < 1:
        raise ValueError(f"a thread budget is at least 1, got {n}")
    _budget = n
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None
    size_torch()
    return budget()


def size_torch() -> None:
    """torch's intra-op pool at the budget (its default is every core of the machine, whatever the affinity)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != budget():
        torch.set_num_threads(budget())


def pool() -> ThreadPoolExecutor:
    """The process's pool of ``budget()`` workers for GIL-free native work."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=budget(), thread_name_prefix="uc-attest")
    return _pool


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op pool at ``n`` threads for a block (e.g. 1 while the native pool runs), then back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


set_thread_budget = set_budget  # the facade's name (uc_attest.set_thread_budget)
