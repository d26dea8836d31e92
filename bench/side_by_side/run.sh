#!/usr/bin/env bash
# Streaming, side by side in one run: the same Python client (httpx) and the same scripted
# upstream on three paths — straight to the upstream (the floor), through LiteLLM's proxy (one
# worker: the peer users pick today) and through integrator-agent. Run from the repository root
# after `cargo build --release -p server`:
#   bench/side_by_side/run.sh [LEVELS] [REQUESTS_PER_LEVEL]        e.g. "1 10 50" 1000
# Environment: SKIP_LITELLM=1 (direct and agent only), AGENT_DATABASE_URL=postgres://… (the server
# on PostgreSQL instead of SQLite), LL_VENV (LiteLLM's virtualenv, made on first use, default
# /tmp/llvenv), AGENT_BIN (default target/release/integrator-agent).
# Each line printed is one path at one concurrency: req/s, TTFT p50/p99 (ms), errors; at the end
# the server's peak RSS and the size of its SQLite WAL.
set -u
LEVELS=${1:-"1 10 50"}; REQS=${2:-1000}
HERE=$(cd "$(dirname "$0")" && pwd)
LL_VENV=${LL_VENV:-/tmp/llvenv}
[ -x "$LL_VENV/bin/python" ] && "$LL_VENV/bin/python" -c 'import httpx' 2>/dev/null || \
  { python3 -m venv "$LL_VENV" && "$LL_VENV/bin/pip" install -q httpx; } || exit 1
if [ -z "${SKIP_LITELLM:-}" ] && [ ! -x "$LL_VENV/bin/litellm" ]; then
  "$LL_VENV/bin/pip" install -q 'litellm[proxy]' || exit 1
fi
W=$(mktemp -d); PY=$LL_VENV/bin/python
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
FP=$(port); LP=$(port); AP=$(port)
FAKE_LOG=/dev/null python3 "$HERE/scripted_openai.py" "$FP" > "$W/upstream.log" 2>&1 & FPID=$!
LPID=
if [ -z "${SKIP_LITELLM:-}" ]; then
  cat > "$W/litellm.yaml" <<Y
model_list:
  - model_name: gpt-4.1
    litellm_params: {model: openai/gpt-4.1, api_base: "http://127.0.0.1:$FP/v1", api_key: sk-x}
general_settings: {master_key: sk-master}
Y
  "$LL_VENV/bin/litellm" --config "$W/litellm.yaml" --port "$LP" --num_workers 1 > "$W/litellm.log" 2>&1 & LPID=$!
fi
[ -n "${AGENT_DATABASE_URL:-}" ] && export INTEGRATOR_DATABASE_URL=$AGENT_DATABASE_URL
INTEGRATOR_ADDR=127.0.0.1:$AP INTEGRATOR_DATA_DIR=$W/data OPENAI_API_KEY=sk-x OPENAI_BASE_URL=http://127.0.0.1:$FP/v1 \
  INTEGRATOR_MODEL=gpt-4.1 RUST_LOG=warn INTEGRATOR_ALLOWANCE_FREE_USD=1000000 INTEGRATOR_ALLOWANCE_STANDARD_USD=1000000 \
  INTEGRATOR_ALLOWANCE_PROFESSIONAL_USD=1000000 \
  ${AGENT_BIN:-target/release/integrator-agent} serve > "$W/agent.log" 2>&1 & APID=$!
trap 'kill $FPID $LPID $APID 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
for i in $(seq 90); do
  { [ -z "$LPID" ] || curl -s -o /dev/null "http://127.0.0.1:$LP/health/liveliness"; } && curl -s -o /dev/null "http://127.0.0.1:$AP/health" && break
  sleep 1
done
KEY=$(grep -oE '[A-Za-z0-9]{256}' "$W/agent.log" | head -1)
[ -n "$KEY" ] || { echo "no admin key in the server's first-start output"; cat "$W/agent.log"; exit 1; }
B="$PY $HERE/stream_bench.py"
$B openai "http://127.0.0.1:$FP/v1/chat/completions" 5 40 >/dev/null
[ -n "$LPID" ] && $B openai "http://127.0.0.1:$LP/v1/chat/completions" 5 40 sk-master >/dev/null
$B agent "http://127.0.0.1:$AP/rest/v1/ai-agent/api/chat/stream" 5 40 "$KEY" >/dev/null
for c in $LEVELS; do
  $B openai "http://127.0.0.1:$FP/v1/chat/completions" "$c" "$REQS" | sed 's/"mode": "openai"/"mode": "direct"/'
  [ -n "$LPID" ] && $B openai "http://127.0.0.1:$LP/v1/chat/completions" "$c" "$REQS" sk-master | sed 's/"mode": "openai"/"mode": "litellm"/'
  $B agent "http://127.0.0.1:$AP/rest/v1/ai-agent/api/chat/stream" "$c" "$REQS" "$KEY"
done
echo "{\"server_peak_rss_kib\": $(awk '/VmHWM/ {print $2}' /proc/$APID/status), \"wal_bytes\": $(stat -c %s "$W/data/integrator.db-wal" 2>/dev/null || echo 0)}"
