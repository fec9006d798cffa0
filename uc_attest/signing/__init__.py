"""Signing: which trust root (``trust``), DSSE through sigstore-python (``sign``), the attest stages (``attest``).

The package imports nothing itself: choosing a trust root must not import the signer."""
