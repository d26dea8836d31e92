#!/usr/bin/env bash
# Load benchmarks of Integrator Agent: GET /tools and the search_knowledge_base tool.
# See bench/README.md. Usage:  bench/run.sh
#
# Settings (environment):
#   BENCH_ARTICLES=10000        articles generated and imported
#   BENCH_SEED=20240601         generator seed
#   BENCH_DURATION=15s          measured wrk run
#   BENCH_WARMUP=3s             wrk warm-up run before each measurement (discarded)
#   BENCH_THREADS=2             wrk threads
#   BENCH_GET_CONNECTIONS=64    connections for GET /tools
#   BENCH_SEARCH_CONNECTIONS=8  connections for the search POST
#   BENCH_SWEEP="1 2 4 16 64"     extra search runs at these connection counts ("" to skip)
#   BENCH_SWEEP_DURATION=10s
#   BENCH_INDEX_TIMEOUT=300     seconds to wait for the server to index the imported articles
#   BENCH_INDEX_STALL=30        ...or until the indexed count has not moved for this many seconds
#   BENCH_QUIET_WAIT=300        before each load run, wait up to this long for other processes to
#                               use less than BENCH_MAX_BACKGROUND % of the machine (0 = don't wait)
#   BENCH_MAX_BACKGROUND=10
#   BENCH_SKIP_BUILD=1          do not run cargo build (use the existing release binary)
#   BENCH_OUT=DIR               where raw outputs go (default bench/results/<UTC time>)
#   BENCH_KEEP=1                keep the temporary data dir (printed at exit)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$REPO/bench"
BIN="$REPO/target/release/integrator-agent"

ARTICLES="${BENCH_ARTICLES:-10000}"
SEED="${BENCH_SEED:-20240601}"
DURATION="${BENCH_DURATION:-15s}"
WARMUP="${BENCH_WARMUP:-3s}"
THREADS="${BENCH_THREADS:-2}"
GET_CONNECTIONS="${BENCH_GET_CONNECTIONS:-64}"
SEARCH_CONNECTIONS="${BENCH_SEARCH_CONNECTIONS:-8}"
SWEEP="${BENCH_SWEEP-1 2 4 16 64}"
SWEEP_DURATION="${BENCH_SWEEP_DURATION:-10s}"
INDEX_TIMEOUT="${BENCH_INDEX_TIMEOUT:-300}"
INDEX_STALL="${BENCH_INDEX_STALL:-30}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-300}"
MAX_BACKGROUND="${BENCH_MAX_BACKGROUND:-10}"
OUT="${BENCH_OUT:-$BENCH/results/$(date -u +%Y%m%dT%H%M%SZ)}"

# Targets (2 cores).
TARGET_GET_RPS=20000
TARGET_SEARCH_P99_MS=5

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install wrk curl python3)"
done

# The benchmark must not pick up the caller's server settings (database URL, Zendesk, LLM...).
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(INTEGRATOR_|OPENAI_)' || true)
export RUST_LOG=warn

WORK="$(mktemp -d /tmp/integrator-bench.XXXXXX)"
SERVER_PID=""

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "stopping the server (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server did not stop within 10 s; killing it"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -f "$WORK/server.err" && -d "$OUT" ]]; then
    cp "$WORK/server.err" "$OUT/server.stderr.log" 2>/dev/null || true
  fi
  if [[ "${BENCH_KEEP:-}" == 1 ]]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT"

# --- build -------------------------------------------------------------------------------
if [[ "${BENCH_SKIP_BUILD:-}" != 1 ]]; then
  log "cargo build --release (no-op when up to date)"
  (cd "$REPO" && cargo build --release --bin integrator-agent) >&2
fi
[[ -x "$BIN" ]] || die "$BIN is missing (run cargo build --release)"

