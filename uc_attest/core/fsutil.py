"""Atomic file and directory output: write to a temporary sibling, fsync, rename."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import InvalidInput, OperationalError, UsageError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output_dir(target: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``target`` only if the block succeeds.

    On any exception the temporary directory is removed and ``target`` is untouched.
    """
    target = target.absolute()
    if target.is_symlink():  # dangling or not: the directory would be made elsewhere, or a link replaced
        dest = target.readlink()
        raise UsageError(
            f"{target}: is a symbolic link (to {dest}); give an output path that is not a link", path=str(target)
        )
    if target.exists() and not overwrite:
        raise UsageError(
            "{path}: output already exists (use {0:=True} to replace it)", option="force", path=str(target)
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    except OSError as exc:
        raise OperationalError(f"{target.parent}: cannot create output directory: {exc}") from exc
    try:
        tmp.chmod(0o777 & ~_umask())
        yield tmp
        for dirpath, _dirs, files in os.walk(tmp):
            for name in files:
                fd = os.open(Path(dirpath) / name, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_safe_relative(rel: str) -> bool:
    """A relative POSIX path that stays inside the directory it is joined to (no '..', not absolute, no NUL)."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel or rel.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def inside(base: Path, rel: str) -> Path:
    """``base/rel`` for a file name read from an untrusted document (a manifest, a statement, an index): the one
    rule for every such path. ``rel`` must be a canonical relative POSIX path, and the path with every symlink
    resolved must stay inside ``base`` (itself resolved); InvalidInput naming it otherwise. Open the result
    with :func:`open_regular`, which refuses a final symlink, a FIFO or a device."""
    if not is_safe_relative(rel):
        raise InvalidInput(f"{rel!r}: unsafe file name (absolute, '..', empty or odd components)", path=str(rel))
    root = Path(os.path.realpath(base))
    path = Path(os.path.realpath(root / rel))
    if path != root and root not in path.parents:
        raise InvalidInput(f"{rel!r}: leaves {base} through a symbolic link", path=str(rel))
    return root / rel


def open_inside(base: Path, rel: str) -> BinaryIO:
    """Open the regular file ``base/rel`` (``rel`` a name from a document) walking its components from a
    descriptor of ``base``, refusing a symbolic link at every step: nothing swapped in after a check can lead
    outside. FileNotFoundError when missing; InvalidInput naming it when unsafe or not a regular file."""
    inside(base, rel)  # the name itself: relative, canonical
    dfd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parts = rel.split("/")
        for part in parts[:-1]:
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                    raise FileNotFoundError(errno.ENOENT, "no such file", str(Path(base) / rel)) from None
                raise InvalidInput(f"{Path(base) / rel}: a directory on the way is a symbolic link", path=rel) from None
            os.close(dfd)
            dfd = nxt
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
        try:
            fd = os.open(parts[-1], flags, dir_fd=dfd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidInput(f"{Path(base) / rel}: not a regular file (a symbolic link)", path=rel) from None
            if exc.errno == errno.ENOTDIR:
                raise FileNotFoundError(errno.ENOENT, "no such file", str(Path(base) / rel)) from None
            raise OperationalError(f"{Path(base) / rel}: cannot open: {exc.strerror}", path=rel) from None
    finally:
        os.close(dfd)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InvalidInput(f"{Path(base) / rel}: not a regular file", path=rel)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def open_regular_fd(path: Path, *, follow: bool = False) -> int:
    """A descriptor open for reading on ``path``, only if it is a regular file, checked on the opened
    descriptor (a file swapped after a check is still checked): never blocking on a FIFO, never a device, and
    without ``follow`` never a final symlink. FileNotFoundError when it does not exist; InvalidInput naming it
    when it is not a regular file."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:  # a file where the path names a directory: no such file
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path)) from None
        if exc.errno == errno.ELOOP:
            raise InvalidInput(f"{path}: not a regular file (a symbolic link)", path=str(path)) from None
        raise OperationalError(f"{path}: cannot open: {exc.strerror}", path=str(path)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, socket or device"
        raise InvalidInput(f"{path}: not a regular file ({kind})", path=str(path))
    os.set_blocking(fd, True)
    return fd


def open_regular(path: Path, *, follow: bool = False) -> BinaryIO:
    """:func:`open_regular_fd` as a binary file object."""
    return os.fdopen(open_regular_fd(path, follow=follow), "rb")


#: The most a small file a user names (a policy, a PEM key or certificate chain) may hold.
SMALL_FILE_LIMIT = 4 << 20


def read_small(path: Path, what: str, limit: int = SMALL_FILE_LIMIT) -> bytes:
    """The bytes of the small file ``path`` a user named (``what`` it is, for messages): a regular file (a
    symbolic link followed) of at most ``limit`` bytes, read once, never waiting on a FIFO nor reading a device
    forever. FileNotFoundError when it does not exist; InvalidInput naming it when it is not a regular file, is
    larger, or cannot be opened or read."""
    try:
        with open_regular(Path(path), follow=True) as f:
            data = f.read(limit + 1)
    except (InvalidInput, OperationalError) as exc:  # not a regular file; cannot be opened (permissions)
        raise InvalidInput(f"{exc.message} (the {what})", path=str(path)) from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the {what}: {exc.strerror}", path=str(path)) from None
    if len(data) > limit:
        raise InvalidInput(f"{path}: {what} larger than {limit >> 20} MiB", path=str(path))
    return data
