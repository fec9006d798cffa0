"""Rekor v2 and RFC 3161 in the embedded instance, over real HTTP: the TSA answers what rfc3161-client (the
client inside sigstore-python's Signer) sends, the tile log takes what sigstore-python 4.5.1 sends and serves
C2SP tiles, bad input gets 400 with a reason, entries survive kill -9, and the policy rules that read
verified timestamps (require_timestamps, require_tlog, TSA-only bundles) fail closed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

import uc_attest as uc
from tests.conftest import SHARED
from tests.e2e.test_cli import cli
from tests.integration.conftest import Running, free_port, serve_in_subprocess
from uc_attest.core import merkle
from uc_attest.evidence.timestamps import TimestampInvalid, verify_timestamps
from uc_attest.transparency.tiles import WIDTH, TileClient, TileTree

IDENTITY = "release-bot@example.com"
TSA_ASSETS = SHARED / "vectors" / "sigstore-python" / "test" / "assets" / "tsa"


def post(url: str, body: bytes, content_type: str) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def tsa_chain(instance: Running) -> list[x509.Certificate]:
    root = json.loads(instance.trust_config_path.read_text())["trustedRoot"]
    (ta,) = root["timestampAuthorities"]
    return [x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"])) for c in ta["certChain"]["certificates"]]


# -- the timestamp authority ------------------------------------------------------------------------------------


def test_tsa_answers_rfc3161_client_and_is_listed(instance: Running) -> None:
    from rfc3161_client import TimestampRequestBuilder, decode_timestamp_response
    from rfc3161_client.verify import VerifierBuilder

    tc = json.loads(instance.trust_config_path.read_text())
    (tsa,) = tc["signingConfig"]["tsaUrls"]
    assert tsa["url"] == f"{instance.url}/api/v1/timestamp" and tsa["majorApiVersion"] == 1
    message = b"a signature to timestamp"
    req = TimestampRequestBuilder().data(message).nonce(nonce=True).build()
    status, body, ctype = post(tsa["url"], req.as_bytes(), "application/timestamp-query")
    assert status == 200 and ctype == "application/timestamp-reply"
    resp = decode_timestamp_response(body)
    assert resp.tst_info.nonce == req.nonce
    leaf, *_, root = tsa_chain(instance)
    VerifierBuilder().tsa_certificate(leaf).add_root_certificate(root).build().verify_message(resp, message)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]


@pytest.mark.parametrize(
    ("body", "ctype", "status"),
    [
        (b"not DER at all", "application/timestamp-query", 400),
        (b"", "application/timestamp-query", 400),
        (bytes.fromhex("3003020101"), "application/timestamp-query", 400),  # a SEQUENCE with only a version
        # version, a SHA-256 imprint, then extensions that do not parse (asn1crypto parses them lazily): was a 500
        (
            bytes.fromhex("303a020101" + "3031300d060960864801650304020105000420" + "00" * 32 + "a0023000"),
            "application/timestamp-query",
            400,
        ),
        (b"{}", "application/json", 415),
    ],
)
def test_tsa_refuses_malformed_requests_with_a_reason(instance: Running, body: bytes, ctype: str, status: int) -> None:
    got, answer, _ = post(f"{instance.url}/api/v1/timestamp", body, ctype)
    assert got == status
    assert json.loads(answer)["message"]


def test_tsa_refuses_a_wrong_length_imprint(instance: Running) -> None:
    from asn1crypto import tsp

    req = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x00" * 20},
            "cert_req": True,
        }
    )
    got, answer, _ = post(f"{instance.url}/api/v1/timestamp", req.dump(), "application/timestamp-query")
    assert got == 400 and "imprint" in json.loads(answer)["message"]


# -- the tile log -------------------------------------------------------------------------------------------------


def test_stock_signer_signs_on_v2_and_the_tiles_answer(instance: Running) -> None:
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext
    from sigstore.verify import Verifier, policy

    cfg = uc.TrustRoot.file(instance.trust_config_path).client_config
    with SigningContext.from_trust_config(cfg).signer(IdentityToken(instance.token("blob@example.com"))) as s:
        bundle = s.sign_artifact(b"hello rekor v2")
    Verifier(trusted_root=cfg.trusted_root).verify_artifact(
        b"hello rekor v2", bundle, policy.Identity(identity="blob@example.com", issuer=instance.issuer)
    )
    doc = json.loads(bundle.to_json())
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    body = base64.b64decode(entry["canonicalizedBody"])
    assert (
        json.loads(body)["spec"]["hashedRekordV002"]["data"]["digest"]
        == base64.b64encode(hashlib.sha256(b"hello rekor v2").digest()).decode()
    )
    idx = int(entry["logIndex"])
    # the C2SP read API, verified: checkpoint by the log key, entry in its bundle, leaf in its tile, root
    (log,) = uc.select_trust(None, instance.dir).tile_logs()
    assert log.log_id == base64.b64decode(entry["logId"]["keyId"])
    client = TileClient(log)
    cp = client.checkpoint()
    assert cp.size > idx
    assert client.entries(idx // WIDTH, cp.size)[idx % WIDTH] == body
    assert client.tile(0, idx // WIDTH, cp.size)[idx % WIDTH] == merkle.leaf_hash(body)
    assert TileTree(client, cp.size).root() == cp.root
    assert cp.origin == uc.load_instance(instance.dir).origin_v2
    # a duplicate is answered with the entry already in the log
    status, again, _ = post(
        f"{instance.url}/rekor-v2/api/v2/log/entries",
        json.dumps(
            {
                "hashedRekordRequestV002": {
                    "digest": base64.b64encode(hashlib.sha256(b"hello rekor v2").digest()).decode(),
                    "signature": json.loads(body)["spec"]["hashedRekordV002"]["signature"],
                }
            }
        ).encode(),
        "application/json",
    )
    assert status in (200, 201) and int(json.loads(again)["logIndex"]) == idx
    assert client.checkpoint().size == cp.size
    # tiles that do not exist (yet): 404, never a 500
    assert get(f"{instance.url}/rekor-v2/tile/0/999")[0] == 404
    assert get(f"{instance.url}/rekor-v2/tile/entries/x001/000")[0] == 404
    assert get(f"{instance.url}/rekor-v2/tile/zz/000")[0] == 404


@pytest.mark.parametrize(
    "request_body",
    [
        b"not json",
        json.dumps({"dsseRequestV002": {}}).encode(),
        json.dumps({"hashedRekordRequestV002": {"digest": "AAAA", "signature": {}}}).encode(),
    ],
)
def test_v2_log_refuses_malformed_entries(instance: Running, request_body: bytes) -> None:
    (log,) = uc.select_trust(None, instance.dir).tile_logs()
    before = TileClient(log).checkpoint().size
    status, answer, _ = post(f"{instance.url}/rekor-v2/api/v2/log/entries", request_body, "application/json")
    assert status == 400 and json.loads(answer)["message"]
    assert TileClient(log).checkpoint().size == before


def test_v2_log_refuses_a_signature_that_does_not_verify(instance: Running, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from uc_attest.testing.logs import self_signed_cert

    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_cert(key)
    req = {
        "hashedRekordRequestV002": {
            "digest": base64.b64encode(hashlib.sha256(b"x").digest()).decode(),
            "signature": {
                "content": base64.b64encode(key.sign(b"y", ec.ECDSA(hashes.SHA256()))).decode(),
                "verifier": {
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "x509Certificate": {"rawBytes": base64.b64encode(cert).decode()},
                },
            },
        }
    }
    status, answer, _ = post(
        f"{instance.url}/rekor-v2/api/v2/log/entries", json.dumps(req).encode(), "application/json"
    )
    assert status == 400 and "signature" in json.loads(answer)["message"]


def test_v2_entries_survive_kill_9_under_load(tmp_path: Path) -> None:
    """Every entry acknowledged before kill -9 is in the log after a restart, provable from its tiles."""
    from uc_attest.testing.logs import hashedrekord_requests

    root = tmp_path / "inst"
    uc.init_instance(root, free_port())
    proc = serve_in_subprocess(root)
    url = json.loads((root / "instance.json").read_text())["url"] + "/rekor-v2/api/v2/log/entries"
    acked: list[tuple[int, bytes]] = []
    requests = hashedrekord_requests(400)

    def send(req: dict[str, Any]) -> None:
        status, answer, _ = post(url, json.dumps(req).encode(), "application/json")
        if status in (200, 201):
            e = json.loads(answer)
            acked.append((int(e["logIndex"]), base64.b64decode(e["canonicalizedBody"])))

    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(send, r) for r in requests]
            while len(acked) < 150:
                pass
            os.kill(proc.pid, signal.SIGKILL)
            for f in futures:
                with contextlib.suppress(OSError):
                    f.result()
    finally:
        proc.kill()
        proc.wait()
    assert len(acked) >= 150
    proc = serve_in_subprocess(root)
    try:
        (log,) = uc.select_trust(None, root).tile_logs()
        client = TileClient(log)
        cp = client.checkpoint()
        tree = TileTree(client, cp.size)
        for index, body in acked:
            assert index < cp.size
            path = merkle.inclusion_path(tree.hash_range, index, cp.size)
            merkle.verify_inclusion(index, cp.size, merkle.leaf_hash(body), path, cp.root)
    finally:
        proc.terminate()
        proc.wait()


# -- signing and verifying ------------------------------------------------------------------------------------


def test_tsa_or_log_unreachable_exits_4_naming_the_url(instance: Running, packed: Path, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    tc = json.loads(instance.trust_config_path.read_text())
    for what, path in (("tsaUrls", "/api/v1/timestamp"), ("rekorTlogUrls", "")):
        t = json.loads(json.dumps(tc))
        for u in t["signingConfig"][what]:
            u["url"] = dead + path
        cfg = tmp_path / f"{what}.json"
        cfg.write_text(json.dumps(t))
        out = tmp_path / f"{what}.sigstore.json"
        r = cli("attest", packed, "--trust-config", cfg, "--identity-token", instance.token(IDENTITY), "--bundle", out)
        assert r.returncode == 4, r.stderr
        assert dead in r.stderr.splitlines()[-1] and "Traceback" not in r.stderr
        assert not out.exists() and not list(tmp_path.glob(f"{what}.sigstore.json*"))


def _policy(tmp: Path, instance: Running, release: str = "") -> Path:
    p = tmp / "policy.yaml"
    p.write_text(
        f"version: 1\nname: v2\ntrust: {{instance: {instance.dir}}}\nsigners:\n  release:\n"
        f"    - issuer: {instance.issuer}\n      identity: {IDENTITY}\n" + (f"release:\n{release}" if release else "")
    )
    return p


@pytest.fixture(scope="module")
def signed(instance: Running, packed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("v2") / "pack.sigstore.json"
    uc.attest_pack(
        packed, uc.select_trust(None, instance.dir), sign_as=uc.SignAs(dev_identity=IDENTITY), bundle_out=out
    )
    return out


def test_require_timestamps_counts_distinct_tsas(instance: Running, packed: Path, signed: Path, tmp_path: Path) -> None:
    one = uc.verify(packed, uc.Anchor.policy(_policy(tmp_path, instance, "  require_timestamps: 1\n"), bundle=signed))
    assert one.ok, one.to_dict()
    assert "1 verified RFC 3161" in next(c for c in one.checks if c.rule == "release.timestamps").detail
    two = uc.verify(packed, uc.Anchor.policy(_policy(tmp_path, instance, "  require_timestamps: 2\n"), bundle=signed))
    bad = next(c for c in two.checks if c.rule == "release.timestamps")
    assert not two.ok and not bad.ok and bad.expected == ">= 2 distinct TSAs"


def test_tsa_only_bundle_needs_require_tlog_false(
    instance: Running, packed: Path, signed: Path, tmp_path: Path
) -> None:
    """A bundle with no log entry, as GitHub's instance issues for private repositories: its time from a TSA."""
    doc = json.loads(signed.read_text())
    doc["verificationMaterial"]["tlogEntries"] = []
    tsa_only = tmp_path / "tsa-only.sigstore.json"
    tsa_only.write_text(json.dumps(doc))
    strict = uc.verify(packed, uc.Anchor.policy(_policy(tmp_path, instance), bundle=tsa_only))
    log = next(c for c in strict.checks if c.rule == "release.log")
    assert not strict.ok and not log.ok and "require_tlog" in (log.hint or "")
    loose = uc.verify(packed, uc.Anchor.policy(_policy(tmp_path, instance, "  require_tlog: false\n"), bundle=tsa_only))
    assert loose.ok, loose.to_dict()
    log = next(c for c in loose.checks if c.rule == "release.log")
    assert log.skipped and "TSA-only" in log.detail
    # without its timestamp it has no verified time at all: refused, naming the rule
    doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] = []
    tsa_only.write_text(json.dumps(doc))
    none = uc.verify(packed, uc.Anchor.policy(_policy(tmp_path, instance, "  require_tlog: false\n"), bundle=tsa_only))
    assert not none.ok and not none.checks[0].ok
    # and a tampered DSSE signature is caught on this path too
    doc = json.loads(signed.read_text())
    doc["verificationMaterial"]["tlogEntries"] = []
    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-5] ^= 1
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    tsa_only.write_text(json.dumps(doc))
    bad = uc.verify(packed, uc.Anchor.policy(_policy(tmp_path, instance, "  require_tlog: false\n"), bundle=tsa_only))
    assert not bad.ok and not bad.checks[0].ok


