#!/usr/bin/env bash
# Refresh requirements.lock: every package acmtl needs (all extras), pinned, with sha256 hashes.
#
#   scripts/lock.sh            rewrite requirements.lock from pyproject.toml; commit it with the pyproject change
#
# torch resolves to the CPU wheel, 2.13.0+cpu, from the wheel folder pip is configured with here
# ($ACMTL_TORCH_WHEELS, default /opt/wheels; elsewhere download it from https://download.pytorch.org/whl/cpu
# into such a folder). uv runs from a throwaway venv, so .venv is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=${ACMTL_TORCH_WHEELS:-/opt/wheels}
uv=${UV:-$(command -v uv || true)}
if [ -z "$uv" ]; then
  tools=$(mktemp -d)
  trap 'rm -rf "$tools"' EXIT
  python3 -m venv "$tools" && "$tools/bin/pip" install -q uv
  uv="$tools/bin/uv"
fi
"$uv" pip compile pyproject.toml --all-extras --generate-hashes --python-version 3.11 \
  --python-platform x86_64-manylinux_2_28 --find-links "$wheels" --emit-find-links \
  --custom-compile-command "scripts/lock.sh" -q -o requirements.lock
grep -q '^torch==2.13.0+cpu ' requirements.lock || { echo "lock.sh: torch is not the 2.13.0 CPU wheel; is $wheels right?" >&2; exit 1; }
echo "lock.sh: wrote requirements.lock ($(grep -c '^[A-Za-z0-9]' requirements.lock) packages)"
