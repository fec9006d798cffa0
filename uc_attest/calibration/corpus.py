"""Calibration text: the docstrings that ship with Python (the default for encoders), or a user's file."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.fsutil import open_regular_fd
from ..errors import InvalidInput, OperationalError

#: Modules whose docstrings are the project's development (evaluation) set (benchmarks/fidelity.py); their
#: sentences are kept out of the default calibration text.
EVALUATION_MODULES = (
    "argparse",
    "asyncio",
    "base64",
    "bisect",
    "calendar",
    "collections",
    "concurrent.futures",
    "contextlib",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email",
    "enum",
    "fractions",
    "functools",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "http.client",
    "inspect",
    "ipaddress",
    "itertools",
    "json",
    "logging",
    "math",
    "os",
    "pathlib",
    "pickle",
    "queue",
    "random",
    "re",
    "shlex",
    "shutil",
    "socket",
    "sqlite3",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "time",
    "typing",
    "unittest",
    "urllib.parse",
    "uuid",
    "zipfile",
)
EVALUATION_SIZE = 400

#: Modules whose docstrings are the default calibration text (none of the evaluation sentences).
CALIBRATION_MODULES = (
    "array",
    "ast",
    "bz2",
    "cmd",
    "codecs",
    "colorsys",
    "configparser",
    "copy",
    "filecmp",
    "fnmatch",
    "ftplib",
    "getpass",
    "gettext",
    "glob",
    "imaplib",
    "importlib",
    "io",
    "locale",
    "lzma",
    "mailbox",
    "mimetypes",
    "netrc",
    "numbers",
    "operator",
    "optparse",
    "pdb",
    "pkgutil",
    "platform",
    "pprint",
    "secrets",
    "selectors",
    "shelve",
    "signal",
    "smtplib",
    "socketserver",
    "ssl",
    "struct",
    "timeit",
    "trace",
    "traceback",
    "types",
    "warnings",
    "wave",
    "weakref",
    "xml.etree.ElementTree",
    "xmlrpc.client",
    "zlib",
)


def docstrings(
    modules: tuple[str, ...] | list[str], n: int, avoid: frozenset[str] = frozenset(), *, skip_submodules: bool = False
) -> list[str]:
    """First paragraphs (40-300 characters) of the public names' docstrings of ``modules``, deduplicated,
    in a fixed order, at most ``n``. ``skip_submodules``: leave out attributes that are modules — which of
    them exist depends on what the process imported before (``importlib.util``…), so the calibration text
    would differ between the CLI and a script."""
    out: list[str] = []
    seen: set[str] = set(avoid)
    for modname in modules:
        try:
            mod = importlib.import_module(modname)
        except ImportError:  # a Python built without a module (e.g. no _ssl): skip it, the count says so
            continue
        for attr in sorted(dir(mod)):
            if attr.startswith("_"):
                continue
            value = getattr(mod, attr, None)
            if skip_submodules and inspect.ismodule(value):
                continue
            doc = inspect.getdoc(value) or ""
            para = re.sub(r"\s+", " ", doc.split("\n\n")[0]).strip()
            if 40 <= len(para) <= 300 and para not in seen:
                seen.add(para)
                out.append(para)
                if len(out) == n:
                    return out
    return out


def evaluation_sentences() -> list[str]:
    """The development set: the first ``EVALUATION_SIZE`` docstring paragraphs of EVALUATION_MODULES."""
    return docstrings(EVALUATION_MODULES, EVALUATION_SIZE)


def calibration_sentences(n: int = 512) -> list[str]:
    """The default calibration text for encoders: docstrings of CALIBRATION_MODULES, none in the development set."""
    return docstrings(CALIBRATION_MODULES, n, frozenset(evaluation_sentences()), skip_submodules=True)


@dataclass(frozen=True)
class TextFile:
    """A calibration text file: one sample per non-empty line, and what identifies it."""

    path: Path
    lines: list[str]
    sha256: str


MAX_TEXT_BYTES = 64 << 20  # calibration needs thousands of lines, not gigabytes


def read_text_file(path: Path) -> TextFile:
    """Read a user's calibration text; exit 3 (InvalidInput) naming the file when it is missing, empty,
    binary or not UTF-8."""
    path = Path(path)
    try:
        # One open, checked on the descriptor: a FIFO (which would block) or a device (which would never end) is
        # refused whenever it was put at the path; a symlink to a regular file is followed (datasets are linked).
        fd = open_regular_fd(path, follow=True)
    except OperationalError as exc:  # not readable as given (permissions...): the input is unusable
        raise InvalidInput(f"{exc.message} (calibration text)", path=str(path)) from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read calibration text: {exc.strerror or exc}", path=str(path)) from None
    too_large = InvalidInput(f"{path}: calibration text is larger than {MAX_TEXT_BYTES >> 20} MiB", path=str(path))
    try:
        with os.fdopen(fd, "rb") as fh:
            if os.fstat(fh.fileno()).st_size > MAX_TEXT_BYTES:
                raise too_large  # before reading any of it
            raw = fh.read(MAX_TEXT_BYTES + 1)  # at most one byte past the limit, even if the file grew since
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read calibration text: {exc.strerror or exc}", path=str(path)) from None
    if len(raw) > MAX_TEXT_BYTES:
        raise too_large
    if b"\x00" in raw:
        raise InvalidInput(f"{path}: calibration text is binary (NUL bytes), not UTF-8 text", path=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: calibration text is not UTF-8 (byte {exc.start})", path=str(path)) from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise InvalidInput(f"{path}: calibration text is empty (no non-empty line)", path=str(path))
    return TextFile(path, lines, hashlib.sha256(raw).hexdigest())
