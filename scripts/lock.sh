#!/usr/bin/env bash
# Refresh the locks: every package acmtl needs (all extras), pinned, with sha256 hashes, one lock per platform.
#
#   scripts/lock.sh            rewrite the locks from pyproject.toml; commit them with the pyproject change
#
#   requirements.lock          Linux x86-64, torch 2.13.0+cpu (the CPU wheel): the tested platform
#   requirements-cuda.lock     Linux x86-64, PyPI's torch 2.13.0 (its CUDA build) with the nvidia-* wheels it needs
#   requirements-macos.lock    macOS 14+ on Apple silicon (arm64), PyPI's torch 2.13.0
#
# torch's CPU wheel comes from the wheel folder pip is configured with here ($ACMTL_TORCH_WHEELS, default
# /opt/wheels; elsewhere download it from https://download.pytorch.org/whl/cpu into such a folder). The CUDA and
# macOS locks are resolved for their platform without installing anything (uv reads the wheels' metadata from
# PyPI), with every pin of the CPU lock but torch's as a constraint, so the three locks agree wherever they share
# a package (tests/test_locks.py checks it). uv runs from a throwaway venv, so .venv is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=${ACMTL_TORCH_WHEELS:-/opt/wheels}
uv=${UV:-$(command -v uv || true)}
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
if [ -z "$uv" ]; then
  python3 -m venv "$tools/venv" && "$tools/venv/bin/pip" install -q uv
  uv="$tools/venv/bin/uv"
fi
# uv keeps the pins already in the file it writes (-o) unless pyproject.toml asks for others
compile() {
  "$uv" pip compile pyproject.toml --all-extras --generate-hashes --python-version 3.11 \
    --custom-compile-command "scripts/lock.sh" -q "$@"
}
check() {  # lock, the torch pin it must hold
  grep -q "^torch==$2 " "$1" || { echo "lock.sh: $1 does not pin torch==$2" >&2; exit 1; }
  echo "lock.sh: wrote $1 ($(grep -c '^[A-Za-z0-9]' "$1") packages)"
}

compile --python-platform x86_64-manylinux_2_28 --find-links "$wheels" --emit-find-links -o requirements.lock
check requirements.lock "2.13.0+cpu"

grep '^[A-Za-z0-9]' requirements.lock | cut -d' ' -f1 | grep -v '^torch==' > "$tools/pins.txt"
# --no-annotate: the "via" notes would name the temporary constraints file
compile --python-platform x86_64-manylinux_2_28 -c "$tools/pins.txt" --no-annotate -o requirements-cuda.lock
check requirements-cuda.lock "2.13.0"
# torch 2.13.0's macOS wheels need macOS 14 (uv assumes 13 unless told)
MACOSX_DEPLOYMENT_TARGET=14.0 compile --python-platform aarch64-apple-darwin -c "$tools/pins.txt" --no-annotate \
  -o requirements-macos.lock
check requirements-macos.lock "2.13.0"
