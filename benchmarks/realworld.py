"""Real attestations as their publishers publish them, through both verifiers: PyPI publish attestations
(PEP 740), npm provenance and publish attestations, GitHub artifact attestations (TSA-only on GitHub's
instance), Sigstore clients' own test bundles. Their data stays out of the repository: ``collect`` copies it
from where it was fetched into ``build/realworld/`` (gitignored) with a ``cases.json`` saying, for each
bundle, its shape, publisher, artifact (file or the digests its statement names), trusted root and signer;
``table`` verifies each with sigstore-python (where it reads the shape) and the own path and prints markdown.

    python benchmarks/realworld.py collect [--cli-cli GITDIR] [--sigstore-go GITDIR] [--model-transparency GITDIR]
                                           [--pypi-attestations PATH] [--pip] [--npm] [--github-root FILE]
    python benchmarks/realworld.py table

``--cli-cli`` / ``--sigstore-go`` / ``--model-transparency``: git directories of github.com/cli/cli,
sigstore/sigstore-go and sigstore/model-transparency (their test data is read with ``git show``); ``--pypi-attestations``: the pypi-attestations sdist (or its
unpacked directory), ``--pip`` downloads it; ``--npm``: the tarballs the npm attestations name (``npm pack``)
and, where the registry serves them, the attestations themselves; ``--github-root``: GitHub's trusted root
(``gh attestation trusted-root``), without which GitHub's TSA-only attestations are listed but not verified.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from uc_attest.errors import UcAttestError

DEST = REPO / "build" / "realworld"
PUBLIC_GOOD, STAGING = "public-good", "staging"  # the roots sigstore-python ships
GH_DATA = "pkg/cmd/attestation/test/data"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


@dataclass
class Case:
    """One real bundle: where it came from and what verifying it takes (paths relative to ``DEST``)."""

    name: str
    publisher: str
    bundle: str
    root: str = PUBLIC_GOOD  # a file, or public-good / staging (shipped with sigstore-python)
    artifact: str | None = None
    digests: dict[str, str] = field(default_factory=dict)  # algorithm -> hex, when the artifact is not here
    key: str | None = None  # a managed key (npm's registry key)
    identity: str | None = None  # None: read from the certificate
    issuer: str | None = None

    def doc(self, dest: Path = DEST) -> dict[str, Any]:
        return json.loads((dest / self.bundle).read_text())  # type: ignore[no-any-return]


def load_cases(dest: Path = DEST) -> list[Case]:
    path = dest / "cases.json"
    return [Case(**c) for c in json.loads(path.read_text())] if path.exists() else []


# -- collecting -------------------------------------------------------------------------------------------------


def _git_show(gitdir: Path, path: str) -> bytes | None:
    r = subprocess.run(["git", f"--git-dir={gitdir}", "show", f"HEAD:{path}"], capture_output=True, check=False)
    return r.stdout if r.returncode == 0 else None


def _subject_digests(bundle: dict[str, Any]) -> dict[str, str]:
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return {str(k): str(v) for k, v in statement["subject"][0]["digest"].items()}


def pep740_bundle(attestation: dict[str, Any]) -> dict[str, Any]:
    """A PEP 740 attestation (PyPI's integrity API) as the Sigstore bundle it is (pypi-attestations' to_bundle)."""
    vm, env = attestation["verification_material"], attestation["envelope"]
    return {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"certificate": {"rawBytes": vm["certificate"]},
                                     "tlogEntries": vm["transparency_entries"]},
            "dsseEnvelope": {"payload": env["statement"], "payloadType": PAYLOAD_TYPE,
                             "signatures": [{"sig": env["signature"]}]}}  # fmt: skip


def _write(dest: Path, rel: str, data: bytes) -> str:
    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
    (dest / rel).write_bytes(data)
    return rel


def from_pypi_attestations(src: Path, dest: Path) -> list[Case]:
    """The pypi-attestations test assets: PEP 740 publish attestations and Sigstore bundles, with artifacts."""
    if src.is_file():
        unpacked = dest / "pypi-src"
        with tarfile.open(src) as tar:
            tar.extractall(unpacked, filter="data")
        src = unpacked
    assets = next(src.rglob("test/assets"), None)
    if assets is None:
        return []
    cases = []
    for f in sorted(assets.iterdir()):
        if f.suffix not in (".attestation", ".sigstore"):
            continue
        doc = json.loads(f.read_text())
        bundle = pep740_bundle(doc) if "verification_material" in doc else doc
        if "dsseEnvelope" not in bundle:
            continue
        art = assets / f.name.split(".whl")[0].split(".tar.gz")[0]
        art = next((p for p in (assets / (art.name + ".whl"), assets / (art.name + ".tar.gz")) if p.exists()), art)
        rel = _write(dest, f"pypi/{f.name}.json", json.dumps(bundle).encode())
        artifact = _write(dest, f"pypi/{art.name}", art.read_bytes()) if art.is_file() else None
        cases.append(Case(f"pypi/{f.name}", "PyPI (PEP 740)" if "verification_material" in doc else "PyPI",
                          rel, artifact=artifact, digests=_subject_digests(bundle)))  # fmt: skip
    return cases


def from_cli_cli(gitdir: Path, dest: Path, github_root: Path | None) -> list[Case]:
    """gh's test data: npm provenance of sigstore-js (public-good) and a GitHub TSA-only attestation."""
    cases = []
    tgz = _git_show(gitdir, f"{GH_DATA}/sigstore-js-2.1.0.tgz")
    art = _write(dest, "gh/sigstore-js-2.1.0.tgz", tgz) if tgz else None
    for name in ("sigstore-js-2.1.0-bundle.json", "sigstore-js-2.1.0-bundle-v0.1.json"):
        data = _git_show(gitdir, f"{GH_DATA}/{name}")
        if data:
            cases.append(Case(f"gh/{name}", "npm (provenance, via gh)", _write(dest, f"gh/{name}", data), artifact=art))
    for name, artifact in (("reusable-workflow-attestation.sigstore.json", "reusable-workflow-artifact"),
                           ("custom-issuer.sigstore.json", "custom-issuer-artifact")):  # fmt: skip
        data, blob = _git_show(gitdir, f"{GH_DATA}/{name}"), _git_show(gitdir, f"{GH_DATA}/{artifact}")
        if data and blob:
            cases.append(Case(f"gh/{name}", "GitHub (public repository)", _write(dest, f"gh/{name}", data),
                              artifact=_write(dest, f"gh/{artifact}", blob)))  # fmt: skip
    demo = "github_provenance_demo-0.0.12-py3-none-any"
    data, whl = _git_show(gitdir, f"{GH_DATA}/{demo}-bundle.jsonl"), _git_show(gitdir, f"{GH_DATA}/{demo}.whl")
    if data and whl:
        root = _write(dest, "gh/github_trusted_root.json", github_root.read_bytes()) if github_root else "missing"
        cases.append(Case(f"gh/{demo}-bundle.json", "GitHub (private instance, TSA-only)",
                          _write(dest, f"gh/{demo}-bundle.json", data.strip().splitlines()[0]), root=root,
                          artifact=_write(dest, f"gh/{demo}.whl", whl)))  # fmt: skip
    return cases


