"""Which Sigstore deployment to trust: a trust config file, an embedded instance, or public-good / staging.

One :class:`Trust` per run serves signing (a sigstore ``ClientTrustConfig``), sigstore-python's verifier
(its ``TrustedRoot``) and our own checks (the trusted root's logs, CAs, TSAs and CT logs as typed values:
:attr:`Trust.sections`), each loaded once.
``offline`` public-good / staging use the trusted root sigstore-python ships or last verified through TUF,
as ``sigstore verify --offline`` does; a user may also pin a trusted root file of their own.
"""

from __future__ import annotations

import json
import logging
import stat
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, assert_never

from ..anchors import TrustFile, TrustInstance
from ..core.enums import member
from ..core.fsutil import read_small
from ..errors import InvalidInput, OperationalError, UsageError

if TYPE_CHECKING:  # choosing a trust root imports no cryptography; reading its keys does
    from ..transparency.trusted import RootSections, TrustedCa, TrustedCtLog, TrustedLog, TrustedTsa


class TufRoot(StrEnum):
    """A Sigstore deployment whose trusted root sigstore-python keeps through TUF (``--trust-config`` names it by
    this word instead of a file)."""

    PUBLIC_GOOD = "public-good"
    STAGING = "staging"


PUBLIC_GOOD, STAGING = TufRoot.PUBLIC_GOOD, TufRoot.STAGING
CLIENT_TRUST_CONFIG = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
TRUSTED_ROOT = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"


