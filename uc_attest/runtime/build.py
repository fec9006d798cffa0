"""Build a transformers model skeleton from a pack's (verified) config.json, parameters on the meta device.

No full-precision copy is ever materialised: parameters are created on ``meta`` (their initialisers run on
nothing), while buffers computed at construction (rotary frequencies, position ids) are real, as
transformers computes them. The architecture comes from ``architectures[0]`` when transformers has it,
else from ``model_type`` (a causal LM when transformers knows one, else the base model).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InvalidInput, MissingExtra
from ..pack.layout import QUANTIZATION_CONFIG


def read_config(data: bytes, origin: str) -> dict[str, Any]:
    try:
        cfg = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(f"{origin}: not JSON", path=origin) from None
    if not isinstance(cfg, dict):
        raise InvalidInput(f"{origin}: not a JSON object", path=origin)
    return cfg


#: What needs transformers here, as :class:`MissingExtra` names it to a library caller.
SERVING = "serving a pack"


def _transformers() -> Any:
    try:
        import transformers
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise MissingExtra(SERVING, "transformers") from None
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    return transformers


def hf_config(cfg: dict[str, Any], origin: str) -> Any:
    """The transformers config object of a config.json (its ``quantization_config`` is uc-attest's own)."""
    tf = _transformers()
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or model_type not in tf.CONFIG_MAPPING:
        raise InvalidInput(
            f"{origin}: field model_type {model_type!r} is not an architecture transformers {tf.__version__} knows",
            path=origin,
            field="model_type",
        )
    plain = {k: v for k, v in cfg.items() if k != QUANTIZATION_CONFIG}
    try:
        return tf.CONFIG_MAPPING[model_type].from_dict(plain)
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidInput(f"{origin}: transformers cannot read this config: {exc}", path=origin) from None


def model_class(config: Any, origin: str) -> Any:
    tf = _transformers()
    archs = getattr(config, "architectures", None) or []
    if archs:
        cls = getattr(tf, str(archs[0]), None)
        if cls is None:
            raise InvalidInput(
                f"{origin}: field architectures names {archs[0]!r}, which transformers {tf.__version__} does not have",
                path=origin,
                field="architectures",
            )
        return cls
    if type(config) in tf.MODEL_FOR_CAUSAL_LM_MAPPING:
        return tf.MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    return tf.MODEL_MAPPING[type(config)]


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Every parameter registered inside the block lives on ``meta``; buffers stay where they are made."""
    original = torch.nn.Module.register_parameter

    def register(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None:
            p = module._parameters[name]
            assert p is not None
            module._parameters[name] = torch.nn.Parameter(p.to("meta"), requires_grad=False)

    torch.nn.Module.register_parameter = register  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original  # type: ignore[method-assign]


def skeleton(config: Any, dtype: torch.dtype, origin: str) -> torch.nn.Module:
    """The model with every parameter on meta, in eval mode, built as transformers builds it for ``dtype``."""
    cls = model_class(config, origin)
    try:
        with parameters_on_meta():
            model = cls._from_config(config, dtype=dtype)
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
        raise InvalidInput(f"{origin}: transformers cannot build {cls.__name__} from it: {exc}", path=origin) from None
    return model.eval()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Target:
    """Where a pack tensor goes: the module at ``path`` of the model, its parameter or buffer ``attr``."""

    path: str
    module: torch.nn.Module
    attr: str


def resolve(model: torch.nn.Module, name: str) -> Target | None:
    """The module and attribute a pack tensor name stands for (also with/without the base model prefix)."""
    prefix = getattr(model, "base_model_prefix", "")
    candidates = [name]
    if prefix and name.startswith(prefix + "."):
        candidates.append(name[len(prefix) + 1 :])
    elif prefix:
        candidates.append(f"{prefix}.{name}")
    for cand in candidates:
        path, _, attr = cand.rpartition(".")
        try:
            module = model.get_submodule(path) if path else model
        except AttributeError:
            continue
        if attr in module._parameters or attr in module._buffers:
            return Target(path, module, attr)
    return None


def replace_module(model: torch.nn.Module, path: str, new: torch.nn.Module) -> None:
    """Put ``new`` at ``path`` of the model (the module a Target names)."""
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    parent._modules[child] = new
