#!/usr/bin/env bash
# Set up and run the whole test suite. Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
bash scripts/install-browser.sh >&2   # headless Chromium for the HTML report tests
exec python -m pytest "$@"
