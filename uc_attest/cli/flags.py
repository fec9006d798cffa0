"""The library's parameters as the CLI's flags: one table, so an error names what the user typed.

The library's errors name the keywords a Python caller passes (``bits``, ``force``) and carry them as data
(``UcAttestError.options``), their message a template of them (``uc_attest/errors.py``); :func:`message`
renders it with the flags here. One library name is one flag in every command: a name that two commands
spell differently needs two names in the library. A name missing here still reads as a flag, by the usual
rule (``group_size`` -> ``--group-size``); tests/unit/test_error_terms.py keeps the table complete.
"""

from __future__ import annotations

from typing import Any

import uc_attest as uc

#: The library's name of each option an error names -> the flag(s) that set it.
FLAGS: dict[str, str] = {
    "bits": "--bits",
    "bits_overrides": "--bits-override",
    "budget": "--bits-budget",
    "calibration": "--calibration",
    "calibration.text": "--calibration-text",
    "cert_chain": "--cert-chain / --source-cert-chain",
    "dev_identity": "--identity",
    "device": "--device",
    "digest": "--digest",
    "digests": "--digest",
    "force": "--force",
    "group_size": "--group-size",
    "identity": "--certificate-identity",
    "identity_regexes": "--identity-regex",
    "identity_token": "--identity-token",
    "inline": "--inline-manifest",
    "instance": "--instance",
    "issuer": "--certificate-oidc-issuer",
    "key": "--key",
    "manifest_root": "--manifest-root",
    "mirror": "--mirror",
    "move": "--move-to-port",
    "plain_http": "--plain-http",
    "port": "--port",
    "prompt": "--prompt",
    "prompt_ids": "--prompt-ids",
    "rekor_version": "--rekor-version",
    "release_signers": "--allow-release-signer",
    "source_signature": "--source-signature",
    "texts": "--text",
    "trust_config": "--trust-config",
    "validations": "--validation",
}
#: Flags that take no value: an option given a value in a message (``force=True``) is the flag alone.
SWITCHES = frozenset({"--force", "--move-to-port", "--plain-http", "--allow-release-signer"})


def flag(name: str) -> str:
    """The flag that sets the library's option ``name``."""
    return FLAGS.get(name) or "--" + name.replace("_", "-").replace(".", "-")


def spell(name: str, spec: str) -> str:
    """An option as the CLI names it: its flag, then the value or placeholder the message gives it, if any
    (``force=True`` is ``--force``, ``budget=5.0`` is ``--bits-budget 5.0``, ``trust_config`` with ``FILE`` is
    ``--trust-config FILE``)."""
    f = flag(name)
    value = spec.removeprefix("=")
    return f"{f} {value}" if value and f not in SWITCHES else f


def message(exc: uc.UcAttestError) -> str:
    """``exc``'s message in the CLI's terms: each option it names as its flag."""
    return exc.spelled(spell)


def as_json(exc: uc.UcAttestError) -> dict[str, Any]:
    """``exc.to_dict()`` in the CLI's terms: the message, and the options it names, as flags."""
    out = {**exc.to_dict(), "message": message(exc)}
    if exc.options:
        opt = exc.data["option"]
        out["option"] = flag(opt) if isinstance(opt, str) else [flag(o) for o in opt]
    return out
