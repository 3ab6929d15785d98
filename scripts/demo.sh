#!/usr/bin/env bash
# Set up, land the embedded 2013 flights data for a range of days, and run the nightly pipeline
# for the last day: every stage runs, ending with a deployed model. Run it again: nothing to do.
# Outputs go under $MLPIPE_ROOT (default: the project's var/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

START="${DEMO_START:-2013-01-01}"
DATE="${DEMO_DATE:-2013-02-15}"
WORKERS="${DEMO_WORKERS:-2}"

mlpipe land-demo --start "$START" --end "$DATE"
echo "demo: running the nightly pipeline for $DATE with $WORKERS workers (local scheduler)" >&2
status=0
mlpipe run --date "$DATE" --workers "$WORKERS" || status=$?
if [ "$status" -ne 0 ]; then
    echo "demo: the nightly run failed with exit code $status (see the luigi summary above)" >&2
    exit "$status"
fi

# Monitoring for every deployed day before it (the nightly run monitors its own date), then the
# monitoring report over them: realized AUC, drift, deployments.
REPORT_START="${DEMO_REPORT_START:-2013-01-16}"
echo "demo: monitoring $REPORT_START..$DATE for the report" >&2
status=0
mlpipe backfill --stage monitor --start "$REPORT_START" --end "$DATE" --workers "$WORKERS" || status=$?
if [ "$status" -ne 0 ]; then
    echo "demo: the monitoring backfill failed with exit code $status (see the luigi summary above)" >&2
    exit "$status"
fi
mlpipe report --start "$REPORT_START" --end "$DATE"
# Last, the answer: the model in production, since when, its realized quality, the day's decision.
echo
mlpipe summary --date "$DATE"
