"""``load_model``: a verified pack served as a torch module whose linear weights stay packed.

1. The trust anchor is verified first (signature, identity, log, validation — or a separately kept
   manifest), giving the manifest the pack must match; nothing of the pack's bulk is read before.
2. ``config.json`` is read once, hashed, and the model is built from those bytes on the meta device.
3. Each shard is read once, front to back: every byte is copied into the tensor that keeps it and hashed
   from there (``core.stfile.StreamedFile``); quantized Linear weights become :class:`PackedLinear`
   buffers, other tensors are loaded as stored.
4. Every file digest is checked against the manifest and the signed subjects, the rules run, and with
   ``deep`` every layer is decoded once and matched against its manifest digest. Any finding: nothing
   is returned, the error names the tensor or file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..claims.validation import Runtime
from ..core import threads
from ..core.device import Device, torch_device
from ..core.digest import Digest
from ..core.stfile import StreamedFile, torch_dtype
from ..errors import (
    Finding,
    FindingKind,
    InvalidInput,
    MalformedPack,
    MissingExtra,
    OperationalError,
    UsageError,
    VerificationFailed,
)
from ..manifest import Manifest, digest_finding
from ..pack.check import check_files, check_pack
from ..pack.layout import MOMENTS_SUFFIX, QUANTIZATION_CONFIG, SUFFIXES
from ..pack.reader import PackedTensor, check_components, parse_shard_header
from ..quant.scheme import Scheme
from ..verify.anchor import ServingAnchor, serving_anchor
from ..verify.api import Prepared, prepare
from ..verify.local import Expected
from ..verify.result import Verdict
from .build import SERVING, Target, hf_config, read_config, replace_module, resolve, skeleton
from .kernels import default_mode, effective_mode, layer_mode
from .modes import Mode, runtime
from .packed import PackedLinear, PackedWeight, Workspace, packed_bytes, release_freed_memory, tensor_bytes


@dataclass
class LoadReport:
    """What a load did: the verdict, the notes (what was not served packed, and why), memory, time."""

    verdict: Verdict
    notes: list[str] = field(default_factory=list)
    packed_bytes: int = 0
    dense_bytes: int = 0
    packed_weights: int = 0
    seconds: float = 0.0
    layers: int = 0  # packed layers served (with ``deep``: each decoded once and matched)
    deep: bool = False
    files: dict[str, bytes] = field(default_factory=dict, repr=False)  # the pack's other files, as hashed
    runtime: Runtime | None = None  # what computes the outputs (mode, kernel, ISA): validations name it


def side_files(facts: Any, expected: Manifest) -> dict[str, bytes]:
    """The bytes of every non-tensor file the manifest lists (tokenizer, generation config...), read once and
    recorded: the checks that follow judge these bytes, and whatever uses a file uses these bytes."""
    out = {}
    for rel in sorted(expected.files):
        if not rel.endswith(".safetensors"):
            try:
                out[rel] = facts.read_file(rel)
            except MalformedPack:
                continue  # reported by check_files as missing
    return out


def _set(module: torch.nn.Module, attr: str, value: torch.Tensor) -> None:
    if attr in module._buffers:
        module._buffers[attr] = value
    else:
        module._parameters[attr] = torch.nn.Parameter(value, requires_grad=False)


def _empty(info_dtype: str, shape: tuple[int, ...], name: str) -> torch.Tensor:
    dt = torch_dtype(info_dtype)
    if dt is None:
        raise InvalidInput(f"tensor {name!r}: dtype {info_dtype} cannot be loaded into torch", tensor=name)
    return torch.empty(shape, dtype=dt)


@dataclass(frozen=True)
class _Stored:
    """A plain tensor, loaded as stored into ``where`` (None: not used by the model, read and verified only)."""

    where: Target | None


@dataclass(frozen=True)
class _Packed:
    """A component of a quantized Linear weight, read into buffer ``buf`` of the layer's packed weight."""

    weight: PackedWeight
    buf: str


@dataclass(frozen=True)
class _Dense:
    """A component of a quantized tensor served dense: read into ``buf`` of ``weight``; once the ``last``
    component is in, the tensor is decoded at load into ``target`` (if the model uses it)."""

    pt: PackedTensor
    weight: PackedWeight
    buf: str
    target: Target | None
    last: bool


@dataclass(frozen=True)
class _Skip:
    """Read past, hashed with the stream (a quantized tensor's moments, or a name the plan does not know)."""


_SKIP = _Skip()
_PlanItem = _Stored | _Packed | _Dense | _Skip