def from_sigstore_go(gitdir: Path, dest: Path) -> list[Case]:
    """sigstore-go's examples (npm provenance and registry-key publish attestations, in-toto v0.1) and bundles."""
    cases = []
    key = _git_show(gitdir, "examples/publish_key.pub")
    key_rel = _write(dest, "go/npm_publish_key.pub", key) if key else None
    wanted = [("examples/bundle-provenance.json", "npm (provenance)", None),
              ("examples/bundle-publish.json", "npm (publish, registry key)", key_rel),
              ("pkg/testing/data/bundles/sigstore.js@2.0.0-provenance.sigstore.json", "npm (provenance)", None),
              ("pkg/testing/data/bundles/dsse.sigstore.json", "npm (provenance, slsa-github-generator)", None),
              ("pkg/testing/data/bundles/othername.sigstore.json", "sigstore-go (OtherName identity)", None)]  # fmt: skip
    for path, publisher, k in wanted:
        data = _git_show(gitdir, path)
        if data is None:
            continue
        doc = json.loads(data)
        name = Path(path).name
        digests = _subject_digests(doc) if "dsseEnvelope" in doc else {}
        if "messageSignature" in doc:
            md = doc["messageSignature"]["messageDigest"]
            digests = {"sha256": base64.b64decode(md["digest"]).hex()}
        cases.append(Case(f"go/{name}", publisher, _write(dest, f"go/{name}", data), digests=digests, key=k))
    return cases


