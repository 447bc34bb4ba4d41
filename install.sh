#!/usr/bin/env bash
# Creates a virtual environment (default .venv, or $VENV) with every pinned
# dependency. `./install.sh --gpu` installs TensorFlow with CUDA instead of the
# CPU build.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile)
if [ "${1:-}" = "--gpu" ]; then
  grep -v '^tensorflow-cpu' requirements.txt > "$VENV/requirements-gpu.txt"
  "${PIP[@]}" -r "$VENV/requirements-gpu.txt" "tensorflow[and-cuda]==2.21.0"
else
  "${PIP[@]}" -r requirements.txt
fi
"${PIP[@]}" --no-deps -r requirements-nodeps.txt
echo "installed into $VENV"
