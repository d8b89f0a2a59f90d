"""Seed 000 in real headless Chromium (Debian `chromium`, driven by `playwright-core` from npm):
sign-in → create a key → catalog → request through the proxy → Playground → Request Logs shows
the request with its resolved model and cost. `make browser-deps` installs both."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import Gateway

DRIVER = Path(__file__).parent / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ADMIN_TOKEN = "console-browser-token-e2e"


def test_seed_000_walk_in_headless_chromium(providers, tmp_path):
    if not (Path(CHROMIUM).exists() and shutil.which("node") and (DRIVER / "node_modules" / "playwright-core").exists()):
        pytest.skip("needs Debian chromium, node and playwright-core: run `make browser-deps`")
    gw = Gateway(providers, env={"SWITCHYARD_ADMIN_TOKEN": ADMIN_TOKEN})
    try:
        shots = os.environ.get("CONSOLE_SCREENSHOTS", str(tmp_path))
        out = subprocess.run(["node", str(DRIVER / "walk.mjs"), shots], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, CONSOLE_URL=f"http://{gw.admin}", ADMIN_TOKEN=ADMIN_TOKEN, CHROMIUM=CHROMIUM))
        assert out.returncode == 0 and "walk: ok" in out.stdout, out.stdout + out.stderr
    finally:
        gw.stop()
