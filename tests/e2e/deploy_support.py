"""Helpers for test_deploy.py: the tools, a kubelet-style ConfigMap directory, TLS fake
providers, and the sidecar pair run from the exact files in deploy/."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from fake_provider import FakeProvider, _Handler, _Server  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "switchyard"
PLAIN = DEPLOY / "kubernetes"
TOOLS = Path(os.environ.get("SWITCHYARD_TOOLS", ROOT / ".tools"))
HELM = Path(os.environ.get("HELM_BIN", TOOLS / "helm"))
KUBECTL = Path(os.environ.get("KUBECTL_BIN", TOOLS / "kubectl"))
MISSING_TOOLS = "run `make deploy-tools` (deploy/test-tools.sh): it installs helm and kubectl into .tools/ and kubernetes-validate into the venv"

# What the pod would see: the provider hosts of the deploy config (TLS on 443).
PROVIDER_HOSTS = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}
SECRETS = {"OPENAI_API_KEY": "sk-test-openai-SECRET", "ANTHROPIC_API_KEY": "sk-test-anthropic-SECRET",
           "SWITCHYARD_ADMIN_TOKEN": "admin-token-for-tests"}


def tool(path: Path) -> str:
    assert path.exists() and os.access(path, os.X_OK), f"{path} is missing: {MISSING_TOOLS}"
    return str(path)


def run(*cmd, check=True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def helm_template(*args: str, show_only: str | None = None, check=True) -> subprocess.CompletedProcess:
    cmd = [tool(HELM), "template", "switchyard", str(CHART), "--namespace", "switchyard", *args]
    if show_only:
        cmd += ["--show-only", show_only]
    return run(*cmd, check=check)


def docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plain(kind: str, name: str | None = None) -> dict:
    """One object of the plain manifests."""
    for f in sorted(PLAIN.glob("*.yaml")):
        for d in docs(f.read_text()):
            if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name):
                return d
    raise AssertionError(f"no {kind} {name or ''} in {PLAIN}")


def containers(deployment: dict) -> dict[str, dict]:
    spec = deployment["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


class ConfigMapDir:
    """A directory laid out the way the kubelet writes a ConfigMap volume (AtomicWriter):
    ``..<timestamp>/`` holds the files, ``..data`` links to it, and each key is a symlink
    ``KEY -> ..data/KEY``. An update writes a new timestamped directory, renames a new
    ``..data`` symlink over the old one, then deletes the old directory."""

    def __init__(self, path: Path):
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)
        self.generation = 0

    def write(self, files: dict[str, str]) -> None:
        self.generation += 1
        ts = self.path / f"..2026_01_01_00_00_{self.generation:02d}.{os.getpid()}"
        ts.mkdir()
        for name, text in files.items():
            (ts / name).write_text(text)
        data = self.path / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        tmp = self.path / "..data_tmp"
        os.symlink(ts.name, tmp)
        os.rename(tmp, data)  # atomic swap
        for name in files:
            link = self.path / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        if old:
            shutil.rmtree(self.path / old)


def make_tls(dir: Path, hosts: list[str]) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for `hosts` (what the real providers present)."""
    ca_key, ca, key, csr, cert = (dir / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=switchyard deploy test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={hosts[0]}")
    ext = dir / "server.ext"
    ext.write_text("subjectAltName=" + ",".join(f"DNS:{h}" for h in hosts)
                   + "\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


class TlsFakeProvider(FakeProvider):
    """The fake provider behind TLS, presenting the real provider's host name."""

    def __init__(self, name: str, cert: Path, key: Path):
        super().__init__(name)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))

    def start(self) -> "TlsFakeProvider":
        self._stopping = threading.Event()
        self._server = _Server((self.host, self.port), _Handler, self)
        self._server.socket = self.ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"tls-fake-{self.name}", daemon=True)
        self._thread.start()
        return self


def provider_addrs(providers: dict[str, FakeProvider]) -> dict:
    """Where DNS would send the provider hosts: the fake providers on loopback."""
    return {(host, 443): ("127.0.0.1", providers[name].port) for name, host in PROVIDER_HOSTS.items()}


def localize(config: dict, addrs: dict, pipes: dict[str, str], ca: Path) -> dict:
    """An Envoy config with each listed socket address, Unix socket path and the CA bundle
    replaced, and nothing else; fails when a listed address is not in the config or when a
    non-loopback address is left (the test must not reach outside the machine)."""
    out = copy.deepcopy(config)
    used = set()

    def walk(node):
        if isinstance(node, dict):
            sa = node.get("socket_address")
            if isinstance(sa, dict):
                k = (sa["address"], sa["port_value"])
                if k in addrs:
                    used.add(k)
                    sa["address"], sa["port_value"] = addrs[k]
                assert sa["address"] == "127.0.0.1", f"{k} would leave the machine: map it"
            pipe = node.get("pipe")
            if isinstance(pipe, dict):
                used.add(pipe["path"])
                pipe["path"] = pipes[pipe["path"]]
            if set(node) == {"filename"} and node["filename"] == "/etc/ssl/certs/ca-certificates.crt":
                node["filename"] = str(ca)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(out)
    assert used >= set(addrs) | set(pipes), f"not in the config: {(set(addrs) | set(pipes)) - used}"
    return out


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout=15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited {proc.returncode}:\n{log.read_text()}")
        try:
            if requests.get(url, timeout=0.5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} not ready in {timeout}s:\n{log.read_text()}")


