"""The pack pipeline behind one typed request, with one set of defaults for every door (DESIGN.md §9).

``PackRequest`` says what to pack and how, as grouped values: a :class:`Calibration` (or a
:class:`MomentsFile`, or None), an :class:`Allocation` (or None) and the source's :class:`OmsSignature`.
Its defaults are the product's: calibrate when the model can be run, and spend at most
:data:`DEFAULT_BUDGET` bits per quantized weight where the measured damage is largest, on
:data:`PACK_SCHEME`. ``uc_attest.write_pack(src, out)`` and ``uc-attest pack SRC -o OUT`` build the same
request and so write the same bytes. ``PackRequest.uncalibrated`` asks for the plain pack (no calibration,
no allocation, the given scheme as it is).

:func:`run_pack` checks everything that can fail fast before any work (the output, the calibration text,
the source's headers and index, the source signature), then measures the calibration moments, allocates
the bits, and writes the pack (``writer``), reporting each stage to a :class:`PackProgress`. Verifying the
source's signature needs the evidence layer, below this one in the pipeline: the facade passes it in as a
:data:`SourceGate`. Torch is imported only when a pack is written.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypedDict

from ..anchors import OmsSignature
from ..errors import InvalidInput, MissingExtra, UsageError
from ..quant.scheme import DEFAULT_SCHEME, Scheme, check_budget

if TYPE_CHECKING:  # the manifest and the writer are imported when a pack is written (the CLI starts without them)
    from ..calibration.file import Calibration as CalibrationFile
    from ..manifest import CalibrationRecord
    from ..quant.allocate import CandidateStore
    from .writer import KeptSignature, PackResult

#: Bits per quantized weight (codes, scales, zero-points) the measured allocation may spend by default.
DEFAULT_BUDGET = 5.30
#: The scheme a pack uses unless told otherwise: 5 bits everywhere, widths then set by the allocation
#: (DEFAULT_SCHEME's name rule, value projections at 6 bits, was the default before measured allocation).
PACK_SCHEME = replace(DEFAULT_SCHEME, bits_overrides=())
#: What packing without calibration costs, as benchmarks/fidelity.py measured it (README, "Fidelity").
NO_CALIBRATION_COST = (
    "Without calibration the reconstruction error is 2.4-3.3x larger (all-MiniLM-L6-v2 at 5.29 bits per weight: "
    "1 - mean cosine 0.0082 vs 0.0034 on held-out text, 0.0072 vs 0.0022 on the development set)"
)


class Unset(Enum):
    """An option that was not given (so "not given" is never a comparison with the default's value)."""

    UNSET = "unset"


UNSET = Unset.UNSET


class CalibrationMode(Enum):
    """What a pack does when the model cannot be run to measure calibration moments."""

    AUTO = "auto"  # warn and pack without them
    REQUIRED = "required"  # refuse (exit 3)


@dataclass(frozen=True)
class Calibration:
    """Calibration moments measured now, as :mod:`uc_attest.calibration.default` says (self-sampled for causal
    LMs, Python's docstrings for encoders), or over ``text`` (UTF-8, one sample per line): a text that cannot
    be used is refused whatever the ``mode``."""

    mode: CalibrationMode = CalibrationMode.AUTO
    text: Path | None = None

    def __post_init__(self) -> None:
        try:  # a mode given as its string is the enum member (compared with `is`)
            object.__setattr__(self, "mode", CalibrationMode(self.mode))
        except ValueError:
            raise UsageError(f"calibration mode must be auto or required, not {self.mode!r}") from None


@dataclass(frozen=True)
class MomentsFile:
    """Calibration moments from a file (``uc-attest calibrate``) instead of measured; its digest is recorded."""

    path: Path


@dataclass(frozen=True)
class Allocation:
    """The measured bit allocation: at most ``budget`` bits per quantized weight (UNSET: :data:`DEFAULT_BUDGET`)
    where the measured damage is largest. ``strict``: a budget the base widths already exceed is refused
    (exit 2) instead of meaning no allocation."""

    budget: float | Unset = UNSET
    strict: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.budget, Unset):
            check_budget(self.budget)  # before any work: a NaN or infinite budget is refused, not a crash

    @property
    def bits(self) -> float:
        """The budget in bits per quantized weight."""
        return DEFAULT_BUDGET if isinstance(self.budget, Unset) else self.budget


