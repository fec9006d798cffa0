"""The eight findings of the review (issue 11), each as a user meets it. Every test here failed on the
code before the fix: markup in identities and paths, no catch-all, misclassified log failures, a loader
without a trust anchor, an inventory hiding bad releases, TUF needed offline, and serving on a port the
trust config does not name. (sigstore-js verifying our checkpoints: tests/integration/test_sigstore_js.py.)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import uc_attest as uc
from tests.conftest import make_model
from tests.e2e.test_cli import cli
from tests.integration.conftest import Running, free_port, start_instance

RELEASE = "release-bot@bank.example"


def flat(text: str) -> str:
    """Terminal output without whitespace and table borders (cells may fold long values)."""
    return re.sub(r"[\s│┃┆|]", "", text)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("findings")
    inst = start_instance(root / "instance")
    pack = root / "pack"
    uc.write_pack(make_model(root / "src"), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    uc.attest_pack(pack, uc.select_trust(None, inst.dir), sign_as=uc.SignAs(dev_identity=RELEASE))
    yield {"root": root, "inst": inst, "pack": pack, "bundle": root / "pack.sigstore.json"}
    inst.server.stop()


# -- 1. untrusted text is data, never markup ------------------------------------------------------------------


@pytest.mark.parametrize("identity", ["[/x]", "[bold red]eve[/]"])
def test_identity_with_markup_is_denied_and_shown_literally(world: dict[str, Any], identity: str) -> None:
    r = cli(
        "verify", world["pack"], "--bundle", world["bundle"], "--instance", world["inst"].dir, "--identity", identity
    )
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "MarkupError" not in r.stderr
    assert "DENIED" in r.stderr and flat(identity) in flat(r.stderr), r.stderr


def test_path_with_markup_is_shown_literally(tmp_path: Path) -> None:
    r = cli("verify", tmp_path / "nope[bold]", "--integrity-only")
    assert r.returncode == 3 and "nope[bold]" in r.stderr, r.stderr


def test_install_hint_keeps_its_brackets(
    world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from uc_attest.cli import app

    monkeypatch.setitem(sys.modules, "transformers", None)  # as if transformers were not installed
    text = tmp_path / "cal.txt"
    text.write_text("one sample\n")
    r = CliRunner().invoke(
        app, ["calibrate", str(world["root"] / "src"), "--text", str(text), "-o", str(tmp_path / "cal.safetensors")]
    )
    assert r.exit_code == 2, r.output
    assert "uc-attest[bench]" in r.output


def test_html_report_escapes_untrusted_fields() -> None:
    evil = "<script>alert(1)</script>"
    report = {
        "ok": False,
        "target": evil,
        "manifest_root": evil,
        "log": evil,
        "checkpoint": {"size": 1, "root": evil},
        "requests": 1,
        "seconds": 0.1,
        "checks": [{"rule": evil, "ok": False, "detail": evil, "hint": evil}],
        "events": [
            {
                "time": 0,
                "kind": "release",
                "log_index": 3,
                "uuid": evil,
                "signer": evil,
                "issuer": evil,
                "ok": False,
                "details": {
                    "root": evil,
                    "builder": evil,
                    "scheme": {"id": evil},
                    "source_digest": evil,
                    "files": evil,
                },
                "problems": [evil],
            },
            {
                "time": 0,
                "kind": evil,
                "log_index": 4,
                "uuid": "",
                "signer": "",
                "issuer": "",
                "ok": True,
                "details": {"x": evil},
                "problems": [],
            },
        ],
        "tensors": [
            {"name": evil, "dtype": evil, "shape": [1], "digest": evil, "bits": 5, "rel_err_ppm": 3, "moments": evil}
        ],
    }
    page = uc.render_report_html(report)
    assert "<script" not in page and "&lt;script&gt;" in page


# -- 2. one error mapper with a catch-all ---------------------------------------------------------------------


def test_a_foreign_exception_is_an_internal_error_not_a_denial(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from uc_attest.cli import app
    from uc_attest.manifest import Manifest

    def boom(*_a: object, **_k: object) -> None:
        raise KeyError("spec")

    monkeypatch.setattr(Manifest, "from_json", boom)
    r = CliRunner().invoke(app, ["verify", str(world["pack"]), "--integrity-only"])
    assert r.exit_code not in (0, 1) and r.exit_code == uc.EXIT_INTERNAL, (r.exit_code, r.output)
    assert "internal error" in r.output and "please report" in r.output and "KeyError" in r.output
    assert "Traceback" not in r.output


def _append_raw(inst: Running, body: dict[str, Any], keys: list[str]) -> None:
    """A body any public log could hold (valid JSON, not a shape we expect), written to the store directly."""
    from uc_attest.core.digest import canonical_json

    inst.server.instance.log.append(canonical_json(body), str(body.get("kind")), keys)


def test_audit_survives_a_malformed_log_entry(tmp_path: Path) -> None:
    inst = start_instance(tmp_path / "inst")
    try:
        pack = tmp_path / "pack"
        uc.write_pack(make_model(tmp_path / "src"), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
        uc.attest_pack(pack, uc.select_trust(None, inst.dir), sign_as=uc.SignAs(dev_identity=RELEASE))
        root = str(uc.load_manifest(pack / uc.MANIFEST_NAME).root)
        _append_raw(inst, {"apiVersion": "0.0.1", "kind": "dsse", "spec": {}}, [root])
        r = cli("audit", pack, "--instance", inst.dir, "--json")
        assert "Traceback" not in r.stderr, r.stderr
        assert r.returncode == 1, r.stderr
        events = json.loads(r.stdout)["events"]
        assert any(not e["ok"] for e in events) and any(e["ok"] for e in events)
    finally:
        inst.server.stop()


# -- 3. the log client: transient = unreachable, malformed = misbehaving --------------------------------------


class _Proxy:
    """A log in front of the real one that fails the way a real network or a hostile log does."""

    def __init__(self, upstream: str) -> None:
        self.mode, self.hits = "pass", 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: object) -> None:
                return None

            def do_GET(self) -> None:
                proxy.hits += 1
                if proxy.mode in ("503", "429"):
                    self._send(int(proxy.mode), b'{"message": "try later"}')
                elif proxy.mode == "garbage":
                    self._send(200, b"<html>this is not a log</html>")
                else:
                    with urllib.request.urlopen(upstream + self.path, timeout=10) as up:
                        self._send(up.status, up.read())

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def proxied(world: dict[str, Any]) -> Iterator[tuple[_Proxy, Path]]:
    inst: Running = world["inst"]
    proxy = _Proxy(inst.url)
    tc = json.loads(inst.trust_config_path.read_text())
    for t in tc["trustedRoot"]["tlogs"]:
        t["baseUrl"] = t["baseUrl"].replace(inst.url, proxy.url)  # Rekor v2 keeps its path prefix
    path = world["root"] / "proxied-trust.json"
    path.write_text(json.dumps(tc))
    yield proxy, path
    proxy.httpd.shutdown()


def _policy(world: dict[str, Any], trust: Path, required: bool) -> Path:
    p = world["root"] / f"policy-{required}.yaml"
    p.write_text(
        f"version: 1\nname: log test\ntrust:\n  trust_config: {trust}\nsigners:\n  release:\n"
        f"    - issuer: {world['inst'].issuer}\n      identity: {RELEASE}\n"
        f"release:\n  require_online_log_check: {str(required).lower()}\n"
    )
    return p


def _log_online(out: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in out["checks"] if c["rule"] == "log.online")


@pytest.mark.parametrize("status", ["503", "429"])
def test_transient_log_errors_are_unreachable_not_a_split_view(
    world: dict[str, Any], proxied: tuple[_Proxy, Path], status: str
) -> None:
    proxy, trust = proxied
    proxy.mode, proxy.hits = status, 0
    r = cli("verify", world["pack"], "--policy", _policy(world, trust, False), "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 0, r.stdout  # not required by the policy: skipped, and said so
    check = _log_online(out)
    assert check["skipped"] and "unreachable" in check["detail"] and "split view" not in json.dumps(check)
    assert proxy.hits > 1  # retried before giving up
    required = cli("verify", world["pack"], "--policy", _policy(world, trust, True), "--json")
    assert required.returncode == 4, required.stdout  # operational, not "denied"
    assert "unreachable" in _log_online(json.loads(required.stdout))["detail"]


def test_a_log_answering_garbage_is_misbehaving_and_denied(world: dict[str, Any], proxied: tuple[_Proxy, Path]) -> None:
    proxy, trust = proxied
    proxy.mode = "garbage"
    r = cli("verify", world["pack"], "--policy", _policy(world, trust, False), "--json")
    assert r.returncode == 1, r.stdout
    check = _log_online(json.loads(r.stdout))
    # Rekor v2 (the default) reads the checkpoint first: garbage there does not verify with the log key
    assert not check["ok"] and not check.get("skipped")
    assert "not JSON" in check["detail"] or "does not verify" in check["detail"], check
    proxy.mode = "pass"
    assert cli("verify", world["pack"], "--policy", _policy(world, trust, True)).returncode == 0


# -- 4. a loader needs a trust anchor -------------------------------------------------------------------------


def test_load_verified_refuses_without_a_trust_anchor(world: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(uc.UsageError, match="trust anchor"):
        uc.load_verified(world["pack"])
    # a separately kept (validated) manifest is an anchor; so is a bundle with identity and issuer
    kept = tmp_path / "validated-manifest.json"
    kept.write_bytes((world["pack"] / uc.MANIFEST_NAME).read_bytes())
    assert len(uc.load_verified(world["pack"], uc.Anchor.kept_manifest(kept))) == 9
    state = uc.load_verified(
        world["pack"],
        uc.Anchor.signed_by(RELEASE, bundle=world["bundle"], trust=uc.TrustRoot.instance(world["inst"].dir)),
    )
    assert len(state) == 9
    assert len(uc.load_verified(world["pack"], uc.Anchor.pack_itself())) == 9


# -- 5. the inventory shows bad releases as bad ---------------------------------------------------------------


def _self_signed_release_entry(inst: Running, statement: bytes) -> None:
    """A DSSE entry a stranger can log: a release statement signed with a self-signed certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mallory")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(RELEASE)]), critical=True)
        .sign(key, hashes.SHA256())
    )
    ptype = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(statement), statement)
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    env = {
        "payload": base64.b64encode(statement).decode(),
        "payloadType": ptype,
        "signatures": [{"sig": base64.b64encode(sig).decode()}],
    }
    pem = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()
    entry = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {"proposedContent": {"envelope": json.dumps(env), "verifiers": [pem]}},
    }
    req = urllib.request.Request(
        f"{inst.url}/api/v1/log/entries", data=json.dumps(entry).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201


def test_inventory_shows_a_release_that_does_not_verify(tmp_path: Path) -> None:
    inst = start_instance(tmp_path / "inst", rekor_version=1)  # a Rekor v1 log stores the statements
    try:
        pack = tmp_path / "pack"
        uc.write_pack(make_model(tmp_path / "src"), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
        res = uc.attest_pack(pack, uc.select_trust(None, inst.dir), sign_as=uc.SignAs(dev_identity=RELEASE))
        bundle = json.loads(res.bundle.read_text())
        statement = base64.b64decode(bundle["dsseEnvelope"]["payload"])
        forged = statement.replace(b"release", b"re1ease")  # another statement, same shape
        _self_signed_release_entry(inst, forged)
        rows = uc.inventory(uc.TrustRoot.instance(inst.dir))
        bad = [r for r in rows if str(r["status"]).startswith("DOES NOT VERIFY")]
        good = [r for r in rows if r["status"] == "not validated"]
        assert len(good) == 1 and len(bad) == 1, rows
        out = cli("inventory", "--instance", inst.dir, "--json")
        assert out.returncode == 0 and "DOES NOT VERIFY" in out.stdout
    finally:
        inst.server.stop()


# -- 6. air-gapped deploy with public-good trust --------------------------------------------------------------


def test_public_good_offline_uses_the_shipped_trusted_root(world: dict[str, Any]) -> None:
    r = cli(
        "verify",
        world["pack"],
        "--bundle",
        world["bundle"],
        "--trust-config",
        "public-good",
        "--offline",
        "--identity",
        RELEASE,
        "--issuer",
        "https://token.actions.githubusercontent.com",
        "--json",
    )
    assert r.returncode == 1, r.stderr  # verified offline against public-good: not signed by it -> denied
    assert "TUF" not in r.stderr + r.stdout
    first = json.loads(r.stdout)["checks"][0]  # a v2 bundle: its TSA is not public-good's, so no verified time
    assert first["rule"] in ("release.signer", "release.timestamps") and not first["ok"], first


# -- 8. serving on a port the trust config does not name ------------------------------------------------------


def test_serve_on_another_port_than_the_trust_config_is_refused(tmp_path: Path) -> None:
    port, other = free_port(), free_port()
    uc.init_instance(tmp_path / "inst", port)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "uc_attest.cli", "instance", "serve", str(tmp_path / "inst"), "--port", str(other)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the server started on a port no client will find")
    assert r.returncode == 2, r.stderr
    assert str(port) in r.stderr and str(other) in r.stderr and "Traceback" not in r.stderr


def test_move_to_port_rewrites_the_trust_config(tmp_path: Path) -> None:
    port, other = free_port(), free_port()
    uc.init_instance(tmp_path / "inst", port)
    server = uc.instance_server(tmp_path / "inst", other, move=True).start()
    try:
        tc = json.loads((tmp_path / "inst" / "trust_config.json").read_text())
        assert tc["trustedRoot"]["tlogs"][0]["baseUrl"] == f"http://127.0.0.1:{other}"
        assert tc["signingConfig"]["caUrls"][0]["url"] == f"http://127.0.0.1:{other}"
        assert uc.load_instance(tmp_path / "inst").port == other
        with urllib.request.urlopen(f"http://127.0.0.1:{other}/api/v1/log", timeout=5) as r:
            assert r.status == 200
    finally:
        server.stop()