class Pair:
    """The pod's two containers run from deploy/kubernetes/: the processor with the
    Deployment's args, env and the ConfigMap's gateway.yaml; Envoy with the Deployment's
    command and the ConfigMap's envoy.yaml. Rewritten for loopback, and nothing else:

    - gateway.yaml `listen:` — proxy 0.0.0.0:8080 and admin 0.0.0.0:8081 become free
      127.0.0.1 ports, the socket /run/switchyard/extproc.sock moves under the test's
      directory; `store.redis_url` points at the test's redis-server;
    - envoy.yaml — the same listener port and socket path, Envoy's admin port (9901), the
      provider endpoints api.openai.com:443 / api.anthropic.com:443 become the TLS fake
      providers' 127.0.0.1 ports (what DNS would answer; SNI and the SAN check are
      unchanged), and the CA bundle path becomes the test CA;
    - the Deployment's mount paths /etc/switchyard and /etc/envoy become test directories,
      and `--drain-time-s` / the preStop script's ports and seconds as the caller asks.
    """

    def __init__(self, workdir: Path, bin: Path, envoy: Path, redis_url: str,
                 providers: dict[str, TlsFakeProvider], ca: Path, drain_seconds: int | None = None):
        self.dir = workdir
        self.bin, self.envoy_bin = bin, envoy
        self.providers = providers
        cm = plain("ConfigMap", "switchyard-config")
        self.deployment = plain("Deployment", "switchyard")
        c = containers(self.deployment)
        self.proc_spec, self.envoy_spec = c["processor"], c["envoy"]
        self.proxy_port, self.admin_port, self.envoy_admin_port = free_port(), free_port(), free_port()
        self.socket = self.dir / "run" / "switchyard" / "extproc.sock"
        self.socket.parent.mkdir(parents=True)
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"

        self.gateway_text = self.rewrite_gateway(cm["data"]["gateway.yaml"], redis_url)
        self.config_dir = ConfigMapDir(self.dir / "etc" / "switchyard")
        self.config_dir.write({"gateway.yaml": self.gateway_text})
        envoy_dir = ConfigMapDir(self.dir / "etc" / "envoy")
        envoy_dir.write({"envoy.yaml": self.rewrite_bootstrap(cm["data"]["envoy.yaml"], ca)})

        mounts = {"/etc/switchyard/": f"{self.config_dir.path}/", "/etc/envoy/": f"{envoy_dir.path}/"}

        def local(arg: str) -> str:
            for k, v in mounts.items():
                arg = arg.replace(k, v)
            return arg

        env = dict(os.environ, **SECRETS, RUST_BACKTRACE="0")
        for e in self.proc_spec.get("env", []):
            env[e["name"]] = e["value"]
        self.proc_out = self.dir / "processor.stdout"
        self.proc_log = self.dir / "processor.stderr"
        self.processor = subprocess.Popen([str(bin), *map(local, self.proc_spec["args"])],
                                          stdout=open(self.proc_out, "w"), stderr=open(self.proc_log, "w"), env=env)
        # The native sidecar starts first; Envoy once the startup probe (/healthz) passes.
        probe = self.proc_spec["startupProbe"]["httpGet"]["path"]
        wait_http(self.admin + probe, self.processor, self.proc_log)

        envoy_args = list(map(local, self.envoy_spec["args"]))
        if drain_seconds is not None:
            envoy_args[envoy_args.index("--drain-time-s") + 1] = str(drain_seconds)
        self.envoy_log = self.dir / "envoy.log"
        cmd = self.envoy_spec["command"]
        assert cmd == ["/usr/local/bin/envoy"], cmd
        self.envoy = subprocess.Popen([str(envoy), *envoy_args],
                                      stdout=open(self.envoy_log, "w"), stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{self.envoy_admin_port}/ready", self.envoy, self.envoy_log)

    def rewrite_gateway(self, text: str, redis_url: str) -> str:
        for old, new in [("proxy: 0.0.0.0:8080", f"proxy: 127.0.0.1:{self.proxy_port}"),
                         ("admin: 0.0.0.0:8081", f"admin: 127.0.0.1:{self.admin_port}"),
                         ("unix:/run/switchyard/extproc.sock", f"unix:{self.socket}"),
                         ("redis://switchyard-redis:6379", redis_url)]:
            assert text.count(old) == 1, f"the deploy config no longer says {old!r}: update the test"
            text = text.replace(old, new)
        return text

    def rewrite_bootstrap(self, text: str, ca: Path) -> str:
        addrs = {("127.0.0.1", 9901): ("127.0.0.1", self.envoy_admin_port),
                 ("0.0.0.0", 8080): ("127.0.0.1", self.proxy_port),
                 **provider_addrs(self.providers)}
        return yaml.safe_dump(localize(yaml.safe_load(text), addrs, {"/run/switchyard/extproc.sock": str(self.socket)}, ca),
                              sort_keys=False)

    # --- the pod's exec hooks, as the kubelet would run them in the Envoy container ---
    def exec_hook(self, command: list[str], replace: dict[str, str] | None = None, timeout=60) -> subprocess.CompletedProcess:
        assert command[:2] == ["/bin/bash", "-c"], command
        script = command[2]
        for old, new in {"/dev/tcp/127.0.0.1/9901": f"/dev/tcp/127.0.0.1/{self.envoy_admin_port}",
                         "ADMIN_PORT=9901": f"ADMIN_PORT={self.envoy_admin_port}", **(replace or {})}.items():
            script = script.replace(old, new)
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout)

    def post(self, path: str, body: dict, key: str, **kw) -> requests.Response:
        return requests.post(self.url + path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=30, **kw)

    def stop(self) -> None:
        for p in (self.envoy, self.processor):  # Envoy first, as the kubelet does with a native sidecar
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