def test_max_age_reads_the_tsa_time(instance: Running, packed: Path, signed: Path, tmp_path: Path) -> None:
    pol = _policy(tmp_path, instance, "  max_age_days: 1\n")
    assert uc.verify(packed, uc.Anchor.policy(pol, bundle=signed)).ok
    later = uc.verify(packed, uc.Anchor.policy(pol, bundle=signed), now=time.time() + 3 * 86400)
    age = next(c for c in later.checks if c.rule == "release.max_age")
    assert not later.ok and not age.ok and age.actual.startswith("3.0")


# -- sigstore-python's TSA fixtures: each limit refused with the rule named ------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("bundle.txt.sigstore", None),
        ("bundle.duplicate.sigstore", "duplicate"),
        ("bundle.many_timestamp.sigstore", "more than 32"),
        ("bundle.txt.late_timestamp.sigstore", "signing certificate's validity"),
    ],
)
def test_sigstore_python_tsa_fixtures(name: str, problem: str | None, tmp_path: Path) -> None:
    if not TSA_ASSETS.exists():
        pytest.skip(f"{TSA_ASSETS} not found: ../shared is not beside this clone")
    from uc_attest.evidence.bundle import leaf_certificate

    if name.endswith("late_timestamp.sigstore"):  # signed on staging, timestamped by staging's TSA
        root = json.loads(
            (
                TSA_ASSETS.parents[2]
                / "sigstore"
                / "_store"
                / "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev"
                / "trusted_root.json"
            ).read_text()
        )
    else:  # as sigstore-python's own tests do: its trust config with the test TSA (ca.json) as the authority
        root = json.loads((TSA_ASSETS / "trust_config.json").read_text())["trustedRoot"]
        root["timestampAuthorities"] = [json.loads((TSA_ASSETS / "ca.json").read_text())]
    (tmp_path / "trusted_root.json").write_text(json.dumps(root))
    doc = json.loads((TSA_ASSETS / name).read_text())
    leaf = leaf_certificate(doc, name)
    if problem is None:
        got = verify_timestamps(doc, root, leaf, name)
        ((when, _),) = got.verified  # the second timestamp is by a TSA this root does not trust: not counted
        assert leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc and len(got.ignored) == 1
        return
    with pytest.raises(TimestampInvalid) as exc:
        verify_timestamps(doc, root, leaf, name)
    assert exc.value.rule == "release.timestamps" and problem in exc.value.problem
    r = cli(
        "verify-bundle",
        "--bundle",
        TSA_ASSETS / name,
        "--certificate-identity",
        "x",
        "--certificate-oidc-issuer",
        "y",
        "--trusted-root",
        tmp_path / "trusted_root.json",
        TSA_ASSETS / "bundle.txt",
    )
    # staging's root as shipped holds only the CA of its time, not the one that issued this 2025 leaf: through
    # the CLI the first fact that fails is named, the certificate not chaining to the root (release.signer)
    first = "does not chain" if name.endswith("late_timestamp.sigstore") else problem
    assert r.returncode == 1 and first in r.stderr, r.stderr


