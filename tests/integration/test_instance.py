"""The embedded instance over HTTP: bad requests get 4xx JSON and append nothing; the log is durable; it serves
only on the port its trust config names, unless told to move there."""

from __future__ import annotations

import base64
import http.client as http_client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import uc_attest as uc
from tests.integration.conftest import Running, free_port, serve_in_subprocess
from uc_attest.core import merkle
from uc_attest.instance.oidc import mint_token
from uc_attest.transparency.checkpoint import Checkpoint, ecdsa_verifier, open_note


def http(
    url: str, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, json.loads(text) if text[:1] in (b"{", b"[") else text
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def tree_size(inst: Running) -> int:
    return int(http(f"{inst.url}/api/v1/log")[1]["treeSize"])


def _csr(key: ec.EllipticCurvePrivateKey | None = None) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def test_fulcio_rejects_bad_tokens(instance: Running) -> None:
    _, csr = _csr()
    other_key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    bad = {
        "forged": mint_token(other_key, instance.issuer, "a@example.com"),
        "expired": mint_token(instance.state.oidc_key, instance.issuer, "a@example.com", lifetime_s=10, now=now - 3600),
        "wrong issuer": mint_token(instance.state.oidc_key, "https://evil.example", "a@example.com"),
        "garbage": "not-a-jwt",
    }
    import jwt

    bad["wrong audience"] = jwt.encode(
        {"iss": instance.issuer, "aud": "other", "sub": "a", "iat": now, "exp": now + 60},
        instance.state.oidc_key,
        algorithm="ES256",
    )
    for why, tok in bad.items():
        status, body = http(
            f"{instance.url}/api/v2/signingCert", {"certificateSigningRequest": csr}, {"Authorization": f"Bearer {tok}"}
        )
        assert status == 401, why
        assert "message" in body


def test_fulcio_rejects_csr_without_proof_of_possession(instance: Running) -> None:
    key, _ = _csr()
    other = ec.generate_private_key(ec.SECP256R1())
    # a CSR carrying `other`'s public key but signed by `key`: the signature check fails
    good = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    )
    csr = good.sign(key, hashes.SHA256())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 1  # break the signature
    pem = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    tok = instance.token("a@example.com")
    status, body = http(
        f"{instance.url}/api/v2/signingCert",
        {"certificateSigningRequest": base64.b64encode(pem).decode()},
        {"Authorization": f"Bearer {tok}"},
    )
    assert status == 400 and "proof of possession" in body["message"]
    del other


@pytest.mark.parametrize(
    ("body", "raw"),
    [
        ({"apiVersion": "0.0.1", "kind": "rekord", "spec": {}}, None),
        ({"apiVersion": "0.0.2", "kind": "dsse", "spec": {}}, None),
        (
            {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": "00" * 32}},
                    "signature": {"content": "AAAA", "publicKey": {"content": "AAAA"}},
                },
            },
            None,
        ),
        (None, b"{not json"),
    ],
)
def test_rekor_rejects_bad_entries_and_appends_nothing(instance: Running, body: Any, raw: bytes | None) -> None:
    before = tree_size(instance)
    status, resp = http(f"{instance.url}/api/v1/log/entries", body, raw=raw)
    assert 400 <= status < 500 and resp["code"] == status
    assert tree_size(instance) == before


def test_oversized_request_gets_413_before_the_body_is_read(instance: Running) -> None:
    import http.client

    before = tree_size(instance)
    conn = http.client.HTTPConnection("127.0.0.1", int(instance.state.port), timeout=10)
    conn.putrequest("POST", "/api/v1/log/entries")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(64 << 20))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["code"] == 413
    conn.close()
    assert tree_size(instance) == before


def test_rekor_rejects_hashedrekord_with_bad_signature(instance: Running) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = bytes(32)
    sig = key.sign(b"something else", ec.ECDSA(hashes.SHA256()))
    entry = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {
                "content": base64.b64encode(sig).decode(),
                "publicKey": {"content": base64.b64encode(pem).decode()},
            },
        },
    }
    before = tree_size(instance)
    status, resp = http(f"{instance.url}/api/v1/log/entries", entry)
    assert status == 400 and "signature" in resp["message"]
    assert tree_size(instance) == before


def test_stock_signer_signs_a_blob_and_log_api_answers(instance_v1: Running) -> None:
    """On an instance preferring Rekor v1, the v1 REST API (entries, index search, retrieve) answers."""
    instance = instance_v1
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext
    from sigstore.verify import Verifier, policy

    cfg = uc.TrustRoot.file(instance.trust_config_path).client_config
    with SigningContext.from_trust_config(cfg).signer(IdentityToken(instance.token("blob@example.com"))) as s:
        bundle = s.sign_artifact(b"hello uc-attest")
    Verifier(trusted_root=cfg.trusted_root).verify_artifact(
        b"hello uc-attest", bundle, policy.Identity(identity="blob@example.com", issuer=instance.issuer)
    )
    entry = json.loads(bundle.to_json())["verificationMaterial"]["tlogEntries"][0]
    idx = int(entry["logIndex"])
    status, by_index = http(f"{instance.url}/api/v1/log/entries?logIndex={idx}")
    assert status == 200
    uuid = next(iter(by_index))
    assert http(f"{instance.url}/api/v1/log/entries/{uuid}")[1] == by_index
    import hashlib

    digest = hashlib.sha256(b"hello uc-attest").hexdigest()
    status, uuids = http(f"{instance.url}/api/v1/index/retrieve", {"hash": f"sha256:{digest}"})
    assert status == 200 and uuid in uuids
    status, got = http(f"{instance.url}/api/v1/log/entries/retrieve", {"logIndexes": [idx]})
    assert status == 200 and got[0] == by_index
    # duplicate submission: 409, nothing appended
    before = tree_size(instance)
    body = json.loads(base64.b64decode(by_index[uuid]["body"]))
    status, _ = http(f"{instance.url}/api/v1/log/entries", {**body, "spec": body["spec"]})
    assert status == 409 and tree_size(instance) == before


