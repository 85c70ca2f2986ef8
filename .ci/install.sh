#!/usr/bin/env bash
# Installs everything SpeakUp FX needs on a fresh Debian/Ubuntu machine:
# system packages (apt-get; dpf-source builds the VST3 plugin), a virtual environment in .venv, CPU torch, and the package with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  cmake g++ make python3-venv python3-dev espeak-ng dpf-source >/dev/null

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e ".[dev]"
echo "installed: $(.venv/bin/speakup --version 2>/dev/null || .venv/bin/python -c 'import speakup_fx; print(speakup_fx.__version__)')"
