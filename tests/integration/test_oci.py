"""Packs and bundles through a real OCI registry: Debian's docker-registry (CNCF distribution 2.8, no
referrers API, so the tag-schema fallback is what runs) on 127.0.0.1, with and without htpasswd auth.
The CLI runs as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import uc_attest as uc
from tests.conftest import make_model
from tests.integration.conftest import Running, free_port
from tests.modelpack_spec import ARTIFACT_TYPE, check_modelpack
from uc_attest.oci.artifact import PACK_TYPE

REGISTRY = shutil.which("docker-registry")
RELEASE = "release-bot@bank.example"
pytestmark = pytest.mark.skipif(REGISTRY is None, reason="Debian docker-registry is not installed (apt-get install "
                                                         "docker-registry; .ci/run does)")  # fmt: skip


def cli(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uc_attest.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, **(env or {})})  # fmt: skip


def start_registry(root: Path, htpasswd: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    auth = f"auth: {{htpasswd: {{realm: uc-test, path: {htpasswd}}}}}\n" if htpasswd else ""
    (root / "config.yml").write_text(f"version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: "
                                     f"{root / 'data'}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n"
                                     + auth)  # fmt: skip
    proc = subprocess.Popen([str(REGISTRY), "serve", str(root / "config.yml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
            break
        except urllib.error.HTTPError:  # 401 with auth: it is up
            break
        except OSError:
            time.sleep(0.1)
    return proc, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("registry")
    proc, host = start_registry(root)
    yield host, root / "data"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def released(instance: Running, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("released")
    pack = root / "pack"
    uc.write_pack(make_model(root / "src"), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    trust = uc.select_trust(None, instance.dir)
    uc.attest_pack(pack, trust, sign_as=uc.SignAs(dev_identity=RELEASE))
    (root / "m.json").write_text(json.dumps({"evaluation_set": "unit", "metrics": {"gap": 0.01}}))
    uc.validate_pack(pack, root / "m.json", trust, sign_as=uc.SignAs(dev_identity="validator@bank.example"))
    return pack


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _get(host: str, repo: str, kind: str, ref: str) -> bytes:
    """A manifest or blob as the registry serves it (plain HTTP, no auth), read outside uc-attest."""
    req = urllib.request.Request(f"http://{host}/v2/{repo}/{kind}/{ref}",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        return bytes(resp.read())


def _policy(tmp_path: Path, instance: Running) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: 1\nname: oci\ntrust: {{instance: {instance.dir}}}\nsigners:\n  release:\n"
                      f"    - issuer: {instance.issuer}\n      identity: {RELEASE}\n")  # fmt: skip
    return policy


def test_push_twice_pull_by_digest_and_verify_from_the_registry(
    registry: tuple[str, Path], released: Path, instance: Running, tmp_path: Path
) -> None:
    host, _ = registry
    ref = f"oci://{host}/models/small:v1"
    r = cli("push", released, ref, "--plain-http", "--json")
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["uploaded_bytes"] > 0 and not first["referrers_api"]
    assert {x["role"] for x in first["referrers"]} == {"release", "validation", "oms"}
    again = json.loads(cli("push", released, ref, "--plain-http", "--json").stdout)
    assert again["digest"] == first["digest"] and again["uploaded_blobs"] == 0 and again["uploaded_bytes"] == 0
    # a tag resolves to a digest, which is printed; the pull is of that digest
    out = tmp_path / "pulled"
    p = cli("pull", ref, "-o", out, "--plain-http")
    assert p.returncode == 0 and p.stdout.strip() == first["digest"], p.stderr
    assert _files(out) == _files(released)
    for suffix in (".sigstore.json", ".validation.sigstore.json", ".model.sig"):
        assert (tmp_path / f"pulled{suffix}").read_bytes() == (released.parent / f"pack{suffix}").read_bytes()
    policy = _policy(tmp_path, instance)
    by_digest = f"oci://{host}/models/small@{first['digest']}"
    v = cli("verify", by_digest, "--policy", policy, "--plain-http", "--json")
    assert v.returncode == 0, v.stdout + v.stderr
    checks = json.loads(v.stdout)["checks"]
    assert checks[0]["rule"] == "oci.pull" and first["digest"] in checks[0]["detail"]
    assert {"release.signer", "pack.tensors"} <= {c["rule"] for c in checks}
    listed = json.loads(cli("inventory", "--repository", f"oci://{host}/models/small", "--plain-http", "--json").stdout)
    (row,) = [r for r in listed if r["tag"] == "v1"]
    assert row["digest"] == first["digest"] and row["bundles"] == ["oms", "release", "validation"]
    assert row["artifact_type"] == ARTIFACT_TYPE and row["layout"] == "modelpack"
    assert row["manifest_root"] == str(uc.load_manifest(released / uc.MANIFEST_NAME).root)
    assert row["status"].startswith("validated")


def test_what_the_registry_holds_is_a_modelpack_artifact(registry: tuple[str, Path], released: Path) -> None:
    """Read back over the distribution API, not through uc-attest: the manifest and config blob a ModelPack tool
    (modctl, KitOps) reads, checked against the spec's media types and config schema (tests/modelpack_spec.py)."""
    host, _ = registry
    res = uc.push(released, f"oci://{host}/models/spec:v1", plain_http=True)
    raw = _get(host, "models/spec", "manifests", "v1")
    manifest = json.loads(raw)
    config = check_modelpack(raw, _get(host, "models/spec", "blobs", manifest["config"]["digest"]))
    assert uc.push(released, f"oci://{host}/models/spec:v1", plain_http=True).digest == res.digest
    scheme = uc.load_manifest(released / uc.MANIFEST_NAME).scheme
    assert config["config"]["format"] == "safetensors" and config["config"]["quantization"] == scheme["id"]
    for layer in manifest["layers"]:  # each layer is the pack file its path names, byte for byte
        path = layer["annotations"]["org.cncf.model.filepath"]
        assert _get(host, "models/spec", "blobs", layer["digest"]) == (released / path).read_bytes()


