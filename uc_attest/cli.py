"""``uc-attest`` command line: thin commands over the public facade, one error mapper.

Exit codes: 0 ok, 1 verification failed, 2 usage, 3 invalid input, 4 operational error.
Humans get tables and progress on stderr; ``--json`` prints the same facts on stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import uc_attest as uc

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Prove that the model in production is the model that was validated.",
)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)  # logs (CI) get readable tables
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace the output directory if it exists.")]


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def run(fn: Callable[[], T], as_json: bool) -> T:
    """Run a command body; map every uc-attest error to its exit code, never a traceback."""
    try:
        return fn()
    except uc.VerificationFailed as exc:
        if as_json:
            _emit_json({"ok": False, **exc.to_dict()})
        else:
            _findings_table(exc.findings)
        raise typer.Exit(exc.exit_code) from None
    except uc.UcAttestError as exc:
        if as_json:
            _emit_json({"ok": False, **exc.to_dict()})
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]")
        raise typer.Exit(130) from None
    except OSError as exc:
        msg = f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)
        if as_json:
            _emit_json({"ok": False, "error": "OperationalError", "message": msg})
        err.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
        raise typer.Exit(4) from None


def _short(value: str | None) -> str:
    """Digests shortened for the human table; --json carries them in full."""
    if value and value.startswith("sha256:") and len(value) == 71:
        return value[:19] + "…"
    return value or ""


def _findings_table(findings: list[uc.Finding]) -> None:
    table = Table(title=f"[bold red]VERIFICATION FAILED[/] - {len(findings)} finding(s)", title_justify="left")
    for col in ("tensor / file", "problem", "expected", "actual"):
        table.add_column(col, overflow="fold")
    for f in findings:
        table.add_row(f.subject, f.problem, _short(f.expected), _short(f.actual))
    err.print("(full digests: --json)", style="dim")
    err.print(table)


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[str, int], None]]:
    if not err.is_terminal:
        yield lambda _n, _k: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as prog:
        task = prog.add_task(label, total=total)
        yield lambda name, k: prog.update(task, advance=k, description=f"{label} {name}")


@app.command()
def pack(
    source: Annotated[Path, typer.Argument(help="Model directory (config.json + safetensors).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Pack directory to create.")],
    bits: Annotated[int, typer.Option(help="Bits per weight code (2-8).")] = 5,
    group_size: Annotated[
        int, typer.Option(help="Weights per scale/zero-point group (multiple of 8; a power of two when rotated).")
    ] = 128,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda: same bytes on every device.")] = "auto",
    scheme_id: Annotated[
        str | None,
        typer.Option("--scheme", help="uc-rht-ldlq/1 (default), uc-rht-clip/1, uc-affine-clip/1 or uc-rtn/1."),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="Calibration file (second moments per weight, from `uc-attest calibrate`): errors are fed "
            "forward through them; their committed form is stored in the pack."
        ),
    ] = None,
    bits_override: Annotated[
        list[str] | None,
        typer.Option(help="GLOB=BITS: bits for matching tensors (repeatable; default: value projections at 6)."),
    ] = None,
    no_overrides: Annotated[bool, typer.Option(help="Same bits for every tensor (no default overrides).")] = False,
    include: Annotated[list[str] | None, typer.Option(help="Glob of tensor names to quantize (repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Glob of tensor names to keep as stored.")] = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Quantize a model into a deterministic pack with a per-tensor manifest."""

    def body() -> Any:
        base = uc.DEFAULT_SCHEME
        overrides = base.bits_overrides
        if bits_override:
            try:
                overrides = tuple((g, int(b)) for g, b in (o.rsplit("=", 1) for o in bits_override))
            except ValueError:
                raise uc.UsageError(f"--bits-override must be GLOB=BITS, got {bits_override}") from None
        scheme = uc.Scheme(
            bits=bits,
            group_size=group_size,
            id=scheme_id or base.id,
            include=tuple(include) if include else base.include,
            exclude=tuple(exclude) if exclude else base.exclude,
            bits_overrides=() if no_overrides else overrides,
        )
        with _progress("packing", None) as progress:
            return uc.write_pack(
                source, output, scheme, device, force=force, progress=progress, calibration=calibration
            )

    res = run(body, as_json)
    m = res.manifest
    quantized = sum(1 for t in m.tensors if t.quant)
    calibrated = sum(1 for t in m.tensors if t.quant and "moments" in t.quant)
    summary = {
        "ok": True,
        "pack": str(res.path),
        "root": str(m.root),
        "tensors": len(m.tensors),
        "quantized": quantized,
        "calibrated": calibrated,
        "scheme": m.scheme,
    }
    if as_json:
        _emit_json(summary)
    else:
        err.print(
            f"packed [bold]{len(m.tensors)}[/] tensors ({quantized} quantized, {calibrated} with calibration "
            f"feedback) into {res.path}"
        )
        print(f"manifest root: {m.root}")


