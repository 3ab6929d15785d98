#!/usr/bin/env bash
# Performance benchmarks: one table of ratios against references measured in the same run, and the
# figures as JSON. `--quick` checks the script on small data; the full run is long (docs/performance.md
# has its figures, their date and machine). See scripts/bench.py for what each figure measures.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec python scripts/bench.py "$@"
