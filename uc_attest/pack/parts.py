"""Quantized tensors passed between the ranks of a distributed pack through a shared directory (issue 34).

Each rank quantizes its tensors and writes each candidate (one tensor at one width) as a small safetensors
file — codes, scales, zero-points, the committed moments — whose ``__metadata__`` holds the rest of the
candidate (exponent, shape, parts, the reconstruction's digest, the error record, the measured damage) as
JSON. Rank 0 reads them back to write the pack, and checks each one before it does: the file parses
strictly (core/stfile), its record is well formed, names the tensor asked for and was made under the scheme the
pack is assembled under (its id, group size, rotation and parts), and the components decode to the digest the
record gives, so a torn or foreign file can never reach a pack. Files are written under a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..core.digest import Digest
from ..core.stfile import SafetensorsFile, out_tensor, write_safetensors
from ..errors import MalformedPack, OperationalError
from ..quant.measure import Candidate, decode_tensor
from ..quant.quantize import QuantizedTensor
from ..quant.scheme import Part, Scheme

META = "uc.candidate"
_PART_FIELDS = ("col0", "cols", "rows", "group", "period", "block", "first_group")


class PartStore:
    """Candidates of every rank in ``root`` (a directory on a filesystem every rank sees), quantized under
    ``scheme`` (its id and group size; each candidate at its own width): a part made under another is refused."""

    def __init__(self, root: Path, scheme: Scheme) -> None:
        self.root = Path(root)
        self.root.mkdir(exist_ok=True)  # by whichever rank comes first
        self.scheme = scheme

    def _path(self, name: str, bits: int) -> Path:
        return self.root / f"{hashlib.sha256(name.encode()).hexdigest()[:40]}-{bits}.safetensors"

    def put(self, name: str, c: Candidate) -> None:
        q = c.q
        record = {
            "name": name,
            "scheme": self.scheme.id,
            "group": self.scheme.group_size,
            "bits": q.bits,
            "exponent": q.exponent,
            "shape": list(q.shape),
            "dtype": q.dtype,
            "rotated": q.rotated,
            "sign_period": q.sign_period,
            "parts": [{f: getattr(p, f) for f in _PART_FIELDS} for p in q.parts],
            "digest": c.digest.hex,
            "err_ppm": c.err_ppm,
            "damage": None if c.damage is None else [c.damage.numerator, c.damage.denominator],
        }
        outs = [out_tensor("codes", q.codes), out_tensor("scales", q.scales), out_tensor("zeros", q.zeros)]
        if q.moments is not None:
            outs.append(out_tensor("moments", q.moments))
        path = self._path(name, q.bits)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                write_safetensors(fh, outs, {META: json.dumps(record, sort_keys=True)})
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OperationalError(f"{path}: cannot write a quantized part: {exc.strerror}", path=str(path)) from None

    def get(self, name: str, bits: int) -> Candidate | None:
        """The candidate of ``name`` at ``bits``, checked (module docstring); None when no rank made it."""
        path = self._path(name, bits)
        if not path.is_file():
            return None
        with SafetensorsFile(path) as f:
            c = _candidate(f, name, bits, path, self.scheme)
        try:
            got = Digest.of_bytes(decode_tensor(name, c.q, self.scheme.group_size).data)
        except (ValueError, IndexError, OverflowError, ZeroDivisionError, MemoryError):  # a record that does not fit
            got = None
        if got != c.digest:
            raise MalformedPack(f"{path}: the part of {name!r} does not decode to the digest its record gives")
        return c

    def discard(self, name: str, bits: int) -> None:
        self._path(name, bits).unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing held open (the directory belongs to the pack's rank 0, which removes it)."""


def _int(value: Any, low: int, high: int) -> int:
    """A JSON integer in [low, high] (not a bool, float or string)."""
    if type(value) is not int or not low <= value <= high:
        raise ValueError(value)
    return value