@app.command()
def calibrate(
    source: Annotated[Path, typer.Argument(help="Model directory loadable by transformers (AutoModel).")],
    text: Annotated[Path, typer.Option(help="Calibration text: one sample per non-empty line (UTF-8).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Calibration file to write (safetensors).")],
    max_length: Annotated[int, typer.Option(help="Tokens per sample at most.")] = 128,
    as_json: JsonOpt = False,
) -> None:
    """Measure the second moments of every linear layer's input over calibration text (for `pack --calibration`)."""

    def body() -> Any:
        try:
            lines = [ln.strip() for ln in text.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise uc.UsageError(f"{text}: cannot read calibration text: {exc}") from None
        return uc.calibrate(source, lines, output, max_length)

    res = run(body, as_json)
    if as_json:
        _emit_json(res)
    else:
        err.print(f"calibration: {res['tensors']} layers over {res['texts']} texts -> {res['output']}")


def _print_verdict(v: uc.Verdict, title: str) -> None:
    table = Table(
        title=("[bold green]ALLOWED[/]" if v.ok else "[bold red]DENIED[/]") + f" {title}", title_justify="left"
    )
    for col in ("rule", "result", "detail", "expected / actual / hint"):
        table.add_column(col, overflow="fold")
    for c in v.checks:
        result = "[yellow]skipped[/]" if c.skipped else ("[green]pass[/]" if c.ok else "[red]FAIL[/]")
        extra = "\n".join(
            x
            for x in (
                f"expected: {_short(c.expected)}" if c.expected and not c.ok else "",
                f"actual: {_short(c.actual)}" if c.actual and not c.ok else "",
                f"hint: {c.hint}" if c.hint else "",
            )
            if x
        )
        table.add_row(c.rule, result, c.detail, extra)
    err.print(table)
    if v.findings:
        _findings_table(v.findings)


@app.command()
def verify(
    pack_dir: Annotated[Path, typer.Argument(help="Pack directory to check.")],
    policy: Annotated[Path | None, typer.Option(help="Policy file (policies/*.yaml): signers, rules, gate.")] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Expected (validated) manifest; default: the pack's own.")
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="Release bundle (default with --policy: <pack>.sigstore.json).")
    ] = None,
    validation: Annotated[
        list[Path] | None, typer.Option(help="Validation bundle(s) (default: <pack>.validation.sigstore.json).")
    ] = None,
    identity: Annotated[str | None, typer.Option(help="Expected signer identity (without --policy), exact.")] = None,
    issuer: Annotated[str | None, typer.Option(help="Expected OIDC issuer (default with --instance: its own).")] = None,
    trust_config: Annotated[Path | None, typer.Option(help="sigstore ClientTrustConfig file.")] = None,
    instance: Annotated[Path | None, typer.Option(help="Embedded instance directory (its trust root).")] = None,
    rebuild_from: Annotated[Path | None, typer.Option(help="Source model: re-quantize and compare.")] = None,
    device: Annotated[str, typer.Option(help="Rebuild device: auto, cpu or cuda.")] = "auto",
    offline: Annotated[bool, typer.Option(help="Do not contact the log to re-fetch the entry.")] = False,
    workers: Annotated[int | None, typer.Option(help="Parallel decode/hash workers (default: cores).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a pack. Exit 0 allowed, 1 denied, 2 usage, 3 invalid policy/input, 4 operational.

    With --policy (or --bundle): signature and identity per role, log proof (offline) and the
    entry re-fetched from the log when reachable, statement <-> pack files and manifest, every
    tensor, constraints, the validation attestation, and a rebuild from source when asked.
    Without: every tensor against the pack's (or a validated) manifest, plus --rebuild-from.
    """
    if manifest is not None and (policy or bundle or rebuild_from):
        _usage("--manifest is exclusive with --policy/--bundle/--rebuild-from (they carry the signed manifest)")
    if policy is None and bundle is None and rebuild_from is None:
        if identity or issuer or trust_config or instance or validation:
            _usage("--identity/--issuer/--trust-config/--instance/--validation need --bundle or --policy")

        def plain() -> uc.PackCheck:
            with _progress("verifying", None) as progress:
                return uc.verify_pack(pack_dir, manifest, workers=workers, progress=progress)

        res = run(plain, as_json)
        if as_json:
            _emit_json(res.to_dict())
        else:
            err.print(
                f"[bold green]OK[/] {res.tensors_checked} tensors and {res.files_checked} files match "
                f"{res.manifest_source}"
            )
            print(f"manifest root: {res.root}")
        return

    def body() -> uc.Verdict:
        with _progress("verifying", None) as progress:
            return uc.verify(
                pack_dir,
                policy=policy,
                bundle=bundle,
                validations=validation,
                identity=identity,
                issuer=issuer,
                trust_config=trust_config,
                instance=instance,
                rebuild_from=rebuild_from,
                device=device,
                online=not offline,
                workers=workers,
                progress=progress,
            )

    v = run(body, as_json)
    if as_json:
        _emit_json(v.to_dict())
    else:
        _print_verdict(v, str(pack_dir) + (f" under {policy}" if policy else ""))
        if v.root:
            print(f"manifest root: sha256:{v.root}")
    if not v.ok:
        raise typer.Exit(1)


@app.command()
def validate(
    pack_dir: Annotated[Path, typer.Argument(help="Pack directory that was validated.")],
    report: Annotated[Path, typer.Option(help="Validation report METRICS.json (evaluation_set, metrics).")],
    trust_config: Annotated[Path | None, typer.Option(help="sigstore ClientTrustConfig.")] = None,
    instance: Annotated[Path | None, typer.Option(help="Embedded instance directory (must be serving).")] = None,
    identity_token: Annotated[str | None, typer.Option(help="OIDC identity token (else env or ambient CI).")] = None,
    identity: Annotated[str | None, typer.Option(help="With --instance: the dev identity to sign as.")] = None,
    bundle: Annotated[Path | None, typer.Option(help="Output (default: <pack>.validation.sigstore.json).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign and log a validation attestation: this report describes exactly this reconstruction."""

    def body() -> Any:
        trust = uc.select_trust(trust_config, instance)
        return uc.validate_pack(
            pack_dir, report, trust, identity_token=identity_token, dev_identity=identity, bundle_out=bundle
        )

    res = run(body, as_json)
    out = {
        "ok": True,
        "bundle": str(res.bundle),
        "root": f"sha256:{res.root}",
        "log_index": res.log_index,
        "identity": res.identity,
        "metrics": res.metrics,
    }
    if as_json:
        _emit_json(out)
    else:
        err.print(f"validation of sha256:{res.root} signed as {res.identity}, logged at index {res.log_index}")
        print(f"bundle: {res.bundle}")


@app.command("gate")
def gate_cmd(
    pack_dir: Annotated[Path, typer.Argument(help="Deployed pack directory.")],
    policy: Annotated[Path, typer.Option(help="Policy with a validation section.")],
    validation: Annotated[list[Path] | None, typer.Option(help="Validation bundle(s).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change gate: exit 0 if this manifest root has a valid validation attestation, else 1 naming the last
    validated root."""
    v = run(lambda: uc.gate(pack_dir, policy, validation), as_json)
    if as_json:
        _emit_json(v.to_dict())
    else:
        _print_verdict(v, f"{pack_dir}: manifest root sha256:{v.root}")
        if not v.ok:
            last = f"sha256:{v.last_validated_root}" if v.last_validated_root else "none"
            err.print(f"the manifest changed since the last validation (last validated root: {last})")
    if not v.ok:
        raise typer.Exit(1)


@app.command("audit")
def audit_cmd(
    pack_dir: Annotated[Path | None, typer.Argument(help="Pack directory (its manifest root and files).")] = None,
    manifest_root: Annotated[str | None, typer.Option(help="Audit a manifest root (hex) instead of a pack.")] = None,
    digest: Annotated[str | None, typer.Option(help="Audit any subject digest (sha256:<hex>).")] = None,
    trust_config: Annotated[Path | None, typer.Option(help="sigstore ClientTrustConfig (its log).")] = None,
    instance: Annotated[Path | None, typer.Option(help="Embedded instance directory.")] = None,
    state: Annotated[Path | None, typer.Option(help="Monitor state (log watch): prove consistency with it.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every log entry about a model, verified, as a chain of custody; exit 1 if anything does not verify."""

    def body() -> Any:
        return uc.audit(
            pack_dir,
            manifest_root=manifest_root,
            digest=digest,
            trust_config=trust_config,
            instance=instance,
            state=state,
        )

    r = run(body, as_json)
    data = r.to_dict()
    if report is not None:
        run(lambda: report.write_text(uc.render_report_html(data), encoding="utf-8"), as_json)
    if as_json:
        _emit_json(data)
    else:
        table = Table(
            title=("[bold green]CONSISTENT[/]" if r.ok else "[bold red]PROBLEMS FOUND[/]") + f" audit of {r.target}",
            title_justify="left",
        )
        for col in ("when (UTC)", "kind", "log index", "signer", "ok", "details"):
            table.add_column(col, overflow="fold")
        from datetime import UTC, datetime

        for e in r.events:
            when = datetime.fromtimestamp(e.time, UTC).strftime("%Y-%m-%d %H:%M:%S") if e.time else "?"
            det = "; ".join(e.problems) or ", ".join(f"{k}={v}" for k, v in e.details.items() if k != "scheme")
            table.add_row(when, e.kind, str(e.log_index), e.signer, "yes" if e.ok else "[red]NO[/]", det)
        err.print(table)
        for c in r.checks:
            mark = "[green]pass[/]" if c.ok else "[red]FAIL[/]"
            err.print(f"{mark} {c.rule}: {c.detail}" + (f" ({c.hint})" if c.hint else ""))
        err.print(f"{r.requests} log requests in {r.seconds:.2f} s")
        if report is not None:
            print(f"report: {report}")
    if not r.ok:
        raise typer.Exit(1)


@app.command("inventory")
def inventory_cmd(
    trust_config: Annotated[Path | None, typer.Option(help="sigstore ClientTrustConfig (its log).")] = None,
    instance: Annotated[Path | None, typer.Option(help="Embedded instance directory.")] = None,
    as_json: JsonOpt = False,
    csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
) -> None:
    """The model inventory: models -> packs (manifest roots) -> validations -> status."""
    rows = run(lambda: uc.inventory(trust_config=trust_config, instance=instance), as_json)
    if as_json:
        _emit_json(rows)
        return
    cols = ["model", "manifest_root", "released", "log_index", "signer", "scheme", "validations", "status"]
    if csv:
        import csv as csvmod

        w = csvmod.DictWriter(sys.stdout, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        return
    table = Table(title=f"model inventory ({len(rows)} packs)", title_justify="left")
    for c in cols:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(
            *[_short(str(r.get(c, ""))) if c in ("model", "manifest_root") else str(r.get(c, "")) for c in cols]
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@app.command("verify-bundle")
def verify_bundle_cmd(
    artifact: Annotated[str, typer.Argument(help="The artifact file, or sha256:<hex>.")],
    bundle: Annotated[Path, typer.Option(help="Sigstore bundle (v0.1-v0.3).")],
    certificate_identity: Annotated[str | None, typer.Option(help="Expected signer identity.")] = None,
    certificate_oidc_issuer: Annotated[str | None, typer.Option(help="Expected OIDC issuer.")] = None,
    key: Annotated[Path | None, typer.Option(help="Managed public key (not supported by sigstore-python).")] = None,
    trusted_root: Annotated[Path | None, typer.Option(help="Trusted root (default: public-good, offline).")] = None,
    staging: Annotated[bool, typer.Option(help="Sigstore staging's trusted root (as shipped, offline).")] = False,
) -> None:
    """Verify any Sigstore bundle (sigstore-conformance client protocol); exit 0 = verified."""
    run(
        lambda: uc.verify_any_bundle(
            bundle,
            artifact,
            identity=certificate_identity,
            issuer=certificate_oidc_issuer,
            key=key,
            trusted_root=trusted_root,
            staging=staging,
        ),
        False,
    )
    err.print("[bold green]OK[/] bundle verified")


log_app = typer.Typer(no_args_is_help=True, help="Transparency-log tools for auditors.")
app.add_typer(log_app, name="log")


@log_app.command("watch")
def log_watch(
    state: Annotated[Path, typer.Option(help="Monitor state file (created on first run).")],
    trust_config: Annotated[Path | None, typer.Option(help="sigstore ClientTrustConfig (its Rekor logs).")] = None,
    instance: Annotated[Path | None, typer.Option(help="Embedded instance directory.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify each log's new checkpoint extends the last one seen; exit 1 on a fork or rollback."""
    results = run(lambda: uc.watch_log(state, trust_config, instance), as_json)
    if as_json:
        _emit_json({"ok": all(r.ok for r in results), "logs": [r.to_dict() for r in results]})
    for r in results:
        if as_json:
            break
        prev = f"size {r.previous.size} root {r.previous.root.hex()}" if r.previous else "none (first run)"
        cur = f"size {r.current.size} root {r.current.root.hex()}" if r.current else "unverifiable"
        if r.ok:
            err.print(f"[bold green]OK[/] {r.url}: {prev} -> {cur}")
        else:
            err.print(f"[bold red]LOG MISBEHAVED[/] {r.url}: {r.problem}\n  stored:  {prev}\n  current: {cur}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


policy_app = typer.Typer(no_args_is_help=True, help="Verification policies.")
app.add_typer(policy_app, name="policy")


@policy_app.command("check")
def policy_check(file: Annotated[Path, typer.Argument(help="Policy YAML file.")], as_json: JsonOpt = False) -> None:
    """Validate a policy file (exit 3 naming file, line and field)."""
    pol = run(lambda: uc.load_policy(file), as_json)
    if as_json:
        _emit_json({"ok": True, "policy": pol.model_dump(mode="json")})
    else:
        err.print(
            f"[bold green]OK[/] {file}: policy {pol.name!r}, "
            f"{len(pol.signers.release)} release / {len(pol.signers.validator)} validator signer(s)"
        )


@policy_app.command("schema")
def policy_schema_cmd() -> None:
    """Print the policy JSON Schema."""
    _emit_json(uc.policy_schema())


@app.command()
def attest(
    pack_dir: Annotated[Path, typer.Argument(help="Pack directory to attest.")],
    trust_config: Annotated[
        Path | None, typer.Option(help="sigstore ClientTrustConfig (public-good, private).")
    ] = None,
    instance: Annotated[Path | None, typer.Option(help="Embedded instance directory (must be serving).")] = None,
    identity_token: Annotated[str | None, typer.Option(help="OIDC identity token (else env or ambient CI).")] = None,
    identity: Annotated[str | None, typer.Option(help="With --instance: the dev identity to sign as.")] = None,
    bundle: Annotated[Path | None, typer.Option(help="Output bundle (default: <pack>.sigstore.json).")] = None,
    inline_manifest: Annotated[
        str, typer.Option(help="auto, always or never: manifest inside the statement.")
    ] = "auto",
    pack_device: Annotated[str, typer.Option(help="Device the pack was built on (recorded).")] = "unrecorded",
    as_json: JsonOpt = False,
) -> None:
    """Sign the pack's provenance statement (DSSE, Sigstore bundle v0.3) and record it in the log."""

    def body() -> Any:
        trust = uc.select_trust(trust_config, instance)
        return uc.attest_pack(
            pack_dir,
            trust,
            identity_token=identity_token,
            dev_identity=identity,
            bundle_out=bundle,
            inline=inline_manifest,
            pack_device=pack_device,
        )

    res = run(body, as_json)
    out = {
        "ok": True,
        "bundle": str(res.bundle),
        "root": f"sha256:{res.root}",
        "log_index": res.log_index,
        "identity": res.identity,
        "statement_bytes": res.statement_bytes,
        "manifest_inline": res.manifest_inline,
    }
    if instance is not None:
        out["warning"] = "signed by a DEV instance: its OIDC issuer can mint any identity"
    if as_json:
        _emit_json(out)
    else:
        if instance is not None:
            err.print("[yellow]DEV INSTANCE[/]: its OIDC issuer can mint any identity; use it for demos and tests")
        err.print(
            f"signed as {res.identity}, logged at index {res.log_index}; statement {res.statement_bytes} "
            f"bytes ({'manifest inline' if res.manifest_inline else 'manifest by digest'})"
        )
        print(f"bundle: {res.bundle}")


instance_app = typer.Typer(no_args_is_help=True, help="The embedded Sigstore-compatible DEV instance.")
app.add_typer(instance_app, name="instance")


@instance_app.command("init")
def instance_init(
    directory: Annotated[Path, typer.Argument(help="State directory to create.")],
    port: Annotated[int, typer.Option(help="Loopback port the instance will serve on.")] = 8787,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Create keys (0600), CA certificates, the log and trust_config.json."""
    state = run(lambda: uc.init_instance(directory, port, force=force), as_json)
    tc = state.root / "trust_config.json"
    if as_json:
        _emit_json(
            {
                "ok": True,
                "directory": str(state.root),
                "url": state.url,
                "issuer": state.issuer,
                "trust_config": str(tc),
                "warning": "DEV instance: its OIDC issuer can mint any identity",
            }
        )
    else:
        err.print("[yellow]DEV INSTANCE[/]: its OIDC issuer can mint any identity")
        print(f"instance: {state.root}\nurl: {state.url}\nissuer: {state.issuer}\ntrust config: {tc}")


@instance_app.command("serve")
def instance_serve(
    directory: Annotated[Path, typer.Argument(help="Instance state directory.")],
    port: Annotated[int | None, typer.Option(help="Override the port (the trust config names the init port).")] = None,
) -> None:
    """Serve Fulcio, Rekor v1 and the dev OIDC issuer on 127.0.0.1 until interrupted."""
    server = run(lambda: uc.instance_server(directory, port), False)
    err.print(f"[yellow]DEV INSTANCE[/] serving on http://127.0.0.1:{server.port} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@instance_app.command("token")
def instance_token(
    directory: Annotated[Path, typer.Argument(help="Instance state directory.")],
    identity: Annotated[str, typer.Option(help="Identity to mint: an email or a URI.")],
    lifetime: Annotated[int, typer.Option(help="Token lifetime in seconds.")] = 600,
) -> None:
    """Mint a DEV identity token (printed on stdout)."""
    print(run(lambda: uc.dev_token(directory, identity, lifetime), False))


def _usage(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


@app.command()
def reconstruct(
    pack_dir: Annotated[Path, typer.Argument(help="Pack directory.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the reconstructed model.")],
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the reconstructed model as standard safetensors (the source's dtype)."""
    shards = run(lambda: uc.export_reconstruction(pack_dir, output, force=force), as_json)
    if as_json:
        _emit_json({"ok": True, "output": str(output), "shards": shards})
    else:
        err.print(f"reconstructed model written to {output} ({', '.join(shards)})")


@app.command("manifest")
def manifest_cmd(
    pack_or_file: Annotated[Path, typer.Argument(help="Pack directory or manifest file.")],
    prove: Annotated[str | None, typer.Option(help="Print the Merkle inclusion proof of this tensor.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the manifest root and entries (or one tensor's inclusion proof)."""
    path = pack_or_file / uc.MANIFEST_NAME if pack_or_file.is_dir() else pack_or_file
    m = run(lambda: uc.load_manifest(path), as_json)
    if prove is not None:
        try:
            proof = m.prove(prove)
        except KeyError:
            err.print(f"[bold red]error:[/] tensor {prove!r} is not in {path}")
            raise typer.Exit(3) from None
        _emit_json(proof)
        return
    if as_json:
        _emit_json(m.to_dict())
        return
    table = Table(title=f"{path}", title_justify="left")
    for col in ("tensor", "dtype", "shape", "quant", "sha256 (reconstructed)"):
        table.add_column(col, overflow="fold")
    for e in sorted(m.tensors, key=lambda e: e.name):
        q = f"{e.quant['bits']}b/g{e.quant['group_size']}" if e.quant else "-"
        table.add_row(e.name, e.dtype, "x".join(map(str, e.shape)), q, e.digest.hex[:16] + "...")
    Console().print(table)
    print(f"manifest root: {m.root}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
