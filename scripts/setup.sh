#!/usr/bin/env bash
# One-time set-up on a Debian machine: ffmpeg (stempeg, used by musdb/museval/demucs, refuses to
# import without ffmpeg and ffprobe) and a virtual environment at .venv with everything installed.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "sepclean set-up: '$*' is missing. Install it as root first:  apt-get install -y $*" >&2
        exit 1
    fi
    echo "sepclean set-up: installing Debian packages: $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
    apt_install ffmpeg
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        apt_install python3-venv
        "$PYTHON" -m venv .venv
    fi
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev,mert]"
touch .venv/.installed
