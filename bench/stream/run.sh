#!/usr/bin/env bash
# Streaming benchmark: builds the release server and the benchmark, then runs it.
# Any arguments go to stream-bench (see `--help`), e.g.:
#   bench/stream/run.sh                          # 100 and 1,000 streams, 5 rounds each
#   bench/stream/run.sh --levels 10,100 --rounds 3 --token-delay-ms 0
set -euo pipefail
cd "$(dirname "$0")/../.."

# 1,000 streams need ~2 sockets each in the server and ~2 in the benchmark (clients + upstream).
want=65536
hard=$(ulimit -Hn)
if [ "$hard" != "unlimited" ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
ulimit -Sn "$want" || echo "warning: could not raise the open files limit (now $(ulimit -Sn))" >&2

cargo build --release -p server -p stream-bench
target="${CARGO_TARGET_DIR:-target}"
echo "== stream-bench $(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty tree)'), ulimit -n $(ulimit -Sn)" >&2
exec "$target/release/stream-bench" --server-bin "$target/release/integrator-agent" "$@"
