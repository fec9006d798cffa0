"""Evidence: a Sigstore bundle turned into facts (exact payload bytes, signer identity, verified times, log proof).

* ``bundle``      sigstore-python's Verifier over a DSSE bundle → :class:`Evidence`
* ``identity``    certificate identities and issuers, signer policies
* ``conformance`` any bundle for auditors (sigstore-conformance ``verify-bundle``), managed keys included
"""

from .bundle import Evidence, LogProof, TimeProof, verify_dsse_bundle
from .identity import SignerIdentity, SignerSpec

__all__ = ["Evidence", "LogProof", "SignerIdentity", "SignerSpec", "TimeProof", "verify_dsse_bundle"]
