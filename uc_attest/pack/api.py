"""The pack pipeline behind one typed request, with one set of defaults for every door (DESIGN.md §9).

``PackRequest`` says what to pack and how; its defaults are the product's: calibrate when the model can
be run, and spend at most :data:`DEFAULT_BUDGET` bits per quantized weight where the measured damage is
largest, on :data:`PACK_SCHEME`. ``uc_attest.write_pack(src, out)`` and ``uc-attest pack SRC -o OUT``
build the same request and so write the same bytes. ``PackRequest.uncalibrated`` asks for the plain
pack (no calibration, no allocation, the given scheme as it is).

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
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from ..errors import InvalidInput, UsageError
from ..quant.scheme import DEFAULT_SCHEME, Scheme

if TYPE_CHECKING:  # the manifest and the writer are imported when a pack is written (the CLI starts without them)
    from ..calibration.file import Calibration
    from ..core.digest import Digest
    from ..errors import Finding
    from ..manifest import CalibrationRecord, SourceSignature
    from .writer import PackResult

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

CalibrateMode = Literal["auto", "required", "none"]
#: The source files' digests as the pack read them -> findings (a changed or uncovered file).
SourceCheck = Callable[[dict[str, "Digest"]], list["Finding"]]


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
            raise UsageError(f"--bits-override must be GLOB=BITS, got {list(bits_overrides)}") from None
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
    """What to pack and how. The constructor refuses combinations that cannot be meant (UsageError).

    ``calibrate``: ``auto`` measures moments as :mod:`uc_attest.calibration.default` says (self-sampled for
    causal LMs, Python's docstrings or ``calibration_text`` for encoders) and packs without them after a
    warning when the model cannot be run; ``required`` refuses then (exit 3); ``none`` does not calibrate.
    ``calibration``: a moments file to use instead of measuring. ``bits_budget``: bits per quantized weight
    the measured allocation may spend (None: no allocation); ``budget_strict=False``: a budget the base widths
    already exceed means no allocation (the default budget), not an error. ``source_signature``: the source's
    OpenSSF Model Signing signature, verified first — sigstore method with ``source_identity``/
    ``source_issuer`` under ``trust_config``/``instance``, key method with ``source_key``, or certificate
    method with ``source_cert_chain`` (with both or neither of identity and issuer: the CA's DN)."""

    source: Path
    out: Path
    scheme: Scheme = PACK_SCHEME
    device: str = "auto"
    calibrate: CalibrateMode = "auto"
    calibration: Path | None = None
    calibration_text: Path | None = None
    bits_budget: float | None = DEFAULT_BUDGET
    budget_strict: bool = False
    source_signature: Path | None = None
    source_identity: str | None = None
    source_issuer: str | None = None
    source_key: Path | None = None
    source_cert_chain: Path | None = None
    trust_config: Path | None = None
    instance: Path | None = None
    force: bool = False

    def __post_init__(self) -> None:
        for name in ("source", "out"):  # a str from a caller is a path
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.calibrate not in ("auto", "required", "none"):
            raise UsageError(f"calibrate must be auto, required or none, not {self.calibrate!r}")
        if self.calibration is not None and self.calibration_text is not None:
            raise UsageError("--calibration (a moments file) and --calibration-text are exclusive")
        if self.calibrate == "none" and (self.calibration is not None or self.calibration_text is not None):
            raise UsageError("--no-calibration excludes --calibration and --calibration-text")
        if self.source_signature is None:
            if self.source_identity or self.source_issuer or self.source_key or self.source_cert_chain:
                raise UsageError(
                    "--source-identity/--source-issuer/--source-key/--source-cert-chain need --source-signature"
                )
        elif self.source_cert_chain is not None:
            if (
                self.source_key is not None
                or self.trust_config
                or self.instance
                or (bool(self.source_identity) != bool(self.source_issuer))
            ):
                raise UsageError(
                    "--source-cert-chain: with both or neither of --source-identity/--source-issuer "
                    "(the issuing CA's DN), no --source-key/--trust-config/--instance"
                )
        elif self.source_key is not None and (self.source_identity or self.source_issuer):
            raise UsageError("--source-key is exclusive with --source-identity/--source-issuer")

    @classmethod
    def uncalibrated(
        cls, source: Path, out: Path, scheme: Scheme = DEFAULT_SCHEME, device: str = "auto"
    ) -> PackRequest:
        """The plain pack: no calibration, no allocation, ``scheme`` as it is (fast; what tests pin)."""
        return cls(source, out, scheme, device, calibrate="none", bits_budget=None)


class PackProgress(Protocol):
    """Where a pack run reports its work: each stage as it starts, then how far it is."""

    def stage(self, name: str) -> None:
        """A stage begins (``checking``, ``calibration``, ``allocation``, ``quantization``)."""

    def update(self, done: int, total: int, what: str) -> None:
        """``done`` of ``total`` units of the current stage (batches, weights); ``what`` was just done."""


#: Verifies the request's source signature against the files the pack reads: what the pack records, and the
#: check of the source files as they are read (evidence.oms.source_gate). Supplied by the facade.
SourceGate = Callable[[PackRequest, list[str]], tuple["SourceSignature", SourceCheck]]


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

    world = World.from_env()
    if world.distributed:  # started by torchrun: one rank of a distributed pack (same bytes)
        from .distributed import run_distributed

        return run_distributed(r, world, show, warn, source_gate)
    show.stage("checking")
    skip, read, weights = check_request(r)
    gate = None
    if r.source_signature is not None:
        if source_gate is None:
            raise UsageError("verifying --source-signature needs uc_attest.write_pack or uc_attest.run_pack")
        gate = source_gate(r, read)
    with tempfile.TemporaryDirectory(prefix="uc-calibration-") as tmp:
        cal_file, record = _moments_for(r, show, warn, Path(tmp))
        cal = _open_calibration(cal_file, r)
        prepared = None
        try:
            scheme = r.scheme
            if r.bits_budget is not None:
                show.stage("allocation")
                from ..quant.allocate import CandidateStore, allocate
                from .writer import resolve_device

                prepared = CandidateStore(scratch=r.out.absolute().parent)
                scheme = allocate(
                    r.source,
                    scheme,
                    r.bits_budget,
                    cal,
                    resolve_device(r.device),
                    strict=r.budget_strict,
                    progress=_tensors(show, weights),
                    store=prepared,
                ).scheme
            show.stage("quantization")
            from .writer import write_pack

            return write_pack(
                r.source,
                r.out,
                scheme,
                r.device,
                force=r.force,
                progress=_tensors(show, weights),
                moments=cal,
                source_signature=gate[0] if gate else None,
                signature_file=r.source_signature if gate else None,
                check_sources=gate[1] if gate else None,
                skip_files=skip,
                calibration=record,
                prepared=prepared,
            )
        finally:
            if prepared is not None:
                prepared.close()
            if cal is not None:
                cal.close()


def check_request(r: PackRequest) -> tuple[tuple[str, ...], list[str], int]:
    """What fails fast, before any work (a pack can take minutes): the output, the calibration text, every
    header and the index of the source. Returns the files inside the source that are not the model (a
    signature), the files the pack reads, and the weights the scheme quantizes."""
    if r.out.exists() and not r.force:
        raise UsageError(f"{r.out.absolute()}: output already exists (use --force to replace it)", path=str(r.out))
    if r.calibration_text is not None:
        from ..calibration.corpus import read_text_file

        read_text_file(r.calibration_text)  # a FIFO, a device or a bad file refused before any work
    skip = signature_inside(r.source, r.source_signature)
    read, weights = _survey(r.source, skip, r.scheme)
    return skip, read, weights


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


def _open_calibration(file: Path | None, r: PackRequest) -> Calibration | None:
    """The calibration file opened for the scheme, every name in it checked against the model."""
    if file is None:
        return None
    from ..calibration.file import Calibration

    cal = Calibration(file, r.scheme)
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

    if r.calibration is not None:
        file = r.calibration
        digest = sha256_file(file).hex if file.is_file() else ""  # streamed, not read whole
        return file, CalibrationRecord("moments-file", {"file": file.name, "sha256": digest}, "supplied")
    text = r.calibration_text
    if not r.scheme.row_signs or (r.calibrate == "none" and text is None):
        if text is not None:
            raise UsageError(f"--calibration-text needs a feedback scheme (uc-rht-ldlq/2 or /1), not {r.scheme.id}")
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
        if r.calibrate == "required" or text is not None:
            raise InvalidInput(f"{r.source}: cannot calibrate: {exc}", path=str(r.source)) from None
        if warn is not None:
            warn(f"calibration skipped: {exc}. {NO_CALIBRATION_COST} (--calibration-required refuses instead)")
        return None, None
    path = tmp / "calibration.safetensors"
    write(path, measured.moments, f"{measured.record.method} {measured.record.params}", measured.sensitivity)
    return path, measured.record
