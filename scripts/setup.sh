#!/usr/bin/env bash
# One-time (idempotent) set-up: system packages, the virtual environment, the project and its dev tools,
# and a project-local Dagster home. `make demo` and `make test` call it when pyproject.toml changed.
# deploy/Dockerfile runs it too, with WHISPER_ASSETS_PROFILE=image: no test-only packages or dev tools, and
# TORCH_INDEX_URL picking the CUDA build of the same torch release.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' || {
  echo "whisper-assets needs Python 3.11 or 3.12 (found $("$PYTHON" --version)); set PYTHON=..." >&2
  exit 1
}

# Debian packages: espeak-ng speaks the demo's sentences (without it the demo uses synthetic signals);
# chromium + chromium-driver run the review page's browser test (without them that test is skipped);
# postgresql's server binaries run the team-scale tests (Dagster and MLflow on PostgreSQL; skipped without them).
PROFILE=${WHISPER_ASSETS_PROFILE:-dev}
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
# gcc and Python's headers build webrtcvad (the speakers extra's voice encoder needs it; no wheel exists).
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
"$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' ||
  missing+=(python3-dev)
if [ "$PROFILE" = dev ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  extras=dev,export,augment,team,speakers
else
  extras=export,augment,team,speakers
fi
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$sudo" ] || command -v sudo >/dev/null 2>&1; }; then
    ($sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null) ||
      echo "warning: could not install ${missing[*]}; the demo and tests degrade gracefully" >&2
  else
    echo "note: install ${missing[*]} (Debian packages) for spoken demo audio and the browser test" >&2
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: where a CPU wheel of 2.13.0 is provided locally pip takes it; elsewhere see README.
.venv/bin/python -m pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
.venv/bin/python -m pip install -q -e ".[$extras]"

mkdir -p .dagster_home
ln -sf ../dagster.yaml .dagster_home/dagster.yaml
