"""Shared fixtures: small generated models, the location of ../shared (skipped when absent), a released pack
with its instance (``world``), and the checks of a CLI's clean refusal."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import uc_attest as uc

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RELEASE = "release-bot@bank.example"


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


def flat(text: str) -> str:
    """Terminal output without whitespace and table borders (cells may fold long values)."""
    return re.sub(r"[\s│┃┆|]", "", text)


def assert_clean_error(r: Any, code: int, *needles: str) -> None:
    """Exit ``code``, no traceback, each needle in stderr (table cells may fold long names).

    Unlike ``tests.e2e.test_cli.assert_clean_error`` a needle may be in stdout too, and folding is ignored."""
    assert r.returncode == code, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    for n in needles:
        assert flat(n) in flat(r.stderr + r.stdout), r.stderr + r.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An embedded instance served over HTTP and a pack attested through it as ``RELEASE`` (the release bundle
    and the OMS signature beside the pack), with a separately kept copy of its manifest."""
    from tests.integration.conftest import start_instance  # that conftest imports this one

    root = tmp_path_factory.mktemp("world")
    inst = start_instance(root / "instance")
    pack = root / "pack"
    uc.write_pack(make_model(root / "src"), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    uc.attest_pack(pack, uc.select_trust(None, inst.dir), sign_as=uc.SignAs(dev_identity=RELEASE))
    kept = root / "kept.json"
    kept.write_bytes((pack / uc.MANIFEST_NAME).read_bytes())
    yield {"root": root, "inst": inst, "pack": pack, "bundle": root / "pack.sigstore.json", "kept": kept}
    inst.server.stop()


def _copy(world: dict[str, Any], tmp_path: Path) -> Path:
    """A copy of the world's pack with its release bundle beside it."""
    pack = tmp_path / "pack"
    shutil.copytree(world["pack"], pack)
    shutil.copy(world["bundle"], tmp_path / "pack.sigstore.json")
    return pack
