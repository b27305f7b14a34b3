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

# uv installs the ~250 packages in seconds where pip takes about two minutes. uv does not read pip's
# configuration, so the indexes, find-links and constraints pip is configured with (pip.conf or PIP_*) are
# passed on; `unsafe-best-match` picks across indexes as pip does. Where uv cannot be had, pip does the same.
uv_pip_options() {
  .venv/bin/python -m pip config list 2>/dev/null | .venv/bin/python -c '
import shlex, sys
flags = {"index-url": "--index-url", "extra-index-url": "--extra-index-url",
         "find-links": "--find-links", "constraint": "--constraint"}
seen = set()
for line in sys.stdin:
    key, _, value = line.strip().partition("=")
    flag = flags.get(key.rsplit(".", 1)[-1])
    for item in shlex.split(value)[0].split() if flag and value else ():
        if (flag, item) not in seen:
            seen.add((flag, item))
            print(flag, item, sep="\n")
'
}
install() {
  if [ -n "${uv:-}" ]; then
    "$uv" pip install --python .venv/bin/python -q --index-strategy unsafe-best-match "${uv_options[@]}" "$@"
  else
    .venv/bin/python -m pip install -q "$@"
  fi
}
uv=""
if .venv/bin/python -m pip install -q uv 2>/dev/null; then
  uv=.venv/bin/uv
  mapfile -t uv_options < <(uv_pip_options)
  cert=$(.venv/bin/python -m pip config get global.cert 2>/dev/null || true)
  export SSL_CERT_FILE=${SSL_CERT_FILE:-${PIP_CERT:-$cert}}
  [ -n "$SSL_CERT_FILE" ] || unset SSL_CERT_FILE
else
  echo "note: uv could not be installed; installing with pip (slower)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
fi
# torch first, pinned: where a CPU wheel of 2.13.0 is provided locally it is taken; elsewhere see README.
install "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
install -e ".[$extras]"

mkdir -p .dagster_home
ln -sf ../dagster.yaml .dagster_home/dagster.yaml