def _candidate(f: SafetensorsFile, name: str, bits: int, path: Path, scheme: Scheme) -> Candidate:
    """The candidate in an open part file, every field checked, what the scheme decides (id, group size, rotation,
    parts and sign period) as ``scheme`` gives it, and its components exactly the sizes its shape and parts give."""
    group = scheme.group_size

    def bad(what: str) -> MalformedPack:
        return MalformedPack(f"{path}: not a quantized part of {name!r}: {what}", path=str(path), tensor=name)

    try:
        rec: Any = json.loads((f.metadata or {}).get(META, ""))
    except (json.JSONDecodeError, RecursionError, ValueError):
        raise bad(f"no {META} record") from None
    if not isinstance(rec, dict) or rec.get("name") != name or rec.get("bits") != bits:
        raise bad("its record names another tensor or width")
    big = 1 << 40
    try:
        shape = tuple(_int(d, 1, big) for d in rec["shape"])
        parts = tuple(Part(**{k: _int(p[k], 0, big) for k in _PART_FIELDS}) for p in rec["parts"])
        damage = None if rec["damage"] is None else Fraction(*(_int(x, 0, 1 << 4096) for x in rec["damage"]))
        exponent, err_ppm = _int(rec["exponent"], -90, 100), _int(rec["err_ppm"], 0, 1 << 40)
        period = _int(rec["sign_period"], 0, big)
        digest = Digest(str(rec["digest"]))
        dtype, rotated = str(rec["dtype"]), rec["rotated"]
        n = 1
        for d in shape:
            n *= d
        if len(parts) > 1:  # row-aligned parts, each its own groups (docs/format.md 3.6)
            runs = [((p.rows * p.cols + p.group - 1) // p.group, p.group) for p in parts]
        else:
            runs = [(-(-n // group), group)]
        groups = sum(g for g, _ in runs)
        code_bytes = sum(g * width * bits // 8 for g, width in runs)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError, AttributeError) as exc:
        raise bad(f"malformed record ({type(exc).__name__})") from None
    if dtype not in ("F32", "F16", "BF16") or not isinstance(rotated, bool) or not shape or n > big:
        raise bad("dtype, rotation or shape")
    _same_scheme(rec, scheme, shape, parts, bad)
    want = {"codes": "U8", "scales": "F16", "zeros": "U8"} | ({"moments": "I16"} if "moments" in f.infos else {})
    if set(f.infos) != set(want) or any(f.infos[k].dtype != v for k, v in want.items()):
        raise bad(f"tensors {sorted(f.infos)}")
    infos = f.infos
    if infos["codes"].shape != (code_bytes,) or infos["scales"].shape != (groups,) or infos["zeros"].shape != (groups,):
        raise bad("component sizes: not what its shape and parts give")
    t = {k: f.tensor(k).clone() for k in want}  # own memory: the file is closed after this
    q = QuantizedTensor(
        t["codes"],
        t["scales"],
        t["zeros"],
        exponent,
        shape,
        dtype,
        bits,
        rotated,
        period,
        t.get("moments"),
        parts,
    )
    return Candidate(q, digest, err_ppm, damage)


def _same_scheme(
    rec: dict[str, Any],
    scheme: Scheme,
    shape: tuple[int, ...],
    parts: tuple[Part, ...],
    bad: Callable[[str], Exception],
) -> None:
    """The record was made under ``scheme``: the same id and group size, and what they decide for the tensor's
    shape (rotation, row-aligned parts, sign period); else ``bad`` naming the first field that differs."""
    want = scheme.parts(shape)
    fields = (
        ("scheme", rec.get("scheme"), scheme.id),
        ("group", rec.get("group"), scheme.group_size),
        ("rotated", rec["rotated"], scheme.rotated),
        ("parts", parts, want),
        ("sign_period", rec["sign_period"], want[0].period),
    )
    for field, got, expected in fields:
        if type(got) is not type(expected) or got != expected:
            raise bad(
                f"made under another scheme: its record's {field} is {_shown(got)}, the pack's scheme "
                f"({scheme.id}, group size {scheme.group_size}) gives {expected!r}"
            )


def _shown(value: object) -> str:
    """A record's value in a message, bounded (untrusted: any JSON value)."""
    if value is None or isinstance(value, bool) or (isinstance(value, int) and abs(value) < 1 << 63):
        return repr(value)
    if isinstance(value, tuple):
        return repr(value) if len(value) <= 2 else f"{len(value)} entries"
    if isinstance(value, str):
        return repr(value[:80]) + ("..." if len(value) > 80 else "")
    return f"a JSON {type(value).__name__}"
