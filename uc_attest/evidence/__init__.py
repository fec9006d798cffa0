"""Evidence: a Sigstore bundle turned into facts (exact payload bytes, signer identity, verified times, log proof).

* ``bundle``      sigstore-python's Verifier over a DSSE bundle → :class:`Evidence`
* ``identity``    certificate identities and issuers, signer policies
* ``conformance`` any bundle for auditors (sigstore-conformance ``verify-bundle``), managed keys included

The package imports nothing itself: importing ``evidence.identity`` must not pull in the bundle verifier's
cryptography (the CLI imports only what a command uses).
"""
