"""The sections of a sigstore trusted root, parsed once, with one strictness, for every reader.

Each section (``tlogs``, ``ctlogs``, ``certificateAuthorities``, ``timestampAuthorities``) is a list; absent or
JSON null is empty (protobuf JSON), any other non-list is malformed, and so is an entry that is not an object.

* ``tlogs[]`` and ``ctlogs[]`` entries must name their base URL, their public key (DER ``rawBytes``), their log
  id and the key's validity (``validFor.start`` required: a missing start is not "always"; a missing end:
  still valid): :class:`TrustedLog`, :class:`TrustedCtLog`. The own bundle verifier, trust selection (the
  Rekor v1 and tile clients, the audit) read the same values.
* ``certificateAuthorities[]`` and ``timestampAuthorities[]`` (the same message) must hold a non-empty
  ``certChain.certificates`` of DER certificates and a ``validFor`` object whose start is required (protobuf-specs'
  ``TimeRange``: only ``end`` is optional; a missing start, or no ``validFor``, is malformed, never "since
  always") and whose end (absent or null: open) is strict RFC 3339; ``subject`` an object, its ``commonName``
  and ``uri`` strings: :class:`TrustedCa`, :class:`TrustedTsa`. Nothing of another JSON type is read as absent
  (``validFor: []`` or ``""`` is malformed, never "valid forever").
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from ..core import rfc3339
from ..errors import MalformedBundle

if TYPE_CHECKING:  # parsing a root imports cryptography; naming its types does not
    from cryptography import x509


@dataclass(frozen=True)
class TrustedLog:
    """One log of a trusted root: where it answers, its key, its log id, and when the key is valid (POSIX)."""

    base_url: str
    key: Any
    log_id: bytes
    start: float = float("-inf")
    end: float = float("inf")

    def valid_at(self, t: float) -> bool:
        return self.start <= t <= self.end

    def window(self) -> str:
        """Its key's validity as a reader reads it: ``validFor START .. END`` in UTC (no end: still valid)."""

        def at(t: float) -> str:
            return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        end = "still valid" if self.end == float("inf") else at(self.end)
        start = "always" if self.start == float("-inf") else at(self.start)
        return f"validFor {start} .. {end}"


@dataclass(frozen=True)
class TrustedCtLog(TrustedLog):
    """A certificate transparency log of a trusted root (``ctlogs[]``): read as strictly as a transparency log;
    its key verifies the SCTs it made while it was valid."""


@dataclass(frozen=True)
class TrustedCa:
    """A certificate authority of a trusted root: a name (the subject's common name, else its URI, else its
    place in the root), its chain as listed (the trust anchor last), and when the root vouches for it (inclusive
    of both ends; no end: still valid)."""

    name: str
    chain: tuple[x509.Certificate, ...]
    start: dt.datetime
    end: dt.datetime | None = None

    def valid_at(self, at: dt.datetime) -> bool:
        return self.start <= at and (self.end is None or at <= self.end)


@dataclass(frozen=True)
class TrustedTsa(TrustedCa):
    """A timestamp authority of a trusted root (``timestampAuthorities[]``): the chain is its signing
    certificate first; ``valid_at`` is the times it may sign."""


def _section(root_doc: Any, section: str, where: str) -> list[Any]:
    """One list section of the root: absent or null is empty, anything else but a list is malformed."""
    if not isinstance(root_doc, dict):
        raise MalformedBundle(f"{where}: the trusted root is not a JSON object")
    items = root_doc.get(section)
    items = [] if items is None else items  # null is absent (protobuf JSON)
    if not isinstance(items, list):
        raise MalformedBundle(f"{where}: {section} is not a list")
    return items


def _window(valid: Any) -> tuple[dt.datetime, dt.datetime | None]:
    """A ``validFor`` TimeRange: an object; its start (required) and end (absent or null: None) strict RFC 3339.
    TypeError/KeyError/ValueError otherwise."""
    if not isinstance(valid, dict):
        raise TypeError(f"validFor is not an object ({type(valid).__name__})")
    return rfc3339.parse(valid["start"]), rfc3339.optional(valid.get("end"))


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{field} is not a string ({type(value).__name__})")
    return value


_Log = TypeVar("_Log", bound=TrustedLog)


