#!/usr/bin/env bash
# The inner loop while editing (about a minute): export, the fast notebooks, and pytest without the slow end-to-end runs.
# The whole suite is tools/test.sh (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" TF_CPP_MIN_LOG_LEVEL=3 PYTHONDONTWRITEBYTECODE=1
SANDBOX=$(mktemp -d -t volregime-quick-XXXXXX)
export VOLREGIME_DATA_DIR="$SANDBOX/data" VOLREGIME_RUNS_DIR="$SANDBOX/runs" VOLREGIME_REPORTS_DIR="$SANDBOX/reports" \
       VOLREGIME_TEST_SANDBOX="$SANDBOX/pytest"
mkdir -p "$VOLREGIME_TEST_SANDBOX"
trap 'volregime db stop >/dev/null 2>&1 || true; rm -rf "$SANDBOX"' EXIT
nbdev-export
# the library notebooks and the stages up to 04 (05 trains Keras models, 06-07 start servers: they run in tools/test.sh)
nbdev-test --n-workers 2 --path nbs/00_core.ipynb --path nbs/01a_schemas.ipynb --path nbs/02_features.ipynb \
  --path nbs/04a_validate.ipynb --path nbs/08_pipeline.ipynb --path nbs/09_cli.ipynb 2>/dev/null || \
  for nb in 00_core 01a_schemas 02_features 04a_validate 08_pipeline 09_cli; do nbdev-test --path "nbs/$nb.ipynb"; done
python -m pytest -m "not slow" -q -x -p no:cacheprovider --ignore=tests/test_dashboard.py "$@"
