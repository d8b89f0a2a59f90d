#!/usr/bin/env bash
# Switchyard benchmark: the same fake upstream reached three ways, side by side in one run.
#   direct      loadgen → bench-upstream
#   envoy       loadgen → plain Envoy (router only, bench/envoy-plain.yaml) → bench-upstream
#   switchyard  loadgen → Envoy + Switchyard processor (`switchyard up`) → bench-upstream
# Each at every concurrency in BENCH_CONCURRENCY; modes are interleaved per concurrency so
# drift on a shared machine hits them alike. Prints a markdown table and writes it to
# bench/results-latest.md. Exits 1 if any request failed (the table still shows it).
#
# Env: BENCH_SECONDS (10) measured seconds per run, BENCH_WARMUP (2), BENCH_CONCURRENCY
# ("1 16 64"), BENCH_EXTPROC (tcp | unix: how Envoy reaches the processor), BENCH_LOADGEN_THREADS
# (1), BENCH_UPSTREAM_THREADS (1), ENVOY_BIN (.venv/bin/envoy), SWITCHYARD_BIN (the release
# build; set it to compare another build), BENCH_OUT (bench/results-latest.md), BENCH_KEEP=1
# keeps the work dir, BENCH_TELEMETRY=1 turns tracing on (every request sampled, exported over
# OTLP/HTTP to a local collector that accepts and discards) to measure what telemetry costs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DURATION=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CONCURRENCY=${BENCH_CONCURRENCY:-1 16 64}
LOADGEN_THREADS=${BENCH_LOADGEN_THREADS:-1}
UPSTREAM_THREADS=${BENCH_UPSTREAM_THREADS:-1}
EXTPROC_TRANSPORT=${BENCH_EXTPROC:-tcp}
ENVOY=${ENVOY_BIN:-$ROOT/.venv/bin/envoy}
OUT=${BENCH_OUT:-$ROOT/bench/results-latest.md}
KEY=sk-bench
BODY='{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
# One field of a loadgen JSON line.
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"; }

[[ -x $ENVOY ]] || die "no Envoy at $ENVOY (set ENVOY_BIN)"
command -v python3 >/dev/null || die "python3 is needed (free ports, JSON)"

log "building (release)…"
cargo build --release --bin switchyard --examples >&2
SWITCHYARD=${SWITCHYARD_BIN:-$ROOT/target/release/switchyard}
UPSTREAM=$ROOT/target/release/examples/bench-upstream
LOADGEN=$ROOT/target/release/examples/bench-loadgen

WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Distinct free loopback ports, all held open at once while picking so none repeats.
read -r UP_PORT PLAIN_PORT PLAIN_ADMIN SY_PORT SY_EXTPROC SY_ADMIN SY_ENVOY_ADMIN < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()')

