#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit and end-to-end, against SQLite, or PostgreSQL when
# TEST_DATABASE_URL is set) and the client scripts' pytest suite against the real server.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace
cargo build -p server

# The client tests run in a virtual environment of their own (.venv, ignored by git): stock
# Debian and Ubuntu refuse pip installs into the system Python. Packages are installed once,
# and again only when a requirements file changes.
venv="${INTEGRATOR_TEST_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || {
    echo "test.sh: cannot create a virtual environment in $venv; install Python's venv module" \
      "(Debian/Ubuntu: apt install python3-venv)" >&2
    exit 1
  }
fi
requirements=(clients/requirements-test.txt clients/requirements-frameworks.txt)
wanted="$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -r clients/requirements-test.txt -r clients/requirements-frameworks.txt
  echo "$wanted" > "$venv/.requirements.sha256"
fi
"$venv/bin/python" -m pytest -q clients/tests
