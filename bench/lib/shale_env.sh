# Shared by the benchmarks that run on a lent machine too, where nothing is
# built: which `shale` and which Python to use. Source it with ROOT and WORK
# set; it sets S (the CLI) and PY (a Python with the shale package).
#   SHALE=path/to/shale     a stripped CLI built elsewhere (default: a
#                           release build of this checkout, made here)
#   SHALE_PY=python         the Python (default target/py, else python3)
#   SHALE_WHEEL=shale-*.whl the Python package built elsewhere (maturin;
#                           abi3, CPython 3.9+), unpacked under WORK

S=${SHALE:-$ROOT/target/release/shale}
[ -n "${SHALE:-}" ] || cargo build --release --manifest-path "$ROOT/Cargo.toml" -p shale-cli >/dev/null
PY=${SHALE_PY:-$ROOT/target/py/bin/python}
command -v "$PY" >/dev/null || PY=python3
if [ -n "${SHALE_WHEEL:-}" ]; then
  rm -rf "$WORK/site"; mkdir -p "$WORK/site"
  # A wheel is a zip of what goes on the path: unpacked, no pip needed.
  "$PY" -m zipfile -e "$SHALE_WHEEL" "$WORK/site"
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