def from_model_transparency(gitdir: Path, dest: Path) -> list[Case]:
    """OpenSSF Model Signing signatures of each model_signing release (public-good, an IBM Verify identity)."""
    cases = []
    for version in ("v0.3.1", "v1.0.0", "v1.0.1", "v1.1.0"):
        data = _git_show(gitdir, f"scripts/tests/{version}-sigstore/model.sig")
        if data is None:
            continue
        rel = _write(dest, f"oms/{version}-sigstore.model.sig.json", data)
        cases.append(Case(f"oms/{version}-sigstore", f"model_signing {version} (OpenSSF Model Signing)", rel,
                          digests=_subject_digests(json.loads(data)), identity="stefanb@us.ibm.com",
                          issuer="https://sigstore.verify.ibm.com/oauth2"))  # fmt: skip
    return cases


def npm_tarballs(cases: list[Case], dest: Path) -> list[str]:
    """``npm pack`` the packages the npm attestations name (pkg:npm/NAME@VERSION) so the artifact is real."""
    notes = []
    for c in cases:
        if c.artifact is not None or "dsseEnvelope" not in c.doc(dest):
            continue
        statement = json.loads(base64.b64decode(c.doc(dest)["dsseEnvelope"]["payload"]))
        purl = str(statement["subject"][0].get("name", ""))
        if not purl.startswith("pkg:npm/"):
            continue
        spec = purl.removeprefix("pkg:npm/").replace("%40", "@")
        out = dest / "npm"
        out.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(out)], capture_output=True,
                           text=True, timeout=120, check=False)  # fmt: skip
        if r.returncode == 0 and r.stdout.strip():
            c.artifact = f"npm/{r.stdout.strip().splitlines()[-1]}"
        else:
            notes.append(f"npm pack {spec}: {r.stderr.strip()[:120]}")
        url = subprocess.run(["npm", "view", spec, "dist.attestations.url"], capture_output=True, text=True,
                             timeout=60, check=False).stdout.strip()  # fmt: skip
        notes.append(f"{spec}: the registry {'names ' + url if url else 'serves no dist.attestations here'}")
    return notes


def _root_doc(root: str, dest: Path) -> dict[str, Any]:
    from uc_attest.signing.trust import PUBLIC_GOOD as PG
    from uc_attest.signing.trust import STAGING as ST
    from uc_attest.signing.trust import Trust

    if root in (PUBLIC_GOOD, STAGING):
        return Trust(PG if root == PUBLIC_GOOD else ST, offline=True).root_document
    return json.loads((dest / root).read_text())  # type: ignore[no-any-return]


def pick_root(case: Case, roots: list[str], dest: Path) -> None:
    """The trusted root that lists the log of the bundle's entry (PyPI's test assets are partly staging's)."""
    entries = case.doc(dest).get("verificationMaterial", {}).get("tlogEntries") or []
    if not entries:
        return
    log_id = entries[0]["logId"]["keyId"]
    for root in roots:
        if any(t.get("logId", {}).get("keyId") == log_id for t in _root_doc(root, dest).get("tlogs") or []):
            case.root = root
            return


