# Sourced by tools/test.sh and tools/quick.sh: tests and notebooks write only under a temporary folder, never under
# the project's data/, runs/ or reports/ (the settings that name those folders point here; removed on exit).
SANDBOX=$(mktemp -d -t volregime-tests-XXXXXX)
export VOLREGIME_DATA_DIR="$SANDBOX/data" VOLREGIME_RUNS_DIR="$SANDBOX/runs" VOLREGIME_REPORTS_DIR="$SANDBOX/reports" \
       VOLREGIME_TEST_SANDBOX="$SANDBOX/pytest"
mkdir -p "$VOLREGIME_TEST_SANDBOX"
trap 'volregime db stop >/dev/null 2>&1 || true; rm -rf "$SANDBOX"' EXIT
