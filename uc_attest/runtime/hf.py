"""transformers integration: quant method ``uc-attest`` (register with ``import uc_attest.hf``).

    import uc_attest.hf
    from uc_attest.hf import UcAttestConfig
    model = AutoModelForCausalLM.from_pretrained(PACK, quantization_config=UcAttestConfig(policy="p.yaml"))

A format 2 pack's config.json names the method; the trust anchor (a policy, a bundle with identity and
issuer, or a separately kept manifest) is a *loading attribute*, given at load time and never saved with
the model. Before weights are loaded the anchor is verified (signature, log, validation) and every
quantized Linear becomes a :class:`PackedLinear` whose buffers carry the pack's own tensor names, so
transformers loads the packed components as they are; after loading, every tensor kept in the model is
matched against the trusted manifest — each packed layer decoded and hashed, every other tensor hashed —
and the pack's files against the signed digests. Any finding: ``from_pretrained`` raises, no model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from transformers.quantizers import auto as _auto
from transformers.quantizers.auto import register_quantization_config, register_quantizer
from transformers.quantizers.base import HfQuantizer
from transformers.utils.quantization_config import QuantizationConfigMixin

from ..core.digest import Digest
from ..core.stfile import torch_dtype
from ..errors import Finding, FindingKind, MalformedPack, UsageError, VerificationFailed
from ..manifest import digest_finding
from ..pack.check import check_files
from ..pack.layout import CONFIG_NAME, QUANT_METHOD
from ..quant.scheme import Scheme
from ..verify.anchor import NO_ANCHOR, ServingAnchor, serving_anchor
from ..verify.api import Prepared, prepare
from .build import hf_config, read_config, replace_module, resolve
from .kernels import default_mode, effective_mode, layer_mode
from .model import LoadReport, deep_findings
from .modes import Mode, runtime
from .packed import PackedLinear, PackedWeight, Workspace, packed_bytes, release_freed_memory, tensor_bytes

#: The trust anchor and load options: given to from_pretrained, never written into a saved config.
LOADING_ATTRIBUTES = ("anchor", "online", "cache", "mode")


@register_quantization_config(QUANT_METHOD)
class UcAttestConfig(QuantizationConfigMixin):
    """The pack's quantization_config (format, scheme, source dtype) plus the loading attributes: the trust
    ``anchor`` (:class:`uc_attest.Anchor`, with its trust root), ``online`` (ask the log again), ``mode`` (how packed layers compute: fast, exact or reference,
    docs/runtime.md; by default fast on CPU, reference elsewhere or with ``cache``) and ``cache`` (keep decoded
    weights, mode reference)."""

    def __init__(
        self,
        format: str = "uc-pack/2",
        scheme: dict[str, Any] | None = None,
        dtype: str | None = None,
        anchor: ServingAnchor | None = None,
        online: bool = True,
        cache: bool = False,
        mode: Mode | str | None = None,
        **kwargs: Any,
    ) -> None:
        self.quant_method = QUANT_METHOD  # type: ignore[assignment]  # transformers types it as its own enum
        self.format, self.scheme, self.dtype = format, scheme, dtype
        self.anchor, self.online, self.cache = anchor, online, cache
        self.mode = None if mode is None else Mode.parse(mode)

    def to_dict(self) -> dict[str, Any]:
        """What is saved with a model: never the anchor (local paths, a decision of whoever loads it)."""
        return {"quant_method": QUANT_METHOD, "format": self.format, "scheme": self.scheme, "dtype": self.dtype}

    def get_loading_attributes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in LOADING_ATTRIBUTES}


# transformers merges the loading attributes of a quantization_config passed to from_pretrained into the
# one read from config.json only for the config types it lists; uc-attest's anchors are loading attributes.
_types: tuple[type, ...] = _auto.LOADING_ATTRIBUTES_CONFIG_TYPES
if UcAttestConfig not in _types:
    _auto.LOADING_ATTRIBUTES_CONFIG_TYPES = (*_types, UcAttestConfig)  # type: ignore[assignment]


@register_quantizer(QUANT_METHOD)
class UcAttestQuantizer(HfQuantizer):
    """Serve a verified uc-attest pack: packed Linear layers, every kept tensor matched before it is returned."""

    requires_calibration = True  # pre-quantized only: packing is `uc-attest pack`

    def __init__(self, quantization_config: UcAttestConfig, **kwargs: Any) -> None:
        super().__init__(quantization_config, **kwargs)
        self.prepared: Prepared | None = None
        self.workspace = Workspace()
        self.mode = Mode.REFERENCE
        self.notes: list[str] = []

    @property
    def config(self) -> UcAttestConfig:
        qc = self.quantization_config
        assert isinstance(qc, UcAttestConfig)
        return qc

    def validate_environment(self, *args: Any, **kwargs: Any) -> None:
        if self.config.anchor is None:
            raise UsageError(NO_ANCHOR + " — pass quantization_config=UcAttestConfig(anchor=...)")
        serving_anchor(self.config.anchor)

    def update_dtype(self, dtype: torch.dtype | None) -> torch.dtype:
        source = torch_dtype(self.config.dtype) if self.config.dtype else None
        if source is None:
            return dtype or torch.float32
        if dtype is not None and dtype != source:
            raise UsageError(
                f"from_pretrained serves this pack in its source dtype {self.config.dtype}; "
                f"use uc_attest.load_model(..., dtype=...) to compute in {dtype}"
            )
        return source

    def _process_model_before_weight_loading(self, model: Any, **kwargs: Any) -> Any:
        files = kwargs.get("checkpoint_files") or []
        if not files:
            raise UsageError("from_pretrained found no checkpoint files for the uc-attest pack")
        qc = self.config
        prep = prepare(Path(files[0]).parent, serving_anchor(qc.anchor), online=qc.online)
        prep.refuse_early()
        self.prepared = prep
        _same_config(model, prep)
        assert prep.expected is not None
        manifest = prep.expected.manifest
        scheme = Scheme.from_dict(manifest.scheme)
        dtype = getattr(model, "dtype", None) or torch.float32  # the dtype transformers built the model in
        cpu = torch.device("cpu")  # the device is known after loading; a native mode is checked against it then
        asked = default_mode(cpu, qc.cache) if qc.mode is None else qc.mode
        if qc.cache and asked is not Mode.REFERENCE:
            raise UsageError(f"cache keeps decoded weights, which only mode reference uses (mode is {asked.value})")
        self.mode = effective_mode(asked, cpu)
        self.notes = [] if self.mode is asked else [f"mode {asked.value} needs the native kernels: served in reference"]
        fallbacks: dict[str, int] = {}
        for e in manifest.tensors:
            where = resolve(model, e.name) if e.quant else None
            if e.quant is None or where is None or not isinstance(where.module, torch.nn.Linear):
                continue
            dt = torch_dtype(e.dtype)
            assert dt is not None
            weight = PackedWeight(
                e.name,
                (e.shape[0], e.shape[1]),
                dt,
                e.quant,
                scheme.rotated,
                scheme.sign_period(e.shape),
                parts=scheme.parts(e.shape),
            )
            mode, why = layer_mode(self.mode, weight)
            if why is not None:
                fallbacks[why] = fallbacks.get(why, 0) + 1
            layer = PackedLinear(
                weight, where.module.bias, self.workspace, compute_dtype=dtype, cache=qc.cache, mode=mode
            )
            replace_module(model, where.path, layer)
        self.notes += [
            f"{n} layer(s) served in mode exact, not {self.mode.value}: {why}" for why, n in fallbacks.items()
        ]
        ignore = set(getattr(model, "_keys_to_ignore_on_load_unexpected", None) or ())
        model._keys_to_ignore_on_load_unexpected = {*ignore, r"\.uc_moments$"}  # committed moments: not served
        return model

    def _process_model_after_weight_loading(self, model: Any, **kwargs: Any) -> Any:
        prep = self.prepared
        assert prep is not None
        manifest = prep.expected.manifest if prep.expected else None
        assert manifest is not None
        _verified_generation_config(model, prep, manifest)  # before check_files: its bytes are judged there
        device = next((b.device for b in model.buffers()), torch.device("cpu"))
        if device.type != "cpu" and self.mode is not Mode.REFERENCE:
            if self.config.mode is not None:
                raise UsageError(f"mode {self.mode.value} runs on CPU; the model was loaded on {device.type}")
            for m in model.modules():
                if isinstance(m, PackedLinear):
                    m.mode = Mode.REFERENCE
            self.mode = Mode.REFERENCE
        prep.facts.runtime = serving = runtime(self.mode, device)  # what validation.runtime: match compares
        findings = check_files(prep.facts.pack, manifest)  # every pack file against the trusted digests
        verdict = prep.verdict()  # the rules, with those digests (pack.files, pack.manifest when signed)
        findings += verdict.failures()
        bad, layers = deep_findings(model, manifest, self.workspace)  # each packed layer decoded, as served
        findings += bad + _stored_findings(model, manifest)
        if findings:
            raise VerificationFailed(findings)
        release_freed_memory()
        packed, dense, weights = packed_bytes(model)
        model.uc_attest = LoadReport(verdict, self.notes, packed, dense, weights, 0.0, layers, True, runtime=serving)
        model.uc_attest_workspace = self.workspace
        return model

    def is_serializable(self, *args: Any, **kwargs: Any) -> bool:
        return False  # a served pack is saved as a pack (`uc-attest pack`), not re-serialized by transformers

    @property
    def is_trainable(self) -> bool:
        return False


#: What transformers sets on a config it loads from a directory: the path, the quantization_config object and
#: the load dtype (which ``update_dtype`` fixes to the pack's source dtype whatever the file says).
_LOAD_ONLY_KEYS = frozenset({"_name_or_path", "quantization_config", "dtype", "torch_dtype"})


def _same_config(model: Any, prep: Prepared) -> None:
    """transformers built ``model`` from config.json as it read it; the model must be the one the hashed bytes
    describe (config.json read once here, its digest recorded and matched with the pack's files later), or a
    config swapped between transformers' read and this check would be served under a passing verdict."""
    origin = str(prep.facts.pack.dir / CONFIG_NAME)
    hashed = hf_config(read_config(prep.facts.pack.read_file(CONFIG_NAME), origin), origin).to_dict()
    built = model.config.to_dict()
    differ = sorted(k for k in (set(hashed) | set(built)) - _LOAD_ONLY_KEYS if hashed.get(k) != built.get(k))
    if differ:
        raise VerificationFailed(
            [
                Finding(
                    CONFIG_NAME,
                    f"the model transformers built differs from the verified config.json in {', '.join(differ[:5])} "
                    "(the file changed while it was read)",
                )
            ]
        )


GENERATION_CONFIG = "generation_config.json"


def _verified_generation_config(model: Any, prep: Prepared, manifest: Any) -> None:
    """transformers read generation_config.json by path before uc-attest could check it (a ``sequence_bias`` in
    it changes what the model says): the served generation config is built again from the bytes hashed here,
    which ``check_files`` then matches with the manifest — or from the verified model config when the pack
    lists none."""
    if not hasattr(model, "generation_config"):
        return
    from transformers import GenerationConfig

    if GENERATION_CONFIG not in manifest.files:
        model.generation_config = GenerationConfig.from_model_config(model.config)
        return
    origin = str(prep.facts.pack.dir / GENERATION_CONFIG)
    try:
        data = prep.facts.pack.read_file(GENERATION_CONFIG)
    except MalformedPack:
        return  # missing: check_files names it
    if Digest.of_bytes(data) != manifest.files[GENERATION_CONFIG]:
        return  # not the signed file: check_files names it (and nothing is served)
    model.generation_config = GenerationConfig.from_dict(read_config(data, origin))


def _stored_findings(model: torch.nn.Module, manifest: Any) -> list[Finding]:
    """Every tensor of the manifest stored unchanged: the model's tensor holds exactly those bytes."""
    out: list[Finding | None] = []
    for e in manifest.tensors:
        if e.quant is not None:
            continue
        where = resolve(model, e.name)
        if where is None:
            continue  # not used by this architecture (e.g. a pooler of another head): nothing served
        t = getattr(where.module, where.attr)
        got = Digest(hashlib.sha256(tensor_bytes(t.detach().contiguous().cpu())).hexdigest())
        out.append(digest_finding(e, got, FindingKind.LOADED_DIFFERS))
    return [f for f in out if f is not None]


def is_packed(module: torch.nn.Module) -> bool:
    return any(isinstance(m, PackedWeight) for m in module.modules())


__all__ = ["UcAttestConfig", "UcAttestQuantizer", "is_packed"]
