#!/usr/bin/env bash
# A class's start, measured: a fresh clone of this checkout's HEAD, its set-up, a pack of trained models unpacked,
# then the README's first command, ./run_all.sh, uninterrupted (notebook 02's timings included). Writes
# results/lab_fresh_clone.json, from which `python -m acmtl report` writes the README's lab line; the clone's logs
# stay in build/lab-measure/.
#
#   scripts/measure_lab.sh PACK     PACK: a file `python -m acmtl runs --pack` wrote at this code
#
# Run it on a quiet machine (notebook 02 times the machine) from a clean checkout (the clone is of HEAD). The set-up
# uses this machine's download caches (pip's and ~/.cache/acmtl) as a class set up the evening before would.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
  echo "usage: scripts/measure_lab.sh PACK (a file of python -m acmtl runs --pack)" >&2
  exit 2
fi
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "measure_lab: commit first: the clone is of HEAD, and its tables are compared with HEAD's" >&2
  exit 2
fi
pack=$(realpath "$1")
repo=$PWD
logs=$repo/build/lab-measure
rm -rf "$logs"
mkdir -p "$logs"
clone=$(mktemp -d)/acmtl
git clone -q "$repo" "$clone"
cd "$clone"
unset ACMTL_RUNS ACMTL_WORKERS
echo "measure_lab: a fresh clone of $(git log --oneline -1 | cut -c1-60) in $clone"

start=$(date +%s)
./run_all.sh --tests --collect-only -q > "$logs/setup.log" 2>&1  # set-up only: .venv, packages, corpora, encoder
setup=$(( $(date +%s) - start ))
echo "measure_lab: set-up $setup s"

start=$(date +%s)
.venv/bin/python -m acmtl runs --unpack "$pack" | tee "$logs/unpack.log"
unpack=$(( $(date +%s) - start ))

ls runs > "$logs/runs_before.txt"
start=$(date +%s)
./run_all.sh 2>&1 | tee "$logs/run_all.log"
run_all=$(( $(date +%s) - start ))
ls runs > "$logs/runs_after.txt"
git status --porcelain > "$logs/changed.txt"

.venv/bin/python -m acmtl.companion.fresh_clone "$logs" "$repo/results" --commit "$(git rev-parse HEAD)" \
  --pack "$pack" --setup "$setup" --unpack "$unpack" --run-all "$run_all"
rm -rf "$(dirname "$clone")"
