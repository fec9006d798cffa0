"""Checkpoints as C2SP signed notes (tlog-checkpoint, signed-note), Rekor v1 style.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <name> <base64(key hash (4 bytes) || signature)>``. A checkpoint's text is
``<origin>\\n<size>\\n<base64 root>\\n`` plus optional extension lines (Rekor adds
``Timestamp: <ns>``). Key hashes and signatures:

* ECDSA (Rekor, vkey type 0x02): hash = SHA-256(DER SubjectPublicKeyInfo)[:4], the
  first 4 bytes of the Rekor log ID; signature = DER ECDSA-SHA256 over the text.
* Ed25519 (vkey type 0x01): hash = SHA-256(name || 0x0A || 0x01 || key)[:4].
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ..errors import NoteError

SIG_PREFIX = "\u2014 "
_NAME_RE = re.compile(r"[^\s+]+")  # used with fullmatch: "$" would also match before a final newline


PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class Verifier:
    """A named note verifier: the key name, its 4-byte hash and public key."""

    name: str
    key_hash: bytes
    key: PublicKey

    def verify(self, text: bytes, sig: bytes) -> bool:
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(sig, text)
            else:
                self.key.verify(sig, text, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def ecdsa_key_hash(key: ec.EllipticCurvePublicKey) -> bytes:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()[:4]


def ecdsa_verifier(name: str, key: ec.EllipticCurvePublicKey) -> Verifier:
    return Verifier(name, ecdsa_key_hash(key), key)


def parse_vkey(vkey: str) -> Verifier:
    """Parse ``name+hash+base64(type || key)`` (types 0x01 Ed25519, 0x02 ECDSA SPKI)."""
    parts = vkey.split("+", 2)
    if len(parts) != 3 or not _NAME_RE.fullmatch(parts[0]) or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
        raise NoteError(f"malformed verifier key {vkey[:40]!r}")
    name, key_hash = parts[0], bytes.fromhex(parts[1])
    try:
        raw = base64.b64decode(parts[2], validate=True)
    except ValueError:  # binascii.Error, or a str with non-ASCII characters
        raise NoteError("verifier key is not base64") from None
    if not raw:
        raise NoteError("empty verifier key")
    kind, body = raw[0], raw[1:]
    try:
        if kind in (0x01, 0x04) and len(body) == 32:  # Ed25519 note / cosignature/v1 key
            key: PublicKey = ed25519.Ed25519PublicKey.from_public_bytes(body)
            want = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
        elif kind == 0x02:
            loaded = serialization.load_der_public_key(body)
            if not isinstance(loaded, ec.EllipticCurvePublicKey):
                raise NoteError("type 0x02 key is not ECDSA")
            key, want = loaded, ecdsa_key_hash(loaded)
        else:
            raise NoteError(f"unsupported verifier key type 0x{kind:02x}")
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise NoteError(f"bad verifier key: {exc}") from None
    if want != key_hash:
        raise NoteError("verifier key hash does not match its key")
    return Verifier(name, key_hash, key)


@dataclass(frozen=True)
class Signature:
    name: str
    key_hash: bytes
    sig: bytes


@dataclass(frozen=True)
class Note:
    text: bytes
    signatures: list[Signature]


def parse_note(note: str | bytes) -> Note:
    """Split a signed note into its text and signature lines (no verification)."""
    try:
        data = note.encode() if isinstance(note, str) else note
        data.decode("utf-8")
    except UnicodeError:  # undecodable bytes, or a str with lone surrogates
        raise NoteError("note is not UTF-8") from None
    if b"\r" in data or any(c < 0x20 and c != 0x0A for c in data):
        raise NoteError("note contains control characters")
    split = data.rfind(b"\n\n")
    if split < 0 or not data.endswith(b"\n"):
        raise NoteError("note has no signature block")
    text, sig_block = data[: split + 1], data[split + 2 :]
    sigs: list[Signature] = []
    for line in sig_block.decode().split("\n")[:-1]:
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"malformed signature line {line[:40]!r}")
        fields = line[len(SIG_PREFIX) :].split(" ")
        if len(fields) != 2 or not _NAME_RE.fullmatch(fields[0]):
            raise NoteError(f"malformed signature line {line[:40]!r}")
        try:
            raw = base64.b64decode(fields[1], validate=True)
        except ValueError:  # binascii.Error, or a str with non-ASCII characters
            raise NoteError("signature is not base64") from None
        if len(raw) < 5:
            raise NoteError("signature too short")
        sigs.append(Signature(fields[0], raw[:4], raw[4:]))
    if not sigs:
        raise NoteError("note has no signatures")
    if len(sigs) > 100:
        raise NoteError("too many signatures")
    return Note(text, sigs)


def open_note(note: str | bytes, verifiers: list[Verifier]) -> Note:
    """Parse and verify: at least one signature by a known key must verify; any known-key
    signature that fails is an error. Returns the note."""
    n = parse_note(note)
    known = {(v.name, v.key_hash): v for v in verifiers}
    verified = 0
    for s in n.signatures:
        v = known.get((s.name, s.key_hash))
        if v is None:
            continue
        if not v.verify(n.text, s.sig):
            raise NoteError(f"invalid signature by {s.name}")
        verified += 1
    if not verified:
        raise NoteError("no signature by a trusted key")
    return n


def ed25519_key_id(name: str, key: ed25519.Ed25519PublicKey) -> bytes:
    """The C2SP key id of an Ed25519 note key: SHA-256(name || 0x0A || 0x01 || key); its first 4 bytes are
    the signature's key hash (Rekor v2 uses the whole id as its log id)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()


