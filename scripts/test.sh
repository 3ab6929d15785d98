#!/usr/bin/env bash
# Set up and run the whole test suite. Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec python -m pytest "$@"
