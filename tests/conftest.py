"""Shared fixtures: small generated models and the location of ../shared (skipped when absent)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """Path under ../shared, or skip the test with the reason (as in a user's own clone)."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not found: ../shared (third-party vectors and models) is not beside this clone")
    return p


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test whose parameters come from files that are not here says which files, instead of pytest's bare "got
    empty parameter set": the module's ``EMPTY_REASON`` when it names one, else the missing ../shared."""
    for item in items:
        skip = item.get_closest_marker("skip")
        if skip is None or not str(skip.kwargs.get("reason", "")).startswith("got empty parameter set"):
            continue
        reason = getattr(getattr(item, "module", None), "EMPTY_REASON", None)
        if reason is None and not SHARED.exists():
            reason = f"{SHARED} not found: ../shared (third-party vectors and models) is not beside this clone"
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason), append=False)


def make_model(
    root: Path, dtype: torch.dtype = torch.bfloat16, *, shards: int = 1, seed: int = 0, cols: int = 256
) -> Path:
    """A small Llama-shaped model directory with deterministic weights."""
    g = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {"model.embed_tokens.weight": torch.randn(64, 48, generator=g)}
    for i in range(2):
        p = f"model.layers.{i}"
        tensors[f"{p}.self_attn.q_proj.weight"] = torch.randn(48, cols, generator=g) * 0.05
        tensors[f"{p}.mlp.down_proj.weight"] = torch.randn(40, 200, generator=g) * 0.02  # 200 % 128 != 0
        tensors[f"{p}.input_layernorm.weight"] = torch.ones(48)
        tensors[f"{p}.mlp.down_proj.bias"] = torch.randn(40, generator=g)
    tensors = {k: v.to(dtype) for k, v in tensors.items()}
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 48}))
    (root / "tokenizer.json").write_text("{}")
    names = sorted(tensors)
    if shards == 1:
        save_file(tensors, str(root / "model.safetensors"))
    else:
        wm = {}
        for s in range(shards):
            fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: tensors[n] for n in names[s::shards]}
            save_file(part, str(root / fname))
            wm.update(dict.fromkeys(part, fname))
        (root / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    return root


@pytest.fixture
def model_factory(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def make(**kw: object) -> Path:
        return make_model(tmp_path / f"model{next(counter)}", **kw)  # type: ignore[arg-type]

    return make


@pytest.fixture
def bf16_model(model_factory: Callable[..., Path]) -> Path:
    return model_factory()


@pytest.fixture
def copy_dir(tmp_path: Path) -> Callable[[Path], Path]:
    def copy(src: Path) -> Path:
        dst = tmp_path / f"copy-{src.name}"
        shutil.copytree(src, dst)
        return dst

    return copy
