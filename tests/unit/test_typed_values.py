"""Statuses, kinds, methods, modes and devices are enums, never compared as text (issue 33).

A ``StrEnum`` member is its text, so JSON, the CLI and policy files read and show the same words; what comes
from outside (a caller's text, a policy file, a registry's annotation, a signed statement) is parsed into a
member once, and an unknown value is refused in the words and error class it was refused in before.
"""

from __future__ import annotations

import ast
import itertools
import json
from pathlib import Path

import pytest

import uc_attest as uc
from uc_attest.claims.oms import HashType, SerializationMethod, build_oms, parse_oms
from uc_attest.claims.slsa import INLINE_LIMIT
from uc_attest.claims.statement import Statement
from uc_attest.errors import MalformedBundle
from uc_attest.evidence.verifier import REGISTRY, KeyFamily
from uc_attest.oci.artifact import BundleRole, bundle_referrer, bundles_beside
from uc_attest.policy.model import RuntimeNeed, read_policy
from uc_attest.signing.trust import TufRoot

PKG = Path(__file__).resolve().parents[2] / "uc_attest"
#: The names a status-, kind-, method-, mode-, device-, inline- or source-like value goes by.
TYPED = {"status", "kind", "method", "mode", "device", "inline", "source", "role", "need", "family", "hash_type"}
#: (module, comparison) still made on text, each with why; an entry whose comparison is gone fails the test.
ALLOWED: dict[tuple[str, str], str] = {}


