"""Processor memory with many concurrent streams: N streamed chat requests held open at once
through Envoy + Switchyard (release build) against the fake provider; prints the processor's
peak RSS (VmHWM) and how many streams completed cleanly.

    .venv/bin/python bench/streams_rss.py [N]     # default 1000

STREAMS_LOG_BODIES=1 turns `records.log_bodies` on; STREAMS_BODY_BYTES=B makes each prompt and
each streamed reply B characters (default: "hi" and the fake's short reply); SWITCHYARD_BIN runs
that binary instead of building the release one.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from fake_provider import FakeProvider  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
LOG_BODIES = "true" if os.environ.get("STREAMS_LOG_BODIES") == "1" else "false"
BODY_BYTES = int(os.environ.get("STREAMS_BODY_BYTES", "0"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    binary = os.environ.get("SWITCHYARD_BIN")
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "switchyard"], cwd=ROOT, check=True)
        binary = str(ROOT / "target/release/switchyard")
    fp = FakeProvider("slow").start()
    fp.stream_delay = 0.5  # ~3 s per stream: all N are open together
    if BODY_BYTES:
        fp.reply_text = "w" * BODY_BYTES
    work = Path(tempfile.mkdtemp(prefix="sy-streams-"))
    cfg = work / "gw.yaml"
    cfg.write_text(f"""
records: {{ path: records.jsonl, log_bodies: {LOG_BODIES} }}
providers: [ {{ id: slow, kind: openai_compatible, base_url: "{fp.url}/v1" }} ]
models: [ {{ name: m, provider: slow }} ]
""")
    proxy = free_port()
    env = dict(os.environ, SWITCHYARD_DEMO_KEY="sk-streams", ENVOY_BIN=str(ROOT / ".venv/bin/envoy"))
    proc = subprocess.Popen([binary, "up", "--config", str(cfg),
                             "--proxy", f"127.0.0.1:{proxy}", "--extproc", f"127.0.0.1:{free_port()}",
                             "--admin", f"127.0.0.1:{free_port()}", "--envoy-admin", f"127.0.0.1:{free_port()}",
                             "--workdir", str(work / "run")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    while not proc.stdout.readline().startswith("Try:"):
        pass
    idle = vm_hwm(proc.pid)
    ok = [0]
    lock = threading.Lock()
    body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "x" * BODY_BYTES or "hi"}]})

    failures = {}

    def one():
        try:
            c = http.client.HTTPConnection("127.0.0.1", proxy, timeout=60)
            c.request("POST", "/v1/chat/completions", body, {"authorization": "Bearer sk-streams", "content-type": "application/json"})
            resp = c.getresponse()
            text = resp.read().decode()
            why = None if text.rstrip().endswith("data: [DONE]") else f"{resp.status} {text[:120]}"
        except Exception as e:  # noqa: BLE001 - reported below
            why = repr(e)[:120]
        with lock:
            if why is None:
                ok[0] += 1
            else:
                failures[why] = failures.get(why, 0) + 1

    threads = [threading.Thread(target=one) for _ in range(N)]
    start = time.time()
    for t in threads:
        t.start()
    peak_open = 0
    while any(t.is_alive() for t in threads):
        time.sleep(0.2)
        peak_open = max(peak_open, len(fp._active) if hasattr(fp, "_active") else 0)
    peak = vm_hwm(proc.pid)
    proc.terminate()
    proc.wait(10)
    fp.stop()
    print(f"streams: {N}, completed cleanly: {ok[0]}, wall: {time.time() - start:.1f} s")
    for why, n in sorted(failures.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  failed x{n}: {why}")
    print(f"processor VmHWM: idle {idle:.1f} MiB, peak {peak:.1f} MiB (target <= 64 MiB)")


if __name__ == "__main__":
    main()
