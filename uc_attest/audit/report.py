"""Self-contained HTML rendering of an audit report (no network, no external assets, printable)."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any

from ..core.fsutil import atomic_write_bytes
from .kinds import EventKind

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:70rem;color:#1b1f23}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:1.8rem 0 .6rem;border-bottom:1px solid #ddd}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;word-break:break-all}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-weight:600;color:#fff}
.ok{background:#1a7f37}.fail{background:#cf222e}.skip{background:#9a6700}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr.bad td{background:#ffebe9}
.timeline{list-style:none;padding:0;border-left:3px solid #d0d7de;margin-left:.6rem}
.timeline li{margin:0 0 1rem 1rem;position:relative}
.timeline li:before{content:"";position:absolute;left:-1.45rem;top:.3rem;width:.8rem;height:.8rem;border-radius:50%;background:#0969da}
.timeline li.bad:before{background:#cf222e}.meta{color:#57606a}
@media print{details{display:block}details>summary{display:none}body{margin:0;max-width:none}}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _when(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if t else "unknown"


def _badge(ok: bool, skipped: bool = False) -> str:
    if skipped:
        return '<span class="badge skip">skipped</span>'
    return '<span class="badge ok">pass</span>' if ok else '<span class="badge fail">FAIL</span>'


def error_plot(tensors: list[dict[str, Any]]) -> str:
    """Inline SVG: relative squared error (ppm) per quantized tensor, one horizontal bar each."""
    rows = [t for t in tensors if t.get("rel_err_ppm") is not None]
    if not rows:
        return "<p>No quantized tensors with a quality record.</p>"
    top = max(int(t["rel_err_ppm"]) for t in rows) or 1
    bar_h, label_w, width = 14, 330, 760
    h = bar_h * len(rows) + 30
    svg_open = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" '
        'aria-label="relative error per tensor">'
    )
    parts = [svg_open]
    for i, t in enumerate(rows):
        y = 10 + i * bar_h
        w = int((width - label_w - 70) * int(t["rel_err_ppm"]) / top)
        color = "#0969da" if t.get("bits") == 5 else "#8250df"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 10}" font-size="10" text-anchor="end">{_e(t["name"])}</text>'
            f'<rect x="{label_w}" y="{y + 1}" width="{max(w, 1)}" height="{bar_h - 3}" fill="{color}">'
            f"<title>{_e(t['name'])}: {t['rel_err_ppm']} ppm, {t.get('bits')} bits</title></rect>"
            f'<text x="{label_w + w + 4}" y="{y + 10}" font-size="10">{t["rel_err_ppm"]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _headline(report: dict[str, Any]) -> str:
    if not report["ok"]:
        return '<span class="badge fail">PROBLEMS FOUND</span>'
    if report.get("manifest_root") and report.get("validated") is False:
        return '<span class="badge skip">CONSISTENT, NOT VALIDATED YET</span>'
    return '<span class="badge ok">CONSISTENT</span>'


def _check_rows(checks: list[dict[str, Any]]) -> str:
    return "".join(
        f'<tr class="{"" if c["ok"] else "bad"}"><td>{_e(c["rule"])}</td><td>{_badge(c["ok"], c.get("skipped", False))}'
        f"</td><td>{_e(c.get('detail', ''))}</td><td>{_e(c.get('hint', ''))}</td></tr>"
        for c in checks
    )


def _release_summary(d: dict[str, Any]) -> str:
    """A release: builder, scheme, source, files, calibration and the source's signature."""
    scheme = d["scheme"] if isinstance(d.get("scheme"), dict) else {}
    what = (
        f"built by <code>{_e(d.get('builder'))}</code>, scheme <code>{_e(scheme.get('id'))}"
        f"</code> {_e(scheme.get('bits'))} bits / group {_e(scheme.get('group_size'))}"
        f", source <code>{_e(str(d.get('source_digest') or '')[:23])}…</code>, {_e(d.get('files'))} files"
    )
    cal = d.get("calibration")
    if isinstance(cal, dict):
        params = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted((cal.get("params") or {}).items()))
        what += f", calibration <code>{_e(cal.get('method'))}</code> ({params}; {_e(cal.get('tool'))})"
    else:
        what += ", no calibration"
    sig = d.get("source_signature")
    if isinstance(sig, dict):
        what += f", source signed by <code>{_e(sig.get('identity'))}</code> ({_e(sig.get('method'))})"
    return what


