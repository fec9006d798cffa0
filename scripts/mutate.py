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
    python scripts/mutate.py score             # killed / total / equivalent / surviving per module
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
}

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 36: "timeout", -24: "timeout",
          24: "timeout", 152: "timeout", 255: "timeout", None: "not checked"}  # fmt: skip


#: The tests written against surviving mutants: ``prepare --before`` leaves them empty (the score before them).
ATTACK_TESTS = ["tests/unit/test_verdict_attacks.py", "tests/unit/test_merkle_attacks.py",
                "tests/unit/test_evidence_attacks.py"]  # fmt: skip


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
    elif cmd == "score":
        return score()
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
