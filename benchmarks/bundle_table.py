"""Every Sigstore bundle vector in ../shared/vectors through each verification path: the own verifier,
sigstore-python, and `verify-bundle` (both). Prints a markdown table (shape, expected, each path's answer:
"ok" or the check that refused it) and the totals.

    python benchmarks/bundle_table.py [--failures-only]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.bundle_paths import NA, run_both, run_own, run_sigstore_python
from uc_attest.testing.vectors import all_vectors


def shape(doc: dict[str, object] | None) -> str:
    if doc is None:
        return "not JSON"
    media = str(doc.get("mediaType", "?"))
    version = media.split("version=")[-1] if "version=" in media else ("0.3" if "v0.3" in media else "?")
    vm = doc.get("verificationMaterial") or {}
    assert isinstance(vm, dict)
    kinds = {f"{e['kindVersion']['kind']} {e['kindVersion']['version']}" for e in vm.get("tlogEntries") or []
             if isinstance(e, dict) and "kindVersion" in e}  # fmt: skip
    tsa = len((vm.get("timestampVerificationData") or {}).get("rfc3161Timestamps") or [])
    content = "dsse" if "dsseEnvelope" in doc else "message"
    key = "key" if "publicKey" in vm else "cert"
    return f"v{version} {content}/{key}, {', '.join(sorted(kinds)) or 'no tlog'}" + (f", {tsa} TSA" if tsa else "")


def short(answer: str | None) -> str:
    if answer is None:
        return "ok"
    if answer == NA:
        return "n/a"
    text = answer.split(": ", 1)[-1]
    return "refused: " + text[:70].replace("|", "/")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--failures-only", action="store_true", help="only rows where a path gives the wrong answer")
    args = ap.parse_args()
    shared = REPO.parent / "shared"
    rows, right, ran = [], {"own": 0, "sigstore-python": 0, "verify-bundle": 0}, 0
    vectors = all_vectors(shared)
    for v in vectors:
        try:
            doc = v.doc()
        except ValueError:
            doc = None
        answers = {
            "own": run_own(v, doc) if doc else "bundle.parse: not JSON",
            "sigstore-python": run_sigstore_python(v, doc) if doc else "not JSON",
            "verify-bundle": run_both(v, doc) if doc else "bundle.parse: not JSON",
        }
        good = {k: (a is None) == v.expect_ok or a == NA for k, a in answers.items()}
        ran += answers["sigstore-python"] != NA
        for k, g in good.items():
            right[k] += g and answers[k] != NA
        if args.failures_only and all(good.values()):
            continue
        rows.append((v.name, shape(doc), "verify" if v.expect_ok else "refuse", *(short(a) for a in answers.values())))
    print("| vector | shape | expected | own path | sigstore-python | verify-bundle (both) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    n = len(vectors)
    print(
        f"\ncorrect: own path {right['own']}/{n}, sigstore-python {right['sigstore-python']}/{ran} of the {ran} it "
        f"reads, verify-bundle {right['verify-bundle']}/{n}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