class _Loader:
    """One load: the plan of where every tensor goes, then one streaming pass per shard."""

    def __init__(
        self,
        prep: Prepared,
        expected: Manifest,
        device: torch.device,
        dtype: torch.dtype | None,
        cache: bool,
        mode: Mode,
    ) -> None:
        self.prep, self.expected, self.device, self.cache, self.mode = prep, expected, device, cache, mode
        self.facts = prep.facts.pack
        self.notes: list[str] = []
        self.fallbacks: dict[str, list[str]] = {}  # why a layer is not served in the mode asked for -> layers
        self.workspace = Workspace()
        cfg_bytes = self.facts.read_file("config.json")
        origin = str(self.facts.dir / "config.json")
        self.config_dict = read_config(cfg_bytes, origin)
        if QUANTIZATION_CONFIG not in self.config_dict:
            self.notes.append(
                "pack format 1 (config.json has no quantization_config): served by load_model; "
                "transformers' from_pretrained needs a format 2 pack"
            )
        source_dtypes = {e.dtype for e in expected.tensors if e.dtype in ("F32", "F16", "BF16")}
        source = torch_dtype(min(source_dtypes)) if len(source_dtypes) == 1 else torch.float32
        self.dtype = dtype or source or torch.float32
        self.model = skeleton(hf_config(self.config_dict, origin), self.dtype, origin)

    def _place(self, value: torch.Tensor, name: str) -> torch.Tensor:
        if value.is_floating_point() and value.dtype != self.dtype:
            value = value.to(self.dtype)
        try:
            return value.to(self.device)
        except torch.cuda.OutOfMemoryError:
            raise OperationalError(f"out of memory on {self.device} while loading {name}", tensor=name) from None

    def load(self) -> None:
        shards = sorted(r for r in self.expected.files if r.endswith(".safetensors"))
        streams: list[tuple[str, StreamedFile, Scheme, list[PackedTensor]]] = []
        try:
            for rel in shards:  # headers first (read once, hashed as part of the stream)
                path = self.facts.path_of(rel)  # a name from the manifest: inside the pack or refused
                try:
                    opened = self.facts.open(rel)  # no symbolic link on the way, a regular file
                except FileNotFoundError:
                    raise MalformedPack(f"{path}: missing from the pack", path=str(path)) from None
                stream = StreamedFile(path, opened)
                scheme, tensors = parse_shard_header(str(path), stream.metadata, stream.infos)
                streams.append((rel, stream, scheme, tensors))
            targets = self._plan(streams)
            for rel, stream, _scheme, _tensors in streams:
                self._stream(stream, targets)
                self.facts.record(rel, Digest(stream.finish()))
        finally:
            for _rel, stream, _s, _t in streams:
                stream.close()

    def _plan(self, streams: list[tuple[str, StreamedFile, Scheme, list[PackedTensor]]]) -> dict[str, _PlanItem]:
        """Component name -> where its bytes go. Quantized Linear weights become PackedLinear layers."""
        targets: dict[str, _PlanItem] = {}
        for _rel, stream, scheme, tensors in streams:
            for pt in tensors:
                where = resolve(self.model, pt.name)
                if pt.quant is None:
                    targets[pt.name] = _Stored(where)
                    if where is None:
                        self.notes.append(f"tensor {pt.name} is not used by the model (read and verified only)")
                    continue
                check_components(pt, scheme, stream.infos)
                module = where.module if where else None
                if (
                    where is not None
                    and isinstance(module, torch.nn.Linear)
                    and where.attr == "weight"
                    and tuple(module.weight.shape) == pt.shape
                ):
                    layer = self._packed_linear(pt, scheme, where)
                    for suffix, buf in zip(SUFFIXES, ("uc_codes", "uc_scales", "uc_zeros"), strict=True):
                        targets[pt.name + suffix] = _Packed(layer.weight, buf)
                else:
                    why = "has no module" if where is None else f"is not a Linear weight ({type(module).__name__})"
                    self.notes.append(f"tensor {pt.name} {why}: decoded at load (served dense, not packed)")
                    dense = PackedWeight(
                        pt.name,
                        _as_2d(pt.shape),
                        self._dt(pt),
                        pt.quant,
                        scheme.rotated,
                        scheme.sign_period(pt.shape),
                        device="cpu",
                        parts=scheme.parts(pt.shape),
                    )
                    for suffix, buf in zip(SUFFIXES, ("uc_codes", "uc_scales", "uc_zeros"), strict=True):
                        targets[pt.name + suffix] = _Dense(pt, dense, buf, where, suffix == SUFFIXES[-1])
                if pt.quant.moments:
                    targets[pt.name + MOMENTS_SUFFIX] = _SKIP
        return targets

    def _dt(self, pt: PackedTensor) -> torch.dtype:
        dt = torch_dtype(pt.dtype)
        assert dt is not None
        return dt

    def _packed_linear(self, pt: PackedTensor, scheme: Scheme, where: Target) -> PackedLinear:
        assert pt.quant is not None and isinstance(where.module, torch.nn.Linear)
        weight = PackedWeight(
            pt.name,
            (pt.shape[0], pt.shape[1]),
            self._dt(pt),
            pt.quant,
            scheme.rotated,
            scheme.sign_period(pt.shape),
            device="cpu",
            parts=scheme.parts(pt.shape),
        )
        mode, why = layer_mode(self.mode, weight)
        if why is not None:
            self.fallbacks.setdefault(why, []).append(pt.name)
        layer = PackedLinear(
            weight, where.module.bias, self.workspace, compute_dtype=self.dtype, cache=self.cache, mode=mode
        )
        replace_module(self.model, where.path, layer)
        return layer

    def mode_notes(self) -> list[str]:
        """One note per reason a layer runs another mode than the one asked for (never a wrong answer)."""
        return [
            f"{len(names)} layer(s) served in mode exact, not {self.mode.value}: {why} (e.g. {names[0]})"
            for why, names in sorted(self.fallbacks.items())
        ]

    def _stream(self, stream: StreamedFile, targets: dict[str, _PlanItem]) -> None:
        for name in stream.order:
            info = stream.infos[name]
            item = targets.get(name, _SKIP)
            if isinstance(item, _Skip):
                stream.skip(name)
            elif isinstance(item, _Stored):
                value = _empty(info.dtype, info.shape, name)
                stream.read_into(name, _bytes_view(value))
                if item.where is not None:
                    # a bias of a layer now packed lives on the PackedLinear that replaced the Linear
                    module = resolve(self.model, name)
                    assert module is not None
                    _set(module.module, module.attr, self._place(value, name))
            elif isinstance(item, _Packed):
                stream.read_into(name, _bytes_view(getattr(item.weight, item.buf)))
            else:  # dense: components read, the tensor decoded at load once the last one is in
                stream.read_into(name, _bytes_view(getattr(item.weight, item.buf)))
                if item.last and item.target is not None:
                    w = item.weight.decode().reshape(item.pt.shape)
                    _set(item.target.module, item.target.attr, self._place(w, item.pt.name))

    def finish(self) -> None:
        """Tied weights, then every parameter must be real; the packed buffers move to the device."""
        tie = getattr(self.model, "tie_weights", None)
        if callable(tie):
            tie()
        for m in self.model.modules():
            if isinstance(m, PackedWeight):
                try:
                    m.to(self.device)  # device only: PackedWeight keeps its components' dtypes
                except torch.cuda.OutOfMemoryError:
                    raise OperationalError(f"out of memory on {self.device} while loading {m.name}") from None
        missing = [n for n, p in self.model.named_parameters() if p.is_meta]
        missing += [n for n, b in self.model.named_buffers() if b.is_meta]
        if missing:
            raise InvalidInput(
                f"{self.facts.dir}: the pack has no tensor for {missing[0]!r} ({len(missing)} parameter(s) missing)",
                tensor=missing[0],
            )
        self.model.to(self.device)
        for m in self.model.modules():
            if type(m) is torch.nn.Linear:
                m.register_forward_pre_hook(_own_storage)


