"""One place that turns an outcome into an exit code and a message, and a catch-all for everything else.

0 ok, 1 verification failed or denied, 2 usage, 3 invalid input, 4 operational (I/O, network, a service
down, an extra not installed: "uc-attest pack needs PyTorch: pip install 'uc-attest[torch]'"), 130
interrupted, 70 internal error: an exception that is none of ours is a bug, reported in one line ("internal
error: …, please report") — never 0, never 1 (which would read as "denied").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

import uc_attest as uc

from . import flags, render

F = TypeVar("F", bound=Callable[..., Any])
EXIT_INTERRUPTED = 130


#: Options that need an extra where their command does not (``--runtime reference``): named with the command
#: when the extra is missing, ``{}`` their value.
EXTRA_OPTIONS = {"rebuild_from": "--rebuild-from", "runtime": "--runtime {}"}


def command_names(app: typer.Typer, prefix: str = "uc-attest") -> dict[str, str]:
    """Each command's function name -> the command as typed (``log_watch`` -> ``uc-attest log watch``)."""
    names = {}
    for c in app.registered_commands:
        assert c.callback is not None
        names[c.callback.__name__] = f"{prefix} {c.name or c.callback.__name__.replace('_', '-')}"
    for g in app.registered_groups:
        assert g.typer_instance is not None
        names.update(command_names(g.typer_instance, f"{prefix} {g.name}"))
    return names


def _command(fn: Callable[..., Any], kwargs: dict[str, Any]) -> str:
    """The command ``fn`` runs, as typed, with the options of ``EXTRA_OPTIONS`` it was given."""
    from .app import app  # the commands are registered once app is imported (it imports this module)

    given = [flag.format(kwargs[name]) for name, flag in EXTRA_OPTIONS.items() if kwargs.get(name) is not None]
    return " ".join([command_names(app).get(fn.__name__, "uc-attest"), *given])


def report(exc: BaseException, as_json: bool = False, command: str = "uc-attest") -> int:
    """Show ``exc`` (stderr, and stdout with ``--json``) and return its exit code. A module of an extra that is
    not installed (torch), wherever it was imported, is :class:`uc_attest.MissingExtra` naming ``command`` and
    the extra: the one place a missing extra is told."""
    exc = uc.MissingExtra.of(exc, command) or exc
    if isinstance(exc, uc.VerificationFailed):
        if as_json:
            render.emit_json({"ok": False, **exc.to_dict()})
        else:
            render.findings(exc.findings)
        return exc.exit_code
    if isinstance(exc, uc.UcAttestError):  # the options it names as their flags (cli/flags.py)
        if as_json:
            render.emit_json({"ok": False, **flags.as_json(exc)})
        render.error(flags.message(exc))
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        render.say(("interrupted", "bold red"))
        return EXIT_INTERRUPTED
    if isinstance(exc, MemoryError):  # an allocation that failed outside a named layer: operational too
        msg = "out of memory" + (f": {exc}" if str(exc) else "")
        if as_json:
            render.emit_json({"ok": False, "error": "OperationalError", "message": msg})
        render.error(msg)
        return uc.EXIT_OPERATIONAL
    if isinstance(exc, OSError):  # I/O outside our own checks (disk full, permissions...): operational
        msg = f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)
        if as_json:
            render.emit_json({"ok": False, "error": "OperationalError", "message": msg})
        render.error(msg)
        return uc.EXIT_OPERATIONAL
    msg = f"internal error: {type(exc).__name__}: {exc} (uc-attest {uc.__version__}), please report"
    if as_json:
        render.emit_json({"ok": False, "error": "InternalError", "message": msg})
    render.error(msg)
    return uc.EXIT_INTERNAL


def mapped(fn: F) -> F:
    """Wrap a command: any exception becomes its message and exit code (``as_json`` read from the call)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - the catch-all: every outcome has its code, a crash is 70
            raise typer.Exit(report(exc, bool(kwargs.get("as_json")), _command(fn, kwargs))) from None

    return wrapper  # type: ignore[return-value]


def usage(message: str) -> None:
    render.error(message)
    raise typer.Exit(uc.EXIT_USAGE)
