"""The ranks of a distributed pack (issue 34): who this process is, which tensors it quantizes, and the few
messages the ranks exchange, on torch.distributed (gloo: the control plane is small JSON; the data lies on
the shared filesystem).

A process started by ``torchrun`` (``WORLD_SIZE`` > 1, ``RANK``, ``MASTER_ADDR``/``MASTER_PORT`` in its
environment) is one rank of a pack; any other process is the one rank of a world of one, and nothing here
starts a process group. Every message is canonical JSON in a uint8 tensor, never a pickle: a rank reads
what another rank sends as data. Tensors go to ranks by a rule that depends on the model alone
(:func:`assign`), so the pack's bytes do not depend on the world size.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from ..errors import OperationalError, UcAttestError, UsageError

T = TypeVar("T")
#: How long a rank waits for the others at one step (a rank that died is noticed at once by gloo; this bounds
#: a rank that hangs).
STEP_TIMEOUT = timedelta(minutes=30)
#: A JSON message between ranks is at most this many bytes (names and measured curves of a model's tensors).
MAX_MESSAGE = 64 << 20


@dataclass(frozen=True)
class World:
    """This process's rank among ``size`` (a world of one when not started by torchrun)."""

    rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        """Rank 0: it calibrates, chooses the allocation and writes the pack."""
        return self.rank == 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> World:
        """torchrun's ``RANK``/``WORLD_SIZE`` (both, well formed, rank < size), else a world of one."""
        env = os.environ if env is None else env
        size_s, rank_s = env.get("WORLD_SIZE", ""), env.get("RANK", "")
        if not size_s and not rank_s:
            return cls()
        digits = re.compile(r"[0-9]{1,5}")  # ASCII only (str.isdigit takes '²' and '٢')
        if not (digits.fullmatch(size_s) and digits.fullmatch(rank_s)) or not 0 <= int(rank_s) < int(size_s) <= 4096:
            raise UsageError(f"torchrun environment: RANK={rank_s!r} WORLD_SIZE={size_s!r} is not a rank of a world")
        return cls(int(rank_s), int(size_s))


def assign(sizes: Mapping[str, int], ranks: int) -> dict[str, int]:
    """Tensor name -> rank: largest first (ties by name), each to the rank with the fewest weights so far
    (ties to the lowest rank). Depends on the model and the world size only, never on timing."""
    load = [0] * ranks
    out: dict[str, int] = {}
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        r = min(range(ranks), key=lambda i: (load[i], i))
        out[name] = r
        load[r] += sizes[name]
    return out


class Group:
    """The joined process group: the messages of one pack. A world of one sends nothing."""

    def __init__(self, world: World) -> None:
        self.world = world

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (JSON), in rank order, on every rank."""
        if not self.world.distributed:
            return [value]
        import torch
        import torch.distributed as dist

        raw = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        if len(raw) > MAX_MESSAGE:
            raise OperationalError(f"rank {self.world.rank}: a message of {len(raw)} bytes exceeds {MAX_MESSAGE}")
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(self.world.size)]
        _collective(lambda: dist.all_gather(sizes, torch.tensor([len(raw)], dtype=torch.int64)))
        longest = max(int(s.item()) for s in sizes)
        if longest > MAX_MESSAGE:
            raise OperationalError(f"a rank sent a message of {longest} bytes (more than {MAX_MESSAGE})")
        mine = torch.zeros(longest, dtype=torch.uint8)
        mine[: len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)  # JSON: never empty
        bufs = [torch.zeros(longest, dtype=torch.uint8) for _ in range(self.world.size)]
        _collective(lambda: dist.all_gather(bufs, mine))
        out = []
        for rank, (buf, n) in enumerate(zip(bufs, sizes, strict=True)):
            try:
                out.append(json.loads(bytes(buf[: int(n.item())].numpy())))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # nested past the parser: data too
                raise OperationalError(f"rank {rank} sent a message that is not JSON") from None
        return out

    def from_leader(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        return self.gather(value if self.world.leader else None)[0]

    def step(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on this rank, then agree: when any rank failed, every rank raises — the rank that failed
        its own error, the others one naming the first rank that failed and its message."""
        try:
            result = fn()
        except UcAttestError as exc:
            self._agree(exc, str(exc))
            raise
        except MemoryError:
            exc2 = OperationalError(f"rank {self.world.rank}: out of memory")
            self._agree(exc2, str(exc2))
            raise exc2 from None
        except BaseException as exc:
            self._agree(exc, f"{type(exc).__name__}: {exc}")
            raise
        self._agree(None, "")
        return result

    def _agree(self, exc: BaseException | None, message: str) -> None:
        status = self.gather({"failed": exc is not None, "message": message[:2000], "code": _code(exc)})
        failed = [(rank, s) for rank, s in enumerate(status) if isinstance(s, dict) and s.get("failed")]
        if failed and exc is None:
            rank, s = failed[0]
            code = s.get("code")
            raise RankFailed(rank, str(s.get("message", "")), code if isinstance(code, int) and 0 < code < 126 else 4)


class RankFailed(OperationalError):
    """Another rank of the pack failed: its number, its message, and its exit code (every rank exits alike)."""

    def __init__(self, rank: int, message: str, code: int) -> None:
        super().__init__(f"rank {rank} failed: {message}", rank=rank)
        self.exit_code = code


