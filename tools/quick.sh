#!/usr/bin/env bash
# The inner loop while editing: export, the fast notebooks, and pytest without the slow end-to-end runs and the
# browser. The whole suite is tools/test.sh (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" TF_CPP_MIN_LOG_LEVEL=3 PYTHONDONTWRITEBYTECODE=1
source tools/sandbox.sh
nbdev-export
# the library notebooks (the stage notebooks build markets, train Keras models or start servers: tools/test.sh runs them)
for nb in 00_core 01a_schemas 08_pipeline 09_cli; do nbdev-test "nbs/$nb.ipynb"; done
python -m pytest -m "not slow" -q -p no:cacheprovider --ignore=tests/test_dashboard.py "$@"