def collect(args: argparse.Namespace, dest: Path = DEST) -> list[Case]:
    dest.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    pypi = args.pypi_attestations
    if args.pip and pypi is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                        "pypi-attestations", "-d", str(dest / "pypi-sdist")], check=True)  # fmt: skip
        pypi = next((dest / "pypi-sdist").glob("pypi_attestations-*.tar.gz"))
    if pypi is not None:
        cases += from_pypi_attestations(Path(pypi), dest)
    if args.cli_cli is not None:
        cases += from_cli_cli(Path(args.cli_cli), dest, args.github_root)
    if args.sigstore_go is not None:
        cases += from_sigstore_go(Path(args.sigstore_go), dest)
    if args.model_transparency is not None:
        cases += from_model_transparency(Path(args.model_transparency), dest)
    roots = [PUBLIC_GOOD, STAGING]
    if args.sigstore_go is not None:
        for name in ("scaffolding", "public-key-validity"):
            data = _git_show(Path(args.sigstore_go), f"pkg/testing/data/trusted-roots/{name}.json")
            if data:
                roots.append(_write(dest, f"go/trusted-root-{name}.json", data))
    for c in cases:
        pick_root(c, roots, dest)
    if args.npm:
        for note in npm_tarballs(cases, dest):
            print(note, file=sys.stderr)
    (dest / "cases.json").write_text(json.dumps([c.__dict__ for c in cases], indent=1))
    return cases


# -- verifying --------------------------------------------------------------------------------------------------

NA = "n/a"


def _trust(case: Case, dest: Path) -> Any:
    from uc_attest.signing.trust import PUBLIC_GOOD as PG
    from uc_attest.signing.trust import STAGING as ST
    from uc_attest.signing.trust import Trust

    if case.root in (PUBLIC_GOOD, STAGING):
        return Trust(PG if case.root == PUBLIC_GOOD else ST, offline=True)
    return Trust(str(dest / case.root))


def _artifact(case: Case, dest: Path) -> Any:
    from uc_attest.evidence.verifier import Artifact

    if case.artifact is not None:
        return Artifact.of((dest / case.artifact).read_bytes())
    return Artifact({alg: bytes.fromhex(h) for alg, h in case.digests.items() if alg in ("sha256", "sha384", "sha512")})


def _signers(case: Case, dest: Path, identity: str | None) -> Any:
    """The expected signer: the publisher's, else the one the published bundle (never a mutated one) names."""
    from uc_attest.evidence.bundle import leaf_certificate
    from uc_attest.evidence.identity import SignerSpec, signer_of

    if case.key is not None:
        return None
    if case.identity is not None:
        return [SignerSpec(case.issuer or "", identity or case.identity)]
    who = signer_of(leaf_certificate(case.doc(dest), case.name))
    return [SignerSpec(who.issuer, identity or who.primary)]


def _key(case: Case, dest: Path) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_public_key((dest / case.key).read_bytes()) if case.key else None


def verify_own(case: Case, doc: dict[str, Any], dest: Path = DEST, identity: str | None = None) -> str | None:
    """The own verifier: None (verified) or why not."""
    from uc_attest.evidence.verifier import verify_bundle

    try:
        verify_bundle(doc, _trust(case, dest).root_document, where=case.name, signers=_signers(case, dest, identity),
                      key=_key(case, dest), artifact=_artifact(case, dest))  # fmt: skip
    except UcAttestError as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'problem', exc.message)}"[:200]
    return None


def verify_sigstore_python(
    case: Case, doc: dict[str, Any], dest: Path = DEST, identity: str | None = None
) -> str | None:
    """sigstore-python's Verifier where it reads the shape (NA elsewhere), and the statement subject."""
    from uc_attest.claims.statement import Statement
    from uc_attest.evidence.bundle import leaf_certificate
    from uc_attest.evidence.check import _sigstore_python, _unreadable_root, sigstore_python_gap

    trust = _trust(case, dest)
    try:
        if case.key is not None or (sigstore_python_gap(doc, trust.root_document) or _unreadable_root(trust)):
            return NA
        artifact = _artifact(case, dest)
        leaf = leaf_certificate(doc, case.name)
        _sigstore_python(
            json.dumps(doc).encode(), doc, trust, _signers(case, dest, identity), leaf, artifact, case.name
        )
        payload = base64.b64decode(doc["dsseEnvelope"]["payload"]) if "dsseEnvelope" in doc else None
        hexd = {a: d.hex() for a, d in artifact.digests.items()}
        if payload is not None and not Statement.parse_attestation(payload).matches_artifact(hexd):
            return "subject: no statement subject matches the artifact"
    except UcAttestError as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'problem', exc.message)}"[:200]
    except Exception as exc:  # noqa: BLE001 - a crash of the stock verifier is a refusal, reported
        return f"crash {type(exc).__name__}: {exc}"[:200]
    return None


