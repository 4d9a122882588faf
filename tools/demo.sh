#!/usr/bin/env bash
# The main job on a fresh machine: install, then run the whole pipeline on the bundled demo market
# (embedded PostgreSQL, HTML reports in reports/latest/). Extra arguments go to `volregime run`.
set -euo pipefail
cd "$(dirname "$0")/.."
VOLREGIME_SKIP_BROWSER=1 bash tools/setup.sh
exec .venv/bin/volregime run --profile demo "$@"
