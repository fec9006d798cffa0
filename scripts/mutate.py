"""Mutation testing of the verdict modules (``make mutate``; docs/mutation.md).

mutmut 3 (pinned in the ``dev`` extra) runs in a scratch copy of the project (``build/mutmut``: mutmut writes its
``mutants/`` tree and state there, and the tests find ``../shared`` through a link beside the copy). Each mutant
runs only the tests that call the mutated function, out of the selection in ``[tool.mutmut]`` (pyproject.toml).

Two kinds of mutant are not generated, because no verdict can depend on them: a string literal with a space in
it (every such literal in these modules is a message: a mutant would change what a refusal says, not whether it
refuses) and the removal of a ``hint=``/``expected=``/``actual=`` argument (the explanation printed beside a
check). Keys, field names, algorithm names and enum values (no space) are still mutated.

    python scripts/mutate.py prepare [--before]  # copy the project into build/mutmut (--before: no attack tests)
    python scripts/mutate.py run [GLOB...]     # mutmut run there (default: every in-scope function)
    python scripts/mutate.py rerun             # only the in-scope mutants not killed (and not EQUIVALENT) again
    python scripts/mutate.py score             # killed / total / equivalent / surviving per module

``rerun`` is for after new tests: mutmut 3 resets *every* verdict when the test selection in pyproject.toml
changed (and reruns named mutants whatever their verdict), so it keeps a copy of the verdicts, runs the survivors
by name and puts back the verdicts of the others. That is sound because tests are only ever added to the
selection: a mutant a subset of the tests killed, the whole selection kills.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("MUTATE_DIR", REPO / "build" / "mutmut"))
COPY = ["uc_attest", "tests", "policies", "examples", "benchmarks", "docs", "scripts", "pyproject.toml", "action.yml"]

#: The functions mutated, per module (``*``: all of it). verifier.py: the verdict-deciding functions only
#: (parsing, key naming and the Ed25519ph arithmetic are left out: their own unit tests and vectors cover them).
SCOPE: dict[str, list[str]] = {
    "uc_attest.policy.rules": ["*"],
    "uc_attest.verify.gather": ["*"],
    "uc_attest.core.merkle": ["*"],
    "uc_attest.evidence.timestamps": ["*"],
    "uc_attest.manifest": ["*"],
    "uc_attest.evidence.verifier": [
        "x_verify_bundle",
        "x_verify_entry",
        "x__verify_note",
        "x__body_matches",
        "x__pem_matches",
        "x_signer_matches",
        "x__verify_sig",
        "x__logs",
    ],
    "uc_attest.verify.api": ["x_gate", "x__verdict", "xǁPreparedǁverdict", "xǁPreparedǁrefuse_early"],
}

#: Mutants that behave exactly as the original (or only differ where no caller can reach): name -> why.
EQUIVALENT: dict[str, str] = {
    "uc_attest.core.merkle.x_consistency_path__mutmut_30": "complete=False -> None: the flag is only tested for truth",
    "uc_attest.core.merkle.x_verify_consistency__mutmut_75": "fn != 0 -> fn != 1 in the inner loop: fn == 0 cannot "
    "reach it (fn == sn == 0 is refused as 'too long' first; fn == 0 != sn takes the other branch)",
    "uc_attest.core.merkle.x_verify_consistency__mutmut_5": "message only: ProofError(None) is still the refusal",
    "uc_attest.core.merkle.x_verify_consistency__mutmut_55": "message only: ProofError(None) is still the refusal",
    "uc_attest.core.merkle.x_verify_consistency__mutmut_95": "message only: ProofError(None) is still the refusal",
    "uc_attest.core.merkle.xǁMerkleTreeǁconsistency_proof__mutmut_6": "message only: ProofError(None)",
    "uc_attest.core.merkle.xǁMerkleTreeǁinclusion_proof__mutmut_6": "message only: ProofError(None)",
    "uc_attest.core.merkle.xǁMerkleTreeǁnodes__mutmut_10": "message only: ProofError(None)",
    "uc_attest.core.merkle.xǁMerkleTreeǁnodes__mutmut_11": "message only: a number in the ProofError text",
    "uc_attest.verify.gather.x_ask_log__mutmut_3": "message only: the NOT_ASKED detail (the status decides)",
    "uc_attest.verify.gather.x_ask_log__mutmut_23": "message only: the NO_LOG detail (the status decides)",
    "uc_attest.verify.gather.x_ask_log__mutmut_32": "timeout 5.0 -> 6.0 s: how long to wait, not what is decided",
    "uc_attest.verify.gather.x__online_tiles__mutmut_11": "timeout 5.0 -> 6.0 s: how long to wait",
    "uc_attest.verify.gather.x__online_tiles__mutmut_71": "message only: the MISBEHAVED detail (the status decides)",
    "uc_attest.policy.rules.x_oms_default_rules__mutmut_4": "Release(require_online_log_check=False) -> the "
    "field left out: False is its default",
    "uc_attest.policy.rules.x_oms_default_rules__mutmut_8": "online_log(False) -> online_log(None): `required` is "
    "only tested for truth",
    "uc_attest.policy.rules.x_oms_default_rules__mutmut_10": "rebuild(False) -> rebuild(None): `required` is only "
    "tested for truth",
    "uc_attest.policy.rules.x_pack_rules__mutmut_1": "rebuild(False) -> rebuild(None): `required` is only tested "
    "for truth",
    "uc_attest.evidence.timestamps.x_verify_timestamps__mutmut_35": "unreachable branch: rfc3161_client's gen_time "
    "is always aware UTC (a DER GeneralizedTime is Zulu), and replace(tzinfo=UTC) of a UTC time is the same time",
    "uc_attest.evidence.timestamps.x_verify_timestamps__mutmut_36": "unreachable branch: gen_time is always aware "
    "(see _35), so the naive case it drops never occurs",
    "uc_attest.evidence.timestamps.x_verify_timestamps__mutmut_37": "unreachable branch: gen_time is always aware "
    "(see _35)",
    "uc_attest.policy.rules.x_calibration__mutmut_16": "Check.of(rule, False) -> (rule, None): `ok` is only "
    "tested for truth",
    "uc_attest.policy.rules.x_calibration__mutmut_27": "Check.of(rule, False) -> (rule, None): `ok` is only "
    "tested for truth",
    "uc_attest.policy.rules.x_calibration__mutmut_35": "Check.of(rule, False) -> (rule, None): `ok` is only "
    "tested for truth",
    "uc_attest.policy.rules.x_source_signers__mutmut_14": "Check.of(rule, False) -> (rule, None): `ok` is only "
    "tested for truth",
    "uc_attest.policy.rules.x_log_entry__mutmut_9": "Check.of(rule, False) -> (rule, None): `ok` is only tested for truth",
    "uc_attest.policy.rules.x_max_age__mutmut_10": "Check.of(rule, False) -> (rule, None): `ok` is only tested for truth",
    "uc_attest.policy.rules.x_online_log__mutmut_54": "Check.of(rule, False) -> (rule, None): `ok` is only tested for truth",
    "uc_attest.policy.rules.x_online_log__mutmut_65": "Check.of(rule, False) -> (rule, None): `ok` is only tested for truth",
    "uc_attest.policy.rules.x_pack_tensors__mutmut_4": "Check.of(rule, False) -> (rule, None): `ok` is only tested for truth",
    "uc_attest.policy.rules.x_predicate_type__mutmut_23": "Check.of(rule, False) -> (rule, None): `ok` is only tested for truth",
    "uc_attest.policy.rules.x_rebuild__mutmut_5": "Check.of(rule, False) -> (rule, None): `ok` is only tested for truth",
    "uc_attest.policy.rules.x_rebuild__mutmut_13": "Check.of(rule, False) -> (rule, None): `ok` is only tested for truth",
    "uc_attest.policy.rules.x_signer__mutmut_12": "Check.of(rule, False) -> (rule, None): `ok` is only tested for truth",
    "uc_attest.policy.rules.x_signer__mutmut_24": "Check.of(rule, False) -> (rule, None): `ok` is only tested for truth",
    "uc_attest.core.merkle.x__subproof__mutmut_18": "complete=False -> None: the flag is only tested for truth",
    "uc_attest.core.merkle.x_consistency_proof__mutmut_5": "message only: ProofError(None) is still the refusal",
    "uc_attest.core.merkle.xǁMerkleTreeǁ_hash__mutmut_8": "cache bypass: `1 >> k` only matches n == 1, so larger "
    "aligned subtrees are recomputed from their leaves (the same hash, RFC 6962's recursion), not read from the cache",
    "uc_attest.core.merkle.xǁMerkleTreeǁ_hash__mutmut_14": "cache bypass: `lo << k` >= `lo >> k`, so a cached "
    "subtree is at most recomputed from its leaves (the same hash), never another one read",
    "uc_attest.core.merkle.xǁMerkleTreeǁ_hash__mutmut_13": "`k <= len(levels)`: differs only for a range past the "
    "tree's end (a tree of >= 2^k leaves has level k), which every caller refuses first; there both raise",
    "uc_attest.core.merkle.xǁMerkleTreeǁ_hash__mutmut_15": "`(lo >> k) <= len(levels[k])`: equality means the "
    "subtree runs past the tree's end, which every caller refuses first; there both raise",
    "uc_attest.manifest.x__sorted__mutmut_8": 'encode("utf-8") -> encode("UTF-8"): the same codec',
    "uc_attest.manifest.xǁCalibrationRecordǁfrom_dict__mutmut_13": "ValueError(method) -> ValueError(None): raised "
    "to be caught on the next line and replaced by the MalformedPack; its argument is never read",
    "uc_attest.manifest.xǁManifestǁprove__mutmut_10": "KeyError(name) -> KeyError(None): message only (the one "
    "caller, `manifest --prove`, catches KeyError and names the tensor itself)",
    "uc_attest.policy.rules.x_validation__mutmut_12": "Check.of(rule, False) -> (rule, None): `ok` is only tested "
    "for truth",
    "uc_attest.policy.rules.x_validation__mutmut_114": "Check.of(rule, False) -> (rule, None): `ok` is only tested "
    "for truth",
    "uc_attest.policy.rules.x__oms_manifest_findings__mutmut_1": "an assert made weaker: its one caller "
    "(pack_manifest) calls it only when both f.oms and f.oms_findings are set",
    "uc_attest.policy.rules.x__oms_manifest_findings__mutmut_5": "the finding's subject: its one caller reads only "
    "whether there is a finding and its problem",
    "uc_attest.policy.rules.x_last_validated__mutmut_9": "`if v.evidence` -> always: `good` holds only facts with "
    "evidence",
    "uc_attest.policy.rules.x_last_validated__mutmut_12": "`else 0` -> `else 1`: unreachable, `good` holds only "
    "facts with evidence",
    "uc_attest.policy.rules.x_last_validated__mutmut_11": "an undated validation sorts at 1 instead of 0: first "
    "either way, unless another one's verified time is exactly 0 (1970-01-01T00:00:00Z), which no certificate of a "
    "verified bundle is valid at",
    "uc_attest.core.merkle.x_root_from_inclusion_proof__mutmut_5": "message only: ProofError(None) is still the "
    "refusal",
    "uc_attest.core.merkle.x_root_from_inclusion_proof__mutmut_12": "message only: ProofError(None) is still the "
    "refusal",
    "uc_attest.core.merkle.x_root_from_inclusion_proof__mutmut_27": "fn != 0 -> fn != 1 in the inner loop: it is "
    "entered with an even fn == sn >= 2 (fn == sn == 0 is refused as 'too long' first) and halving an even fn >= 2 "
    "never gives 0, so the two conditions agree on every fn they see",
    "uc_attest.core.merkle.x_root_from_inclusion_proof__mutmut_47": "message only: ProofError(None) is still the "
    "refusal",
    "uc_attest.evidence.verifier.x__verify_sig__mutmut_3": "message only: `what` names the bundle in the "
    "UnsupportedBundle text for a key outside the registry (the refusal stands)",
    "uc_attest.evidence.verifier.x_verify_bundle__mutmut_26": "message only: `where` names the bundle in the "
    "UnsupportedBundle text for a key outside the registry (the refusal stands)",
    "uc_attest.evidence.verifier.x_verify_bundle__mutmut_118": "message only: verify_chain's `where` -> None; its "
    "SignatureInvalid is re-raised as CheckFailed(where, 'bundle.certificate', problem), which names the bundle",
    "uc_attest.evidence.verifier.x_verify_bundle__mutmut_140": "message only: verify_sct's `where` -> None; its "
    "SignatureInvalid is re-raised as CheckFailed(where, 'bundle.sct', problem), which names the bundle",
    "uc_attest.evidence.verifier.x_verify_bundle__mutmut_193": "message only: `where` -> None for algorithms_of "
    "over the signer key and the entries' keyDetails, which every entry already passed in _body_matches (only an "
    "UnsupportedBundle text for a key outside the registry remains)",
    "uc_attest.evidence.verifier.x_verify_bundle__mutmut_198": "an assert made weaker: a DSSE bundle's content always "
    "has both its payload type and payload",
    "uc_attest.evidence.verifier.x_verify_bundle__mutmut_205": "message only: `what` names the bundle in the "
    "UnsupportedBundle text for a key outside the registry (the refusal stands)",
    "uc_attest.evidence.verifier.x_verify_bundle__mutmut_287": "message only: `what` names the bundle in the "
    "UnsupportedBundle text for a key outside the registry (the refusal stands)",
    "uc_attest.evidence.verifier.x__logs__mutmut_48": 'float("inf") -> float("INF"): the same value',
    "uc_attest.manifest.x_diff_tensors__mutmut_13": "Finding(..., None) -> the argument left out: None is "
    "Finding.actual's default",
    "uc_attest.core.merkle.x_inclusion_proof__mutmut_5": "message only: ProofError(None) is still the refusal",
    "uc_attest.evidence.verifier.x_verify_entry__mutmut_131": "message only: `where` -> None in the SET check "
    "names the bundle in an UnsupportedBundle for a log key outside the registry (the refusal stands)",
    "uc_attest.evidence.verifier.x_verify_entry__mutmut_49": "integratedTime absent -> 1 instead of 0: differs only "
    "for a SET over time 0 under a log key valid since exactly 1970-01-01T00:00:00Z; otherwise both refuse",
    "uc_attest.evidence.verifier.x_verify_entry__mutmut_66": 'an inclusionPromise without signedEntryTimestamp: '
    'b64decode("XXXX") instead of b"": neither verifies as a SET, the same refusal',
    "uc_attest.evidence.verifier.x_verify_entry__mutmut_67": 'set_sig b"XXXX" without an inclusionPromise: only '
    "read when there is a promise",
    "uc_attest.evidence.verifier.x_signer_matches__mutmut_14": "unreachable: a signer with neither identity nor "
    "identity_regex cannot be built (the policy model requires exactly one; every SignerSpec made in code has an "
    "identity), so the `or` fallback pattern is never used",
}

_BODY = "uc_attest.evidence.verifier.x__body_matches__mutmut_"
_ABSENT = ("a body field's default for when it is absent made None: the lookup then raises, and verify_entry refuses "
           "the entry as malformed instead of as not the bundle's (refused either way)")
_JUNK = 'a body field\'s default "" made "XXXX": neither decodes to the bundle\'s signature, key or digest (the same refusal)'
_NO_SIGNER = "unreachable: a bundle always has a key or a certificate, so `signer` is never None here"
EQUIVALENT.update({_BODY + str(n): _ABSENT for n in (15, 17, 22, 24, 38, 40, 42, 44, 53, 55, 57, 59, 81, 83, 89, 91,
                                                       95, 97, 102, 104, 111, 113, 124, 126, 144, 146, 189, 191, 235,
                                                       237, 285, 287, 292, 294, 310, 312)})  # fmt: skip
EQUIVALENT.update({_BODY + str(n): _JUNK for n in (27, 50, 107, 133, 153, 194, 263, 278, 344, 362)})
EQUIVALENT.update({_BODY + str(n): _NO_SIGNER for n in (161, 170, 200, 203, 204)})
EQUIVALENT.update({
    _BODY + "1": 'the default `where` ("bundle"): verify_entry, the one caller, always passes it',
    _BODY + "2": 'the default `where` ("bundle"): verify_entry, the one caller, always passes it',
    _BODY + "363": "message only: the AssertionError of an unreachable line (kinds are checked first)",
    _BODY + "195": "an assert made weaker: a DSSE bundle's content always has both its payload type and payload",
    _BODY + "209": "assert got[1] (bytes, never None) instead of got[0]: got[0] is already known to be one of `signs`",
    _BODY + "64": "`is_dsse or digest is None` -> `and`: a message-signature bundle without a digest then fails "
    "comparing it (TypeError, refused as malformed by verify_entry); refused either way",
})

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 36: "timeout", -24: "timeout",
          24: "timeout", 152: "timeout", 255: "timeout", None: "not checked"}  # fmt: skip


#: The tests written against surviving mutants: ``prepare --before`` leaves them empty (the score before them).
ATTACK_TESTS = ["tests/unit/test_verdict_attacks.py", "tests/unit/test_merkle_attacks.py",
                "tests/unit/test_evidence_attacks.py", "tests/unit/test_manifest_attacks.py"]  # fmt: skip


def prepare(before: bool = False) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src, dst = REPO / name, WORK / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, dst)
    for name in ATTACK_TESTS if before else ():
        (WORK / name).write_text('"""Left empty: the score before the attack tests."""\n')
    link = WORK / "shared"  # tests/conftest.py: ../shared beside the checkout; the mutants' checkout is WORK/mutants
    if not link.is_symlink() and (REPO.parent / "shared").exists():
        link.symlink_to(REPO.parent / "shared")


def _patch_mutmut() -> None:
    """Leave out message text and explanation arguments (see the module docstring)."""
    import libcst as cst
    from mutmut.mutation import mutators as m

    def operator_string(node: cst.BaseString):  # type: ignore[no-untyped-def]
        if isinstance(node, cst.SimpleString) and re.search(r"\s", node.value):
            return
        yield from m.operator_string(node)

    def operator_arg_removal(node: cst.Call):  # type: ignore[no-untyped-def]
        explain = {"hint", "expected", "actual"}
        for mutant in m.operator_arg_removal(node):
            kept = {a.keyword.value for a in mutant.args if a.keyword}
            dropped = {a.keyword.value for a in node.args if a.keyword} - kept
            replaced = {
                a.keyword.value
                for a, b in zip(node.args, mutant.args, strict=False)
                if a.keyword and len(node.args) == len(mutant.args) and not a.value.deep_equals(b.value)
            }
            if (dropped | replaced) and (dropped | replaced) <= explain:
                continue
            yield mutant

    ops = m.mutation_operators
    for i, (kind, op) in enumerate(ops):
        if op is m.operator_string:
            ops[i] = (kind, operator_string)
        elif op is m.operator_arg_removal:
            ops[i] = (kind, operator_arg_removal)


def default_globs() -> list[str]:
    return [f"{mod}.{fn}__mutmut_*" for mod, fns in SCOPE.items() for fn in fns]


def run(globs: list[str], jobs: int) -> None:
    # property tests with fewer examples than the default suite's 200: a mutant they kill here, the suite kills
    os.environ.setdefault("UC_FUZZ_EXAMPLES", "25")
    os.chdir(WORK)
    sys.path.insert(0, str(WORK))
    _patch_mutmut()
    from mutmut.__main__ import cli

    cli(["run", "--max-children", str(jobs), *(globs or default_globs())], standalone_mode=False)


def rerun(jobs: int) -> None:
    """Run again the in-scope mutants that survived, had no test or were not run (EQUIVALENT left out); keep the
    verdicts of all others (mutmut would reset them on a changed test selection)."""
    names = sorted(n for n, st in results().items() if st in ("survived", "no tests", "not checked", "suspicious")
                   and n not in EQUIVALENT)  # fmt: skip
    metas = sorted((WORK / "mutants").rglob("*.py.meta"))
    before = {m: json.loads(m.read_text())["exit_code_by_key"] for m in metas}
    print(f"re-running {len(names)} mutants")
    try:
        if names:
            run(names, jobs)
    finally:  # whatever happened, the verdicts of the mutants not re-run are put back
        again, restored = set(names), 0
        for meta, old in before.items():
            doc = json.loads(meta.read_text())
            codes = doc["exit_code_by_key"]
            for key, code in old.items():
                if key not in again and code is not None and codes.get(key) is None:
                    codes[key], restored = code, restored + 1
            meta.write_text(json.dumps(doc, indent=4))
        print(f"kept {restored} verdicts of mutants not re-run")


def _in_scope(name: str) -> str | None:
    for mod, fns in SCOPE.items():
        if name.startswith(mod + ".") and any(fnmatch.fnmatchcase(name, f"{mod}.{fn}__mutmut_*") for fn in fns):
            return mod
    return None


def results() -> dict[str, str]:
    out: dict[str, str] = {}
    for meta in sorted((WORK / "mutants").rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if _in_scope(name):
                out[name] = STATUS.get(code, "suspicious")
    return out


def score() -> int:
    res = results()
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    survivors = []
    for name, status in res.items():
        mod = _in_scope(name)
        assert mod is not None
        if name in EQUIVALENT:
            status = "equivalent"
        rows[mod][status] += 1
        if status not in ("killed", "equivalent", "timeout"):
            survivors.append((name, status))
    print(f"{'module':34} {'killed':>7} {'total':>6} {'equiv':>6} {'surviving':>9} {'score':>7}")
    tk = tn = 0
    for mod, c in sorted(rows.items()):
        total = sum(c.values())
        killed = c["killed"] + c["timeout"]
        non_eq = total - c["equivalent"]
        tk, tn = tk + killed, tn + non_eq
        pct = 100.0 * killed / non_eq if non_eq else 100.0
        print(f"{mod:34} {killed:7} {total:6} {c['equivalent']:6} {non_eq - killed:9} {pct:6.1f}%")
    print(f"{'all':34} {tk:7} {'':6} {'':6} {tn - tk:9} {100.0 * tk / max(tn, 1):6.1f}%")
    for name, status in sorted(survivors):
        print(f"  {status:11} {name}")
    return 0


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "score"
    if cmd == "prepare":
        prepare(before="--before" in argv)
    elif cmd == "run":
        run(argv[1:], int(os.environ.get("MUTATE_JOBS", "2")))
    elif cmd == "rerun":
        rerun(int(os.environ.get("MUTATE_JOBS", "2")))
    elif cmd == "score":
        return score()
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