def _own_storage(_module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """A Linear's input that is a slice of a larger tensor (the LM head's last position) copied to its own
    storage: torch 2.13 CPU takes a path ~60x slower for such a slice when the weight does not require grad
    (440 ms vs 7 ms for a 32000 x 2048 bf16 head), with the same result (the values and layout are the same)."""
    x = args[0] if args else None
    if isinstance(x, torch.Tensor) and x.untyped_storage().nbytes() > x.numel() * x.element_size():
        return (x.clone(memory_format=torch.contiguous_format), *args[1:])
    return None


def _as_2d(shape: tuple[int, ...]) -> tuple[int, int]:
    return (shape[0], int(torch.Size(shape[1:]).numel()))


def _bytes_view(t: torch.Tensor) -> memoryview:
    return tensor_bytes(t)


def deep_findings(
    model: torch.nn.Module, expected: Manifest, workspace: Workspace | None = None
) -> tuple[list[Finding], int]:
    """Decode every packed layer once and match its digest against the manifest (the reconstruction audit);
    with the model's workspace, into its shared buffers."""
    entries = {e.name: e for e in expected.tensors}
    findings: list[Finding | None] = []
    for m in model.modules():
        if isinstance(m, PackedWeight):
            got, want = m.digest(workspace), entries.get(m.name)
            if want is None:
                findings.append(FindingKind.ADDED_TENSOR.at(m.name, None, str(got)))
            else:
                findings.append(digest_finding(want, got, FindingKind.DECODED_DIFFERS))
    return [f for f in findings if f is not None], len(findings)


def load_model(
    pack_dir: Path,
    anchor: ServingAnchor | None = None,
    *,
    online: bool = True,
    device: Device | str = Device.CPU,
    dtype: torch.dtype | None = None,
    deep: bool = False,
    cache: bool = False,
    mode: Mode | str | None = None,
) -> torch.nn.Module:
    """A verified pack as a torch module (transformers architecture), quantized Linear layers kept packed.

    ``dtype``: compute dtype (default: the source dtype). ``deep``: also decode every layer once at load and
    match the manifest's per-tensor digests. ``mode``: how packed layers compute (docs/runtime.md): ``fast``
    (the fused integer kernel, CPU), ``exact`` (decoded rows, a fixed-order product, CPU) or ``reference``
    (decode + ``F.linear``, CPU or CUDA; ``cache`` then keeps decoded weights: memory for speed); by default
    fast on CPU, reference on CUDA or with ``cache``. The module's
    ``uc_attest`` attribute is a :class:`LoadReport` (its ``runtime`` names mode, kernel and ISA). Raises
    VerificationFailed (nothing returned) on any finding, UsageError without a trust anchor (the pack itself is
    none: :func:`uc_attest.verify.anchor.serving_anchor`), MissingExtra without transformers (before any work)."""
    anchor = serving_anchor(anchor)
    MissingExtra.require("transformers", SERVING)  # the architecture is transformers': refused before any work
    t0 = time.perf_counter()
    target = torch_device(device)
    threads.size_torch()  # torch's pool at the process's budget (its default: every core of the machine)
    asked, served = _modes(target, cache, mode)
    serving = runtime(served, target)  # policy validation.runtime: match compares it with the validated one
    prep = prepare(Path(pack_dir), anchor, online=online, runtime=serving)
    exp = prep.refuse_early()  # signature, identity, claims, validation: refuse before reading the pack's bulk
    expected = exp.manifest
    loader = _Loader(prep, expected, target, dtype, cache, served)
    if served is not asked:
        loader.notes.append(f"mode {asked.value} needs the native serving kernels (not built): served in reference")
    try:
        loader.load()
    except MalformedPack as exc:
        raise VerificationFailed(
            [Finding(str(exc.data.get("tensor", exc.data.get("path", pack_dir))), exc.message)]
        ) from None
    files = side_files(prep.facts.pack, expected)
    verdict = _checked_verdict(prep, exp)
    loader.finish()
    # what was checked: every file by its digest (the shards as they were streamed), so every tensor's stored bytes
    verdict.files_checked, verdict.tensors_checked = len(expected.files), len(expected.tensors)
    layers = sum(1 for m in loader.model.modules() if isinstance(m, PackedWeight))  # served packed
    if deep:  # and each of them decoded as served and matched against its reconstruction digest
        bad, layers = deep_findings(loader.model, expected, loader.workspace)
        if bad:
            raise VerificationFailed(bad)
    release_freed_memory()
    packed, dense, weights = packed_bytes(loader.model)
    notes = loader.notes + loader.mode_notes()
    secs = time.perf_counter() - t0
    report = LoadReport(verdict, notes, packed, dense, weights, secs, layers, deep, files, serving)
    loader.model.uc_attest = report  # type: ignore[assignment]
    loader.model.uc_attest_workspace = loader.workspace  # type: ignore[assignment]
    return loader.model


def _modes(target: torch.device, cache: bool, mode: Mode | str | None) -> tuple[Mode, Mode]:
    """The mode asked (default: by device and ``cache``) and the one served; UsageError for ``cache`` without
    mode reference."""
    asked = default_mode(target, cache) if mode is None else Mode.parse(mode)
    if cache and asked is not Mode.REFERENCE:
        raise UsageError(f"cache keeps decoded weights, which only mode reference uses (mode is {asked.value})")
    return asked, effective_mode(asked, target)


def _checked_verdict(prep: Prepared, exp: Expected) -> Verdict:
    """The pack's files as read against the expected manifest (a shard that differs: its tensors named), then
    the rules' verdict; VerificationFailed on any finding."""
    findings = check_files(prep.facts.pack, exp.manifest)
    if any(f.subject.endswith(".safetensors") for f in findings):  # name the tensors, not only the file
        findings += check_pack(prep.facts.pack, exp.manifest, exp.source).findings
    verdict = prep.verdict()
    findings += verdict.failures()
    if findings:
        raise VerificationFailed(_dedup(findings))
    return verdict


def _dedup(findings: list[Finding]) -> list[Finding]:
    """One finding per tensor or file (the first: the most specific check runs first)."""
    seen: set[str] = set()
    out = []
    for f in findings:
        if f.subject not in seen:
            seen.add(f.subject)
            out.append(f)
    return out