def test_a_staging_rekor_v2_bundle_verifies_through_verify_bundle() -> None:
    assets = SHARED / "vectors" / "sigstore-python" / "test" / "assets"
    if not assets.exists():
        pytest.skip(f"{assets} not found: ../shared is not beside this clone")
    from uc_attest.evidence.bundle import leaf_certificate
    from uc_attest.evidence.identity import signer_of

    subject = "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"  # its statement's subject
    for name, artifact in (
        ("staging-rekor-v2.txt", assets / "staging-rekor-v2.txt"),
        ("a.dsse.staging-rekor-v2.txt", subject),
    ):
        bundle = assets / f"{name}.sigstore.json"
        doc = json.loads(bundle.read_text())
        entry = doc["verificationMaterial"]["tlogEntries"][0]
        assert entry["kindVersion"]["version"] == "0.0.2" and not entry.get("inclusionPromise")
        who = signer_of(leaf_certificate(doc, name))
        ident, issuer = who.primary, who.issuer
        r = cli(
            "verify-bundle",
            "--bundle",
            bundle,
            "--certificate-identity",
            ident,
            "--certificate-oidc-issuer",
            issuer,
            "--staging",
            artifact,
        )
        assert r.returncode == 0, r.stderr
        r = cli(
            "verify-bundle",
            "--bundle",
            bundle,
            "--certificate-identity",
            "eve@example.com",
            "--certificate-oidc-issuer",
            issuer,
            "--staging",
            artifact,
        )
        assert r.returncode == 1