def _code(exc: BaseException | None) -> int | None:
    return exc.exit_code if isinstance(exc, UcAttestError) else None


#: The dtypes a :class:`Link` carries, by the code its header gives.
_LINK_DTYPES = ("uint8", "int64", "float32", "bfloat16", "float16", "float64")


class Link:
    """Tensors from one rank to another (a pipeline's activations, calibration/pipeline.py): sent without
    waiting, received in the order sent for each sender and tag into a buffer of the shape and dtype the receiver
    expects. Each tensor goes as a fixed-size header (its byte count and dtype) then its bytes: a receiver that
    expects another size or dtype stops with an OperationalError before taking the bytes (gloo would take a
    shorter message silently and abort the process on a longer one). The bytes are data: nothing is parsed.
    :meth:`settle` waits for what this rank sent."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._sent: list[tuple[Any, Any]] = []  # (work, tensor): each tensor kept until its send completes

    def send(self, tensor: Any, to: int, tag: int) -> None:
        import torch
        import torch.distributed as dist

        raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
        head = torch.tensor([raw.numel(), _dtype_code(tensor.dtype)], dtype=torch.int64)
        self._sent.append((_p2p(lambda: dist.isend(head, to, tag=2 * tag)), head))
        self._sent.append((_p2p(lambda: dist.isend(raw, to, tag=2 * tag + 1)), raw))

    def recv(self, shape: tuple[int, ...], dtype: Any, frm: int, tag: int) -> Any:
        import torch
        import torch.distributed as dist

        buf = torch.empty(shape, dtype=dtype)
        raw = buf.reshape(-1).view(torch.uint8)
        head = torch.zeros(2, dtype=torch.int64)
        _p2p(lambda: dist.recv(head, frm, tag=2 * tag))
        want = [raw.numel(), _dtype_code(dtype)]
        if head.tolist() != want:
            raise OperationalError(
                f"rank {frm} sent {head[0].item()} bytes of dtype code {head[1].item()} where rank "
                f"{self.world.rank} expects {want[0]} bytes of {str(dtype).removeprefix('torch.')}"
            )
        _p2p(lambda: dist.recv(raw, frm, tag=2 * tag + 1))
        return buf

    def drop(self) -> None:
        """Forget the sends not yet waited for (before :func:`abandon`: a send in flight keeps the process group,
        and its connections, alive)."""
        self._sent = []

    def settle(self, keep: int = 0) -> None:
        """Wait for every send but the last ``keep`` tensors."""
        cut = max(0, len(self._sent) - 2 * keep)
        sent, self._sent = self._sent[:cut], self._sent[cut:]
        for work, _tensor in sent:
            _p2p(work.wait)


def _dtype_code(dtype: Any) -> int:
    name = str(dtype).removeprefix("torch.")
    if name not in _LINK_DTYPES:
        raise AssertionError(f"a Link carries no {name} tensors")
    return _LINK_DTYPES.index(name)


def abandon() -> None:
    """Leave the process group at once (a rank that failed while others may wait on its tensors: their calls
    fail now, not at the step timeout; its :class:`Link`'s sends dropped first). This process joins no group again."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _p2p(fn: Callable[[], T]) -> T:
    """A point-to-point call; a rank that left the job is an OperationalError here."""
    out: list[T] = []
    _collective(lambda: out.append(fn()))
    return out[0]


def _collective(fn: Callable[[], object]) -> None:
    """A collective call; a rank that left the job (killed, crashed) is an OperationalError here."""
    try:
        fn()
    except RuntimeError as exc:  # gloo: connection closed / timed out
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        text = text.split("] ", 1)[-1].split(". This is typically", 1)[0]  # gloo's source position and advice cut
        raise OperationalError(f"a rank left the distributed pack ({text[:200]}); see that rank's output") from None


@contextmanager
def joined(world: World) -> Iterator[Group]:
    """The process group (gloo, torchrun's rendezvous) for this block; a world of one joins nothing. The group is
    made once per process and kept until it exits: joining again after destroying it (a split verify, then its
    rebuild) rendezvoused through torchrun's store, which still held the first group's addresses, and a rank could
    connect to a closed port ("Connection refused")."""
    if not world.distributed:
        yield Group(world)
        return
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        raise UsageError("a distributed pack needs torch.distributed with gloo; this torch has none")
    if not dist.is_initialized():  # SIGTERM keeps its default while the rendezvous blocks (no Python handler runs)
        try:
            dist.init_process_group("gloo", rank=world.rank, world_size=world.size, timeout=STEP_TIMEOUT)
        except (RuntimeError, ValueError) as exc:
            raise OperationalError(f"rank {world.rank}: cannot join the distributed pack: {exc}") from None
        atexit.register(_leave)
    restore = _terminate_as_error(world)
    try:
        yield Group(world)
    finally:
        restore()


def _leave() -> None:
    """Destroy the process group at exit (every rank's last step was agreed, so none is still using it)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _terminate_as_error(world: World) -> Callable[[], None]:
    """SIGTERM raises an OperationalError while the pack runs, so that this rank removes what it made: torchrun
    stops every rank with SIGTERM when one of them fails. Returns what puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(_signum: int, _frame: object) -> None:
        raise OperationalError(
            f"rank {world.rank}: terminated (another rank of the pack failed or the job was stopped)"
        )

    previous = signal.signal(signal.SIGTERM, stop)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore
