#!/usr/bin/env bash
# The whole test suite: the Rust workspace (cargo nextest), then the Python
# package's pytest suite in one locked virtual environment (target/py,
# installed with uv from scripts/requirements-test.lock).
#
#   scripts/test.sh                   # everything
#   SHALE_SKIP_PY=1 scripts/test.sh   # Rust only
#
# Every Rust test runs on a local pool. Representative suites run again on
# pools in a Garage bucket, with an SQLite catalog (the CLI, integrity,
# mount and encryption suites) and with a PostgreSQL catalog (the CLI and
# integrity suites), and on encrypted pools, local and in Garage (the CLI,
# integrity and mount suites); the suites written for those stores (s3,
# shared, mirror, sync) run in the first pass. Each test starts its own servers; without garage
# or PostgreSQL installed, those passes are skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "scripts/test.sh needs cargo-nextest (cargo install --locked cargo-nextest)" >&2
  exit 1
fi
nextest() { cargo nextest run --locked --no-fail-fast "$@"; }

nextest --workspace
# The core CLI and gc suites once more through `shale serve` (--server): each
# command the server can run goes through it, the same assertions hold (the
# gc suite there found verify trusting blob places a gc in the server's own
# process had moved).
SHALE_TEST_VIA=server nextest -p shale-cli --test cli --test gc
cargo test --workspace --locked --doc --quiet
# The core suites once more on encrypted local pools (SHALE_TEST_ENCRYPT:
# `pool init --encrypt`, the key given through SHALE_KEY_FILE).
SHALE_TEST_ENCRYPT=1 nextest -p shale-cli --test cli --test integrity --test mount
# The FUSE suites once more with four session threads, each on its own
# clone of the FUSE device, as on machines of 8 CPUs or more (one thread
# serves a mount on the 2-CPU machines CI runs on).
SHALE_MOUNT_THREADS=4 nextest -p shale-cli --test mount --test live --test posix \
  --test concurrency --test crash --test intent_log

have_garage() { command -v garage >/dev/null || [ -x "$HOME/.cargo/bin/garage" ]; }
have_postgres() {
  command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
if have_garage; then
  SHALE_TEST_STORE=s3 nextest -p shale-cli --test cli --test integrity --test mount --test encrypt
  # Encrypted pools in Garage: the store holds only ciphertext.
  SHALE_TEST_STORE=s3 SHALE_TEST_ENCRYPT=1 nextest -p shale-cli --test cli --test integrity --test mount
  if have_postgres; then
    SHALE_TEST_STORE=s3-postgres nextest -p shale-cli --test cli --test integrity --test serve --test remote
  else
    echo "skipped: the suites on a PostgreSQL catalog need initdb and postgres" >&2
  fi
else
  echo "skipped: the suites on object-store pools need garage (cargo install garage)" >&2
fi

[ -n "${SHALE_SKIP_PY:-}" ] && exit 0
command -v uv >/dev/null || python3 -m pip install -q uv
# (a uv just installed may not be on PATH yet: its module runs it too)
uv() { if type -P uv >/dev/null; then command uv "$@"; else python3 -m uv "$@"; fi; }
VENV=target/py
# The system's Python where there is one: the JupyterHub test runs servers
# as other users, who can run it (not one under /root, as pyenv's is).
BASE=$(command -v /usr/bin/python3 || command -v python3)
grep -qx "home = $(dirname "$(readlink -f "$BASE")")" "$VENV/pyvenv.cfg" 2>/dev/null || rm -rf "$VENV"
[ -x "$VENV/bin/python" ] || uv venv -q --python "$BASE" "$VENV"
PY="$VENV/bin/python"
# The whole suite includes the pipeline tests (Airflow, Kubeflow Pipelines:
# a larger lock); SHALE_TEST_CORE_ONLY=1 installs the core lock alone, and
# those tests then say they were skipped.
LOCK=scripts/requirements-pipelines.lock
[ -n "${SHALE_TEST_CORE_ONLY:-}" ] && LOCK=scripts/requirements-test.lock
uv pip sync -q --python "$PY" "$LOCK"
# The extension, built in the profile the tests above built in, so the
# crates it shares with them are compiled once.
rm -rf target/wheels
VIRTUAL_ENV="$VENV" "$VENV/bin/maturin" build --quiet --profile dev \
  -m crates/shale-py/Cargo.toml -o target/wheels
uv pip install -q --python "$PY" --reinstall --no-deps target/wheels/shale_volumes-*.whl
"$PY" -m pytest -q -rs crates/shale-py/tests deploy/tests
