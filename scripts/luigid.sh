#!/usr/bin/env bash
# Start, stop or query the central luigi scheduler (luigid) of this project, with persistent
# state, logs, a pid file and task history in SQLite (the UI's /history pages).
#
#   scripts/luigid.sh start|stop|status
#
# MLPIPE_LUIGID_ADDRESS  interface to bind (default 127.0.0.1: reach it from elsewhere via SSH)
# MLPIPE_LUIGID_PORT     port (default 8082, luigi's default-scheduler-port)
# MLPIPE_LUIGID_DIR      state directory (default <project>/var/luigid): luigid.pid, state.pickle,
#                        history.db, log/, and luigid.cfg, the overlay written at each start
#
# `status` exits 0 when luigid runs and 3 when it does not; `start` and `stop` are idempotent.
# luigid runs from the project directory, so it reads luigi.cfg ([scheduler] retry settings)
# and then the overlay, which enables the task history.
set -euo pipefail

source "$(dirname "$0")/setup.sh"

ADDRESS="${MLPIPE_LUIGID_ADDRESS:-127.0.0.1}"
PORT="${MLPIPE_LUIGID_PORT:-8082}"
DIR="${MLPIPE_LUIGID_DIR:-$PROJECT_DIR/var/luigid}"
STOP_TIMEOUT="${MLPIPE_LUIGID_STOP_TIMEOUT:-30}"

usage() {
    echo "usage: $0 start|stop|status" >&2
    exit 2
}

[ $# -eq 1 ] || usage
case "$PORT" in '' | *[!0-9]*) echo "luigid: MLPIPE_LUIGID_PORT must be a port number, not '$PORT'" >&2; exit 2 ;; esac

case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
PIDFILE="$DIR/luigid.pid"
STATE="$DIR/state.pickle"
HISTORY="$DIR/history.db"
LOGDIR="$DIR/log"
CONFIG="$DIR/luigid.cfg"
LISTEN="$DIR/listen"   # "ADDRESS PORT" the running luigid was started with, for status

# The pid in the pid file if that process is alive and is a luigid, else nothing.
running_pid() {
    [ -f "$PIDFILE" ] || return 0
    local pid stat args
    pid="$(tr -dc '0-9' < "$PIDFILE")"
    [ -n "$pid" ] || return 0
    stat="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
    args="$(ps -o args= -p "$pid" 2>/dev/null || true)"
    case "$stat" in '' | Z*) return 0 ;; esac   # gone, or a zombie nobody reaped yet
    case "$args" in *luigid*) echo "$pid" ;; esac
}

# The address and port luigid was started with (they may differ from the current environment).
listen_address() {
    if [ -f "$LISTEN" ]; then
        cat "$LISTEN"
    else
        echo "$ADDRESS $PORT"
    fi
}

ui_url() {
    echo "http://$1:$2/static/visualiser/index.html"
}

# Exit 0 when http://HOST:PORT answers, 1 when nothing listens there.
answers() {
    python - "$1" "$2" <<'EOF'
import sys, urllib.error, urllib.request
host, port = sys.argv[1], sys.argv[2]
host = "127.0.0.1" if host in ("", "0.0.0.0") else host
try:
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/", method="HEAD"), timeout=2)
except urllib.error.HTTPError:
    pass  # something answered
except OSError:
    sys.exit(1)
EOF
}

write_config() {
    cat > "$CONFIG" <<EOF
# Written by scripts/luigid.sh at every start: luigid's own settings, read after luigi.cfg
# through LUIGI_CONFIG_PATH. Workers never read this file.
[scheduler]
record_task_history = True
state_path = $STATE

[task_history]
db_connection = sqlite:///$HISTORY
EOF
}

start() {
    local pid
    pid="$(running_pid)"
    if [ -n "$pid" ]; then
        read -r address port < <(listen_address)
        echo "luigid: already running (pid $pid, port $port); UI: $(ui_url "$address" "$port")"
        return 0
    fi
    if answers "$ADDRESS" "$PORT"; then
        echo "luigid: something else already listens on $ADDRESS:$PORT; set MLPIPE_LUIGID_PORT" >&2
        return 1
    fi
    rm -f "$PIDFILE"
    mkdir -p "$DIR" "$LOGDIR"
    # luigid runs python-daemon with umask 0, so its files are world-writable: keep the
    # directory private (the state file is a pickle, loaded at the next start).
    chmod 700 "$DIR"
    write_config
    echo "$ADDRESS $PORT" > "$LISTEN"

    # A start right after a stop can lose the race for the port or the pid file to the old daemon
    # still exiting (seen on a loaded machine): the new one writes its pid and dies. Try twice.
    local attempt
    for attempt in 1 2; do
        rm -f "$PIDFILE"
        (cd "$PROJECT_DIR" && LUIGI_CONFIG_PATH="$CONFIG" luigid --background \
            --pidfile "$PIDFILE" --logdir "$LOGDIR" --state-path "$STATE" \
            --address "$ADDRESS" --port "$PORT" < /dev/null)

        # The daemon writes its pid file, then binds the port: wait for both, or for it to die.
        local deadline=$((SECONDS + 30))
        while [ "$SECONDS" -lt "$deadline" ]; do
            pid="$(running_pid)"
            if [ -n "$pid" ] && answers "$ADDRESS" "$PORT"; then
                echo "luigid: started (pid $pid, port $PORT); state, logs and history in $DIR"
                echo "luigid: UI: $(ui_url "$ADDRESS" "$PORT")  history: http://$ADDRESS:$PORT/history"
                return 0
            fi
            if [ -f "$PIDFILE" ] && [ -z "$pid" ]; then
                break  # it wrote its pid and died
            fi
            sleep 0.2
        done
        [ "$attempt" = 1 ] && sleep 2
    done
    echo "luigid: did not come up on $ADDRESS:$PORT; the end of its logs in $LOGDIR:" >&2
    tail -n 20 "$LOGDIR"/luigi-server*.err "$LOGDIR/luigi-server.log" >&2 2>/dev/null || true
    pid="$(running_pid)"
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    return 1
}

stop() {
    local pid
    pid="$(running_pid)"
    if [ -z "$pid" ]; then
        rm -f "$PIDFILE"
        echo "luigid: not running"
        return 0
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while [ -n "$(running_pid)" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "luigid: pid $pid still running ${STOP_TIMEOUT}s after SIGTERM; see $LOGDIR" >&2
            return 1
        fi
        sleep 0.2
    done
    rm -f "$PIDFILE"
    echo "luigid: stopped (pid $pid); state saved in $STATE"
}

status() {
    local pid
    pid="$(running_pid)"
    if [ -z "$pid" ]; then
        echo "luigid: not running (state directory $DIR)"
        return 3
    fi
    read -r address port < <(listen_address)
    echo "luigid: running (pid $pid, port $port); UI: $(ui_url "$address" "$port")"
}

case "$1" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