# --- machine -----------------------------------------------------------------------------
CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "nproc: $(nproc)"
  echo "cpu: $CPU_MODEL"
  echo "kernel: $(uname -r)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "wrk: $(wrk -v 2>&1 | head -1)"
  echo "git: $(cd "$REPO" && git rev-parse --short HEAD) ($(cd "$REPO" && git status --porcelain -- crates Cargo.toml Cargo.lock | wc -l) changed/untracked paths under crates/ and Cargo files)"
  echo "binary: $BIN, built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M:%S UTC')"
  echo "settings: articles=$ARTICLES seed=$SEED threads=$THREADS duration=$DURATION warmup=$WARMUP get_c=$GET_CONNECTIONS search_c=$SEARCH_CONNECTIONS sweep='$SWEEP'"
} | tee "$OUT/machine.txt" >&2

# --- server ------------------------------------------------------------------------------
DATA="$WORK/data"
log "starting the server on 127.0.0.1 (free port) with data dir $DATA"
"$BIN" serve --addr 127.0.0.1:0 --data-dir "$DATA" >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!

BASE=""
for _ in $(seq 1 600); do
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; die "the server exited during start"; }
  BASE="$(sed -n 's/^Integrator Agent listening on \(http:\/\/127\.0\.0\.1:[0-9]*\).*$/\1/p' "$WORK/server.out" | head -1)"
  [[ -n "$BASE" ]] && break
  sleep 0.1
done
[[ -n "$BASE" ]] || die "the server did not print its address within 60 s"
KEY="$(sed -n 's/^Admin API key (shown once, store it now): \([A-Za-z0-9]*\)$/\1/p' "$WORK/server.out" | head -1)"
[[ -n "$KEY" ]] || die "no admin API key in the server output"
export BENCH_API_KEY="$KEY"
log "server pid $SERVER_PID at $BASE"

server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
machine_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
HZ="$(getconf CLK_TCK)"

BASE_DOCS="$(python3 "$BENCH/helpers.py" indexed "$BASE")"
log "shipped corpus indexed: $BASE_DOCS documents"

# --- articles ----------------------------------------------------------------------------
log "generating $ARTICLES articles (seed $SEED)"
python3 "$BENCH/gen_articles.py" "$WORK/articles" --count "$ARTICLES" --seed "$SEED"

log "importing them with 'kb import'"
IMPORT_START=$(date +%s.%N)
"$BIN" kb import "$WORK/articles" --data-dir "$DATA" >&2
IMPORT_END=$(date +%s.%N)
IMPORT_S=$(python3 -c "print(f'{$IMPORT_END - $IMPORT_START:.1f}')")
log "import took ${IMPORT_S} s; waiting for the server to index them"

WANT=$((BASE_DOCS + ARTICLES))
DOCS="$BASE_DOCS"
INDEX_START=$(date +%s)
LAST_CHANGE=$INDEX_START
LAST_DOCS=-1
INDEX_NOTE=""
while :; do
  DOCS="$(python3 "$BENCH/helpers.py" indexed "$BASE")"
  NOW=$(date +%s)
  if (( DOCS != LAST_DOCS )); then LAST_DOCS=$DOCS; LAST_CHANGE=$NOW; FULL_AT=$NOW; fi
  (( DOCS >= WANT )) && break
  if (( NOW - INDEX_START >= INDEX_TIMEOUT || NOW - LAST_CHANGE >= INDEX_STALL )); then
    INDEX_NOTE=" -- INCOMPLETE: $((WANT - DOCS)) imported article(s) never indexed (count unchanged for $((NOW - LAST_CHANGE)) s)"
    log "WARNING: only $DOCS of $WANT documents indexed; benchmarking anyway"
    break
  fi
  sleep 1
done
INDEX_S=$(( FULL_AT - INDEX_START ))
log "indexed_documents = $DOCS (wanted >= $WANT), reached ${INDEX_S} s after the import finished$INDEX_NOTE"

