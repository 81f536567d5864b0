#!/usr/bin/env bash
# The whole test suite: the Rust workspace, then the Python package's
# pytest suite (installed into a virtual environment under target/py,
# with pytest, MLflow and scikit-learn for the MLflow tests and example).
#
#   scripts/test.sh            # everything
#   SHALE_SKIP_PY=1 scripts/test.sh   # Rust only
#
# The CLI, integrity and mount suites run three times: on a local pool, on
# a pool in a Garage bucket with an SQLite catalog, and on one with a
# PostgreSQL catalog (each test starts its own servers; without garage or
# PostgreSQL installed, those two passes are skipped with a message).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked

suites=(--test cli --test integrity --test mount --test live)
have_garage() { command -v garage >/dev/null || [ -x "$HOME/.cargo/bin/garage" ]; }
have_postgres() {
  command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
if have_garage; then
  SHALE_TEST_STORE=s3 cargo test --locked -p shale-cli "${suites[@]}"
  if have_postgres; then
    SHALE_TEST_STORE=s3-postgres cargo test --locked -p shale-cli "${suites[@]}"
  else
    echo "skipped: the suites on a PostgreSQL catalog need initdb and postgres" >&2
  fi
else
  echo "skipped: the suites on object-store pools need garage (cargo install garage)" >&2
fi

[ -n "${SHALE_SKIP_PY:-}" ] && exit 0
VENV=target/py
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip >/dev/null
"$PY" -c "import pytest, mlflow, sklearn" 2>/dev/null \
  || "$PY" -m pip install -q pytest "mlflow>=2.10" scikit-learn
# Builds the extension with maturin (PEP 517) and installs it.
"$PY" -m pip install -q --force-reinstall --no-deps ./crates/shale-py
"$PY" -m pytest -q -rs crates/shale-py/tests