def test_checkpoints_are_consistent_over_time(instance: Running) -> None:
    _, info1 = http(f"{instance.url}/api/v1/log")
    n1, root1 = info1["treeSize"], bytes.fromhex(info1["rootHash"])
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    cfg = uc.TrustRoot.file(instance.trust_config_path).client_config
    with SigningContext.from_trust_config(cfg).signer(IdentityToken(instance.token("c@example.com"))) as s:
        for i in range(3):
            s.sign_artifact(f"blob {i}".encode())
    _, info2 = http(f"{instance.url}/api/v1/log")
    n2, root2 = info2["treeSize"], bytes.fromhex(info2["rootHash"])
    v = ecdsa_verifier(instance.state.log_name, instance.state.log_key.public_key())
    cp = Checkpoint.parse(open_note(info2["signedTreeHead"], [v]).text)
    assert (cp.size, cp.root) == (n2, root2)
    if n1 > 0:
        _, proof = http(f"{instance.url}/api/v1/log/proof?firstSize={n1}&lastSize={n2}")
        merkle.verify_consistency(n1, n2, root1, root2, [bytes.fromhex(h) for h in proof["hashes"]])


def test_state_dir_with_open_permissions_is_refused(tmp_path: Path) -> None:
    uc.init_instance(tmp_path / "i", free_port())
    (tmp_path / "i" / "log.key.pem").chmod(0o644)
    with pytest.raises(uc.InvalidInput, match=r"log\.key\.pem.*0600"):
        uc.load_instance(tmp_path / "i")
    (tmp_path / "i" / "log.key.pem").unlink()
    with pytest.raises(uc.InvalidInput, match=r"log\.key\.pem: key file missing"):
        uc.load_instance(tmp_path / "i")


def _serve(root: Path) -> subprocess.Popen[bytes]:
    return serve_in_subprocess(root)  # type: ignore[no-any-return]


def test_sigkill_mid_load_loses_no_accepted_entry(tmp_path: Path) -> None:
    """Append from 4 threads, SIGKILL the server, restart: every 201-acknowledged entry is there, proofs verify."""
    import threading

    root = tmp_path / "dur"
    state = uc.init_instance(root, free_port())
    proc = _serve(root)
    url = state.url
    key = ec.generate_private_key(ec.SECP256R1())
    pem = base64.b64encode(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    accepted: list[str] = []
    lock = threading.Lock()

    def client(cid: int) -> None:
        import hashlib

        for i in range(1000):
            digest = hashlib.sha256(f"{cid}-{i}".encode()).digest()
            from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

            sig = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            entry = {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                    "signature": {"content": base64.b64encode(sig).decode(), "publicKey": {"content": pem}},
                },
            }
            try:
                status, resp = http(f"{url}/api/v1/log/entries", entry)
            except (OSError, http_client.HTTPException):  # killed mid-answer: not acknowledged
                return
            if status == 201:
                with lock:
                    accepted.append(next(iter(resp)))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for t in threads:
        t.join()
    assert len(accepted) > 10
    proc = _serve(root)
    try:
        _, info = http(f"{url}/api/v1/log")
        assert info["treeSize"] >= len(accepted)
        v = ecdsa_verifier(state.log_name, state.log_key.public_key())
        cp = Checkpoint.parse(open_note(info["signedTreeHead"], [v]).text)
        assert cp.size == info["treeSize"]
        for uuid in accepted[:: max(1, len(accepted) // 25)]:
            status, e = http(f"{url}/api/v1/log/entries/{uuid}")
            assert status == 200
            body = e[uuid]
            p = body["verification"]["inclusionProof"]
            merkle.verify_inclusion(
                p["logIndex"],
                p["treeSize"],
                merkle.leaf_hash(base64.b64decode(body["body"])),
                [bytes.fromhex(h) for h in p["hashes"]],
                bytes.fromhex(p["rootHash"]),
            )
    finally:
        proc.terminate()
        proc.wait()


def _raw(inst: Running, data: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", int(inst.state.port)), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /api/v1/log HTTP/2.0\r\n\r\n", b"505"),
        (b"GET /api/v1/log\r\n\r\n", b"400"),  # HTTP/0.9 is not spoken
        (b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 100 + b"\r\n", b"431"),
        (b"GET /api/v1/log HTTP/1.1\r\n\r\n", b"400"),  # HTTP/1.1 without Host (RFC 9112 3.2)
        (b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 100_000 + b"\r\n\r\n", b"431"),
    ],
)
def test_malformed_http_gets_an_error_status(instance: Running, request_bytes: bytes, status: bytes) -> None:
    answer = _raw(instance, request_bytes)
    assert answer.split(b" ", 2)[1] == status, answer[:200]


def test_keep_alive_and_folded_headers(instance: Running) -> None:
    """Two requests on one HTTP/1.1 connection; a folded header line (obs-fold) is refused with 400, as RFC 9112
    5.2 lets a server do, and the connection closed: the request pipelined behind it is not read."""
    one = b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nX-Obs: \xe9t\xe9\t\r\n\r\n"
    last = b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert _raw(instance, one + last).count(b"HTTP/1.1 200") == 2
    folded = b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n"
    answer = _raw(instance, one + folded + last)
    assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 400" in answer and b"whitespace after header value" in answer


# -- serving on a port the trust config does not name ---------------------------------------------------------


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
