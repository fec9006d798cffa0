"""Everything the CLI shows a human, markup-safe: text that did not come from this module is data.

Identities, SANs, bundle and log contents, file and tensor names, messages of other libraries reach the
terminal only as ``rich.text.Text`` (never parsed as markup): a ``[/x]`` in an identity is printed as
``[/x]``, not interpreted, and cannot crash the CLI. Styles are applied here, to our own words only.
Humans get tables and progress on stderr; ``--json`` output goes to stdout through :func:`emit_json`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

import uc_attest as uc

#: stderr for humans; logs (CI) get readable widths. markup=False: a str is never parsed as markup.
err = Console(stderr=True, markup=False, highlight=False, emoji=False, width=None if sys.stderr.isatty() else 120)


def stdout_console(width: int = 160) -> Console:
    return Console(markup=False, highlight=False, emoji=False, width=None if sys.stdout.isatty() else width)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def warn(message: str) -> None:
    """A warning on stderr, shown literally."""
    err.print(Text.assemble(("warning: ", "bold yellow"), message), soft_wrap=True)


def say(*parts: str | tuple[str, str]) -> None:
    """One line on stderr: plain strings are data, ``(text, style)`` pairs are our own styled words."""
    err.print(Text.assemble(*parts), soft_wrap=True)


def error(message: str) -> None:
    say(("error:", "bold red"), " ", message)


def short(value: str | None) -> str:
    """Digests shortened for the human table; --json carries them in full."""
    if value and value.startswith("sha256:") and len(value) == 71:
        return value[:19] + "…"
    return value or ""


def table(title: Text, columns: Iterable[str], rows: Iterable[Iterable[str | Text]]) -> Table:
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    return t


def findings(items: list[uc.Finding]) -> None:
    title = Text.assemble(("VERIFICATION FAILED", "bold red"), f" - {len(items)} finding(s)")
    rows = [(f.subject, f.problem, short(f.expected), short(f.actual)) for f in items]
    err.print(table(title, ("tensor / file", "problem", "expected", "actual"), rows))
    err.print(Text("(digests shortened; full digests: --json)", style="dim"))


_RESULT = {
    "pass": ("pass", "green"),
    "fail": ("FAIL", "red"),
    "skipped": ("skipped", "yellow"),
    "unreachable": ("UNREACHABLE", "red"),
    "unchecked": ("NOT CHECKED", "red"),
}


NO_SIGNER = "integrity only - no signer checked"
HOW_TO_ANCHOR = (
    "to check who made it: --identity ID with --instance DIR or --trust-config F (the bundle beside the pack), "
    "--policy P, or --manifest KEPT.json"
)


def verdict(v: uc.Verdict, *, signed: bool, kept: bool = False) -> None:
    """The verdict table; ``kept``: checked against a separately kept manifest (an anchor without a signer)."""
    word = ("ALLOWED" if v.ok else "DENIED") if signed else ("OK" if v.ok else "FAILED")
    title = Text.assemble((word, "bold green" if v.ok else "bold red"), " ", str(v.pack))
    if v.title:
        title.append(" " + v.title)
    if not signed and not kept:
        title.append(f" ({NO_SIGNER})", style="yellow")
    rows = []
    for c in v.checks:
        extra = "\n".join(
            x
            for x in (
                f"expected: {short(c.expected)}" if c.expected and not c.ok else "",
                f"actual: {short(c.actual)}" if c.actual and not c.ok else "",
                f"hint: {c.hint}" if c.hint else "",
            )
            if x
        )
        label, style = _RESULT[c.status]
        rows.append((c.rule, Text(label, style=style), c.detail, extra))
    err.print(table(title, ("rule", "result", "detail", "expected / actual / hint"), rows))
    if v.findings:
        findings(v.findings)
    if not signed and not kept and v.ok:
        say(("note: ", "yellow"), HOW_TO_ANCHOR)


def when(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S") if t else "?"


def _detail(v: object) -> str:
    """A detail value in one cell: a recorded signature as its signer and method, anything else as is."""
    if isinstance(v, dict) and "identity" in v and "method" in v:
        return f"{v['identity']} ({v['method']})"
    if isinstance(v, dict) and "method" in v and "tool" in v:  # a calibration record
        return f"{v['method']} {v.get('params', {})}"
    return str(v)


def audit(r: uc.AuditReport) -> None:
    if not r.ok:
        word, style = "PROBLEMS FOUND", "bold red"
    elif r.root is not None and not r.validated:
        word, style = "CONSISTENT, NOT VALIDATED YET", "bold yellow"
    else:
        word, style = "CONSISTENT", "bold green"
    rows = []
    for e in r.events:
        det = "; ".join(e.problems) or ", ".join(f"{k}={_detail(v)}" for k, v in e.details.items() if k != "scheme")
        index = str(e.log_index) if e.log_index >= 0 else "-"
        rows.append((when(e.time), e.kind, index, e.signer, Text("yes") if e.ok else Text("NO", "red"), det))
    title = Text.assemble((word, style), f" audit of {r.target}")
    err.print(table(title, ("when (UTC)", "kind", "log index", "signer", "ok", "details"), rows))
    for c in r.checks:
        label, cstyle = _RESULT[c.status]
        err.print(Text.assemble((label, cstyle), f" {c.rule}: {c.detail}" + (f" ({c.hint})" if c.hint else "")))
    say(f"{r.requests} log requests in {r.seconds:.2f} s")


class _Percent(ProgressColumn):
    """The percentage of a stage whose total is known; nothing (not a stuck 0 %) while it is not."""

    def render(self, task: Task) -> Text:
        return Text("" if task.total is None else f"{task.percentage:>3.0f}%")


class Bar:
    """What :func:`progress` yields. ``bar(name, units)`` advances a bar of unknown length (verify);
    ``stage``/``update`` (uc_attest.PackProgress) run one bar over the stages of a pack, each with its
    own total, and keep every stage's elapsed time (:meth:`timings`)."""

    def __init__(self, label: str, prog: Progress | None) -> None:
        self._label = label
        self._prog = prog
        self._task = prog.add_task(label, total=None) if prog is not None else None
        self._stages: list[tuple[str, float]] = []  # (stage, start time)
        self._end: float | None = None

    def __call__(self, name: str, units: int) -> None:
        if self._prog is not None and self._task is not None:
            self._prog.update(self._task, advance=units, description=f"{self._label} {name}")

    def stage(self, name: str) -> None:
        self._stages.append((name, time.perf_counter()))
        if self._prog is not None and self._task is not None:
            self._prog.reset(self._task, total=None, description=f"{self._label}: {name}")
        else:
            err.print(Text(f"{self._label}: {name}"), soft_wrap=True)  # one plain line per stage (logs, CI)

    def update(self, done: int, total: int, what: str) -> None:
        if self._prog is not None and self._task is not None:
            stage = self._stages[-1][0] if self._stages else ""
            self._prog.update(self._task, completed=done, total=total, description=f"{self._label}: {stage} {what}")

    def finish(self) -> None:
        self._end = time.perf_counter()

    def timings(self) -> list[tuple[str, float]]:
        """Each stage and its elapsed seconds (the last one up to :meth:`finish`, or now)."""
        end = self._end if self._end is not None else time.perf_counter()
        starts = [t for _, t in self._stages[1:]] + [end]
        return [(name, stop - start) for (name, start), stop in zip(self._stages, starts, strict=True)]


@contextmanager
def progress(label: str) -> Iterator[Bar]:
    """A progress bar on stderr when it is a terminal (names shown as data), a plain line per stage when not;
    the bar is gone when the block ends, and :meth:`Bar.timings` says how long each stage took."""
    if not err.is_terminal:
        bar = Bar(label, None)
        yield bar
        bar.finish()
        return
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        _Percent(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as prog:
        bar = Bar(label, prog)
        yield bar
        bar.finish()


def timings(bar: Bar) -> None:
    """One line: how long each stage took."""
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in bar.timings())
    if parts:
        say(f"stages: {parts}")
