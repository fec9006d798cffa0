"""Everything the CLI shows a human, markup-safe: text that did not come from this module is data.

Identities, SANs, bundle and log contents, file and tensor names, messages of other libraries reach the
terminal only as ``rich.text.Text`` (never parsed as markup): a ``[/x]`` in an identity is printed as
``[/x]``, not interpreted, and cannot crash the CLI. Styles are applied here, to our own words only.
Humans get tables and progress on stderr; ``--json`` output (a result's ``to_dict()``) goes to stdout through
:func:`emit_json`. Each ``show_<command>`` function is all a command prints.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
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


# What each command prints: its result's ``to_dict()`` with --json (on stdout), else lines for a human. The
# commands only parse options, call the facade and hand the result here.


def dev_warning() -> None:
    """The one warning about an embedded DEV instance (``instance init``, ``attest`` through one)."""
    say(("DEV INSTANCE", "yellow"), f": {uc.DEV_RISK}; use it for demos and tests")


def show_pack(res: uc.PackResult, bar: Bar, seconds: float, as_json: bool) -> None:
    """A written pack; ``seconds`` and the stages' times are the CLI's own clock, added to the result's facts."""
    if as_json:
        clock = {"seconds": round(seconds, 2), "stages": {name: round(t, 2) for name, t in bar.timings()}}
        emit_json({**res.to_dict(), **clock})
        return
    m = res.manifest
    facts = res.to_dict()
    say(
        f"packed {facts['tensors']} tensors ({facts['quantized']} quantized, {facts['calibrated']} with "
        f"calibration feedback) into {res.path}"
    )
    if res.world_size > 1:
        say(f"distributed over {res.world_size} ranks (torchrun): the same bytes as one process")
    if m.calibration is not None:
        say(f"calibration: {m.calibration.method} {m.calibration.params}")
    if "allocation" in m.scheme:
        a = m.scheme["allocation"]
        say(
            f"allocation ({a['method']}): {a['bpw']} bits per quantized weight (budget {a['budget']}), widths {a['widths']}"
        )
    if m.source_signature is not None:
        sig = m.source_signature
        who = f"{sig.identity} via {sig.issuer}" if sig.issuer else sig.identity
        say(f"source signature verified ({sig.method}): {sig.model} signed by {who}; kept as {sig.file}")
    timings(bar)
    say(f"packed in {seconds:.1f} s")
    print(f"manifest root: {m.root}")


