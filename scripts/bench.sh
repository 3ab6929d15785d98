#!/usr/bin/env bash
# Performance benchmarks (issue 7): one table of ratios against references measured in the same
# run, and the figures as JSON. `--quick` checks the script on small data in about 75 seconds;
# the full run takes about 40 minutes on 2 cores. See scripts/bench.py for what each figure measures.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec python scripts/bench.py "$@"