# Idle CPU: nothing is sent for 10 s; a healthy idle server uses ~0% CPU.
sleep 2
T0=$(server_ticks); sleep 10; T1=$(server_ticks)
IDLE_CPU=$(python3 -c "print(f'{($T1 - $T0) / $HZ / 10 * 100:.1f}')")
log "server CPU while idle (10 s, after indexing): ${IDLE_CPU}% of one core"

# --- smoke test --------------------------------------------------------------------------
log "smoke test: GET /tools and each search question once"
python3 "$BENCH/helpers.py" smoke "$BASE" "$KEY" "$BENCH/search.lua" | tee "$OUT/smoke.txt" >&2

# --- load --------------------------------------------------------------------------------
# Other processes on the machine (builds, tests) would take CPU from the server and from wrk.
background_pct() {  # % of the whole machine used by processes other than the server, over 3 s
  local m0 m1 s0 s1
  m0=$(machine_ticks); s0=$(server_ticks); sleep 3; m1=$(machine_ticks); s1=$(server_ticks)
  python3 -c "import sys
b0,t0,b1,t1,s0,s1=map(float,sys.argv[1:]); print(int(max(0,(b1-b0)-(s1-s0))/(t1-t0)*100))" $m0 $m1 "$s0" "$s1"
}
wait_for_quiet() {
  (( QUIET_WAIT > 0 )) || return 0
  local start bg
  start=$(date +%s)
  while :; do
    bg=$(background_pct)
    if (( bg <= MAX_BACKGROUND )); then
      log "background load ${bg}% of the machine: quiet enough"
      return 0
    fi
    if (( $(date +%s) - start >= QUIET_WAIT )); then
      log "WARNING: background load still ${bg}% of the machine after ${QUIET_WAIT} s; this run will be pessimistic"
      return 0
    fi
    log "background load ${bg}% of the machine (other processes); waiting for it to drop below ${MAX_BACKGROUND}%"
    sleep 7
  done
}

TOOLS_URL="$BASE/rest/v1/ai-agent/api/tools"
SEARCH_URL="$BASE/rest/v1/ai-agent/api/tools/search_knowledge_base/execute"
SEARCH_ROUTE="/rest/v1/ai-agent/api/tools/{tool_name}/execute"
TOOLS_ROUTE="/rest/v1/ai-agent/api/tools"

# run_wrk NAME CONNECTIONS DURATION ROUTE URL [wrk args...]
run_wrk() {
  local name=$1 connections=$2 duration=$3 route=$4 url=$5
  shift 5
  local threads=$THREADS
  if (( connections < threads )); then threads=$connections; fi
  wait_for_quiet
  if [[ -n "$WARMUP" && "$WARMUP" != 0 && "$WARMUP" != 0s ]]; then
    wrk -t "$threads" -c "$connections" -d "$WARMUP" "$@" "$url" >/dev/null
  fi
  python3 "$BENCH/helpers.py" metrics "$BASE" "$WORK/m0.json"
  local s0 m0 s1 m1 w0 w1
  # wrk's own CPU time shows up in this shell's reaped-children time (cutime + cstime).
  s0=$(server_ticks); m0=$(machine_ticks); w0=$(awk '{print $16 + $17}' /proc/$$/stat)
  wrk -t "$threads" -c "$connections" -d "$duration" --timeout 10s --latency "$@" "$url" \
    | tee "$OUT/$name.txt" >&2
  s1=$(server_ticks); m1=$(machine_ticks); w1=$(awk '{print $16 + $17}' /proc/$$/stat)
  python3 "$BENCH/helpers.py" metrics "$BASE" "$WORK/m1.json"
  python3 "$BENCH/helpers.py" metrics-delta "$WORK/m0.json" "$WORK/m1.json" "$route" \
    | tee -a "$OUT/$name.txt" >&2
  # CPU split: the server process vs. the whole machine (wrk + everything else).
  read -r busy0 total0 <<<"$m0"
  read -r busy1 total1 <<<"$m1"
  python3 - "$s0" "$s1" "$busy0" "$busy1" "$total0" "$total1" "$(nproc)" "$w0" "$w1" "$OUT/$name.cpu" <<'EOF' | tee -a "$OUT/$name.txt" >&2
import sys
s0, s1, b0, b1, t0, t1, n, w0, w1 = map(float, sys.argv[1:10])
wall = (t1 - t0) / n                        # ticks of wall time per core
server = (s1 - s0) / wall * 100             # % of one core
wrk = (w1 - w0) / wall * 100
machine = (b1 - b0) / (t1 - t0) * n * 100   # % of one core, all processes
other = max(0.0, machine - server - wrk)
print(f"  CPU (% of one core): server {server:.0f}, wrk {wrk:.0f}, other processes {other:.0f}; "
      f"machine {machine:.0f} of {int(n) * 100}")
open(sys.argv[10], "w").write(f"{server:.0f} {wrk:.0f} {other:.0f}\n")
EOF
  local summary
  summary=$(python3 "$BENCH/helpers.py" wrk-summary "$OUT/$name.txt")
  echo "$name $connections $(cat "$OUT/$name.cpu") $summary" >>"$OUT/summary.txt"
}

