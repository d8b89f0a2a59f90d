"""Seed 000 in real headless Chromium (Debian `chromium`, driven by `playwright-core` from npm):
sign-in by email and password → create a key → catalog → request through the proxy (and one that falls back) →
Playground → Request Logs shows each with its resolved model, cost and attempts. `make browser-deps` installs both."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import requests

from conftest import Gateway, base_config

DRIVER = Path(__file__).parent / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ADMIN_TOKEN = "console-browser-token-e2e"
EMAIL, PASSWORD = "developer@example.com", "walk-the-seed-000"


def test_seed_000_walk_in_headless_chromium(providers, tmp_path):
    # A missing browser is a failure, never a skip: `make test` installs it (make browser-deps).
    assert Path(CHROMIUM).exists() and shutil.which("node") and (DRIVER / "node_modules" / "playwright-core").exists(), \
        "needs Debian chromium, node and playwright-core: run `make browser-deps`"
    # Request and response content kept, so an expanded row shows it (seed 000, step 4).
    config = lambda records: base_config(providers, records).replace("records: { ", "records: { log_bodies: true, ", 1)
    gw = Gateway(providers, config_text=config, env={"SWITCHYARD_ADMIN_TOKEN": ADMIN_TOKEN})
    # The walk's first request succeeds on oa; its second finds oa failing once and the key's
    # fallback chain (configured in the walk) moves on to an, which Request Logs must show.
    providers["oa"].script("ok", "status:500")
    try:
        r = requests.post(f"http://{gw.admin}/admin/users", json={"email": EMAIL, "password": PASSWORD},
                          headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        assert r.status_code == 201, r.text
        shots = os.environ.get("CONSOLE_SCREENSHOTS", str(tmp_path))
        out = subprocess.run(["node", str(DRIVER / "walk.mjs"), shots], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, CONSOLE_URL=f"http://{gw.admin}", CONSOLE_EMAIL=EMAIL,
                                      CONSOLE_PASSWORD=PASSWORD, CHROMIUM=CHROMIUM))
        assert out.returncode == 0 and "walk: ok" in out.stdout, out.stdout + out.stderr
    finally:
        gw.stop()