@dataclass
class Trust:
    """A selected trust root. ``source`` names it in messages: a path, or a :class:`TufRoot` (``public-good``,
    ``staging``; given as text, it is read as the deployment it names)."""

    source: str
    instance_dir: Path | None = None
    offline: bool = False

    def __post_init__(self) -> None:
        self.source = member(TufRoot, self.source) or self.source

    @classmethod
    def file(cls, path: Path | str, *, offline: bool = False) -> Trust:
        """A sigstore ClientTrustConfig or bare TrustedRoot file (a private deployment, or a pinned root)."""
        return select_trust(path, None, offline=offline)

    @classmethod
    def instance(cls, directory: Path | str, *, offline: bool = False) -> Trust:
        """An embedded DEV instance (its trust_config.json; its issuer can mint any identity)."""
        return select_trust(None, Path(directory), offline=offline)

    @classmethod
    def public_good(cls, *, offline: bool = False) -> Trust:
        """Sigstore's public-good deployment (TUF-updated; ``offline``: the root sigstore-python ships)."""
        return cls(PUBLIC_GOOD, None, offline)

    @classmethod
    def staging(cls, *, offline: bool = False) -> Trust:
        return cls(STAGING, None, offline)

    @property
    def tuf(self) -> TufRoot | None:
        """The TUF-kept deployment this trust root is, or None (a trust config file)."""
        return self.source if isinstance(self.source, TufRoot) else None

    @property
    def is_tuf(self) -> bool:
        return self.tuf is not None

    @cached_property
    def document(self) -> dict[str, Any]:
        """The trust file as JSON: a ClientTrustConfig, or a bare TrustedRoot (verification only)."""
        if self.is_tuf:
            return {"mediaType": CLIENT_TRUST_CONFIG, "trustedRoot": _tuf_root_document(self._tuf)}
        try:  # a regular file of at most a few MiB: never a FIFO to wait on, nor a device read forever
            doc = json.loads(read_small(Path(self.source), "trust config").decode("utf-8"))
        except FileNotFoundError:
            raise InvalidInput(f"{self.source}: trust config not found", path=self.source) from None
        except RecursionError:
            raise InvalidInput(
                f"{self.source}: not a sigstore ClientTrustConfig: JSON nested too deeply", path=self.source
            ) from None
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{self.source}: not a sigstore ClientTrustConfig: {exc}", path=self.source) from None
        if not isinstance(doc, dict) or doc.get("mediaType") not in (CLIENT_TRUST_CONFIG, TRUSTED_ROOT):
            raise InvalidInput(
                f"{self.source}: not a sigstore ClientTrustConfig or TrustedRoot (mediaType "
                f"{doc.get('mediaType') if isinstance(doc, dict) else None!r})",
                path=self.source,
            )
        return doc

    @property
    def root_document(self) -> dict[str, Any]:
        doc = self.document
        root = doc if doc.get("mediaType") == TRUSTED_ROOT else doc.get("trustedRoot")
        if not isinstance(root, dict):
            raise InvalidInput(f"{self.source}: the trust config has no trustedRoot", path=self.source)
        return root

    @cached_property
    def _tuf(self) -> Any:
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import ClientTrustConfig

        tuf_log = logging.getLogger("sigstore._internal.tuf")
        level = tuf_log.level
        tuf_log.setLevel(logging.ERROR)  # "loaded in offline mode" is what --offline asked for, not a warning
        try:
            return (
                ClientTrustConfig.production(offline=self.offline)
                if self.tuf is TufRoot.PUBLIC_GOOD
                else ClientTrustConfig.staging(offline=self.offline)
            )
        except (SigstoreError, OSError) as exc:
            hint = "" if self.offline else " (air-gapped? --offline uses the trusted root shipped with sigstore-python)"
            raise OperationalError(f"cannot fetch the {self.source} trust root through TUF: {exc}{hint}") from None
        finally:
            tuf_log.setLevel(level)

    @cached_property
    def client_config(self) -> Any:
        """The sigstore ``ClientTrustConfig`` (signing needs its signing config)."""
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import ClientTrustConfig

        if self.is_tuf:
            return self._tuf
        if self.document.get("mediaType") != CLIENT_TRUST_CONFIG:
            raise UsageError(f"{self.source}: a bare trusted root can verify but not sign (give a ClientTrustConfig)")
        try:
            return ClientTrustConfig.from_json(json.dumps(self.document))
        except (ValueError, SigstoreError) as exc:  # pydantic ValidationError is a ValueError
            raise InvalidInput(f"{self.source}: not a sigstore ClientTrustConfig: {exc}", path=self.source) from None

    @cached_property
    def trusted_root(self) -> Any:
        """The sigstore ``TrustedRoot`` for sigstore-python's Verifier."""
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import TrustedRoot

        if self.document.get("mediaType") == CLIENT_TRUST_CONFIG:
            return self.client_config.trusted_root
        try:
            return TrustedRoot.from_file(self.source)
        except (OSError, ValueError, SigstoreError) as exc:
            raise InvalidInput(f"{self.source}: trusted root unusable: {exc}", path=self.source) from None

    def services(self, kind: str) -> list[str]:
        """The signing config's URLs of one kind (``caUrls``, ``rekorTlogUrls``, ``tsaUrls``), for messages."""
        sc = self.document.get("signingConfig") if not self.is_tuf else None
        entries = sc.get(kind) if isinstance(sc, dict) else None
        return [str(e.get("url")) for e in entries or [] if isinstance(e, dict)]

    def logs(self) -> list[TrustedLog]:
        """The transparency logs of the trusted root with ECDSA keys (Rekor v1: REST API, SETs), each with the
        validity of its key (the same parse, the same strictness as the bundle verifier's)."""
        from cryptography.hazmat.primitives.asymmetric import ec

        return [t for t in self._trusted_logs if isinstance(t.key, ec.EllipticCurvePublicKey)]

    def tile_logs(self) -> list[TrustedLog]:
        """The logs with Ed25519 checkpoint keys (Rekor v2: C2SP tlog-tiles, log id = the key's C2SP id)."""
        from cryptography.hazmat.primitives.asymmetric import ed25519

        return [t for t in self._trusted_logs if isinstance(t.key, ed25519.Ed25519PublicKey)]

    @cached_property
    def _trusted_logs(self) -> tuple[TrustedLog, ...]:
        """The root's logs, parsed once per trust (a malformed root raises each time: nothing is cached then)."""
        from ..transparency.trusted import trusted_logs

        return tuple(trusted_logs(self.root_document, self.source))

    @cached_property
    def sections(self) -> RootSections:
        """The trusted root's sections as typed values, each parsed once when first read, with the strictness of
        :mod:`~uc_attest.transparency.trusted` (the bundle verifier reads them here; a malformed section is a
        MalformedBundle naming the "trusted root" each time it is read)."""
        from ..transparency.trusted import RootSections

        return RootSections(self.root_document)

    @property
    def cas(self) -> tuple[TrustedCa, ...]:
        """The certificate authorities (``certificateAuthorities[]``): name, chain (anchor last), validity."""
        return self.sections.cas

    @property
    def tsas(self) -> tuple[TrustedTsa, ...]:
        """The timestamp authorities (``timestampAuthorities[]``): name, chain (signing certificate first),
        validity."""
        return self.sections.tsas

    @property
    def ct_logs(self) -> tuple[TrustedCtLog, ...]:
        """The certificate transparency logs (``ctlogs[]``): URL, key, log id, the key's validity."""
        return self.sections.ct_logs

    def default_issuer(self) -> str | None:
        """The embedded instance's own issuer (None for other deployments)."""
        if self.instance_dir is None:
            return None
        from ..instance.state import InstanceState

        return InstanceState.load(self.instance_dir).issuer


