#!/usr/bin/env bash
# The GPU path on one CUDA machine, in at most 10 minutes, ending in a summary (OUT/summary.txt):
#
#   1. tests    the tests marked gpu (tests/test_gpu.py): AMP training step, CRF and predict against the CPU,
#               save/load across devices, torchrun with one process
#   2. smoke    the smoke profile's plan trained on CUDA: every run its notebooks train (acmtl runs --plan smoke
#               --train; the notebooks themselves need Jupyter, which a bare GPU image lacks)
#   3. msra     one default-profile run, AC-MTL on MSRA-1000 seed 0, beside its CPU record in results/runs/
#   4. bench    python -m acmtl bench --device cuda: AC-MTL at BERT-base size beside the paper's 2,618 tokens/s on a
#               V100, with the GPU named
#
#   scripts/gpu_check.sh [OUT]      OUT: logs, JSON and summary.txt (default build/gpu-check)
#
# Python: .venv where there is one (./run_all.sh --gpu installs torch's CUDA build there); else python3 with its own
# torch and the bundle of scripts/gpu_bundle.sh (build/gpu-bundle), installed offline into OUT/site: acmtl itself
# runs from this checkout. Exit status: 0 every step passed, 1 a step failed, 2 no CUDA (nothing checked).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/gpu-check}
bundle=build/gpu-bundle
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -x .venv/bin/python ]; then
  py=.venv/bin/python
else
  py=python3
  if [ -d "$bundle" ]; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$out/site" "$bundle"/wheels/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:$out/site" ACMTL_CACHE="$out/cache"
    mkdir -p "$ACMTL_CACHE" && tar -xzf "$bundle/cache.tar.gz" -C "$ACMTL_CACHE" || exit 1
  fi
fi
read -r cuda torch_version < <("$py" -c 'import torch; print(torch.cuda.is_available(), torch.__version__)' 2>/dev/null)
if [ "${cuda:-}" != True ]; then
  seen="torch ${torch_version:-(none: $py cannot import it)} sees no GPU"
  echo "gpu_check: no CUDA: skipped ($seen; nothing was checked)" | tee "$out/summary.txt"
  exit 2
fi

# step NAME SECONDS COMMAND...: run it within SECONDS, its output in OUT/NAME.log; NAME, exit status and seconds
# in OUT/steps.tsv
step() {
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "gpu_check: $name (at most $limit s)"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  printf '%s\t%s\t%s\n' "$name" "$?" "$((SECONDS - start))" >> "$out/steps.tsv"
}
step tests 120 "$py" -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider
step smoke 150 env ACMTL_OUTPUT_ROOT="$out/smoke" ACMTL_WORKERS=4 "$py" -m acmtl runs --plan smoke --train
step msra 180 env ACMTL_RUNS="$out/runs" "$py" -m acmtl train --corpus msra --size 1000 --model acmtl --seed 0 --quiet
step bench 120 "$py" -m acmtl bench --device cuda --json "$out/bench.json"
"$py" scripts/gpu_summary.py "$out" | tee "$out/summary.txt"
! cut -f2 "$out/steps.tsv" | grep -qv '^0$'