def scheme_from_options(
    *,
    bits: int = PACK_SCHEME.bits,
    group_size: int = PACK_SCHEME.group_size,
    scheme_id: str | None = None,
    bits_overrides: Sequence[str] | None = None,
    no_overrides: bool = False,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> Scheme:
    """A scheme from command-line style options: :data:`PACK_SCHEME` with what is given changed.

    ``bits_overrides`` are ``GLOB=BITS`` strings (the first matching glob sets a tensor's bits);
    ``no_overrides`` drops them."""
    overrides: tuple[tuple[str, int], ...] = ()
    if bits_overrides and not no_overrides:
        try:
            overrides = tuple((g, int(b)) for g, b in (o.rsplit("=", 1) for o in bits_overrides))
        except ValueError:
            raise UsageError(
                "{0} must be GLOB=BITS, got {got}", option="bits_overrides", got=list(bits_overrides)
            ) from None
    return Scheme(
        bits=bits,
        group_size=group_size,
        id=scheme_id or PACK_SCHEME.id,
        include=tuple(include) if include else PACK_SCHEME.include,
        exclude=tuple(exclude) if exclude else PACK_SCHEME.exclude,
        bits_overrides=overrides,
    )


@dataclass(frozen=True)
class PackRequest:
    """What to pack and how; each option is one value, so a combination that cannot be meant cannot be written.

    ``calibration``: :class:`Calibration` measures moments, :class:`MomentsFile` uses a file's, None does not
    calibrate (nor does a scheme without error feedback). ``allocation``: the measured bit allocation (None:
    the scheme's widths as they are). ``source_signature``: the source's OpenSSF Model Signing signature,
    verified before any work and kept in the pack. ``force``: replace an existing output."""

    source: Path
    out: Path
    scheme: Scheme = PACK_SCHEME
    device: str = "auto"
    calibration: Calibration | MomentsFile | None = Calibration()
    allocation: Allocation | None = Allocation()
    source_signature: OmsSignature | None = None
    force: bool = False

    def __post_init__(self) -> None:
        for name in ("source", "out"):  # a str from a caller is a path
            object.__setattr__(self, name, Path(getattr(self, name)))

    @classmethod
    def uncalibrated(
        cls, source: Path, out: Path, scheme: Scheme = DEFAULT_SCHEME, device: str = "auto"
    ) -> PackRequest:
        """The plain pack: no calibration, no allocation, ``scheme`` as it is (fast; what tests pin)."""
        return cls(source, out, scheme, device, calibration=None, allocation=None)


class PackOptions(TypedDict, total=False):
    """The keyword options of ``uc_attest.write_pack``: :class:`PackRequest`'s fields after the device."""

    calibration: Calibration | MomentsFile | None
    allocation: Allocation | None
    source_signature: OmsSignature | None
    force: bool


class PackProgress(Protocol):
    """Where a pack run reports its work: each stage as it starts, then how far it is."""

    def stage(self, name: str) -> None:
        """A stage begins (``checking``, ``calibration``, ``allocation``, ``quantization``)."""

    def update(self, done: int, total: int, what: str) -> None:
        """``done`` of ``total`` units of the current stage (batches, weights); ``what`` was just done."""


#: Verifies the request's source signature against the files the pack reads: what the pack keeps and records,
#: with the check of the source files as they are read (evidence.packing.source_gate). Supplied by the facade.
SourceGate = Callable[[PackRequest, list[str]], "KeptSignature"]


class _Quiet:
    """A PackProgress that shows nothing."""

    def stage(self, name: str) -> None:
        return None

    def update(self, done: int, total: int, what: str) -> None:
        return None


def run_pack(
    request: PackRequest,
    *,
    progress: PackProgress | None = None,
    warn: Callable[[str], None] | None = None,
    source_gate: SourceGate | None = None,
) -> PackResult:
    """Quantize ``request.source`` into a new pack at ``request.out``, all or nothing (module docstring)."""
    r = request
    show = progress or _Quiet()
    from .world import World
    from .writer import WriteOptions, write_pack  # torch: first, so that without it nothing is read or verified

    world = World.from_env()
    if world.distributed:  # started by torchrun: one rank of a distributed pack (same bytes)
        from .distributed import run_distributed

        return run_distributed(r, world, show, warn, source_gate)
    show.stage("checking")
    skip, read, weights = check_request(r)
    kept = None
    if r.source_signature is not None:
        if source_gate is None:
            raise UsageError(
                "verifying {0} needs uc_attest.write_pack or uc_attest.run_pack", option="source_signature"
            )
        kept = source_gate(r, read)
    with tempfile.TemporaryDirectory(prefix="uc-calibration-") as tmp:
        cal_file, record = _moments_for(r, show, warn, Path(tmp))
        cal = _open_calibration(cal_file, r)
        prepared = None
        try:
            scheme = r.scheme
            if r.allocation is not None:
                show.stage("allocation")
                from ..quant.allocate import CandidateStore

                prepared = CandidateStore(scratch=r.out.absolute().parent)
                scheme = _allocated(r, r.allocation, cal, prepared, _tensors(show, weights))
            show.stage("quantization")
            options = WriteOptions(
                force=r.force,
                progress=_tensors(show, weights),
                moments=cal,
                signature=kept,
                skip_files=skip,
                calibration=record,
                prepared=prepared,
            )
            return write_pack(r.source, r.out, scheme, r.device, options)
        finally:
            if prepared is not None:
                prepared.close()
            if cal is not None:
                cal.close()


def _allocated(
    r: PackRequest,
    allocation: Allocation,
    cal: CalibrationFile | None,
    store: CandidateStore,
    progress: Callable[[str, int], None],
) -> Scheme:
    """The request's scheme with the widths the measured allocation chose; the candidates measured stay in
    ``store`` (the writer takes them as they are)."""
    from ..quant.allocate import allocate
    from .writer import resolve_device

    device = resolve_device(r.device)
    return allocate(
        r.source, r.scheme, allocation.bits, cal, device, strict=allocation.strict, progress=progress, store=store
    ).scheme


def check_request(r: PackRequest) -> tuple[tuple[str, ...], list[str], int]:
    """What fails fast, before any work (a pack can take minutes): the output, the calibration text, every
    header and the index of the source. Returns the files inside the source that are not the model (a
    signature), the files the pack reads, and the weights the scheme quantizes."""
    if r.out.exists() and not r.force:
        raise UsageError(
            "{path}: output already exists (use {0:=True} to replace it)", option="force", path=str(r.out.absolute())
        )
    text = _calibration_text(r)
    if text is not None:
        from ..calibration.corpus import read_text_file

        read_text_file(text)  # a FIFO, a device or a bad file refused before any work
    skip = signature_inside(r.source, r.source_signature.file if r.source_signature else None)
    read, weights = _survey(r.source, skip, r.scheme)
    return skip, read, weights


def _calibration_text(r: PackRequest) -> Path | None:
    """The calibration text the request measures over (None: the default, or no measuring)."""
    return r.calibration.text if isinstance(r.calibration, Calibration) else None


def _tensors(show: PackProgress, weights: int) -> Callable[[str, int], None]:
    """A stage's per-tensor callback as progress over all ``weights``, each tensor named with its size."""
    done = 0

    def on_tensor(name: str, n: int) -> None:
        nonlocal done
        done += n
        show.update(done, weights, f"{name} ({n:,} weights)")

    return on_tensor


def signature_inside(source_dir: Path, signature: Path | None) -> tuple[str, ...]:
    """The signature's path relative to the model directory when it lies inside it (not part of the model)."""
    if signature is None:
        return ()
    try:
        return (Path(signature).resolve().relative_to(Path(source_dir).resolve()).as_posix(),)
    except ValueError:
        return ()


def _survey(source_dir: Path, skip: tuple[str, ...], scheme: Scheme) -> tuple[list[str], int]:
    """The files a pack of ``source_dir`` reads, and the weights ``scheme`` quantizes (the work to do)."""
    from ..source import ModelSource

    src = ModelSource(source_dir, skip)
    try:
        weights = sum(t.info.numel for t in src.tensors if scheme.applies_to(t.name, t.info.dtype, t.info.shape))
        return [*src.shards, *src.extra_files], weights
    finally:
        src.close()


def _open_calibration(file: Path | None, r: PackRequest) -> CalibrationFile | None:
    """The calibration file opened for the scheme, every name in it checked against the model."""
    if file is None:
        return None
    from ..calibration.file import Calibration as CalibrationFile

    cal = CalibrationFile(file, r.scheme)
    try:
        cal.check_names(r.source)
    except BaseException:
        cal.close()
        raise
    return cal


def _moments_for(
    r: PackRequest, show: PackProgress, warn: Callable[[str], None] | None, tmp: Path
) -> tuple[Path | None, CalibrationRecord | None]:
    """The calibration file to pack with (given, measured now, or none) and its provenance record."""
    from ..core.digest import sha256_file
    from ..manifest import CalibrationRecord

    if isinstance(r.calibration, MomentsFile):
        file = r.calibration.path
        digest = sha256_file(file).hex if file.is_file() else ""  # streamed, not read whole
        return file, CalibrationRecord("moments-file", {"file": file.name, "sha256": digest}, "supplied")
    asked = r.calibration
    text = _calibration_text(r)
    if asked is None or not r.scheme.row_signs:
        if text is not None:
            raise UsageError(
                "{0} needs a feedback scheme (uc-rht-ldlq/2, /3 or /1), not {scheme}",
                option="calibration.text",
                scheme=r.scheme.id,
            )
        return None, None
    show.stage("calibration")
    from ..calibration.collect import CalibrationUnavailable
    from ..calibration.corpus import read_text_file
    from ..calibration.default import measure
    from ..calibration.file import write
    from ..source import read_json_object

    text_file = read_text_file(text) if text is not None else None  # exit 3 for an empty/binary/non-UTF-8 file

    def on_batch(done: int, total: int) -> None:
        show.update(done, total, f"batch {done} of {total}")

    try:
        config = read_json_object(r.source / "config.json", "config.json")
        measured = measure(r.source, config, r.scheme, text_file, on_batch)
    except CalibrationUnavailable as exc:
        if (asked.mode is CalibrationMode.REQUIRED or text is not None) and exc.missing is not None:
            raise MissingExtra(f"calibrating {r.source}", exc.missing) from None  # the environment: exit 4
        if asked.mode is CalibrationMode.REQUIRED or text is not None:
            raise InvalidInput(f"{r.source}: cannot calibrate: {exc}", path=str(r.source)) from None
        if warn is not None:
            warn(f"calibration skipped: {exc}. {NO_CALIBRATION_COST} (--calibration-required refuses instead)")
        return None, None
    path = tmp / "calibration.safetensors"
    write(path, measured.moments, f"{measured.record.method} {measured.record.params}", measured.sensitivity)
    return path, measured.record