def test_a_pack_pushed_in_the_old_layout_still_pulls_and_verifies(registry: tuple[str, Path], released: Path,
                                                                  instance: Running, tmp_path: Path) -> None:  # fmt: skip
    host, _ = registry
    r = cli("push", released, f"oci://{host}/models/old:v1", "--plain-http", "--layout", "uc-attest-v1", "--json")
    assert r.returncode == 0, r.stderr
    digest = json.loads(r.stdout)["digest"]
    old = json.loads(_get(host, "models/old", "manifests", digest))
    assert old["artifactType"] == PACK_TYPE and old["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert {x["mediaType"] for x in old["layers"]} >= {"application/vnd.uc-attest.manifest.v1+json",
                                                        "application/vnd.uc-attest.shard.v1+safetensors"}  # fmt: skip
    p = cli("pull", f"oci://{host}/models/old@{digest}", "-o", tmp_path / "pulled", "--plain-http")
    assert p.returncode == 0 and p.stdout.strip() == digest, p.stderr
    assert _files(tmp_path / "pulled") == _files(released)
    assert (tmp_path / "pulled.sigstore.json").read_bytes() == (released.parent / "pack.sigstore.json").read_bytes()
    v = cli("verify", f"oci://{host}/models/old@{digest}", "--policy", _policy(tmp_path, instance), "--plain-http")
    assert v.returncode == 0, v.stdout + v.stderr
    listed = json.loads(cli("inventory", "--repository", f"oci://{host}/models/old", "--plain-http", "--json").stdout)
    assert [(x["layout"], x["status"]) for x in listed] == [("uc-attest-v1", "validated (listed)")]
    bad = cli("push", released, f"oci://{host}/models/old:v2", "--plain-http", "--layout", "oras")
    assert bad.returncode == 2 and "layout 'oras' is not one of modelpack, uc-attest-v1" in bad.stderr


def test_a_blob_that_does_not_match_its_descriptor_is_refused(
    registry: tuple[str, Path], released: Path, tmp_path: Path
) -> None:
    host, data = registry
    digest = uc.push(released, f"oci://{host}/models/tampered:v1", plain_http=True).digest
    manifest = json.loads(uc.load_manifest(released / uc.MANIFEST_NAME).to_json())
    shard = manifest["files"]["model.safetensors"].removeprefix("sha256:")
    blob = data / "docker" / "registry" / "v2" / "blobs" / "sha256" / shard[:2] / shard / "data"
    saved = blob.read_bytes()
    try:
        bad = bytearray(saved)
        bad[-100] ^= 1
        blob.write_bytes(bytes(bad))
        r = cli("pull", f"oci://{host}/models/tampered@{digest}", "-o", tmp_path / "out", "--plain-http")
        assert r.returncode == 1 and "layer model.safetensors" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    finally:
        blob.write_bytes(saved)


def test_not_a_pack_and_plain_http_elsewhere(registry: tuple[str, Path], released: Path, tmp_path: Path) -> None:
    host, _ = registry
    res = uc.push(released, f"oci://{host}/models/other:v1", plain_http=True)
    referrer = res.referrers[0]["digest"]  # a bundle's manifest: an artifact, but not a pack
    r = cli("pull", f"oci://{host}/models/other@{referrer}", "-o", tmp_path / "x", "--plain-http")
    assert r.returncode == 3 and "application/vnd.dev.sigstore.bundle.v0.3+json" in r.stderr
    r = cli("pull", "oci://registry.example.com/models/other:v1", "-o", tmp_path / "y", "--plain-http")
    assert r.returncode == 2 and "loopback" in r.stderr


def test_basic_auth_with_an_htpasswd_file(released: Path, tmp_path: Path) -> None:
    bcrypt = pytest.importorskip("bcrypt", reason="bcrypt is needed to write the registry's htpasswd file")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"ci:{bcrypt.hashpw(b's3cret', bcrypt.gensalt(rounds=4)).decode()}\n")
    proc, host = start_registry(tmp_path, htpasswd)
    try:
        ref = f"oci://{host}/models/private:v1"
        denied = cli("push", released, ref, "--plain-http")
        assert denied.returncode == 4 and host in denied.stderr and "repository:models/private" in denied.stderr
        wrong = cli("push", released, ref, "--plain-http", env={"UC_ATTEST_REGISTRY_USERNAME": "ci",
                                                                "UC_ATTEST_REGISTRY_PASSWORD": "nope"})  # fmt: skip
        assert wrong.returncode == 4 and "authentication failed" in wrong.stderr
        creds = {"UC_ATTEST_REGISTRY_USERNAME": "ci", "UC_ATTEST_REGISTRY_PASSWORD": "s3cret"}
        ok = cli("push", released, ref, "--plain-http", env=creds)
        assert ok.returncode == 0, ok.stderr
        pulled = cli("pull", ref, "-o", tmp_path / "p", "--plain-http", env=creds)
        assert pulled.returncode == 0 and _files(tmp_path / "p") == _files(released)
    finally:
        proc.terminate()
        proc.wait(10)
