"""``uc-attest`` commands: thin clients of the public facade; output through ``render``, codes through ``exits``.

Exit codes: 0 ok, 1 verification failed or denied, 2 usage, 3 invalid input, 4 operational error,
70 internal error (a bug), 130 interrupted. Humans get tables and progress on stderr; ``--json``
prints the same facts on stdout.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

import uc_attest as uc

from . import options, render
from .exits import mapped, usage
from .options import Group, InstanceOpt, TrustOpt, grouped
from .render import emit_json, say

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's help renderer (markdown-it, ...) costs more than the CLI's start
    context_settings={"max_content_width": 120},
    help="Prove that the model in production is the model that was validated.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"uc-attest {version('uc-attest')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            print("uc-attest (not installed)")
        raise typer.Exit(0)


@app.callback()
def _main(
    _version_flag: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Print the version and exit.")
    ] = False,
) -> None:
    """Prove that the model in production is the model that was validated."""


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace the output directory if it exists.")]
RuntimeOpt = Annotated[
    str | None,
    typer.Option(
        help="The serving runtime: fast, exact or reference (this uc-attest's), or external:TEXT (another runtime)."
    ),
]


@app.command()
@mapped
@grouped
def pack(
    source: Annotated[Path, typer.Argument(metavar="SOURCE", help="Model directory (config.json + safetensors).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Pack directory to create.")],
    *,
    scheme: Annotated[uc.Scheme, Group(options.scheme_options)],
    device: Annotated[str, typer.Option(help="auto, cpu or cuda: same bytes on every device.")] = "auto",
    calibration: Annotated[uc.Calibration | uc.MomentsFile | None, Group(options.calibration_options)],
    allocation: Annotated[uc.Allocation | None, Group(options.allocation_options)],
    source_signature: Annotated[uc.OmsSignature | None, Group(options.source_signature_options)],
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Quantize a model into a deterministic pack with a per-tensor manifest (with --source-signature, only
    a source whose OpenSSF Model Signing signature verifies and covers every file read)."""
    request = uc.PackRequest(
        source,
        output,
        scheme,
        device,
        calibration=calibration,
        allocation=allocation,
        source_signature=source_signature,
        force=force,
    )
    rank0 = os.environ.get("RANK", "0") in ("", "0")  # torchrun: rank 0 says it
    if calibration is None and scheme.row_signs and rank0:
        render.warn(f"packing without calibration. {uc.NO_CALIBRATION_COST}")
    t0 = time.perf_counter()
    with render.progress("packing") as bar:
        res = uc.run_pack(request, progress=bar, warn=render.warn)
    if res.rank == 0:  # one rank of a distributed pack (torchrun): rank 0 reports for the job
        render.show_pack(res, bar, time.perf_counter() - t0, as_json)


@app.command()
@mapped
def calibrate(
    source: Annotated[
        Path, typer.Argument(metavar="SOURCE", help="Model directory loadable by transformers (AutoModel).")
    ],
    text: Annotated[Path, typer.Option(help="Calibration text: one sample per non-empty line (UTF-8).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Calibration file to write (safetensors).")],
    max_length: Annotated[int, typer.Option(help="Tokens per sample at most.")] = 128,
    as_json: JsonOpt = False,
) -> None:
    """Measure the second moments of every linear layer's input over calibration text (for `pack --calibration`)."""
    res = uc.calibrate(source, uc.read_calibration_text(text), output, max_length)
    render.show_calibration(res, as_json)


