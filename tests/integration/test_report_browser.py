"""The audit report in a real headless browser (Debian's chromium): render, screenshot, DOM text."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import uc_attest as uc
from tests.conftest import make_model
from tests.integration.conftest import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def build_report(tmp: Path) -> Path:
    inst = tmp / "inst"
    uc.init_instance(inst, free_port())
    srv = uc.instance_server(inst).start()
    try:
        pack = tmp / "pack"
        uc.write_pack(make_model(tmp / "src"), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
        trust = uc.select_trust(None, inst)
        uc.attest_pack(pack, trust, sign_as=uc.SignAs(dev_identity="release-bot@bank.example"))
        (tmp / "m.json").write_text(json.dumps({"evaluation_set": "held-out-v1", "metrics": {"ppl_ratio": 1.004}}))
        uc.validate_pack(pack, tmp / "m.json", trust, sign_as=uc.SignAs(dev_identity="validator@bank.example"))
        report = uc.audit(pack, uc.TrustRoot.instance(inst))
    finally:
        srv.stop()
    out = tmp / "report.html"
    out.write_text(uc.render_report_html(report.to_dict()))
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    html = build_report(tmp_path)
    profile = tmp_path / "profile"
    base = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run(
        [*base, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    for text in (
        "Model audit",
        "CONSISTENT",
        "Chain of custody",
        "release-bot@bank.example",
        "validator@bank.example",
        "held-out-v1",
        "ppl_ratio = 1.004",
        "custody.validation",
    ):
        assert text in dom, text
    assert dom.count("<rect") >= 4  # one bar per quantized tensor
    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1280,1400", html.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