def test_a_timestamp_outside_its_tsa_validity_is_refused(instance: Running, signed: Path) -> None:
    from uc_attest.evidence.bundle import leaf_certificate

    root = json.loads(instance.trust_config_path.read_text())["trustedRoot"]
    doc = json.loads(signed.read_text())
    leaf = leaf_certificate(doc, "b")
    assert len(verify_timestamps(doc, root, leaf, "b").verified) == 1
    root["timestampAuthorities"][0]["validFor"] = {"start": "2099-01-01T00:00:00Z"}
    with pytest.raises(TimestampInvalid, match="outside .* validity"):
        verify_timestamps(doc, root, leaf, "b")


def test_an_instance_made_before_rekor_v2_still_serves_and_verifies(packed: Path, tmp_path: Path) -> None:
    """An instance directory from before this log (no v2 key, no TSA, v1-only trust config) loads, signs on
    Rekor v1 and verifies; its v2 endpoints answer 404."""
    root = tmp_path / "old"
    uc.init_instance(root, free_port(), rekor_version=1)
    meta = json.loads((root / "instance.json").read_text())
    meta.pop("origin_v2")
    meta.pop("rekor_version", None)
    (root / "instance.json").write_text(json.dumps(meta))
    for name in ("log2.key.pem", "tsa.key.pem", "tsa-root.key.pem", "tsa.pem", "tsa-root.pem"):
        (root / name).unlink()
    tc = json.loads((root / "trust_config.json").read_text())
    tc["trustedRoot"]["tlogs"] = [t for t in tc["trustedRoot"]["tlogs"] if "rekor-v2" not in t["baseUrl"]]
    tc["trustedRoot"]["timestampAuthorities"] = []
    tc["signingConfig"]["tsaUrls"] = []
    tc["signingConfig"]["rekorTlogUrls"] = [
        u for u in tc["signingConfig"]["rekorTlogUrls"] if u["majorApiVersion"] == 1
    ]
    (root / "trust_config.json").write_text(json.dumps(tc))
    server = uc.instance_server(root).start()
    try:
        out = tmp_path / "old.sigstore.json"
        uc.attest_pack(packed, uc.select_trust(None, root), sign_as=uc.SignAs(dev_identity=IDENTITY), bundle_out=out)
        entry = json.loads(out.read_text())["verificationMaterial"]["tlogEntries"][0]
        assert entry["kindVersion"]["kind"] == "dsse"
        v = uc.verify(
            packed,
            uc.Anchor.signed_by(IDENTITY, uc.load_instance(root).issuer, bundle=out, trust=uc.TrustRoot.instance(root)),
        )
        assert v.ok, v.to_dict()
        url = uc.load_instance(root).url
        assert get(f"{url}/rekor-v2/checkpoint")[0] == 404
        assert post(f"{url}/api/v1/timestamp", b"x", "application/timestamp-query")[0] == 404
    finally:
        server.stop()