def _logs(root_doc: Any, section: str, where: str, kind: type[_Log]) -> list[_Log]:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    out = []
    for i, t in enumerate(_section(root_doc, section, where)):
        try:
            if not isinstance(t, dict):
                raise TypeError(f"not an object ({type(t).__name__})")
            key = serialization.load_der_public_key(base64.b64decode(t["publicKey"]["rawBytes"], validate=True))
            log_id = base64.b64decode(t["logId"]["keyId"], validate=True)
            url = _text(t["baseUrl"], "baseUrl").rstrip("/")
            if not url:
                raise ValueError("baseUrl is empty")
            start_at, end_at = _window(t["publicKey"]["validFor"])
            end = float("inf") if end_at is None else end_at.timestamp()  # absent or null: still valid
        except (KeyError, TypeError, ValueError, AttributeError, UnsupportedAlgorithm) as exc:
            raise MalformedBundle(
                f"{where}: {section}[{i}] is malformed (baseUrl, logId, publicKey with rawBytes and validFor.start "
                f"needed): {exc!r}"
            ) from None
        out.append(kind(url, key, log_id, start_at.timestamp(), end))
    return out


def trusted_logs(root_doc: dict[str, Any], where: str = "trusted root") -> list[TrustedLog]:
    """Every ``tlogs[]`` entry of a trusted root document; MalformedBundle naming the first that is malformed."""
    return _logs(root_doc, "tlogs", where, TrustedLog)


def trusted_ct_logs(root_doc: dict[str, Any], where: str = "trusted root") -> list[TrustedCtLog]:
    """Every ``ctlogs[]`` entry of a trusted root document; MalformedBundle naming the first that is malformed
    (one is never skipped: a root with a broken CT log is a broken root)."""
    return _logs(root_doc, "ctlogs", where, TrustedCtLog)


_Ca = TypeVar("_Ca", bound=TrustedCa)


def _authorities(root_doc: Any, section: str, where: str, kind: type[_Ca]) -> list[_Ca]:
    from cryptography import x509

    out = []
    for i, ca in enumerate(_section(root_doc, section, where)):
        try:
            if not isinstance(ca, dict):
                raise TypeError(f"not an object ({type(ca).__name__})")
            certs = ca["certChain"]["certificates"]
            if not isinstance(certs, list) or not certs:
                raise ValueError("certChain.certificates is not a non-empty list")
            chain = tuple(
                x509.load_der_x509_certificate(base64.b64decode(_text(c["rawBytes"], "rawBytes"), validate=True))
                for c in certs
            )
            start, end = _window(ca["validFor"])  # start required, as for logs: never "since always"
            subject = ca.get("subject")
            subject = {} if subject is None else subject
            if not isinstance(subject, dict):
                raise TypeError(f"subject is not an object ({type(subject).__name__})")
            cn, uri = subject.get("commonName"), ca.get("uri")
            cn, uri = (None if v is None else _text(v, f) for v, f in ((cn, "subject.commonName"), (uri, "uri")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedBundle(
                f"{where}: {section}[{i}] is malformed (certChain.certificates and validFor.start needed): {exc!r}"
            ) from None
        out.append(kind(cn or uri or f"{section}[{i}]", chain, start, end))
    return out


def trusted_cas(root_doc: dict[str, Any], where: str = "trusted root") -> list[TrustedCa]:
    """Every ``certificateAuthorities[]`` entry; MalformedBundle naming the first that is malformed."""
    return _authorities(root_doc, "certificateAuthorities", where, TrustedCa)


def trusted_tsas(root_doc: dict[str, Any], where: str = "trusted root") -> list[TrustedTsa]:
    """Every ``timestampAuthorities[]`` entry; MalformedBundle naming the first that is malformed."""
    return _authorities(root_doc, "timestampAuthorities", where, TrustedTsa)


class RootSections:
    """A trusted root document's sections as typed values, each parsed when first read and then kept: ``tlogs``,
    ``ct_logs``, ``cas``, ``tsas`` (the functions above, the same strictness and messages). A section that is
    malformed raises each time it is read (nothing is kept), so a verifier that never reads one (a key-signed
    bundle reads no CA) is not refused for it. :meth:`of` takes a document or sections already parsed."""

    def __init__(self, root_doc: Any, where: str = "trusted root") -> None:
        self.document = root_doc
        self.where = where

    @classmethod
    def of(cls, root: RootSections | dict[str, Any]) -> RootSections:
        return root if isinstance(root, RootSections) else cls(root)

    @cached_property
    def tlogs(self) -> tuple[TrustedLog, ...]:
        return tuple(trusted_logs(self.document, self.where))

    @cached_property
    def ct_logs(self) -> tuple[TrustedCtLog, ...]:
        return tuple(trusted_ct_logs(self.document, self.where))

    @cached_property
    def cas(self) -> tuple[TrustedCa, ...]:
        return tuple(trusted_cas(self.document, self.where))

    @cached_property
    def tsas(self) -> tuple[TrustedTsa, ...]:
        return tuple(trusted_tsas(self.document, self.where))


#: What the verifier's functions take as the trusted root: its document, or its sections (a :class:`Trust`'s).
RootLike = RootSections | dict[str, Any]
