"""The CLI's help as a newcomer reads it (issue 32): a version, placeholders that read as placeholders, no
Python type names in place of metavars, and every command's help renders."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version

import pytest

UC = [sys.executable, "-c", "import sys; sys.argv[0] = 'uc-attest'; from uc_attest.cli import main; main()"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*UC, *args], capture_output=True, text=True, timeout=120, check=False)


def _commands() -> list[list[str]]:
    out = _run("--help").stdout
    names = re.findall(r"^  ([a-z][a-z-]+)\s", out.split("Commands:", 1)[1], flags=re.MULTILINE)
    groups = {"log", "policy", "instance", "verify-model"}
    cmds = [[n] for n in names if n not in groups]
    for g in sorted(groups & set(names)):
        sub = _run(g, "--help").stdout
        cmds += [[g, n] for n in re.findall(r"^  ([a-z][a-z-]+)\s", sub.split("Commands:", 1)[1], flags=re.MULTILINE)]
    return cmds


def test_version_prints_the_installed_version() -> None:
    r = _run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"uc-attest {version('uc-attest')}"


def test_arguments_are_placeholders_in_usage_lines() -> None:
    usage = _run("verify", "--help").stdout.splitlines()[0]
    assert usage == "Usage: uc-attest verify [OPTIONS] {TARGET}"
    assert _run("pack", "--help").stdout.splitlines()[0] == "Usage: uc-attest pack [OPTIONS] {SOURCE}"


@pytest.mark.parametrize("cmd", _commands(), ids=" ".join)
def test_no_help_shows_python_type_names_or_a_lowercase_argument(cmd: list[str]) -> None:
    r = _run(*cmd, "--help")
    assert r.returncode == 0, r.stderr
    assert not re.search(r"<(bool|list\[[^>]*\]|int \| None|str \| None)>", r.stdout), r.stdout
    usage = r.stdout.splitlines()[0]
    assert not re.search(r"\{[a-z_]+\}", usage), usage
