#!/usr/bin/env bash
# Set up and run the whole test suite. Extra arguments go to pytest, e.g. -m "not slow".
# The tests run in $MLPIPE_TEST_PROCESSES (default 2) processes side by side, a test file each at a
# time (pytest-xdist --dist loadfile); MLPIPE_TEST_PROCESSES=0 runs them in this one process.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
bash scripts/install-browser.sh >&2   # headless Chromium for the HTML report tests
bash scripts/install-nginx.sh >&2     # nginx for the scheduler proxy tests (tests/test_proxy.py)
exec python -m pytest -n "${MLPIPE_TEST_PROCESSES:-2}" --dist loadfile "$@"