alive() { kill -0 "$1" 2>/dev/null; }
# wait_until PID LOGFILE WHAT CMD…: poll CMD for up to 20 s while PID lives.
wait_until() {
  local pid=$1 logfile=$2 what=$3; shift 3
  for _ in $(seq 200); do
    "$@" >/dev/null 2>&1 && return 0
    alive "$pid" || { cat "$logfile" >&2; die "$what exited during start-up"; }
    sleep 0.1
  done
  cat "$logfile" >&2
  die "$what did not become ready in 20 s"
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- fake upstream ---------------------------------------------------------------------------
"$UPSTREAM" --listen "127.0.0.1:$UP_PORT" --threads "$UPSTREAM_THREADS" >"$WORK/upstream.log" 2>&1 &
UP_PID=$!; PIDS+=("$UP_PID")
wait_until "$UP_PID" "$WORK/upstream.log" bench-upstream port_open "$UP_PORT"

# --- plain Envoy -----------------------------------------------------------------------------
sed -e "s/@ADMIN_PORT@/$PLAIN_ADMIN/" -e "s/@PROXY_PORT@/$PLAIN_PORT/" -e "s/@UPSTREAM_PORT@/$UP_PORT/" \
  bench/envoy-plain.yaml >"$WORK/envoy-plain.yaml"
# Same --concurrency as the Envoy that `switchyard up` starts.
"$ENVOY" -c "$WORK/envoy-plain.yaml" --log-level warn --disable-hot-restart --concurrency 2 >"$WORK/envoy-plain.log" 2>&1 &
PLAIN_PID=$!; PIDS+=("$PLAIN_PID")
wait_until "$PLAIN_PID" "$WORK/envoy-plain.log" "plain Envoy" curl -sf "http://127.0.0.1:$PLAIN_ADMIN/ready"

# --- Envoy + Switchyard ----------------------------------------------------------------------
cat >"$WORK/switchyard.yaml" <<EOF
records: { path: $WORK/records.jsonl }
providers:
  - { id: bench, kind: openai_compatible, base_url: "http://127.0.0.1:$UP_PORT/v1" }
models:
  - { name: bench-model, provider: bench }
EOF
if [[ ${BENCH_TELEMETRY:-0} == 1 ]]; then
  # A collector that accepts every OTLP/HTTP export and discards it.
  COLLECTOR_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 - "$COLLECTOR_PORT" >"$WORK/collector.log" 2>&1 <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
  PIDS+=("$!")
  echo "telemetry: { otlp_endpoint: \"http://127.0.0.1:$COLLECTOR_PORT\", protocol: http, sampling_ratio: 1.0 }" >>"$WORK/switchyard.yaml"
  log "telemetry on: every request traced, exported to :$COLLECTOR_PORT"
fi
case $EXTPROC_TRANSPORT in
  tcp) EXTPROC_ADDR=127.0.0.1:$SY_EXTPROC ;;
  unix) EXTPROC_ADDR=unix:$WORK/extproc.sock ;;
  *) die "BENCH_EXTPROC must be tcp or unix" ;;
esac
SWITCHYARD_DEMO_KEY=$KEY "$SWITCHYARD" up --config "$WORK/switchyard.yaml" \
  --proxy "127.0.0.1:$SY_PORT" --extproc "$EXTPROC_ADDR" --admin "127.0.0.1:$SY_ADMIN" \
  --envoy-admin "127.0.0.1:$SY_ENVOY_ADMIN" --envoy "$ENVOY" --workdir "$WORK/sy" >"$WORK/switchyard.log" 2>&1 &
SY_PID=$!; PIDS+=("$SY_PID")
wait_until "$SY_PID" "$WORK/switchyard.log" "switchyard up" grep -q "Switchyard is up" "$WORK/switchyard.log"
SY_ENVOY_PID=$(pgrep -P "$SY_PID" | head -n1 || true)

declare -A URL=(
  [direct]="http://127.0.0.1:$UP_PORT/v1/chat/completions"
  [envoy]="http://127.0.0.1:$PLAIN_PORT/v1/chat/completions"
  [switchyard]="http://127.0.0.1:$SY_PORT/v1/chat/completions"
)
MODES=(direct envoy switchyard)
loadgen() { # MODE CONNECTIONS [extra args…]
  local mode=$1 conns=$2; shift 2
  "$LOADGEN" --url "${URL[$mode]}" --connections "$conns" --threads "$LOADGEN_THREADS" \
    --header "authorization: Bearer $KEY" --header "content-type: application/json" --body "$BODY" "$@"
}

# Every path must answer 200 with a completion before anything is measured.
for mode in "${MODES[@]}"; do
  if ! reply=$(loadgen "$mode" 1 --once); then
    die "$mode: smoke request failed: $reply"
  fi
  grep -q '"chat.completion"' <<<"$reply" || die "$mode: unexpected reply: $reply"
done
log "all three paths answer; upstream :$UP_PORT, plain Envoy :$PLAIN_PORT, switchyard :$SY_PORT"