class MeshRun:
    """A team's own Envoy with Switchyard added (envoy/mesh/): `switchyard serve` with
    envoy/mesh/gateway.yaml beside Envoy running `envoy_config`, and the team's `app`
    upstream. Rewritten for loopback, and nothing else: the listener, admin, processor
    (127.0.0.1:50051 / :8081) and app (127.0.0.1:3000) ports, the provider endpoints and CA
    bundle as in Pair, and one static client key added to the config's empty `keys:`."""

    def __init__(self, workdir: Path, bin: Path, envoy: Path, envoy_config: dict,
                 providers: dict[str, FakeProvider], ca: Path, app: FakeProvider, client_key: str):
        import hashlib
        self.dir = workdir
        extproc, admin, self.proxy_port, envoy_admin = (free_port() for _ in range(4))
        text = (ROOT / "envoy" / "mesh" / "gateway.yaml").read_text()
        digest = hashlib.sha256(client_key.encode()).hexdigest()
        for old, new in [("extproc: 127.0.0.1:50051", f"extproc: 127.0.0.1:{extproc}"),
                         ("admin: 127.0.0.1:8081", f"admin: 127.0.0.1:{admin}"),
                         ("keys: []", f'keys:\n  - {{ name: team-app, hash: "sha256:{digest}" }}')]:
            assert text.count(old) == 1, f"envoy/mesh/gateway.yaml no longer says {old!r}: update the test"
            text = text.replace(old, new)
        (workdir / "gateway.yaml").write_text(text)
        self.proc_log = workdir / "processor.log"
        self.processor = subprocess.Popen([str(bin), "serve", "--config", str(workdir / "gateway.yaml")],
                                          stdout=subprocess.DEVNULL, stderr=open(self.proc_log, "w"),
                                          env=dict(os.environ, **SECRETS))
        wait_http(f"http://127.0.0.1:{admin}/readyz", self.processor, self.proc_log)
        listener = envoy_config["static_resources"]["listeners"][0]["address"]["socket_address"]
        admin_addr = envoy_config["admin"]["address"]["socket_address"]
        addrs = {(listener["address"], listener["port_value"]): ("127.0.0.1", self.proxy_port),
                 (admin_addr["address"], admin_addr["port_value"]): ("127.0.0.1", envoy_admin),
                 ("127.0.0.1", 50051): ("127.0.0.1", extproc),
                 ("127.0.0.1", 3000): ("127.0.0.1", app.port),
                 **provider_addrs(providers)}
        (workdir / "envoy.yaml").write_text(yaml.safe_dump(localize(envoy_config, addrs, {}, ca), sort_keys=False))
        self.envoy_log = workdir / "envoy.log"
        self.envoy = subprocess.Popen([str(envoy), "-c", str(workdir / "envoy.yaml"), "--disable-hot-restart",
                                       "--concurrency", "1", "--log-level", "warn"],
                                      stdout=open(self.envoy_log, "w"), stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{envoy_admin}/ready", self.envoy, self.envoy_log)
        self.url = f"http://127.0.0.1:{self.proxy_port}"

    def stop_processor(self) -> None:
        if self.processor.poll() is None:
            self.processor.send_signal(signal.SIGTERM)
            self.processor.wait(10)

    def stop(self) -> None:
        for p in (self.envoy, self.processor):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
