#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit and end-to-end, against SQLite, or PostgreSQL when
# TEST_DATABASE_URL is set) and the client scripts' pytest suite against the real server.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace
cargo build -p server
python3 -m pip install -q --disable-pip-version-check -r clients/requirements-test.txt
python3 -m pytest -q clients/tests