@app.command()
@mapped
@grouped
def verify(
    target: Annotated[
        str,
        typer.Argument(metavar="TARGET", help="Pack directory to check, or oci://HOST/REPO@sha256:… in a registry."),
    ],
    *,
    anchor: Annotated[uc.PackAnchor, Group(options.verify_anchor_options)],
    rebuild_from: Annotated[Path | None, typer.Option(help="Source model: re-quantize and compare.")] = None,
    device: Annotated[str, typer.Option(help="Rebuild device: auto, cpu or cuda.")] = "auto",
    offline: Annotated[
        bool,
        typer.Option(
            help="Air-gapped: do not ask the log again; public-good/staging roots as sigstore-python ships them."
        ),
    ] = False,
    workers: Annotated[int | None, typer.Option(help="Parallel decode/hash workers (default: cores).")] = None,
    plain_http: Annotated[bool, typer.Option(help="oci:// over plain HTTP (loopback addresses only).")] = False,
    shard_digests: Annotated[
        bool,
        typer.Option(
            help="Also hash every shard file against its signed digest (byte-identical files); without it each "
            "shard is proven by its tensors, every served byte matched."
        ),
    ] = False,
    split_over_ranks: Annotated[
        bool,
        typer.Option(
            help="Under torchrun: the ranks split the tensors and each gives the one verdict (every rank runs "
            "this command; docs/distributed.md)."
        ),
    ] = False,
    runtime: RuntimeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a pack (a plain model directory's OpenSSF Model Signing signature: `verify-model`). Exit 0
    allowed, 1 denied, 2 usage, 3 invalid policy/input, 4 operational. Without a trust anchor it refuses
    (exit 2) unless --integrity-only.

    With --policy (or --bundle): signature and identity per role, log proof (offline) and the
    entry re-fetched from the log when reachable, statement <-> pack files and manifest, every
    tensor, constraints, the validation attestation, and a rebuild from source when asked.
    Without: every tensor against the pack's (or a validated) manifest, plus --rebuild-from.
    """
    if not target.startswith("oci://") and plain_http:
        raise uc.UsageError("--plain-http goes with an oci:// reference")
    rebuild = None if rebuild_from is None else uc.Rebuild(rebuild_from, device)
    tensors = uc.TensorCheck(workers, None, shard_digests, split_over_ranks)
    v = _verify_pack(target, anchor, rebuild, tensors, plain_http, offline, runtime)
    render.show_verdict(v, as_json, signed=anchor.signed, kept=isinstance(anchor, uc.KeptManifest))
    if not v.ok:
        raise typer.Exit(v.exit_code)


def _verify_pack(
    target: str,
    anchor: uc.Anchor,
    rebuild: uc.Rebuild | None,
    tensors: uc.TensorCheck,
    plain_http: bool,
    offline: bool,
    runtime: str | None,
) -> uc.Verdict:
    """``verify`` of a pack directory, or of an oci:// reference with the bundles found as its referrers."""
    if isinstance(anchor, uc.KeptManifest) and rebuild is not None:
        raise uc.UsageError("--manifest is exclusive with --rebuild-from (the rebuild uses the pack's manifest)")
    with render.progress("verifying") as progress:
        if target.startswith("oci://"):
            named = isinstance(anchor, uc.PolicyAnchor | uc.SignedBy) and anchor.bundle is not None
            if rebuild is not None or named or (isinstance(anchor, uc.PolicyAnchor) and anchor.validations):
                raise uc.UsageError("an oci:// pack is verified with the bundles found as its referrers")
            return uc.verify_oci(target, anchor, plain_http=plain_http, online=not offline, runtime=_runtime(runtime))
        return uc.verify(
            Path(target),
            anchor,
            rebuild=rebuild,
            tensors=replace(tensors, progress=progress),
            online=not offline,
            runtime=_runtime(runtime),
        )


verify_model_app = typer.Typer(
    no_args_is_help=True,
    help="Verify a plain model directory (no pack) against its OpenSSF Model Signing signature, by the method "
    "it was signed with: sigstore, key or certificate (as model_signing verify). Exit 0 verified, 1 not "
    "(each missing, extra or changed file named), 2 usage, 3 invalid input, 4 operational.",
)
app.add_typer(verify_model_app, name="verify-model")

ModelDirArg = Annotated[
    Path, typer.Argument(metavar="MODEL_DIR", help="Model directory the signature covers (every file checked).")
]


def _verify_oms(model_dir: Path, signature: uc.OmsSignature, *, online: bool, as_json: bool) -> None:
    """``verify-model METHOD``: the signature by its method, then every file; the verdict shown."""
    v = uc.verify_oms_model(model_dir, signature, online=online)
    render.show_verdict(v, as_json, signed=True, root=False)
    if not v.ok:
        raise typer.Exit(v.exit_code)


@verify_model_app.command("sigstore")
@mapped
@grouped
def verify_model_sigstore(
    model_dir: ModelDirArg,
    *,
    oms: Annotated[uc.OmsSignature, Group(options.oms_sigstore_options)],
    offline: Annotated[
        bool,
        typer.Option(
            help="Air-gapped: do not ask the log again; public-good/staging roots as sigstore-python ships them."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Sigstore method: --identity signed it, under one trust root (--instance or --trust-config).

    --issuer names their OIDC issuer (needed with --trust-config; an instance's own is the default)."""
    _verify_oms(model_dir, oms, online=not offline, as_json=as_json)


@verify_model_app.command("key")
@mapped
@grouped
def verify_model_key(
    model_dir: ModelDirArg,
    *,
    oms: Annotated[uc.OmsSignature, Group(options.oms_key_options)],
    as_json: JsonOpt = False,
) -> None:
    """Key method: signed with the private key whose public key is --key (no log, no trust root)."""
    _verify_oms(model_dir, oms, online=True, as_json=as_json)


@verify_model_app.command("certificate")
@mapped
@grouped
def verify_model_certificate(
    model_dir: ModelDirArg,
    *,
    oms: Annotated[uc.OmsSignature, Group(options.oms_certificate_options)],
    as_json: JsonOpt = False,
) -> None:
    """Certificate method: signed under a private PKI whose CA certificates are --cert-chain.

    With --identity and --issuer (both or neither) the signing certificate must also name that signer."""
    _verify_oms(model_dir, oms, online=True, as_json=as_json)


@app.command()
@mapped
def push(
    pack_dir: Annotated[
        Path, typer.Argument(metavar="PACK_DIR", help="Pack directory (its bundles beside it are pushed as referrers).")
    ],
    reference: Annotated[str, typer.Argument(metavar="REFERENCE", help="oci://HOST[:PORT]/REPO[:TAG]")],
    plain_http: Annotated[bool, typer.Option(help="Plain HTTP (loopback addresses only).")] = False,
    layout: Annotated[
        str,
        typer.Option(
            metavar="LAYOUT",
            help="modelpack (CNCF ModelPack, what modctl and KitOps read) or uc-attest-v1 (the layout uc-attest "
            "pushed before, for consumers on an older uc-attest).",
        ),
    ] = "modelpack",
    as_json: JsonOpt = False,
) -> None:
    """Push a pack as an OCI artifact, its release, validation and OMS bundles as referrers; prints its digest."""
    res = uc.push(pack_dir, reference, plain_http=plain_http, layout=layout)
    render.show_push(res, as_json)


@app.command()
@mapped
def pull(
    reference: Annotated[
        str, typer.Argument(metavar="REFERENCE", help="oci://HOST[:PORT]/REPO@sha256:… (a tag is resolved and printed)")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Pack directory to create.")],
    plain_http: Annotated[bool, typer.Option(help="Plain HTTP (loopback addresses only).")] = False,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Pull a pack by digest, every blob checked while streaming, written atomically; its bundles beside it."""
    res = uc.pull(reference, output, plain_http=plain_http, force=force)
    render.show_pull(res, as_json)


OfflineOpt = Annotated[bool, typer.Option(help="Do not ask the log again (air-gapped).")]


def _runtime(value: str | None) -> uc.Runtime | None:
    """--runtime: a mode of this uc-attest (its kernel id and ISA), or external:TEXT."""
    if value is None:
        return None
    if value.startswith("external:"):
        text = value.removeprefix("external:").strip()
        if not text:
            raise uc.UsageError("--runtime external:TEXT needs a description of the runtime")
        return uc.Runtime.from_json({"kind": "external", "description": text}, "--runtime")
    return uc.serving_runtime(value)


def _set_threads(n: int | None) -> None:
    """--threads (checked when parsed: ``options.threads_options``): the process's budget."""
    if n is not None:
        uc.set_thread_budget(n)


@app.command()
@mapped
@grouped
def generate(
    pack_dir: Annotated[Path, typer.Argument(metavar="PACK_DIR", help="Pack of a causal language model.")],
    *,
    prompt: Annotated[str | None, typer.Option(help="Prompt text (the pack's tokenizer).")] = None,
    prompt_ids: Annotated[list[int] | None, Group(options.prompt_ids_options)],
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate (greedy).")] = 16,
    anchor: Annotated[uc.ServingAnchor, Group(options.serving_anchor_options, last=True)],
    offline: OfflineOpt = False,
    serve: Annotated[options.ServeOptions, Group(options.cached_serve_options)],
    as_json: JsonOpt = False,
) -> None:
    """Verify a pack, load it with its weights packed, and generate tokens as they come (exit 1 if it does not
    verify); then the time to the first token and the tokens/s after it on stderr."""
    _set_threads(serve.threads)

    def show(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    if prompt is not None and not as_json:
        show(prompt)  # then the continuation, as it comes
    res = uc.generate(
        pack_dir,
        anchor,
        prompt=prompt,
        prompt_ids=prompt_ids,
        max_new_tokens=max_new_tokens,
        online=not offline,
        serving=serve.serving,
        on_text=None if as_json else show,
    )
    render.show_generation(res, as_json)


@app.command()
@mapped
@grouped
def embed(
    pack_dir: Annotated[Path, typer.Argument(metavar="PACK_DIR", help="Pack of an encoder (sentence embeddings).")],
    *,
    text: Annotated[list[str], typer.Option(help="A sentence to embed (repeatable).")],
    anchor: Annotated[uc.ServingAnchor, Group(options.serving_anchor_options, last=True)],
    offline: OfflineOpt = False,
    serve: Annotated[options.ServeOptions, Group(options.serve_options)],
    as_json: JsonOpt = False,
) -> None:
    """Verify a pack, load it with its weights packed, and embed sentences (mean pooling, normalised)."""
    _set_threads(serve.threads)
    res = uc.embed(pack_dir, text, anchor, online=not offline, serving=serve.serving)
    render.show_embeddings(res, text, as_json)


@app.command()
@mapped
def validate(
    pack_dir: Annotated[Path, typer.Argument(metavar="PACK_DIR", help="Pack directory that was validated.")],
    report: Annotated[Path, typer.Option(help="Validation report METRICS.json (evaluation_set, metrics).")],
    trust_config: TrustOpt = None,
    instance: Annotated[Path | None, typer.Option(help="Embedded instance directory (must be serving).")] = None,
    identity_token: Annotated[str | None, typer.Option(help="OIDC identity token (else env or ambient CI).")] = None,
    identity: Annotated[
        str | None,
        typer.Option(help="With --instance: the dev identity to sign as (default: validator@uc-attest.dev)."),
    ] = None,
    bundle: Annotated[Path | None, typer.Option(help="Output (default: <pack>.validation.sigstore.json).")] = None,
    release_bundle: Annotated[
        Path | None,
        typer.Option(help="The pack's release bundle (default: <pack>.sigstore.json), whose signer is refused."),
    ] = None,
    allow_release_signer: Annotated[
        bool, typer.Option(help="Sign even as the identity that signed the release (no separation of duties).")
    ] = False,
    runtime: RuntimeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign and log a validation attestation: this report describes exactly this reconstruction. Refused when
    the signer is the identity that signed the pack's release, unless --allow-release-signer."""
    trust = uc.select_trust(trust_config, instance)
    res = uc.validate_pack(
        pack_dir,
        report,
        trust,
        sign_as=uc.SignAs(identity_token, identity),
        bundle_out=bundle,
        release_bundle=release_bundle,
        allow_release_signer=allow_release_signer,
        runtime=_runtime(runtime),
    )
    render.show_validation(res, as_json)


@app.command("gate")
@mapped
def gate_cmd(
    pack_dir: Annotated[Path, typer.Argument(metavar="PACK_DIR", help="Deployed pack directory.")],
    policy: Annotated[Path, typer.Option(help="Policy with a validation section.")],
    validation: Annotated[list[Path] | None, typer.Option(help="Validation bundle(s).")] = None,
    offline: OfflineOpt = False,
    runtime: RuntimeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change gate: exit 0 if this manifest root has a valid validation attestation (measured on --runtime where
    the policy says validation.runtime: match), else 1 naming the last validated root."""
    anchor = uc.PolicyAnchor(policy, None if validation is None else tuple(validation))
    v = uc.gate(pack_dir, anchor, online=not offline, runtime=_runtime(runtime))
    render.show_gate(v, as_json)
    if not v.ok:
        raise typer.Exit(v.exit_code)


@app.command("audit")
@mapped
def audit_cmd(
    pack_dir: Annotated[
        Path | None, typer.Argument(metavar="PACK_DIR", help="Pack directory (its manifest root and files).")
    ] = None,
    manifest_root: Annotated[str | None, typer.Option(help="Audit a manifest root instead of a pack.")] = None,
    digest: Annotated[str | None, typer.Option(help="Audit any subject digest (sha256:<hex>).")] = None,
    trust_config: TrustOpt = None,
    instance: InstanceOpt = None,
    state: Annotated[Path | None, typer.Option(help="Monitor state (log watch): prove consistency with it.")] = None,
    index: Annotated[
        Path | None, typer.Option(help="Tile-log index (default: beside --state; none: scan the log).")
    ] = None,
    bundle: Annotated[
        list[Path] | None, typer.Option(help="More bundles to account for on a Rekor v2 log (repeatable).")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every log entry about a model, verified, as a chain of custody; exit 1 if anything does not verify."""
    r = uc.audit(
        pack_dir,
        uc.select_trust(trust_config, instance),
        manifest_root=manifest_root,
        digest=digest,
        state=state,
        index=index,
        bundles=bundle or (),
    )
    data = r.to_dict()
    if report is not None:
        uc.write_report_html(data, report)
    render.show_audit(r, data, as_json, report)
    if not r.ok:
        raise typer.Exit(uc.EXIT_DENIED)


@app.command("inventory")
@mapped
def inventory_cmd(
    trust_config: TrustOpt = None,
    instance: InstanceOpt = None,
    index: Annotated[Path | None, typer.Option(help="Tile-log index (as log watch keeps it; none: scan).")] = None,
    bundles: Annotated[
        list[Path] | None, typer.Option(help="Directory of *.sigstore.json bundles (Rekor v2 statements).")
    ] = None,
    repository: Annotated[
        str | None, typer.Option(help="List an OCI repository instead: oci://HOST/REPO (tags, packs, bundles).")
    ] = None,
    plain_http: Annotated[bool, typer.Option(help="With --repository: plain HTTP (loopback only).")] = False,
    as_json: JsonOpt = False,
    csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
) -> None:
    """The model inventory: models -> packs (manifest roots) -> validations -> status."""
    if repository is not None:
        render.show_repository(uc.list_repository(repository, plain_http=plain_http), repository, as_json)
        return
    rows = uc.inventory(uc.select_trust(trust_config, instance), index=index, bundle_dirs=bundles or ())
    render.show_inventory(rows, as_json, csv)


@app.command("verify-bundle")
@mapped
def verify_bundle_cmd(
    artifact: Annotated[str, typer.Argument(metavar="ARTIFACT", help="The artifact file, or sha256:<hex>.")],
    bundle: Annotated[Path, typer.Option(help="Sigstore bundle (v0.1-v0.3).")],
    certificate_identity: Annotated[str | None, typer.Option(help="Expected signer identity.")] = None,
    certificate_oidc_issuer: Annotated[str | None, typer.Option(help="Expected OIDC issuer.")] = None,
    key: Annotated[Path | None, typer.Option(help="Managed public key (not supported by sigstore-python).")] = None,
    trusted_root: Annotated[Path | None, typer.Option(help="Trusted root (default: public-good, offline).")] = None,
    staging: Annotated[bool, typer.Option(help="Sigstore staging's trusted root (as shipped, offline).")] = False,
    require_tlog: Annotated[
        bool,
        typer.Option(
            help="Require a transparency-log entry when the trusted root lists a log (--no-require-tlog: accept "
            "TSA-only bundles anyway; a root listing no log, like GitHub's, needs no flag)."
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Verify any Sigstore bundle (sigstore-conformance client protocol); exit 0 = verified."""
    signer: uc.BundleSigner
    if key is not None:  # the key method (any identity flags are not read)
        signer = uc.ManagedKey(key)
    elif certificate_identity and certificate_oidc_issuer:
        signer = uc.BundleIdentity(certificate_identity, certificate_oidc_issuer)
    else:
        raise uc.UsageError("give --certificate-identity and --certificate-oidc-issuer (or --key)")
    trust: uc.Trust | uc.TrustFile | None = None  # public-good, as shipped (offline)
    if trusted_root is not None:  # a pinned root wins over --staging, as before
        trust = uc.TrustFile(trusted_root.absolute())  # always the file (one named public-good too)
    elif staging:
        trust = uc.Trust.staging(offline=True)
    r = uc.verify_any_bundle(bundle, artifact, signer, trust=trust, require_tlog=require_tlog)
    render.show_bundle(r, as_json)


log_app = typer.Typer(no_args_is_help=True, help="Transparency-log tools for auditors.")
app.add_typer(log_app, name="log")


@log_app.command("watch")
@mapped
def log_watch(
    state: Annotated[Path, typer.Option(help="Monitor state file (created on first run).")],
    trust_config: TrustOpt = None,
    instance: InstanceOpt = None,
    index: Annotated[
        Path | None, typer.Option(help="Tile-log index (SQLite; default: beside --state, .tiles.sqlite3).")
    ] = None,
    identity: Annotated[list[str] | None, typer.Option(help="Index entries by this identity (repeatable).")] = None,
    identity_regex: Annotated[
        list[str] | None, typer.Option(help="Index entries whose identity matches (anchored, repeatable).")
    ] = None,
    digest: Annotated[list[str] | None, typer.Option(help="Index entries over this sha256:<hex> (repeatable).")] = None,
    mirror: Annotated[
        str | None, typer.Option(help="Read the tile log from this mirror URL (verified with the log's key).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify each log's new checkpoint extends the last one seen (tile logs: every new entry and tile, into
    the index); exit 1 on a fork, a rollback or a tile or entry that does not verify, keeping the old state."""
    results = uc.watch_log(
        state,
        uc.select_trust(trust_config, instance),
        index=index,
        identities=identity or (),
        identity_regexes=identity_regex or (),
        digests=digest or (),
        mirror=mirror,
    )
    render.show_watch(results, as_json)
    if not all(r.ok for r in results):
        raise typer.Exit(uc.EXIT_DENIED)


policy_app = typer.Typer(no_args_is_help=True, help="Verification policies.")
app.add_typer(policy_app, name="policy")


@policy_app.command("check")
@mapped
def policy_check(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Policy YAML file.")], as_json: JsonOpt = False
) -> None:
    """Validate a policy file (exit 3 naming file, line and field)."""
    render.show_policy(file, uc.load_policy(file), as_json)


@policy_app.command("schema")
@mapped
def policy_schema_cmd() -> None:
    """Print the policy JSON Schema."""
    emit_json(uc.policy_schema())


@app.command()
@mapped
def attest(
    pack_dir: Annotated[Path, typer.Argument(metavar="PACK_DIR", help="Pack directory to attest.")],
    trust_config: TrustOpt = None,
    instance: Annotated[Path | None, typer.Option(help="Embedded instance directory (must be serving).")] = None,
    identity_token: Annotated[str | None, typer.Option(help="OIDC identity token (else env or ambient CI).")] = None,
    identity: Annotated[
        str | None,
        typer.Option(help="With --instance: the dev identity to sign as (default: release-bot@uc-attest.dev)."),
    ] = None,
    bundle: Annotated[Path | None, typer.Option(help="Output bundle (default: <pack>.sigstore.json).")] = None,
    inline_manifest: Annotated[
        str, typer.Option(help="auto, always or never: manifest inside the statement.")
    ] = "auto",
    pack_device: Annotated[str, typer.Option(help="Device the pack was built on (recorded).")] = "unrecorded",
    oms: Annotated[
        bool, typer.Option(help="Also sign an OpenSSF Model Signing statement (PACK.model.sig); --no-oms skips it.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Sign the pack's provenance statement (DSSE, Sigstore bundle v0.3) and record it in the log; also an OMS
    signature over the pack's files that stock `model_signing verify` accepts."""
    trust = uc.select_trust(trust_config, instance)
    res = uc.attest_pack(
        pack_dir,
        trust,
        sign_as=uc.SignAs(identity_token, identity),
        bundle_out=bundle,
        inline=inline_manifest,
        pack_device=pack_device,
        oms=oms,
    )
    render.show_attest(res, as_json)


instance_app = typer.Typer(no_args_is_help=True, help="The embedded Sigstore-compatible DEV instance.")
app.add_typer(instance_app, name="instance")


@instance_app.command("init")
@mapped
def instance_init(
    directory: Annotated[Path, typer.Argument(metavar="DIRECTORY", help="State directory to create.")],
    port: Annotated[int, typer.Option(help="Loopback port the instance will serve on.")] = 8787,
    rekor_version: Annotated[
        int, typer.Option(help="Log the signing config prefers: 2 (tiles, TSA timestamps) or 1 (Rekor v1, SET).")
    ] = 2,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Create keys (0600), CA certificates, both logs, the TSA and trust_config.json."""
    state = uc.init_instance(directory, port, force=force, rekor_version=rekor_version)
    render.show_instance(state, as_json)


@instance_app.command("serve")
@mapped
def instance_serve(
    directory: Annotated[Path, typer.Argument(metavar="DIRECTORY", help="Instance state directory.")],
    port: Annotated[
        int | None, typer.Option(help="Must be the port the trust config names, unless --move-to-port.")
    ] = None,
    move_to_port: Annotated[
        bool, typer.Option(help="Serve on --port and rewrite instance.json and the trust config for it.")
    ] = False,
) -> None:
    """Serve Fulcio, Rekor v1 and the dev OIDC issuer on 127.0.0.1 until interrupted."""
    if move_to_port and port is None:
        usage("--move-to-port needs --port")
    server = uc.instance_server(directory, port, move=move_to_port)
    if move_to_port:
        say(("trust config rewritten", "yellow"), f" for port {server.port}: clients need the new trust_config.json")
    render.dev_warning()
    say(f"serving on http://127.0.0.1:{server.port} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@instance_app.command("token")
@mapped
def instance_token(
    directory: Annotated[Path, typer.Argument(metavar="DIRECTORY", help="Instance state directory.")],
    identity: Annotated[str, typer.Option(help="Identity to mint: an email or a URI.")],
    lifetime: Annotated[int, typer.Option(help="Token lifetime in seconds.")] = 600,
) -> None:
    """Mint a DEV identity token (printed on stdout)."""
    print(uc.dev_token(directory, identity, lifetime))


@app.command()
@mapped
@grouped
def reconstruct(
    pack_dir: Annotated[Path, typer.Argument(metavar="PACK_DIR", help="Pack directory.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the reconstructed model.")],
    *,
    anchor: Annotated[uc.PackAnchor, Group(options.anchor_options)],
    offline: OfflineOpt = False,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the reconstructed model as standard safetensors (the source's dtype), every tensor and file
    matched against the trusted manifest first (exit 1 naming each mismatch, nothing written). Without a trust
    anchor it refuses (exit 2) unless --integrity-only."""
    res = uc.reconstruct(pack_dir, output, anchor, online=not offline, force=force)
    render.show_reconstruction(res, as_json)


@app.command("manifest")
@mapped
def manifest_cmd(
    pack_or_file: Annotated[Path, typer.Argument(metavar="PACK_OR_FILE", help="Pack directory or manifest file.")],
    prove: Annotated[str | None, typer.Option(help="Print the Merkle inclusion proof of this tensor.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the manifest root and entries (or one tensor's inclusion proof)."""
    path = pack_or_file / uc.MANIFEST_NAME if pack_or_file.is_dir() else pack_or_file
    m = uc.load_manifest(path)
    if prove is not None:
        try:
            proof = m.prove(prove)
        except KeyError:
            raise uc.InvalidInput(f"tensor {prove!r} is not in {path}") from None
        emit_json(proof)
        return
    render.show_manifest(m, path, as_json)