def _named(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value  # d["status"]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
        first = node.args[0]
        return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
    return None


def _text(node: ast.expr) -> bool:
    """A string literal, or a tuple/list/set of them (``x in ("a", "b")``)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    return isinstance(node, ast.Tuple | ast.List | ast.Set) and bool(node.elts) and all(map(_text, node.elts))


def _flagged(node: ast.Compare) -> bool:
    """Whether a comparison sets a status-like value against string literals (either side, any link)."""
    sides = [node.left, *node.comparators]
    return any(_named(x) in TYPED and _text(y) for a, b in itertools.pairwise(sides) for x, y in ((a, b), (b, a)))


def text_comparisons() -> set[tuple[str, str]]:
    """Every comparison in the library of a status-like value with string literals: (module, source)."""
    return {
        (path.relative_to(PKG).as_posix(), ast.unparse(node))
        for path in sorted(PKG.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Compare) and _flagged(node)
    }


def test_no_status_kind_method_mode_or_device_is_compared_as_text() -> None:
    found = text_comparisons()
    assert found - set(ALLOWED) == set(), f"compared as text (use the enum): {sorted(found - set(ALLOWED))}"
    assert set(ALLOWED) <= found, f"no longer compared as text, drop from ALLOWED: {sorted(set(ALLOWED) - found)}"


def test_the_scan_sees_what_it_looks_for() -> None:
    code = 'a.status == "ok"; "x" != kind; method in ("a", "b"); d["mode"] in {"m"}; x.get("role") == "r"; v == "s"'
    compares = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Compare)]
    assert [ast.unparse(n) for n in compares if not _flagged(n)] == ["v == 's'"]
    assert not _flagged(ast.parse("x.status is Status.OK").body[0].value)  # type: ignore[attr-defined]


def test_text_from_a_caller_parses_to_a_member_or_is_refused_as_before(tmp_path: Path) -> None:
    from uc_attest.pack.writer import resolve_device

    assert uc.Device.parse("cuda") is uc.Device.CUDA and uc.Device.parse("gpu") is None
    assert uc.Device.AUTO.resolved(False) is uc.Device.CPU and uc.Device.AUTO.resolved(True) is uc.Device.CUDA
    assert resolve_device("cpu").type == "cpu" and resolve_device(uc.Device.CPU).type == "cpu"
    with pytest.raises(uc.UsageError, match=r"^device must be auto, cpu or cuda, got 'gpu'$"):
        resolve_device("gpu")
    with pytest.raises(uc.UsageError, match=r"^inline must be auto, always or never, got 'sometimes'$"):
        uc.attest_pack(tmp_path, uc.TrustRoot.public_good(offline=True), inline="sometimes")
    assert uc.ManifestInline("never") is uc.ManifestInline.NEVER and json.dumps(uc.ManifestInline.AUTO) == '"auto"'
    assert uc.ManifestInline.AUTO.inlines(INLINE_LIMIT) and not uc.ManifestInline.AUTO.inlines(INLINE_LIMIT + 1)
    assert uc.ManifestInline.ALWAYS.inlines(10**9) and not uc.ManifestInline.NEVER.inlines(0)
    assert uc.Rebuild(tmp_path).device is uc.Device.AUTO


def test_a_serving_value_parses_its_device_and_mode_and_none_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uc.Serving parses text into members when built and refuses anything else as load_model did; generate and
    embed take ``serving=None`` as ``Serving()`` (never an AttributeError)."""
    from uc_attest.runtime import model

    served = uc.Serving("auto", "fast", cache=True)
    assert served.device is uc.Device.AUTO and served.mode is uc.Mode.FAST and served.cache
    assert uc.Serving() == uc.Serving(uc.Device.CPU, None, cache=False) and uc.Serving().device is uc.Device.CPU
    with pytest.raises(uc.UsageError, match=r"^device must be auto, cpu or cuda, got 'gpu'$") as err:
        uc.Serving("gpu")
    assert err.value.data["option"] == "device"
    with pytest.raises(uc.UsageError, match=r"^mode must be one of reference, exact, fast; got 'turbo'$"):
        uc.Serving(mode="turbo")
    asked: list[dict[str, object]] = []

    def load_model(*_args: object, **kwargs: object) -> None:
        asked.append(kwargs)
        raise uc.OperationalError("loaded")

    monkeypatch.setattr(model, "load_model", load_model)
    for serving in (None, uc.Serving()):
        with pytest.raises(uc.OperationalError, match="loaded"):
            uc.generate(tmp_path, prompt_ids=[1], serving=serving)
        with pytest.raises(uc.OperationalError, match="loaded"):
            uc.embed(tmp_path, ["a"], serving=serving)
    default = {"online": True, "device": uc.Device.CPU, "cache": False, "mode": None}
    assert asked == [default] * 4


def test_a_policy_names_a_device_and_a_runtime_need_by_their_words(tmp_path: Path) -> None:
    base = "version: 1\nname: t\ntrust:\n  instance: ./inst\nsigners:\n  release:\n    - issuer: https://i\n      identity: a@b\n"
    p = tmp_path / "p.yaml"
    p.write_text(base + "rebuild:\n  device: cpu\nvalidation:\n  required: false\n  runtime: match\n")
    pol, _ = read_policy(p)
    assert pol.rebuild.device is uc.Device.CPU and pol.validation is not None
    assert pol.validation.runtime is RuntimeNeed.MATCH
    p.write_text(base)
    assert read_policy(p)[0].rebuild.device is uc.Device.AUTO
    for bad, where, said in (
        ("rebuild:\n  device: gpu\n", "rebuild.device", "Input should be 'auto', 'cpu' or 'cuda'"),
        ("rebuild:\n  device: !!binary Y3B1\n", "rebuild.device", "Input should be 'auto', 'cpu' or 'cuda'"),
        ("rebuild:\n  device: 1\n", "rebuild.device", "Input should be 'auto', 'cpu' or 'cuda'"),
        ("validation:\n  runtime: exact\n", "validation.runtime", "Input should be 'any', 'named' or 'match'"),
    ):
        p.write_text(base + bad)
        with pytest.raises(uc.InvalidInput) as err:
            read_policy(p)
        assert f"{where}: {said}" in err.value.message, err.value.message
    schema = uc.policy_schema()
    assert schema["$defs"]["Device"]["enum"] == ["auto", "cpu", "cuda"]
    assert schema["$defs"]["RuntimeNeed"]["enum"] == ["any", "named", "match"]


def test_public_good_and_staging_are_deployments_not_file_names(tmp_path: Path) -> None:
    assert uc.select_trust("public-good", None).tuf is TufRoot.PUBLIC_GOOD
    assert uc.Trust("staging").tuf is TufRoot.STAGING and uc.TrustRoot.public_good().is_tuf
    trust_file = tmp_path / "trust.json"
    trust_file.write_text("{}")
    assert uc.select_trust(trust_file, None).tuf is None and str(uc.TrustRoot.staging().source) == "staging"
    with pytest.raises(uc.InvalidInput, match="trust config not found"):
        uc.select_trust("public_good", None)


def test_a_signed_statement_names_its_method_and_hash_type_from_a_closed_set() -> None:
    doc = build_oms("model", {"config.json": "a" * 64})
    claim = parse_oms(Statement.parse(json.dumps(doc).encode()))
    assert claim.serialization.method is SerializationMethod.FILES and claim.serialization.hash_type is HashType.SHA256
    for part, key, value, said in (
        ("serialization", "hash_type", "md5", "'md5' is not an OMS algorithm"),
        ("serialization", "hash_type", 256, "256 is not an OMS algorithm"),
        ("serialization", "method", "dirs", "'dirs' is not files or shards"),
        ("resources", "algorithm", "blake2b", "'blake2b' differs from serialization.hash_type"),
    ):
        bad = json.loads(json.dumps(doc))
        where = bad["predicate"][part]
        (where[0] if part == "resources" else where)[key] = value
        with pytest.raises(MalformedBundle, match=said):
            parse_oms(Statement.parse(json.dumps(bad).encode()))


def test_a_referrer_role_is_a_member_and_any_other_role_is_not_ours(tmp_path: Path) -> None:
    subject = "sha256:" + "1" * 64
    referrer = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:" + "2" * 64, "size": 2},
        "layers": [
            {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "digest": "sha256:" + "3" * 64, "size": 9}
        ],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 100},
        "annotations": {"dev.uc-attest.role": "validation"},
    }
    got = bundle_referrer(json.dumps(referrer).encode(), "r", subject)
    assert got is not None and got[0] is BundleRole.VALIDATION
    for other in ("Validation", "signature", ""):
        referrer["annotations"] = {"dev.uc-attest.role": other}
        assert bundle_referrer(json.dumps(referrer).encode(), "r", subject) is None
    pack = tmp_path / "pack"
    pack.mkdir()
    for name in ("pack.sigstore.json", "pack.validation-2.sigstore.json", "pack.model.sig", "pack.other.json"):
        (tmp_path / name).write_text("{}")
    assert [role for _, role in bundles_beside(pack)] == [BundleRole.OMS, BundleRole.RELEASE, BundleRole.VALIDATION]


def test_every_registry_algorithm_has_a_key_family() -> None:
    assert {a.family for a in REGISTRY.values()} == set(KeyFamily)
    assert all(isinstance(a.family, KeyFamily) for a in REGISTRY.values())