# utime+stime of a process in clock ticks.
cpu_ticks() { [[ -n ${1:-} && -r /proc/$1/stat ]] && awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" || echo 0; }
vm_hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))
cpu_us_per_req() { calc "($2 - $1) * $TICK_US / ($3 > 0 ? $3 : 1)" 0; }

declare -A RPS P50 P99 OK ERR WERR FIRST PROC_CPU ENVOY_CPU
ANY_ERRORS=0
for c in $CONCURRENCY; do
  for mode in "${MODES[@]}"; do
    log "$mode c=$c: ${WARMUP}s warm-up + ${DURATION}s…"
    case $mode in
      envoy) envoy_pid=$PLAIN_PID ;;
      switchyard) envoy_pid=$SY_ENVOY_PID ;;
      *) envoy_pid= ;;
    esac
    loadgen "$mode" "$c" --seconds "$DURATION" --warmup "$WARMUP" >"$WORK/run.json" &
    lg=$!
    # CPU is sampled over the measured window only (plus the last in-flight requests).
    sleep "$WARMUP"
    p0=$(cpu_ticks "$SY_PID"); e0=$(cpu_ticks "$envoy_pid")
    wait "$lg" || die "$mode c=$c: load generator failed"
    p1=$(cpu_ticks "$SY_PID"); e1=$(cpu_ticks "$envoy_pid")
    j=$(tail -n1 "$WORK/run.json")
    k="$mode/$c"
    RPS[$k]=$(jget "$j" rps); P50[$k]=$(jget "$j" p50_ms); P99[$k]=$(jget "$j" p99_ms)
    OK[$k]=$(jget "$j" ok); ERR[$k]=$(jget "$j" errors); WERR[$k]=$(jget "$j" warmup_errors)
    FIRST[$k]=$(jget "$j" first_error)
    if [[ ${ERR[$k]} != 0 || ${WERR[$k]} != 0 ]]; then ANY_ERRORS=1; fi
    if [[ $mode == switchyard && ${OK[$k]} != 0 ]]; then PROC_CPU[$k]=$(cpu_us_per_req "$p0" "$p1" "${OK[$k]}"); fi
    if [[ -n $envoy_pid && ${OK[$k]} != 0 ]]; then ENVOY_CPU[$k]=$(cpu_us_per_req "$e0" "$e1" "${OK[$k]}"); fi
    if [[ ${OK[$k]} == 0 ]]; then P50[$k]=–; P99[$k]=–; fi
    log "  $j"
  done
done

RSS_KIB=$(vm_hwm_kib "$SY_PID")
RSS_MIB=$(calc "$RSS_KIB / 1024" 1)
PLAIN_RSS_MIB=$(calc "$(vm_hwm_kib "$PLAIN_PID") / 1024" 1)
SY_ENVOY_RSS_MIB=$(calc "$( [[ -n $SY_ENVOY_PID ]] && vm_hwm_kib "$SY_ENVOY_PID" || echo 0) / 1024" 1)
RECORDS=$(wc -l <"$WORK/records.jsonl" 2>/dev/null || echo 0)