# -- the tiles client against a log that fails (security review, finding 3) ------------------------------------


class FakeTileLog:
    """A tlog-tiles log of three entries on 127.0.0.1 whose answers a test can replace by path."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from cryptography.hazmat.primitives.asymmetric import ed25519

        from uc_attest.transparency.checkpoint import Checkpoint, ed25519_key_id, sign_note_ed25519
        from uc_attest.transparency.tiles import TileLogKey, encode_bundle

        key, name = ed25519.Ed25519PrivateKey.generate(), "fake.example/log"
        self.entries = [b"one", b"two", b"three"]
        leaves = [merkle.leaf_hash(e) for e in self.entries]
        root = merkle.MerkleTree(leaves).root()
        self.answers: dict[str, tuple[int, bytes]] = {
            "/checkpoint": (200, sign_note_ed25519(Checkpoint(name, 3, root).text(), name, key).encode()),
            "/tile/0/000.p/3": (200, b"".join(leaves)),
            "/tile/entries/000.p/3": (200, encode_bundle(self.entries)),
        }
        self.hits: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.hits.append(self.path)
                status, body = fake.answers.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.key = TileLogKey(url, key.public_key(), ed25519_key_id(name, key.public_key()))

    def client(self) -> TileClient:
        return TileClient(self.key, timeout=5.0)


@pytest.fixture
def fake_log() -> Any:
    log = FakeTileLog()
    yield log
    log.httpd.shutdown()
    log.httpd.server_close()


def test_a_healthy_fake_log_verifies(fake_log: FakeTileLog) -> None:
    client = fake_log.client()
    cp = client.checkpoint()
    assert TileTree(client, cp.size).root() == cp.root and client.entries(0, cp.size) == fake_log.entries


@pytest.mark.parametrize("path", ["/tile/0/000.p/3", "/tile/entries/000.p/3"])
def test_a_tile_answering_500_while_the_checkpoint_serves_is_misbehaving(fake_log: FakeTileLog, path: str) -> None:
    """Was LogUnreachable, which a verification reports as a skipped online check: the log hid a tile."""
    from uc_attest.errors import LogMisbehaved

    fake_log.answers[path] = (500, b"entry too long for a bundle")
    client = fake_log.client()
    cp = client.checkpoint()
    with pytest.raises(LogMisbehaved, match="HTTP 500 on every attempt while the log serves a valid checkpoint"):
        TileTree(client, cp.size).root() if "entries" not in path else client.entries(0, cp.size)
    assert fake_log.hits.count(path) == 3  # retried first: a single 500 is transient


@pytest.mark.parametrize(
    ("path", "answer", "error"),
    [
        ("/tile/0/000.p/3", (503, b"busy"), "LogUnreachable"),  # an overloaded server or a gateway: not a finding
        ("/tile/0/000.p/3", (200, b"\x00" * 95), "LogMisbehaved"),  # a tile that does not parse
        ("/tile/0/000.p/3", (200, b"\x00" * (256 * 32 + 1)), "LogMisbehaved"),  # longer than any tile
        ("/tile/entries/000.p/3", (200, b"\x00\x05one"), "LogMisbehaved"),  # a bundle cut short
        ("/tile/entries/000.p/3", (200, b"\x00\x01x"), "LogMisbehaved"),  # another number of entries
        ("/checkpoint", (200, b"\xff\xfe"), "LogMisbehaved"),
        ("/checkpoint", (500, b""), "LogUnreachable"),  # nothing committed to: the log is just down
    ],
)
def test_tile_log_failures_are_classified(
    fake_log: FakeTileLog, path: str, answer: tuple[int, bytes], error: str
) -> None:
    from uc_attest import errors

    client = fake_log.client()
    size = client.checkpoint().size
    fake_log.answers[path] = answer
    with pytest.raises(getattr(errors, error)):
        client.checkpoint()
        client.entries(0, size) if "entries" in path else TileTree(client, size).root()


def test_a_tile_500_while_the_checkpoint_is_down_too_is_unreachable(fake_log: FakeTileLog) -> None:
    from uc_attest.errors import LogUnreachable

    client = fake_log.client()
    size = client.checkpoint().size
    fake_log.answers["/tile/0/000.p/3"] = fake_log.answers["/checkpoint"] = (500, b"")
    with pytest.raises(LogUnreachable):
        TileTree(client, size).root()


def test_a_dead_log_is_unreachable() -> None:
    from uc_attest.errors import LogUnreachable
    from uc_attest.transparency.tiles import TileLogKey

    with pytest.raises(LogUnreachable):
        TileClient(TileLogKey(f"http://127.0.0.1:{free_port()}", None, b"\x00" * 32), timeout=2).checkpoint()


def test_a_deleted_partial_tile_is_read_from_the_full_one(fake_log: FakeTileLog) -> None:
    """C2SP lets a log delete a partial tile once the full one exists: a client reads the full one instead."""
    from uc_attest.transparency.tiles import encode_bundle

    client = fake_log.client()
    cp = client.checkpoint()
    full_leaves = [merkle.leaf_hash(b"%d" % i) for i in range(256)]
    full_leaves[:3] = [merkle.leaf_hash(e) for e in fake_log.entries]
    fake_log.answers["/tile/0/000"] = (200, b"".join(full_leaves))
    fake_log.answers["/tile/entries/000"] = (
        200,
        encode_bundle([*fake_log.entries, *(b"%d" % i for i in range(3, 256))]),
    )
    del fake_log.answers["/tile/0/000.p/3"], fake_log.answers["/tile/entries/000.p/3"]
    assert TileTree(client, cp.size).root() == cp.root and client.entries(0, cp.size) == fake_log.entries
