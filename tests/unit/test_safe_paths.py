"""One rule for every file name read from an untrusted document (a manifest, a statement, an index, a layer
title): ``core.fsutil.inside`` joins it only when it stays inside its directory, and ``open_regular`` opens
only a regular file (no FIFO to hang on, no device, no final symlink), checked on the opened descriptor."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uc_attest.core.fsutil import inside, is_safe_relative, open_regular
from uc_attest.errors import InvalidInput
from uc_attest.pack.facts import PackFacts

PKG = Path(__file__).resolve().parents[2] / "uc_attest"
EXAMPLES = int(os.environ.get("UC_FUZZ_EXAMPLES", "200"))

HOSTILE = ["/etc/hostname", "../../etc/passwd", "a/../../x", "..", ".", "", "a//b", "a\\b", "x\x00y", "./a", "a/"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_name_that_leaves_the_directory_is_refused(tmp_path: Path, name: str) -> None:
    assert not is_safe_relative(name)
    with pytest.raises(InvalidInput, match="unsafe file name"):
        inside(tmp_path, name)


def test_a_symlink_out_of_the_directory_is_refused_after_resolving(tmp_path: Path) -> None:
    base = tmp_path / "pack"
    (base / "sub").mkdir(parents=True)
    (base / "out").symlink_to("/etc")  # a directory link that leaves the pack
    (base / "sub" / "in").symlink_to(base / "sub")  # one that stays inside
    with pytest.raises(InvalidInput, match="leaves"):
        inside(base, "out/hostname")
    assert inside(base, "sub/in/x") == Path(os.path.realpath(base)) / "sub/in/x"


def test_open_regular_refuses_fifos_devices_directories_and_final_symlinks(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would block forever
    (tmp_path / "dev").symlink_to("/dev/zero")
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    for name, why in (("fifo", "FIFO"), ("dir", "directory"), ("link", "symbolic link"), ("dev", "symbolic link")):
        with pytest.raises(InvalidInput, match=why):
            open_regular(tmp_path / name)
    with pytest.raises(InvalidInput, match="FIFO, socket or device"):
        open_regular(tmp_path / "dev", follow=True)
    with open_regular(tmp_path / "link", follow=True) as f:
        assert f.read() == b"x"
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "file" / "below")


def test_pack_facts_never_hash_or_read_what_a_document_names_outside_the_pack(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "host.json").symlink_to("/etc/hostname")
    facts = PackFacts(tmp_path)
    for name in ("/etc/hostname", "../../etc/passwd", "/proc/self/pagemap"):
        with pytest.raises(InvalidInput, match="unsafe file name"):
            facts.file_digest(name)
        with pytest.raises(InvalidInput, match="unsafe file name"):
            facts.read_file(name)
    assert facts.file_digest("fifo.json") is None and facts.file_digest("host.json") is None  # no hang, no oracle
    with pytest.raises(InvalidInput, match="missing"):
        facts.read_file("fifo.json")
    assert facts.read_file("config.json") == b"{}"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.sampled_from("ab./\\\x00~-"), max_size=12))
def test_inside_never_returns_a_path_outside(tmp_path: Path, name: str) -> None:
    try:
        p = inside(tmp_path, name)
    except InvalidInput:
        return
    root = Path(os.path.realpath(tmp_path))
    assert root in Path(os.path.realpath(p)).parents


# Joins of a directory with a name held in a variable. Each one here is either made safe by `inside` or is a
# name the code chose itself (a directory listing, a constant); any other such join of a document's string is
# the class of bug this test exists for: route it through `core.fsutil.inside`.
_NAMES = {"rel", "shard", "name", "n", "s", "file", "subject", "title", "path", "p", "f", "key"}
_DIRS = re.compile(r"(dir|root|tmp|base|here|out|src|source|folder|pack)", re.IGNORECASE)
ALLOWED = {
    ("core/fsutil.py", "root / rel"),  # inside() itself
    ("core/fsutil.py", "Path(base) / rel"),  # open_inside's error messages (it opens component by component)
    ("verify/rebuild.py", "source_dir / rel"),  # is_safe_relative checked first; symlinks are the source's own
    ("oci/artifact.py", "pack_dir / rel"),  # push: names from a directory listing of the pack
    ("pack/export.py", "tmp / shard"),  # shard names from the pack's own directory listing
    ("pack/writer.py", "tmp / rel"),  # the source's file names, from its directory listing
    ("pack/writer.py", "src.root / rel"),
    ("pack/writer.py", "tmp / shard"),
    ("pack/writer.py", "written.directory / shard"),  # the source's shard names (bare file names, source.py)
    ("pack/facts.py", "self.dir / rel"),
    (
        "pack/check.py",
        "facts.dir / rel",
    ),  # _view: names from the pack's own directory listing (present_files)  # read_file's error message; the file is opened through path_of
    ("source.py", "self.root / s"),  # index shard names: checked to be bare .safetensors file names first
    ("source.py", "self.root / shard"),
    ("instance/state.py", "root / name"),  # the instance's own constant file names
    ("instance/state.py", "root / n"),
    ("pack/writer.py", "tmp / kept.record.file"),  # the name the writer gives the signature it keeps
    ("claims/oms.py", "here / name"),  # a directory walk (os.walk)
    ("core/fsutil.py", "Path(dirpath) / name"),  # a directory walk (os.walk)
    ("cli/render.py", "8 * packed / n"),  # arithmetic: bits per weight
}


def _joins(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            right = node.right.id if isinstance(node.right, ast.Name) else getattr(node.right, "attr", None)
            if right in _NAMES and _DIRS.search(ast.unparse(node.left)):
                out.add(ast.unparse(node))
    return out


def test_every_join_of_a_directory_and_a_variable_name_is_known() -> None:
    found = {
        (path.relative_to(PKG).as_posix(), join)
        for path in sorted(PKG.rglob("*.py"))
        for join in _joins(ast.parse(path.read_text()))
    }
    assert found - ALLOWED == set(), "route these through core.fsutil.inside (or add them here with a reason)"
    assert ALLOWED - found == set(), "an allowed join is gone: remove it from ALLOWED"


def test_open_inside_refuses_a_directory_swapped_for_a_link_on_the_way(tmp_path: Path) -> None:
    """inside() resolves the name; open_inside() then walks it from a descriptor with O_NOFOLLOW at every
    step, so a directory replaced by a link between the two never leads outside (review of issue 28)."""
    from uc_attest.core.fsutil import open_inside

    base = tmp_path / "pack"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "f.json").write_text("{}")
    with open_inside(base, "sub/f.json") as f:
        assert f.read() == b"{}"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.json").write_text("secret")
    (base / "sub" / "f.json").unlink()
    (base / "sub").rmdir()
    (base / "sub").symlink_to(outside)  # swapped after any check
    with pytest.raises(InvalidInput, match="symbolic link"):
        open_inside(base, "sub/f.json")
    with pytest.raises(FileNotFoundError):
        open_inside(base, "none/f.json")
    facts = PackFacts(base)
    assert facts.file_digest("sub/f.json") is None


def test_a_bundle_that_is_a_fifo_or_huge_is_refused_without_waiting(tmp_path: Path) -> None:
    """A kept source signature (or any bundle) read through read_bundle: never a FIFO to hang on (uc-attest audit
    blocked forever on one), and bounded in size."""
    from uc_attest.evidence.bundle import BUNDLE_LIMIT, read_bundle

    os.mkfifo(tmp_path / "sig")
    with pytest.raises(InvalidInput, match="FIFO"):
        read_bundle(tmp_path / "sig")
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(BUNDLE_LIMIT + 1)
    with pytest.raises(InvalidInput, match="larger than"):
        read_bundle(big)


def test_a_pack_shard_that_is_a_symlink_is_never_opened(tmp_path: Path) -> None:
    from uc_attest.pack.reader import Pack

    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(b"\x00" * 16)
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "model.safetensors").symlink_to(outside)
    with Pack(tmp_path / "pack") as pack:
        assert "symbolic link" in pack.unreadable["model.safetensors"] and not pack.files


def _fifo_and_huge(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A FIFO (reading it would wait forever) and a sparse file one byte over the small-file limit."""
    from uc_attest.core.fsutil import SMALL_FILE_LIMIT

    fifo, huge = tmp_path / f"{name}.fifo", tmp_path / f"{name}.huge"
    os.mkfifo(fifo)
    with open(huge, "wb") as f:
        f.truncate(SMALL_FILE_LIMIT + 1)
    return fifo, huge


