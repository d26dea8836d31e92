#!/usr/bin/env bash
# Flow throughput: N rows from an NDJSON file through a flow into PostgreSQL and into SQLite,
# compared in the same run with PostgreSQL's own COPY of the same rows (the physical limit).
# Prints rows/s and peak RSS of the process running the flow. Usage: bench/flows/run.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS="${1:-${BENCH_ROWS:-1000000}}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432/test}"
BIN=target/release/integrator-agent
[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || cargo build --release -p server >/dev/null
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
DATA=$(mktemp -d)
SCHEMA="bench_$(date +%s)"
cleanup() { psql -q "$PG" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true; rm -rf "$DATA"; }
trap cleanup EXIT
psql -q "$PG" -c "CREATE SCHEMA $SCHEMA" >/dev/null
# The flows use the PostgreSQL server on this machine, which an operator allows explicitly.
export INTEGRATOR_EGRESS_ALLOW="${INTEGRATOR_EGRESS_ALLOW:-127.0.0.1:5432,localhost:5432}"
host() { "$BIN" --data-dir "$DATA" host --tenant default "$1"; }
"$BIN" --data-dir "$DATA" tenant create default --tier professional >/dev/null
INBOX="$("$BIN" --data-dir "$DATA" tenant folder default)/inbox"
mkdir -p "$INBOX"
python3 bench/flows/gen_rows.py "$ROWS" "$INBOX/orders.ndjson" "$DATA/orders.csv"
echo "rows: $ROWS ($(du -h "$INBOX/orders.ndjson" | cut -f1) of NDJSON)"
host "create connection inbox type=file path=inbox format=ndjson" >/dev/null
host "create connection wh type=postgres url=\"$PG?options=-c%20search_path%3D$SCHEMA\"" >/dev/null
host "create connection lake type=sqlite path=lake.db" >/dev/null
host "create flow to_pg from=inbox:orders.ndjson to=wh:orders mode=append" >/dev/null
host "create flow to_pg_upsert from=inbox:orders.ndjson to=wh:orders_upsert mode=upsert key=id" >/dev/null
host "create flow to_sqlite from=inbox:orders.ndjson to=lake:orders mode=append" >/dev/null

measure() { # name, command...
  local name=$1; shift
  local start end rss
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$DATA/rss" "$@" >/dev/null
  end=$(date +%s.%N)
  rss=$(cat "$DATA/rss")
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); n=int(sys.argv[3]); print(f'{sys.argv[4]:<28} {s:8.2f} s  {n/s:>10,.0f} rows/s  peak RSS {int(sys.argv[5])/1024:7.1f} MB')" "$start" "$end" "$ROWS" "$name" "$rss"
}
psql -q "$PG" -c "CREATE TABLE $SCHEMA.copy_orders (id BIGINT, customer TEXT, total DOUBLE PRECISION, paid BOOLEAN, status TEXT)"
measure "PostgreSQL COPY (psql)" psql -q "$PG" -c "\\copy $SCHEMA.copy_orders FROM '$DATA/orders.csv' CSV HEADER"
measure "flow → PostgreSQL append" "$BIN" --data-dir "$DATA" host --tenant default "run flow to_pg"
measure "flow → PostgreSQL upsert" "$BIN" --data-dir "$DATA" host --tenant default "run flow to_pg_upsert"
measure "flow → SQLite append" "$BIN" --data-dir "$DATA" host --tenant default "run flow to_sqlite"
echo "check: $(psql -tA "$PG" -c "SELECT COUNT(*) FROM $SCHEMA.orders") rows in PostgreSQL, $(psql -tA "$PG" -c "SELECT COUNT(*) FROM $SCHEMA.orders_upsert") upserted"
