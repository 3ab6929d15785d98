#!/usr/bin/env bash
# Model quality on real data: land all of 2013, run the nightly pipeline for every day (each day
# scored by the model in production before it), then print the realized metrics of the stored
# predictions over November and December. Outputs go under $MLPIPE_ROOT (default: var/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

START="${QUALITY_START:-2013-11-01}"
END="${QUALITY_END:-2013-12-31}"
mlpipe land-demo --start 2013-01-01 --end "$END"
mlpipe backfill --start "$START" --end "$END" --workers "${QUALITY_WORKERS:-2}"
mlpipe quality --start "$START" --end "$END"
