"""What a verification returns: every check with its findings, and the facts a caller acts on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.digest import Digest
from ..errors import EXIT_DENIED, EXIT_OK, EXIT_OPERATIONAL, Finding
from ..manifest import Manifest
from ..policy.rules import Check, Status, all_of


@dataclass
class Verdict:
    """The outcome of verifying a pack (against a manifest, a bundle, a policy, a rebuild). ``ok`` = allowed.

    ``manifest`` is the manifest the pack was checked against — the signed, validated or given one — for a
    loader to use; it is not part of the report."""

    pack: Path
    checks: list[Check] = field(default_factory=list)
    title: str = ""
    root: Digest | None = None
    log_index: int | None = None
    signer: str = ""
    policy: str = ""
    last_validated_root: Digest | None = None
    manifest_source: str = ""
    tensors_checked: int = 0
    files_checked: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    manifest: Manifest | None = field(default=None, repr=False)
    anchor: str = ""  # what the pack was checked against (Anchor.describe())

    @property
    def findings(self) -> list[Finding]:
        """Every check's findings, each subject once (the first check that found it)."""
        seen: set[str] = set()
        out = []
        for c in self.checks:
            for f in c.findings:
                if f.subject not in seen:
                    seen.add(f.subject)
                    out.append(f)
        return out

    @property
    def ok(self) -> bool:
        return all_of(self.checks) and not self.findings

    def failures(self) -> list[Finding]:
        """Why it is not allowed, as findings: every finding, and each failed check that has none of its own."""
        rules = [
            Finding(str(c.rule), c.detail or c.hint or "check failed", c.expected, c.actual)
            for c in self.checks
            if not c.ok and not c.findings
        ]
        return self.findings + rules

    @property
    def exit_code(self) -> int:
        """0 allowed; 1 denied; 4 when nothing was denied but a required service was unreachable."""
        if self.ok:
            return EXIT_OK
        if all(c.ok or c.status is Status.UNREACHABLE for c in self.checks) and self.checks:
            return EXIT_OPERATIONAL
        return EXIT_DENIED

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "pack": str(self.pack),
            "root": str(self.root) if self.root else None,
            "manifest": self.manifest_source,
            "anchor": self.anchor,
            "tensors_checked": self.tensors_checked,
            "files_checked": self.files_checked,
            "log_index": self.log_index,
            "signer": self.signer,
            "policy": self.policy,
            "last_validated_root": str(self.last_validated_root) if self.last_validated_root else None,
            "timings_s": self.timings,
            "checks": [c.to_dict() for c in self.checks],
            "findings": [f.to_dict() for f in self.findings],
        }
