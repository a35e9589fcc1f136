#!/usr/bin/env bash
# What scripts/gpu_check.sh needs on an offline GPU machine that has its own Python 3 and torch (with transformers,
# numpy, pandas, scikit-learn, safetensors, filelock, tqdm: a usual CUDA image) but no network, and room for at most
# 64 MiB carried with the working tree. Run it here, in the project's .venv (./run_all.sh), with PyPI reachable:
#
#   scripts/gpu_bundle.sh [BUNDLE]       default build/gpu-bundle (ignored by git: carry it to the GPU machine)
#
#   BUNDLE/wheels/        pytorch-crf, seqeval and pypinyin at the versions requirements.lock pins (its hashes
#                         checked), pure Python: they install on any Python 3
#   BUNDLE/cache.tar.gz   an $ACMTL_CACHE holding the MSRA, Resume and legal corpora and the m3e-small encoder with
#                         its weights in half precision (48 MB, not 96): loaded back in fp32, the encoder starts
#                         from weights rounded to fp16, a change far smaller than fine-tuning makes
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:-build/gpu-bundle}
py=.venv/bin/python
limit=$((64 * 1024 * 1024))
rm -rf "$bundle"
mkdir -p "$bundle/wheels"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# the three packages' entries of the lock, hashes and all (comment lines dropped)
awk '/^[A-Za-z0-9]/ { keep = $1 ~ /^(pytorch-crf|seqeval|pypinyin)==/ } keep && !/^ *#/' requirements.lock \
  > "$stage/requirements.txt"
"$py" -m pip wheel -q --no-deps --require-hashes -r "$stage/requirements.txt" -w "$bundle/wheels"

# The corpora built into a fresh cache from the source files already fetched here (linked, not copied), so the
# bundle holds exactly the corpus files this code reads; the encoder copied with its weights halved.
cache=$("$py" -c 'from acmtl.paths import cache_dir; print(cache_dir())')
mkdir -p "$stage/cache"
ln -s "$cache/files" "$stage/cache/files"
ln -s "$cache/wheels" "$stage/cache/wheels"
ACMTL_CACHE="$stage/cache" "$py" - "$cache" <<'EOF'
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from acmtl.core.encoders import DEFAULT_ENCODER
from acmtl.data.corpora import load_corpus
from acmtl.paths import cache_dir

for name in ("msra", "resume", "legal"):
    load_corpus(name)
source, target = Path(sys.argv[1]) / "encoders" / DEFAULT_ENCODER, cache_dir() / "encoders" / DEFAULT_ENCODER
shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors"))
weights = load_file(source / "model.safetensors")  # position ids are integers: only floats are halved
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, target / "model.safetensors",
          metadata={"format": "pt"})
EOF
tar -czf "$bundle/cache.tar.gz" -C "$stage/cache" corpora encoders

size() { du -cb "$@" | tail -n 1 | cut -f1; }
tree=$(git ls-files -z -co --exclude-standard | xargs -0 du -cb | awk '$2 == "total" { sum += $1 } END { print sum }')
carried=$(size "$bundle")
echo "gpu_bundle: $bundle: $((carried / 1024)) KiB ($(ls "$bundle/wheels" | tr '\n' ' ')+ cache.tar.gz);" \
     "with the working tree ($((tree / 1024)) KiB): $(((carried + tree) / 1024)) KiB of $((limit / 1024))"
[ $((carried + tree)) -le "$limit" ] || { echo "gpu_bundle: over the 64 MiB that can be carried" >&2; exit 1; }
