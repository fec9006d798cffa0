"""Calibration inputs are opened once and checked on the open descriptor (issue 28, low finding).

The calibration text used to be checked with ``stat`` (a regular file, at most 64 MiB) and then opened by
path: a FIFO swapped in between made the open wait for a writer forever. Now the path is opened without
blocking and the descriptor is checked, so whatever sits at the path when it is opened is what is checked.
Each case runs with a deadline and must end in the project's InvalidInput, never a hang. The moments file
(``--calibration``) is opened by the safetensors reader, whose blocking open a FIFO or a device at the path
hung; it is now refused first.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import uc_attest as uc
from uc_attest.calibration import corpus
from uc_attest.calibration.file import Calibration
from uc_attest.errors import InvalidInput
from uc_attest.quant.scheme import DEFAULT_SCHEME

DEADLINE_S = 10.0
pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def within_deadline(fn: Callable[[], Any], unblock: Path | None = None) -> BaseException | Any:
    """``fn()`` in a thread: its result or exception. Fails the test if it is still running after DEADLINE_S
    (then opens ``unblock``, a FIFO, for writing, so the stuck reader sees an end of file and the thread ends)."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:  # noqa: BLE001 - handed back to the test, which checks its type
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(DEADLINE_S)
    if t.is_alive():
        if unblock is not None:
            with contextlib.suppress(OSError):
                os.close(os.open(unblock, os.O_WRONLY | os.O_NONBLOCK))
            t.join(DEADLINE_S)
        pytest.fail(f"still blocked after {DEADLINE_S} s")
    return out[0]


@pytest.fixture
def text(tmp_path: Path) -> Path:
    p = tmp_path / "calib.txt"
    p.write_text("one line of calibration text\nanother line\n")
    return p


def test_a_fifo_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    got = within_deadline(lambda: corpus.read_text_file(fifo), unblock=fifo)
    assert isinstance(got, InvalidInput) and "regular file" in got.message and str(fifo) in got.message


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null", "/dev/tty", "."])
def test_a_symlink_to_a_device_or_a_directory_is_refused(tmp_path: Path, target: str) -> None:
    if not Path(target).exists():
        pytest.skip(f"no {target}")
    link = tmp_path / "link.txt"
    link.symlink_to(Path(target).resolve() if target == "." else target)
    got = within_deadline(lambda: corpus.read_text_file(link))
    assert isinstance(got, InvalidInput), got
    assert str(link) in got.message and any(w in got.message for w in ("regular file", "cannot open", "cannot read"))


def test_a_symlink_to_a_regular_file_is_read(tmp_path: Path, text: Path) -> None:
    """A dataset linked into place (a Hugging Face cache is symlinks) stays readable."""
    link = tmp_path / "link.txt"
    link.symlink_to(text)
    assert corpus.read_text_file(link).lines == ["one line of calibration text", "another line"]


@contextlib.contextmanager
def swapped_to_a_fifo_at_first_look(path: Path) -> Iterator[list[str]]:
    """Replace ``path`` by a FIFO the first time the code looks at it (stat, lstat, os.open): the window between
    a check and an open. Yields the names of the calls that looked."""
    looked: list[str] = []
    real_stat, real_lstat, real_open, real_path_stat = os.stat, os.lstat, os.open, pathlib.Path.stat

    def swap(name: str, p: Any) -> None:
        if os.fspath(p) == os.fspath(path):
            looked.append(name)
            if len(looked) == 1:
                os.unlink(path)
                os.mkfifo(path)

    def fake_path_stat(self: pathlib.Path, *a: Any, **kw: Any) -> os.stat_result:
        result = real_path_stat(self, *a, **kw)  # the check sees the regular file ...
        swap("Path.stat", self)  # ... and the path then names a FIFO
        return result

    def fake_stat(p: Any, *a: Any, **kw: Any) -> os.stat_result:
        result = real_stat(p, *a, **kw)
        swap("os.stat", p)
        return result

    def fake_lstat(p: Any, *a: Any, **kw: Any) -> os.stat_result:
        result = real_lstat(p, *a, **kw)
        swap("os.lstat", p)
        return result

    def fake_open(p: Any, *a: Any, **kw: Any) -> int:
        swap("os.open", p)  # swapped just before the open itself
        return real_open(p, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pathlib.Path, "stat", fake_path_stat)
        mp.setattr(os, "stat", fake_stat)
        mp.setattr(os, "lstat", fake_lstat)
        mp.setattr(os, "open", fake_open)
        yield looked


def test_a_fifo_swapped_in_after_the_check_is_refused_not_waited_on(text: Path) -> None:
    with swapped_to_a_fifo_at_first_look(text) as looked:
        got = within_deadline(lambda: corpus.read_text_file(text), unblock=text)
    assert looked, "the path was never looked at"
    assert isinstance(got, InvalidInput) and "regular file" in got.message, got


def test_a_file_larger_than_its_size_said_is_cut_at_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At most limit + 1 bytes are read, whatever size the file had when it was checked (it may grow)."""
    p = tmp_path / "big.txt"
    p.write_bytes(b"x\n" * 600)
    monkeypatch.setattr(corpus, "MAX_TEXT_BYTES", 1000)
    real_fstat = os.fstat

    def small_fstat(fd: int) -> os.stat_result:  # the file was small when it was checked
        st = real_fstat(fd)
        return os.stat_result(
            (
                st.st_mode,
                st.st_ino,
                st.st_dev,
                st.st_nlink,
                st.st_uid,
                st.st_gid,
                10,
                int(st.st_atime),
                int(st.st_mtime),
                int(st.st_ctime),
            )
        )

    monkeypatch.setattr(os, "fstat", small_fstat)
    got = within_deadline(lambda: corpus.read_text_file(p))
    assert isinstance(got, InvalidInput) and "larger than" in got.message


def test_a_missing_file_is_invalid_input(tmp_path: Path) -> None:
    got = within_deadline(lambda: corpus.read_text_file(tmp_path / "absent.txt"))
    assert isinstance(got, InvalidInput) and "cannot read" in got.message


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "directory"])
def test_a_calibration_moments_path_that_is_no_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "moments.safetensors"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(kind)
    got = within_deadline(lambda: Calibration(path, DEFAULT_SCHEME), unblock=path if kind == "fifo" else None)
    assert isinstance(got, InvalidInput) and "regular file" in got.message and str(path) in got.message, got


def test_an_oversized_calibration_text_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from uc_attest.calibration.corpus import MAX_TEXT_BYTES, read_text_file

    big = tmp_path / "big.txt"
    with open(big, "wb") as fh:  # sparse: no disk used
        fh.truncate(MAX_TEXT_BYTES + 1)
    with pytest.raises(uc.InvalidInput, match="larger than"):
        read_text_file(big)