def _event_summary(kind: str, d: dict[str, Any]) -> str:
    """What an event of ``kind`` with ``details`` ``d`` says, as HTML."""
    if kind == EventKind.RELEASE:
        return _release_summary(d)
    if kind == EventKind.SOURCE:
        return (
            f"OpenSSF Model Signing signature of <code>{_e(d.get('model'))}</code> (model root "
            f"<code>{_e(str(d.get('oms_root') or '')[:23])}…</code>, {_e(d.get('method'))}), kept in the pack as "
            f"<code>{_e(d.get('signature'))}</code>: {_e(d.get('kept_signature', 'not checked: no pack given'))}"
        )
    if kind == EventKind.OMS:
        return (
            f"OpenSSF Model Signing signature of the pack: model root <code>"
            f"{_e(str(d.get('oms_root') or '')[:23])}…</code>, {_e(d.get('resources'))} files"
        )
    if kind == EventKind.VALIDATION:
        metrics = d["metrics"] if isinstance(d.get("metrics"), dict) else {}
        shown = ", ".join(f"{_e(k)} = {_e(v)}" for k, v in sorted(metrics.items()))
        return f"evaluation set <code>{_e(d.get('evaluation_set'))}</code>: {shown}"
    return _e(d)


def _event_item(ev: dict[str, Any]) -> str:
    """One event of the timeline: kind, verdict, time, log index, signer, summary, root, problems."""
    d = ev["details"]
    what = _event_summary(ev["kind"], d)
    problems = "".join(f"<div style='color:#cf222e'>{_e(p)}</div>" for p in ev["problems"])
    root = d.get("root")
    return (
        f'<li class="{"" if ev["ok"] else "bad"}"><strong>{_e(ev["kind"])}</strong> {_badge(ev["ok"])} '
        f'<span class="meta">{_when(ev["time"])} · log index {_e(ev["log_index"] if ev["log_index"] >= 0 else "-")} · signed by '
        f"<code>{_e(ev['signer'])}</code> via <code>{_e(ev['issuer'])}</code></span><br>{what}"
        + (f'<br><span class="meta">root <code>{_e(root)}</code></span>' if root else "")
        + f"{problems}</li>"
    )


def _tensor_rows(tensors: list[dict[str, Any]]) -> str:
    return "".join(
        f'<tr><td class="mono">{_e(t["name"])}</td><td>{_e(t["dtype"])}</td><td>{_e(" x ".join(map(str, t["shape"])))}'
        f"</td><td>{_e(t.get('bits') or '—')}</td><td>{_e(t.get('rel_err_ppm') if t.get('rel_err_ppm') is not None else '—')}"
        f'</td><td class="mono">{_e((t.get("moments") or "—")[:19])}</td><td class="mono">{_e(t["digest"])}</td></tr>'
        for t in tensors
    )


def render_report_html(report: dict[str, Any]) -> str:
    """The audit report (``AuditReport.to_dict()``) as one self-contained HTML page."""
    headline = _headline(report)
    checks = _check_rows(report["checks"])
    events = [_event_item(ev) for ev in report["events"]]
    tensors = _tensor_rows(report["tensors"])
    cp = report.get("checkpoint") or {}
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>uc-attest audit: {_e(report["target"])}</title>
<style>{CSS}</style></head><body>
<h1>Model audit {headline}</h1>
<div class="meta">target <code>{_e(report["target"])}</code><br>manifest root <code>{_e(report["manifest_root"])}</code><br>
log <code>{_e(report["log"])}</code> at size {_e(cp.get("size", "?"))}, root <code>{_e(cp.get("root", "?"))}</code> ·
{_e(report["requests"])} requests in {_e(report["seconds"])} s</div>
<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>detail</th><th>hint</th></tr>{checks}</table>
<h2>Chain of custody</h2><ol class="timeline">{"".join(events) or "<li>No log entry concerns this model.</li>"}</ol>
<h2>Quantization error per tensor (relative squared error, ppm)</h2>{error_plot(report["tensors"])}
<h2>Tensors</h2><details><summary>{len(report["tensors"])} tensors with their reconstruction digests</summary>
<table><tr><th>tensor</th><th>dtype</th><th>shape</th><th>bits</th><th>rel. err (ppm)</th><th>calibration moments</th><th>sha256</th></tr>{tensors}</table></details>
</body></html>
"""


def write_report_html(report: dict[str, Any], path: Path) -> None:
    """Write the HTML audit report atomically (a reader sees the old file or the whole new one)."""
    atomic_write_bytes(Path(path), render_report_html(report).encode("utf-8"))