: >"$OUT/summary.txt"
log "GET /tools: $THREADS threads, $GET_CONNECTIONS connections, $DURATION"
run_wrk get_tools "$GET_CONNECTIONS" "$DURATION" "$TOOLS_ROUTE" "$TOOLS_URL" \
  -H "Authorization: Bearer $KEY"

log "search POST: $THREADS threads, $SEARCH_CONNECTIONS connections, $DURATION"
run_wrk search "$SEARCH_CONNECTIONS" "$DURATION" "$SEARCH_ROUTE" "$SEARCH_URL" -s "$BENCH/search.lua"

for c in $SWEEP; do
  log "search sweep: $c connections, $SWEEP_DURATION"
  run_wrk "search_c$c" "$c" "$SWEEP_DURATION" "$SEARCH_ROUTE" "$SEARCH_URL" -s "$BENCH/search.lua"
done

# --- report ------------------------------------------------------------------------------
python3 - "$OUT/summary.txt" "$TARGET_GET_RPS" "$TARGET_SEARCH_P99_MS" <<'EOF' | tee "$OUT/report.txt"
import sys
rows = [line.split(None, 10) for line in open(sys.argv[1]) if line.strip()]
target_rps, target_p99 = float(sys.argv[2]), float(sys.argv[3])
print()
print(f"{'benchmark':<12}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'non-2xx':>8}"
      f"{'CPU% server/wrk/other':>23}  socket errors")
for name, conns, cs, cw, co, rps, p50, p90, p99, non2xx, errors in rows:
    print(f"{name:<12}{conns:>6}{float(rps):>10.0f}{float(p50):>9.2f}{float(p90):>9.2f}{float(p99):>9.2f}"
          f"{non2xx:>8}{cs + '/' + cw + '/' + co:>23}  {errors.strip()}")
print()
by_name = {r[0]: r for r in rows}
rps = float(by_name["get_tools"][5])
p99 = float(by_name["search"][8])
print(f"target GET /tools >= {target_rps:.0f} req/s: {'MET' if rps >= target_rps else 'MISSED'} ({rps:.0f})")
print(f"target search p99 <= {target_p99:g} ms (at {by_name['search'][1]} connections): "
      f"{'MET' if p99 <= target_p99 else 'MISSED'} ({p99:.2f} ms)")
EOF
{
  echo "import: ${IMPORT_S} s for $ARTICLES articles; indexed ${DOCS}/${WANT} documents ${INDEX_S} s after import$INDEX_NOTE"
  echo "server RSS after the runs: $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$SERVER_PID/status)"
  echo "server CPU while idle after indexing: ${IDLE_CPU}% of one core"
  echo "raw outputs: $OUT"
} | tee -a "$OUT/report.txt"