def _tuf_root_document(cfg: Any) -> dict[str, Any]:
    """The trusted root sigstore-python loaded through TUF, as a document. sigstore-python has no public
    serializer for it; this is the one place that reads its inner (sigstore-models) object."""
    doc: dict[str, Any] = json.loads(cfg._inner.trusted_root.to_json())
    return doc


#: The public name of a trust root value (``uc_attest.TrustRoot``).
TrustRoot = Trust


def trust_from_options(
    trust_config: Path | str | None, instance: Path | None, *, offline: bool = False
) -> Trust | None:
    """The trust root CLI options name (None when they name none: a policy's own, or none needed)."""
    if trust_config is None and instance is None:
        return None
    return select_trust(trust_config, instance, offline=offline)


def select_trust(trust_config: Path | str | None, instance: Path | None, *, offline: bool = False) -> Trust:
    """Exactly one of --trust-config (a file, ``public-good`` or ``staging``) or --instance DIR."""
    if (trust_config is None) == (instance is None):
        raise UsageError("give exactly one of {0:FILE} or {1:DIR}", option=["trust_config", "instance"])
    if instance is not None:
        from ..instance.state import TRUST_CONFIG, InstanceState

        InstanceState.load(instance)  # checks keys and permissions
        return Trust(str(Path(instance) / TRUST_CONFIG), Path(instance), offline)
    assert trust_config is not None
    source = str(trust_config)
    named = member(TufRoot, source)  # a deployment, or None: a file
    if named is None:
        try:
            mode = Path(source).stat().st_mode  # never opened here: a FIFO is not waited on
        except (OSError, ValueError):  # ValueError: a NUL in the name
            raise InvalidInput(
                f"{source}: trust config not found (a file, public-good or staging)", path=source
            ) from None
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, socket or device"
            raise InvalidInput(f"{source}: not a regular file ({kind}) (the trust config)", path=source)
    return Trust(named or source, None, offline)


def resolve_trust(given: Trust | TrustFile | TrustInstance, *, offline: bool = False) -> Trust:
    """The one selection of a trust root given as a value (``TrustFile``, ``TrustInstance``; a ``Trust`` is
    already selected): files and the instance's keys checked now."""
    if isinstance(given, Trust):
        return given
    if isinstance(given, TrustInstance):
        return select_trust(None, given.directory, offline=offline)
    if isinstance(given, TrustFile):
        return select_trust(given.path, None, offline=offline)
    assert_never(given)
