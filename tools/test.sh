#!/usr/bin/env bash
# The test command: install, check that notebooks and package agree, run every notebook, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export PATH="$PWD/.venv/bin:$PATH" TF_CPP_MIN_LOG_LEVEL=3 PYTHONDONTWRITEBYTECODE=1

source tools/sandbox.sh   # tests and notebooks write only under a temporary folder

echo "== nbdev-export / nbdev-clean / README must not change tracked files"
before=$(git status --porcelain)
nbdev-export
nbdev-clean
python tools/readme.py
after=$(git status --porcelain)
if [ "$before" != "$after" ]; then
  echo "FAIL: nbdev-export, nbdev-clean or tools/readme.py changed files; run them and commit:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  git --no-pager diff --stat >&2
  exit 1
fi

echo "== ruff: no unused imports in the exported package (fix them in the notebooks)"
ruff check --select F401 --output-format concise volregime/

echo "== nbdev-test (every notebook, fresh kernels)"
nbdev-test --n-workers 1   # one at a time: parallel first runs on an empty data dir would race to build it

echo "== pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "FAIL: pytest collected no tests" >&2; exit 1; fi
exit $rc
