"""Facts about one pack directory, each computed at most once per run.

The manifest file is read once (its bytes, digest and parsed form, whose Merkle root is cached), and
every file digest is taken once, however many rules ask for it (verify, attest, audit, the loader).
Nothing here trusts the pack: these are observations, checked against signed claims elsewhere.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from ..core.digest import Digest, sha256_stream
from ..core.fsutil import inside, is_safe_relative, open_inside, open_regular
from ..errors import InvalidInput, MalformedPack, OperationalError
from ..manifest import Manifest
from .layout import MANIFEST_NAME

#: The most a pack file read whole (config, tokenizer, generation config) may hold.
READ_LIMIT = 256 << 20


def read_manifest_bytes(path: Path) -> bytes:
    """A manifest file's bytes (a regular file of at most READ_LIMIT bytes)."""
    try:
        with open_regular(Path(path)) as f:
            data = f.read(READ_LIMIT + 1)
    except FileNotFoundError:
        raise MalformedPack(f"{path}: manifest not found", path=str(path)) from None
    except InvalidInput as exc:
        raise MalformedPack(f"{exc.message} (the manifest)", path=str(path)) from None
    except OSError as exc:
        raise MalformedPack(f"{path}: cannot read manifest: {exc.strerror}", path=str(path)) from None
    if len(data) > READ_LIMIT:
        raise MalformedPack(f"{path}: manifest larger than {READ_LIMIT >> 20} MiB", path=str(path))
    return data


def load_manifest(path: Path) -> Manifest:
    """Read a manifest file (``uc-manifest.json`` of a pack or a separately kept one)."""
    return Manifest.from_json(read_manifest_bytes(path), str(path))


class PackFacts:
    """What is on disk in a pack directory (raises MalformedPack naming the file when asked for what is missing)."""

    def __init__(self, pack_dir: Path) -> None:
        self.dir = Path(pack_dir)
        self.manifest_path = self.dir / MANIFEST_NAME
        self._digests: dict[str, Digest | None] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @cached_property
    def manifest_bytes(self) -> bytes:
        return read_manifest_bytes(self.manifest_path)

    @cached_property
    def manifest_digest(self) -> Digest:
        return Digest.of_bytes(self.manifest_bytes)

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest.from_json(self.manifest_bytes, str(self.manifest_path))

    @property
    def root(self) -> Digest:
        return self.manifest.root

    def path_of(self, rel: str) -> Path:
        """The path of a file a document names (a manifest, a statement), by the one rule for such names
        (``core.fsutil.inside``): MalformedPack naming it when the name itself is unsafe; InvalidInput when a
        symlink on the way leaves the pack."""
        if not is_safe_relative(rel):
            raise MalformedPack(f"{self.dir}: {rel!r}: unsafe file name (absolute, '..' or empty parts)", path=str(rel))
        return inside(self.dir, rel)

    def open(self, rel: str) -> BinaryIO:
        """Open a regular file a document names, no symbolic link on the way (``core.fsutil.open_inside``)."""
        self.path_of(rel)
        return open_inside(self.dir, rel)

    def file_digest(self, rel: str) -> Digest | None:
        """SHA-256 of the file at ``rel`` (None if it is not a regular file inside the pack: missing, a symlink,
        a FIFO or a device), hashed once; MalformedPack for a name that is not a safe relative path."""
        with self._guard:
            if rel in self._digests:
                return self._digests[rel]
            lock = self._locks.setdefault(rel, threading.Lock())
        with lock:
            if rel not in self._digests:
                try:
                    with self.open(rel) as f:
                        self._digests[rel] = sha256_stream(f)
                except MalformedPack:  # an unsafe name: the document naming it is malformed
                    raise
                except (FileNotFoundError, InvalidInput):
                    self._digests[rel] = None
            return self._digests[rel]

    def record(self, rel: str, digest: Digest) -> None:
        """A file digest taken while the file was read for use (a loader hashing what it keeps): rules then
        check that digest instead of hashing the file again. A file seen twice with two digests changed
        while this run read it."""
        with self._guard:
            seen = self._digests.get(rel)
            if seen is not None and seen != digest:
                raise OperationalError(f"{self.dir / rel}: the file changed while it was being read")
            self._digests[rel] = digest

    def read_file(self, rel: str) -> bytes:
        """A small file's bytes (at most READ_LIMIT), hashed and recorded: use these bytes, never re-read it."""
        p = self.dir / rel
        try:
            with self.open(rel) as f:
                data = f.read(READ_LIMIT + 1)
        except MalformedPack:
            raise
        except (FileNotFoundError, InvalidInput):
            raise MalformedPack(f"{p}: missing from the pack (or not a regular file)", path=str(p)) from None
        if len(data) > READ_LIMIT:
            raise MalformedPack(f"{p}: larger than {READ_LIMIT >> 20} MiB, not read into memory", path=str(p))
        self.record(rel, Digest.of_bytes(data))
        return data

    def present_files(self) -> set[str]:
        """Every regular file in the pack (posix paths), hidden ones excluded."""
        return {
            p.relative_to(self.dir).as_posix()
            for p in self.dir.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(self.dir).parts)
        }