def ed25519_verifier(name: str, key: ed25519.Ed25519PublicKey) -> Verifier:
    return Verifier(name, ed25519_key_id(name, key)[:4], key)


def sign_note_ed25519(text: bytes, name: str, key: ed25519.Ed25519PrivateKey) -> str:
    """Sign ``text`` (ending in a newline) with an Ed25519 key, C2SP signed-note style (Rekor v2)."""
    if not text.endswith(b"\n"):
        raise NoteError("note text must end with a newline")
    hint = ed25519_key_id(name, key.public_key())[:4]
    return (text + b"\n").decode() + f"{SIG_PREFIX}{name} {base64.b64encode(hint + key.sign(text)).decode()}\n"


def sign_note(text: bytes, name: str, key: ec.EllipticCurvePrivateKey) -> str:
    """Sign ``text`` (ending in a newline) with an ECDSA key, Rekor style."""
    if not text.endswith(b"\n"):
        raise NoteError("note text must end with a newline")
    sig = key.sign(text, ec.ECDSA(hashes.SHA256()))
    hint = ecdsa_key_hash(key.public_key())
    return (text + b"\n").decode() + f"{SIG_PREFIX}{name} {base64.b64encode(hint + sig).decode()}\n"


@dataclass(frozen=True)
class Checkpoint:
    """The body of a tlog checkpoint."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> bytes:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def parse(cls, text: bytes) -> Checkpoint:
        """The checkpoint in a note's text; NoteError for anything else (the only error it raises)."""
        try:
            lines = text.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            raise NoteError("checkpoint is not UTF-8") from None
        if len(lines) < 4 or lines[-1] != "" or not lines[0]:
            raise NoteError("checkpoint needs origin, size and root hash lines")
        if not re.fullmatch(r"0|[1-9][0-9]*", lines[1]) or int(lines[1]) >= 1 << 64:
            raise NoteError(f"checkpoint size {lines[1]!r} is not a decimal uint64")
        try:
            root = base64.b64decode(lines[2], validate=True)
        except ValueError:  # binascii.Error, or a str with non-ASCII characters
            raise NoteError("checkpoint root hash is not base64") from None
        return cls(lines[0], int(lines[1]), root, tuple(lines[3:-1]))
