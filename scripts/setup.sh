#!/usr/bin/env bash
# One-time (idempotent) set-up: system packages, the virtual environment, the project and its dev tools,
# and a project-local Dagster home. `make demo` and `make test` call it when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' || {
  echo "whisper-assets needs Python 3.11 or 3.12 (found $("$PYTHON" --version)); set PYTHON=..." >&2
  exit 1
}

# espeak-ng speaks the demo's sentences; without it the demo falls back to synthetic signals.
if ! command -v espeak-ng >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null) ||
      echo "warning: could not install espeak-ng; the demo will use synthetic audio" >&2
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null) ||
      echo "warning: could not install espeak-ng; the demo will use synthetic audio" >&2
  else
    echo "note: install espeak-ng for spoken demo audio (the demo works without it)" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: where a CPU wheel of 2.13.0 is provided locally pip takes it; elsewhere see README.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev,export]"

mkdir -p .dagster_home
ln -sf ../dagster.yaml .dagster_home/dagster.yaml
