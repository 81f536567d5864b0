#!/usr/bin/env bash
# The whole test suite: the Rust workspace, then the Python package's
# pytest suite (installed into a virtual environment under target/py,
# with pytest, MLflow and scikit-learn for the MLflow tests and example).
#
#   scripts/test.sh            # everything
#   SHALE_SKIP_PY=1 scripts/test.sh   # Rust only
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked

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
