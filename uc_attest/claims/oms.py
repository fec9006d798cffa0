"""OpenSSF Model Signing (OMS) v1.0: the statement, its strict reading, and a model directory as OMS sees it.

An OMS statement (``predicateType`` ``https://model_signing/signature/v1.0``) signs a model directory:
``predicate.resources`` lists every regular file (or byte range, ``shards``) sorted by name with its digest,
``predicate.serialization`` how they were enumerated (method, hash type, symlink policy, ignore paths), and
the one subject's sha256 is SHA-256 over the concatenated resource digests. Reading is strict, as the spec's
JSON schemas are (required fields, enums, hex digests, no unknown keys in the predicate), and hardened where
OMS implementations failed: a resource or ignore path that is absolute, has ``..``, ``.``, empty or
backslashed components, or glob characters is refused naming it; ignore paths come from the signed payload
only. :func:`scan` enumerates a directory by the signed serialization (regular files; a symlink is refused
unless the signature allows symlinks, and then only inside the directory) and :func:`diff` names every
missing, extra and changed file with both digests.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..core.enums import member
from ..errors import Finding, InvalidInput, MalformedBundle
from .statement import STATEMENT_TYPE, Statement

OMS_PREDICATE = "https://model_signing/signature/v1.0"
OMS_PREDICATE_COMPAT = "https://model_signing/Digests/v0.1"  # deprecated: refused with a reason
#: Excluded by every OMS signer, matched as top-level components of the model root.
DEFAULT_IGNORES = (".git", ".gitattributes", ".github", ".gitignore")
#: What uc-attest records as ignored (the defaults, and a ``model.sig`` kept inside a model directory).
PACK_IGNORES = (*DEFAULT_IGNORES, "model.sig")
_HEX = re.compile(r"[0-9a-f]+")
_SHARD = re.compile(r"^(.*):([0-9]+):([0-9]+)$")


class SerializationMethod(StrEnum):
    """How OMS enumerates a model (``predicate.serialization.method``): one digest per file, or per shard."""

    FILES = "files"
    SHARDS = "shards"


class HashType(StrEnum):
    """The digest OMS names each resource by (``predicate.serialization.hash_type``)."""

    SHA256 = "sha256"
    BLAKE2B = "blake2b"
    BLAKE3 = "blake3"  # an OMS algorithm, not in the standard library: read, never computed here


#: hashlib's name of each hash type uc-attest computes.
HASHES = {HashType.SHA256: "sha256", HashType.BLAKE2B: "blake2b"}


@dataclass(frozen=True)
class Serialization:
    method: SerializationMethod
    hash_type: HashType
    allow_symlinks: bool
    ignore_paths: tuple[str, ...] = ()
    shard_size: int | None = None

    def __post_init__(self) -> None:  # the type given as its text ("sha256") is the member
        object.__setattr__(self, "hash_type", HashType(self.hash_type))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method.value,
            "hash_type": self.hash_type.value,
            "allow_symlinks": self.allow_symlinks,
        }
        if self.shard_size is not None:
            out["shard_size"] = self.shard_size
        if self.ignore_paths:
            out["ignore_paths"] = list(self.ignore_paths)
        return out


FILES_SHA256 = Serialization(SerializationMethod.FILES, HashType.SHA256, False, PACK_IGNORES)


@dataclass(frozen=True)
class OmsClaim:
    """An OMS statement, read strictly: the model name, its root digest, resources (name → hex digest)."""

    statement: Statement
    model_name: str
    root: str  # hex: SHA-256 over the concatenated resource digests
    resources: dict[str, str]
    serialization: Serialization

    @property
    def predicate_type(self) -> str:
        return OMS_PREDICATE


def check_name(name: str, what: str) -> None:
    """A canonical relative POSIX path (OMS 6.1.2); InvalidInput naming it otherwise (path traversal)."""
    bad = (
        not name
        or name.startswith("/")
        or name.endswith("/")
        or "\\" in name
        or "\x00" in name
        or any(part in ("", ".", "..") for part in name.split("/"))
    )
    if bad:
        raise InvalidInput(f"{what} {name!r} is not a canonical relative path inside the model (OMS 6.1.2)")


def _need(cond: bool, field: str, why: str) -> None:
    if not cond:
        raise MalformedBundle(f"OMS statement: {field}: {why}")


def _serialization(value: Any) -> Serialization:
    f = "predicate.serialization"
    _need(isinstance(value, dict), f, "must be an object")
    unknown = set(value) - {"method", "hash_type", "allow_symlinks", "ignore_paths", "shard_size"}
    _need(not unknown, f, f"unknown field {min(unknown)!r}" if unknown else "")
    method, hash_type, symlinks = value.get("method"), value.get("hash_type"), value.get("allow_symlinks")
    how, hashed = member(SerializationMethod, method), member(HashType, hash_type)
    _need(how is not None, f"{f}.method", f"{method!r} is not files or shards")
    _need(hashed is not None, f"{f}.hash_type", f"{hash_type!r} is not an OMS algorithm")
    assert how is not None and hashed is not None
    _need(isinstance(symlinks, bool), f"{f}.allow_symlinks", "must be true or false")
    shard = value.get("shard_size")
    if how is SerializationMethod.SHARDS:
        _need(
            isinstance(shard, int) and not isinstance(shard, bool) and shard > 0,
            f"{f}.shard_size",
            "a positive integer is required for shards",
        )
    else:
        _need(shard is None, f"{f}.shard_size", "must be absent for the files method")
    ignores = value.get("ignore_paths", [])
    _need(
        isinstance(ignores, list) and all(isinstance(p, str) and p for p in ignores),
        f"{f}.ignore_paths",
        "must be a list of non-empty strings",
    )
    for p in ignores:
        check_name(p, "ignore path")
        if any(c in p for c in "*?["):
            raise InvalidInput(f"ignore path {p!r} has glob characters (OMS 6.2.1)")
    return Serialization(how, hashed, bool(symlinks), tuple(ignores), shard)


def parse_oms(statement: Statement) -> OmsClaim:
    """Read an OMS v1.0 statement strictly; MalformedBundle / InvalidInput naming the field or the name."""
    doc = statement.doc
    if statement.predicate_type == OMS_PREDICATE_COMPAT:
        raise MalformedBundle("OMS statement: predicateType model_signing/Digests/v0.1 is deprecated (v1.0 is read)")
    _need(statement.predicate_type == OMS_PREDICATE, "predicateType", f"{statement.predicate_type!r} is not OMS v1.0")
    _need(doc.get("_type") == STATEMENT_TYPE, "_type", "must be the in-toto Statement v1")
    _need(set(doc) <= {"_type", "subject", "predicateType", "predicate"}, "(statement)", "unknown top-level field")
    _need(len(statement.subjects) == 1, "subject", "exactly one subject (the model) is required")
    subject = statement.subjects[0]
    _need(bool(subject.name), "subject[0].name", "must not be empty")
    root = subject.digest.get("sha256", "")
    _need(bool(_HEX.fullmatch(root)) and len(root) == 64, "subject[0].digest.sha256", "must be 64 hex digits")
    pred = statement.predicate
    _need(set(pred) == {"resources", "serialization"}, "predicate", "exactly resources and serialization")
    ser = _serialization(pred["serialization"])
    items = pred["resources"]
    _need(isinstance(items, list) and len(items) > 0, "predicate.resources", "at least one resource is required")
    resources: dict[str, str] = {}
    concat = bytearray()
    names = []
    for i, r in enumerate(items):
        f = f"predicate.resources[{i}]"
        _need(isinstance(r, dict), f, "must be an object")
        name, alg, digest = r.get("name"), r.get("algorithm"), r.get("digest")
        _need(isinstance(name, str) and bool(name), f"{f}.name", "must be a non-empty string")
        _need(member(HashType, alg) is ser.hash_type, f"{f}.algorithm", f"{alg!r} differs from serialization.hash_type")
        _need(
            isinstance(digest, str) and bool(_HEX.fullmatch(digest)) and len(digest) % 2 == 0,
            f"{f}.digest",
            "must be lowercase hex, whole bytes",
        )
        assert isinstance(name, str) and isinstance(digest, str)
        path = name
        if ser.method is SerializationMethod.SHARDS:
            m = _SHARD.fullmatch(name)
            _need(m is not None, f"{f}.name", f"{name!r} is not <path>:<start>:<end>")
            assert m is not None
            path = m.group(1)
        check_name(path, "resource name")
        _need(name not in resources, f"{f}.name", f"{name!r} is listed twice")
        resources[name] = digest
        names.append(name)
        concat += bytes.fromhex(digest)
    _need(names == sorted(names), "predicate.resources", "must be sorted by name (OMS 6.4)")
    _need(
        hashlib.sha256(concat).hexdigest() == root,
        "subject[0].digest.sha256",
        "is not SHA-256 over the resource digests (OMS 6.5.1)",
    )
    return OmsClaim(statement, subject.name, root, resources, ser)


def build_oms(
    model_name: str, resources: dict[str, str], serialization: Serialization = FILES_SHA256
) -> dict[str, Any]:
    """The OMS v1.0 statement for ``resources`` (name → hex digest), resources sorted, the root computed."""
    names = sorted(resources)
    for n in names:
        check_name(n if serialization.method is SerializationMethod.FILES else _SHARD.sub(r"\1", n), "resource name")
    root = hashlib.sha256(b"".join(bytes.fromhex(resources[n]) for n in names)).hexdigest()
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": root}}],
        "predicateType": OMS_PREDICATE,
        "predicate": {
            "resources": [
                {"name": n, "algorithm": serialization.hash_type.value, "digest": resources[n]} for n in names
            ],
            "serialization": serialization.to_dict(),
        },
    }


def _ignored(rel: str, ser: Serialization) -> bool:
    top = rel.split("/", 1)[0]
    return top in DEFAULT_IGNORES or any(rel == p or rel.startswith(p + "/") for p in ser.ignore_paths)


def _hash_file(path: Path, ser: Serialization, rel: str, out: dict[str, str]) -> None:
    if ser.hash_type not in HASHES:
        raise InvalidInput(f"hash_type {ser.hash_type!r} is not supported here (sha256, blake2b are)")
    size = path.stat().st_size
    with open(path, "rb") as f:
        if ser.method is SerializationMethod.FILES:
            h = hashlib.new(HASHES[ser.hash_type])
            while chunk := f.read(1 << 22):
                h.update(chunk)
            out[rel] = h.hexdigest()
            return
        assert ser.shard_size is not None
        for start in range(0, size, ser.shard_size):
            end = min(size, start + ser.shard_size)
            h, left = hashlib.new(HASHES[ser.hash_type]), end - start
            while left and (chunk := f.read(min(left, 1 << 22))):
                h.update(chunk)
                left -= len(chunk)
            out[f"{rel}:{start}:{end}"] = h.hexdigest()


def scan(root: Path, ser: Serialization, exclude: tuple[Path, ...] = ()) -> dict[str, str]:
    """The model directory as the signed serialization enumerates it: resource name → hex digest.
    ``exclude``: files never part of the model (the signature being checked). A symlink is refused unless the
    signature allows symlinks, and then it must resolve inside the directory; InvalidInput naming it."""
    root = Path(root)
    if not root.is_dir():
        raise InvalidInput(f"{root}: not a model directory", path=str(root))
    real_root = root.resolve()
    skip = {p.resolve() for p in exclude}
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in sorted([*dirnames, *filenames]):
            path = here / name
            rel = path.relative_to(root).as_posix()
            if _ignored(rel, ser) or path.resolve() in skip:
                if name in dirnames:
                    dirnames.remove(name)
                continue
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput(f"{path}: the file name is not UTF-8 (OMS 6.1.2)", path=str(path)) from None
            if path.is_symlink():
                target = path.resolve()
                if not ser.allow_symlinks:
                    raise InvalidInput(
                        f"{path}: a symbolic link, and the signature does not allow symlinks", path=str(path)
                    )
                if not target.is_relative_to(real_root):
                    raise InvalidInput(
                        f"{path}: a symbolic link that leaves the model directory (to {target})", path=str(path)
                    )
                if target.is_dir():
                    raise InvalidInput(f"{path}: a symbolic link to a directory is not followed", path=str(path))
                if not target.is_file():
                    raise InvalidInput(
                        f"{path}: a symbolic link to {_kind(target)}, not a regular file", path=str(path)
                    )
                _hash_file(target, ser, rel, out)
                if name in dirnames:
                    dirnames.remove(name)
            elif name in filenames and path.is_file():
                _hash_file(path, ser, rel, out)
            elif name in filenames:  # never opened (a FIFO would block) and never silently left out
                raise InvalidInput(f"{path}: {_kind(path)} in the model directory, not a regular file", path=str(path))
    if not out:
        raise InvalidInput(f"{root}: no regular file to sign or verify (OMS 6.1)", path=str(root))
    return out


def _kind(path: Path) -> str:
    """What a non-regular directory entry is, for the message."""
    try:
        mode = path.lstat().st_mode if not path.is_symlink() else path.stat().st_mode
    except OSError:
        return "an unreadable entry"
    for test, word in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return word
    return "a special file"


def diff(claim: OmsClaim, actual: dict[str, str]) -> list[Finding]:
    """Every missing, extra and changed resource, each named with the signed and the actual digest."""
    out = [Finding(n, "signed file is missing", d, None) for n, d in sorted(claim.resources.items()) if n not in actual]
    out += [
        Finding(n, "file is not covered by the signature", None, d)
        for n, d in sorted(actual.items())
        if n not in claim.resources
    ]
    out += [
        Finding(n, f"{claim.serialization.hash_type} digest differs from the signed one", d, actual[n])
        for n, d in sorted(claim.resources.items())
        if n in actual and actual[n] != d
    ]
    return out
