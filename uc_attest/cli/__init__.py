"""The ``uc-attest`` command line: ``app`` (thin commands), ``render`` (markup-safe output), ``exits``
(one error → exit-code map with a catch-all)."""

from __future__ import annotations

import sys

from .app import app
from .exits import report


def main() -> None:
    """Entry point. Commands map their own errors; this catches what escapes them (never a traceback)."""
    try:
        app()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the last line of defence: a crash gets its own code
        sys.exit(report(exc))


__all__ = ["app", "main"]