# --- report ----------------------------------------------------------------------------------
verdict() { awk "BEGIN { exit !($1) }" && echo met || echo "**missed**"; }
# A run is usable for a verdict only if every request in it succeeded.
clean() { local k; for k; do [[ ${ERR[$k]} == 0 && ${WERR[$k]} == 0 && ${OK[$k]} != 0 ]] || return 1; done; }
{
  echo "# Switchyard benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty tree)');" \
    "$(nproc) CPU ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)) shared by load generator, Envoy, processor and upstream;" \
    "$("$ENVOY" --version 2>/dev/null | grep -o '1\.[0-9]*\.[0-9]*' | head -n1 | sed 's/^/Envoy /')."
  echo "Closed loop, one keep-alive HTTP/1.1 connection per concurrent client; ${WARMUP} s warm-up then ${DURATION} s measured per row;" \
    "non-streamed \`POST /v1/chat/completions\` (${#BODY}-byte body); Envoy → processor gRPC over $EXTPROC_TRANSPORT." \
    "Latency percentiles are over 200s only; CPU µs/req is the process's CPU time in the measured window over its 200s."
  echo
  echo "| mode | conc | RPS | p50 ms | p99 ms | errors | +p50 ms vs envoy | +p99 ms vs envoy | RPS % of envoy | processor CPU µs/req | Envoy CPU µs/req |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in $CONCURRENCY; do
    for mode in "${MODES[@]}"; do
      k="$mode/$c"; e="envoy/$c"
      errs=${ERR[$k]}
      if [[ ${WERR[$k]} != 0 ]]; then errs="$errs (+${WERR[$k]} warm-up)"; fi
      if [[ ${ERR[$k]} != 0 || ${WERR[$k]} != 0 ]]; then errs="**$errs** ⚠"; fi
      add50=–; add99=–; pct=–
      if [[ $mode == switchyard ]] && clean "$k" "$e"; then
        add50=$(calc "${P50[$k]} - ${P50[$e]}" 3); add99=$(calc "${P99[$k]} - ${P99[$e]}" 3)
        pct="$(calc "100 * ${RPS[$k]} / (${RPS[$e]} > 0 ? ${RPS[$e]} : 1)" 0) %"
      fi
      echo "| $mode | $c | $(calc "${RPS[$k]}" 0) | ${P50[$k]} | ${P99[$k]} | $errs | $add50 | $add99 | $pct | ${PROC_CPU[$k]:-–} | ${ENVOY_CPU[$k]:-–} |"
    done
  done
  echo
  echo "Peak RSS (VmHWM at the end): processor (\`switchyard up\` process, Envoy excluded) **$RSS_MIB MiB**;" \
    "its Envoy $SY_ENVOY_RSS_MIB MiB; plain Envoy $PLAIN_RSS_MIB MiB. Request records written: $RECORDS."
  echo
  echo "## Targets"
  echo
  echo "| target | measured | verdict |"
  echo "|---|---|---|"
  for c in $CONCURRENCY; do
    if clean "switchyard/$c" "envoy/$c"; then
      a50=$(calc "${P50[switchyard/$c]} - ${P50[envoy/$c]}" 3); a99=$(calc "${P99[switchyard/$c]} - ${P99[envoy/$c]}" 3)
      echo "| added p50 ≤ 0.3 ms (c=$c) | $a50 ms | $(verdict "$a50 <= 0.3") |"
      echo "| added p99 ≤ 1 ms (c=$c) | $a99 ms | $(verdict "$a99 <= 1") |"
    else
      echo "| added p50 ≤ 0.3 ms, p99 ≤ 1 ms (c=$c) | requests failed | **missed** |"
    fi
  done
  top=$(tr ' ' '\n' <<<"$CONCURRENCY" | sort -n | tail -n1)
  tp=$(calc "100 * ${RPS[switchyard/$top]} / (${RPS[envoy/$top]} > 0 ? ${RPS[envoy/$top]} : 1)" 1)
  if clean "switchyard/$top" "envoy/$top"; then tv=$(verdict "$tp >= 60"); else tv="**missed** (requests failed)"; fi
  echo "| throughput at c=$top ≥ 60 % of plain Envoy | $tp % | $tv |"
  echo "| processor peak RSS ≤ 64 MiB | $RSS_MIB MiB | $(verdict "$RSS_MIB <= 64") |"
  if [[ $ANY_ERRORS == 1 ]]; then
    echo
    echo "**Some requests failed.** First error per run:"
    for c in $CONCURRENCY; do
      for mode in "${MODES[@]}"; do
        k="$mode/$c"
        if [[ -n ${FIRST[$k]} ]]; then echo "- $mode c=$c: \`${FIRST[$k]//$'\n'/ }\`"; fi
      done
    done
  fi
} | tee "$OUT"
log "wrote ${OUT#"$ROOT"/}"
[[ $ANY_ERRORS == 0 ]] || die "some requests failed (see the errors column)"
