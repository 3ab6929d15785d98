#!/usr/bin/env bash
# The nightly run, safe to call from cron: `scripts/nightly.sh [YYYY-MM-DD]` (default: yesterday).
#
# Works with cron's minimal environment and from any working directory. Uses the central
# scheduler (luigid, see scripts/luigid.sh) unless MLPIPE_LOCAL_SCHEDULER=1. Writes a dated log
# file and a JSON run summary to $MLPIPE_LOG_DIR (default var/log), and refuses to start a second
# copy for the same date while one runs. The exit code is the run's ([retcode] in luigi.cfg;
# 45: luigid unreachable); see README "Exit codes".
set -euo pipefail

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$PROJECT_DIR"   # luigi reads luigi.cfg from the working directory
export PATH="${PATH:-/usr/bin:/bin}:/usr/local/bin:/usr/bin:/bin"
export HOME="${HOME:-$PROJECT_DIR}"

DATE="${1:-$(date -d yesterday +%F)}"   # local time, as cron runs
if ! [[ "$DATE" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]]; then
    echo "nightly: DATE must be YYYY-MM-DD, not '$DATE'" >&2
    exit 2
fi
LOG_DIR="${MLPIPE_LOG_DIR:-$PROJECT_DIR/var/log}"
mkdir -p "$LOG_DIR"
# Another dataset's runs (MLPIPE_DATASET=.../rides.toml) get their own log, summary and lock: nightly-rides-D.
NAME="nightly-${MLPIPE_DATASET:+$(basename "${MLPIPE_DATASET%.toml}")-}$DATE"
LOG="$LOG_DIR/$NAME.log"
SUMMARY="$LOG_DIR/$NAME.json"
export MLPIPE_LOG_FILE="$LOG"   # named in the run_failed notification ([notify] in luigi.cfg)

# One run per date (and dataset) at a time: the lock is held until this script exits.
exec 9>"$LOG_DIR/$NAME.lock"
if ! flock -n 9; then
    echo "nightly: a run for $DATE is already in progress (lock $LOG_DIR/$NAME.lock); not starting another" | tee -a "$LOG" >&2
    exit 10   # [retcode] already_running
fi

{
    echo "=== nightly $DATE started $(date -u +%FT%TZ) on $(hostname) ==="
} >>"$LOG"
source "$PROJECT_DIR/scripts/setup.sh" >>"$LOG" 2>&1

args=(run --date "$DATE" --workers "${MLPIPE_WORKERS:-1}" --summary "$SUMMARY")
if [ "${MLPIPE_LOCAL_SCHEDULER:-0}" != "1" ]; then
    args+=(--central)
fi
status=0
mlpipe "${args[@]}" >>"$LOG" 2>&1 || status=$?
echo "=== nightly $DATE finished $(date -u +%FT%TZ) with exit code $status ===" >>"$LOG"
if [ "$status" -ne 0 ]; then
    echo "nightly: $DATE failed with exit code $status; log: $LOG; summary: $SUMMARY" >&2
fi
exit "$status"