@pytest.mark.parametrize("what", ["policy", "public key", "certificate chain", "verify-bundle key", "trust config"])
def test_a_policy_key_or_certificate_chain_that_is_a_fifo_device_or_huge_is_refused_without_waiting(
    tmp_path: Path, what: str
) -> None:
    """``verify --policy``, ``--key`` and ``--cert-chain`` (and ``verify-bundle --key``) read a small file the user
    names: a FIFO hung forever, /dev/zero read until memory ran out. Now: InvalidInput (exit 3) naming it. The trust
    config (``--trust-config``, an instance's) was read whole, unbounded (outside review, issue 34)."""
    from uc_attest.evidence.oms import load_certificates, load_key
    from uc_attest.policy.model import read_policy
    from uc_attest.signing.trust import Trust

    def read(path: Path) -> Any:
        if what == "verify-bundle key":
            return _verify_bundle_with_key(tmp_path, path)
        if what == "trust config":
            return Trust(str(path)).document
        return {"policy": read_policy, "public key": load_key, "certificate chain": load_certificates}[what](path)

    fifo, huge = _fifo_and_huge(tmp_path, what.replace(" ", "-"))
    name = "public key" if what == "verify-bundle key" else what
    for path, why in ((fifo, "not a regular file .a FIFO, socket or device."), (Path("/dev/zero"), "not a regular file"),
                      (huge, "larger than 4 MiB")):  # fmt: skip
        with pytest.raises(InvalidInput, match=why) as exc:
            read(path)
        assert exc.value.exit_code == 3 and str(path) in exc.value.message and name in exc.value.message
    (tmp_path / "link").symlink_to(fifo)  # a link is followed, and what it names checked
    with pytest.raises(InvalidInput, match="FIFO"):
        read(tmp_path / "link")