def show_calibration(res: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(res)
    else:
        say(f"calibration: {res['tensors']} layers over {res['texts']} texts -> {res['output']}")


def show_verdict(v: uc.Verdict, as_json: bool, *, signed: bool, kept: bool = False, root: bool = True) -> None:
    """A verification's verdict; ``root``: the manifest root on stdout after the table (packs, not OMS models)."""
    if as_json:
        emit_json(v.to_dict())
        return
    verdict(v, signed=signed, kept=kept)
    if root and v.root:
        print(f"manifest root: {v.root}")


def show_gate(v: uc.Verdict, as_json: bool) -> None:
    if as_json:
        emit_json(v.to_dict())
        return
    verdict(v, signed=True)
    if not v.ok and v.last_validated_root == v.root:
        say("this manifest root was validated, but no validation of it meets the policy (see the detail)")
    elif not v.ok:
        last = str(v.last_validated_root) if v.last_validated_root else "none"
        say(f"the manifest changed since the last validation (last validated root: {last})")


def show_push(res: uc.PushResult, as_json: bool) -> None:
    if as_json:
        emit_json(res.to_dict())
        return
    how = "referrers API" if res.referrers_api else "referrers tag (no referrers API)"
    say(
        f"pushed {res.layers} layers ({res.uploaded_blobs} blobs, {res.uploaded_bytes} bytes uploaded), "
        f"{len(res.referrers)} bundle(s) as referrers via the {how}"
    )
    print(res.digest)


def show_pull(res: uc.PullResult, as_json: bool) -> None:
    if as_json:
        emit_json(res.to_dict())
        return
    say(
        f"pulled {res.files} files ({res.bytes} bytes, every blob checked) into {res.out}; {len(res.bundles)} bundle(s)"
    )
    print(res.digest)


def memory_line(memory: dict[str, int]) -> str:
    mb = 1 << 20
    packed, dense, n = memory["packed_linear_bytes"], memory["dense_linear_bytes"], memory["packed_weights"]
    bpw = f" ({8 * packed / n:.2f} bits per weight vs {8 * dense / n:.0f})" if n else ""
    return (
        f"packed linear weights {packed / mb:.1f} MB resident vs {dense / mb:.1f} MB at full precision{bpw}; "
        f"process RSS {memory['rss_bytes'] / mb:.0f} MB (peak {memory['peak_rss_bytes'] / mb:.0f} MB)"
    )


def show_generation(res: uc.RunResult, as_json: bool) -> None:
    """What ``generate`` cost (its text was shown as it came)."""
    if as_json:
        emit_json(res.to_dict())
        return
    rate = f", then {res.decode_tokens_per_s:.1f} tokens/s" if res.decode_tokens_per_s else ""
    first = f"first after {res.first_token_s:.2f} s" if res.first_token_s is not None else "none"
    say(f"{res.tokens} tokens in {res.seconds:.2f} s: {first}{rate} ({res.runtime}, {res.threads} threads)")
    say(memory_line(res.memory))


def show_embeddings(res: uc.RunResult, texts: list[str], as_json: bool) -> None:
    if as_json:
        emit_json(res.to_dict())
        return
    say(f"{len(texts)} sentence(s), {res.tokens} tokens in {res.seconds:.2f} s ({res.runtime}, {res.threads} threads)")
    say(memory_line(res.memory))
    for t, v in zip(texts, res.output["embeddings"], strict=True):
        print(f"{t[:40]!r}: dim {len(v)} [{', '.join(f'{x:+.4f}' for x in v[:4])}, ...]")


def show_attest(res: uc.AttestResult, as_json: bool) -> None:
    if as_json:
        emit_json(res.to_dict())
        return
    if res.dev_instance:
        dev_warning()
    how = "manifest inline" if res.manifest_inline else "manifest by digest"
    say(f"signed as {res.identity}, logged at index {res.log_index}; statement {res.statement_bytes} bytes ({how})")
    print(f"bundle: {res.bundle}")
    if res.oms_bundle is not None:
        say(f"OpenSSF Model Signing signature: logged at index {res.oms_log_index}, {res.oms_statement_bytes} bytes")
        print(f"oms signature: {res.oms_bundle}")


def show_validation(res: uc.ValidateResult, as_json: bool) -> None:
    if as_json:
        emit_json(res.to_dict())
        return
    say(f"validation of {res.root} signed as {res.identity}, logged at index {res.log_index}")
    print(f"bundle: {res.bundle}")


def show_audit(r: uc.AuditReport, data: dict[str, Any], as_json: bool, report: Path | None) -> None:
    """An audit (``data``: its ``to_dict()``, also what the HTML ``report`` was written from)."""
    if as_json:
        emit_json(data)
        return
    audit(r)
    if report is not None:
        print(f"report: {report}")


_INVENTORY_COLUMNS = ["model", "manifest_root", "released", "log_index", "signer", "scheme", "validations", "status"]
_REPOSITORY_COLUMNS = ["tag", "digest", "manifest_root", "bundles", "status"]


def show_inventory(rows: list[dict[str, Any]], as_json: bool, csv: bool) -> None:
    """The model inventory: JSON (the rows as they are), CSV or a table (release times in UTC)."""
    if as_json:
        emit_json(rows)
        return
    cols = _INVENTORY_COLUMNS
    shown = [{**r, "released": when(r["released"]) + " UTC" if r.get("released") else ""} for r in rows]
    if csv:
        import csv as csvmod

        w = csvmod.DictWriter(sys.stdout, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(shown)
        return
    cells = [
        [short(str(r.get(c, ""))) if c in ("model", "manifest_root") else str(r.get(c, "")) for c in cols]
        for r in shown
    ]
    stdout_console().print(table(Text(f"model inventory ({len(rows)} packs)"), cols, cells))


def _repository_cell(r: dict[str, Any], c: str) -> str:
    if c in ("digest", "manifest_root"):
        return short(str(r.get(c) or ""))
    if c == "bundles":
        return ", ".join(r.get(c) or [])
    return str(r.get(c) or r.get("artifact_type") or "")


def show_repository(listed: list[dict[str, Any]], repository: str, as_json: bool) -> None:
    """An OCI repository's tags, packs and bundles."""
    if as_json:
        emit_json(listed)
        return
    cells = [[_repository_cell(r, c) for c in _REPOSITORY_COLUMNS] for r in listed]
    stdout_console().print(table(Text(f"{repository} ({len(listed)} tags)"), _REPOSITORY_COLUMNS, cells))


def show_bundle(r: uc.BundleVerified, as_json: bool) -> None:
    if as_json:
        emit_json(r.to_dict())
        return
    by = " and ".join(r.verified_by)
    say(("OK", "bold green"), f" bundle verified by {by}: signed by {r.signer}")
    if r.gap:
        say(f"  (sigstore-python did not run: {r.gap})")


def show_watch(results: Sequence[uc.WatchResult | uc.FollowResult], as_json: bool) -> None:
    """Each log's step: JSON (``ok`` only when every log's is), or a line per log."""
    if as_json:
        emit_json({"ok": all(r.ok for r in results), "logs": [r.to_dict() for r in results]})
        return
    for r in results:
        prev = f"size {r.previous.size} root {r.previous.root.hex()}" if r.previous else "none (first run)"
        cur = f"size {r.current.size} root {r.current.root.hex()}" if r.current else "unverifiable"
        extra = f" ({r.summary()})" if r.summary() else ""
        if r.ok:
            say(("OK", "bold green"), f" {r.url}: {prev} -> {cur}{extra}")
        else:
            say(("LOG MISBEHAVED", "bold red"), f" {r.url}: {r.problem}\n  stored:  {prev}\n  current: {cur}")


def show_policy(file: Path, pol: uc.Policy, as_json: bool) -> None:
    if as_json:
        emit_json({"ok": True, "policy": pol.model_dump(mode="json")})
        return
    say(
        ("OK", "bold green"),
        f" {file}: policy {pol.name!r}, {len(pol.signers.release)} release / "
        f"{len(pol.signers.validator)} validator signer(s)",
    )


def show_instance(state: uc.InstanceState, as_json: bool) -> None:
    """A created instance: where it is and how to trust it, with the DEV warning."""
    d = state.to_dict()
    if as_json:
        emit_json(d)
        return
    dev_warning()
    print(f"instance: {d['directory']}\nurl: {d['url']}\nissuer: {d['issuer']}\ntrust config: {d['trust_config']}")


def show_reconstruction(res: uc.Reconstruction, as_json: bool) -> None:
    """A written reconstruction; its note (integrity only) on stderr either way."""
    if as_json:
        emit_json(res.to_dict())
    else:
        say(f"reconstructed model written to {res.out} ({', '.join(res.shards)}), manifest root {res.root}")
    if res.note:
        warn(res.note)


def show_manifest(m: uc.Manifest, path: Path, as_json: bool) -> None:
    """A manifest: JSON, or its entries as a table and the root on stdout."""
    if as_json:
        emit_json(m.to_dict())
        return
    rows = [
        (
            e.name,
            e.dtype,
            "x".join(map(str, e.shape)),
            f"{e.quant.bits}b/g{e.quant.group_size}" if e.quant else "-",
            e.digest.hex[:16] + "...",
        )
        for e in sorted(m.tensors, key=lambda e: e.name)
    ]
    cols = ("tensor", "dtype", "shape", "quant", "sha256 (reconstructed)")
    stdout_console(width=200).print(table(Text(str(path)), cols, rows))
    print(f"manifest root: {m.root}")