def verify_both(case: Case, doc: dict[str, Any], dest: Path = DEST) -> str | None:
    """What `verify-bundle` answers: both verifiers (check_bundle); any other exception goes through."""
    from uc_attest.evidence.check import check_bundle

    try:
        check_bundle(json.dumps(doc).encode(), doc, _trust(case, dest), where=case.name,
                     signers=_signers(case, dest, None), key=_key(case, dest), artifact=_artifact(case, dest))  # fmt: skip
    except UcAttestError as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'problem', exc.message)}"[:200]
    return None


def runnable(case: Case, dest: Path = DEST) -> str | None:
    """Why this case cannot be verified here (None: it can)."""
    if case.root not in (PUBLIC_GOOD, STAGING) and not (dest / case.root).exists():
        return "its trusted root is not here (GitHub's: give --github-root, from `gh attestation trusted-root`)"
    if case.artifact is None and not case.digests:
        return "neither its artifact nor a digest"
    return None


def shape(doc: dict[str, Any]) -> str:
    from uc_attest.claims.statement import Statement

    media = str(doc.get("mediaType", ""))
    version = media.split("version=")[-1] if "version=" in media else "0.3"
    vm = doc.get("verificationMaterial") or {}
    kinds = sorted({f"{e['kindVersion']['kind']} {e['kindVersion']['version']}" for e in vm.get("tlogEntries") or []})
    tsa = len((vm.get("timestampVerificationData") or {}).get("rfc3161Timestamps") or [])
    parts = [f"v{version}", "key" if "publicKey" in vm else "cert", ", ".join(kinds) or "no tlog"]
    if any(not e.get("inclusionProof") for e in vm.get("tlogEntries") or []):
        parts.append("SET only")
    if tsa:
        parts.append(f"{tsa} TSA")
    if "dsseEnvelope" in doc:
        st = Statement.parse_attestation(base64.b64decode(doc["dsseEnvelope"]["payload"]))
        pred = "predicate empty" if not st.doc.get("predicate") else st.predicate_type.split("/")[-2:]
        algs = "/".join(sorted({a for s in st.subjects for a in s.digest}))
        parts.append(f"Statement {st.doc['_type'].rsplit('/', 1)[-1]}, {algs}, "
                     f"{pred if isinstance(pred, str) else '/'.join(pred)}")  # fmt: skip
    return "; ".join(parts)


def _short(v: str | None) -> str:
    return "ok" if v is None else v if v == NA else "refused: " + v.replace("|", "/")[:90]


def table(dest: Path = DEST) -> str:
    rows = ["| bundle | shape | publisher | sigstore-python | uc-attest |", "|---|---|---|---|---|"]
    for c in load_cases(dest):
        doc = c.doc(dest)
        why = runnable(c, dest)
        if why is not None:
            rows.append(f"| {c.name} | {shape(doc)} | {c.publisher} | not run: {why} | not run |")
            continue
        rows.append(f"| {c.name} | {shape(doc)} | {c.publisher} | {_short(verify_sigstore_python(c, doc, dest))} "
                    f"| {_short(verify_own(c, doc, dest))} |")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--cli-cli", type=Path)
    c.add_argument("--sigstore-go", type=Path)
    c.add_argument("--model-transparency", type=Path)
    c.add_argument("--pypi-attestations", type=Path)
    c.add_argument("--pip", action="store_true")
    c.add_argument("--npm", action="store_true")
    c.add_argument("--github-root", type=Path)
    sub.add_parser("table")
    args = ap.parse_args()
    if args.cmd == "collect":
        if DEST.exists():
            shutil.rmtree(DEST / "gh", ignore_errors=True)
        print(f"{len(collect(args))} bundles in {DEST}")
    print(table())


if __name__ == "__main__":
    main()