def test_a_trust_config_that_is_not_a_regular_file_or_nests_deeply_is_refused_naming_it(tmp_path: Path) -> None:
    """``--trust-config FIFO`` said "not found" (and a FIFO swapped in after that check hung); a document nested
    deeper than the JSON parser recurses was an uncaught RecursionError (exit 70). Both are exit 3 naming the file."""
    from uc_attest.signing.trust import Trust, select_trust

    os.mkfifo(tmp_path / "trust.fifo")
    for path in (tmp_path / "trust.fifo", Path("/dev/zero")):
        with pytest.raises(InvalidInput, match="not a regular file") as exc:
            select_trust(path, None)
        assert exc.value.exit_code == 3 and str(path) in exc.value.message and "trust config" in exc.value.message
    with pytest.raises(InvalidInput, match="trust config not found"):
        select_trust(tmp_path / "none.json", None)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InvalidInput, match="not a sigstore ClientTrustConfig") as exc:
        _ = Trust.file(deep).document
    assert exc.value.exit_code == 3 and str(deep) in exc.value.message and "\n" not in exc.value.message


def _verify_bundle_with_key(tmp_path: Path, key: Path) -> Any:
    import hashlib

    import uc_attest as uc
    from tests.conftest import SHARED

    assets = SHARED / "vectors" / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
    if not assets.exists():
        pytest.skip(f"{assets} not found: ../shared is not beside this clone")
    digest = "sha256:" + hashlib.sha256((assets / "a.txt").read_bytes()).hexdigest()
    return uc.verify_any_bundle(assets / "managed-key-happy-path" / "bundle.sigstore.json", digest, uc.ManagedKey(key))


def test_a_small_file_at_the_limit_is_read(tmp_path: Path) -> None:
    from uc_attest.core.fsutil import SMALL_FILE_LIMIT, read_small

    (tmp_path / "at").write_bytes(b"k" * SMALL_FILE_LIMIT)
    assert len(read_small(tmp_path / "at", "policy")) == SMALL_FILE_LIMIT
    with pytest.raises(FileNotFoundError):
        read_small(tmp_path / "none", "policy")
