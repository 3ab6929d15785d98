#!/usr/bin/env bash
# Start, stop or query the central luigi scheduler (luigid) of this project, with persistent
# state, logs, a pid file and task history in SQLite (the UI's /history pages), and optionally
# nginx in front of it as a reverse proxy with HTTP basic auth (docs/security.md).
#
#   scripts/luigid.sh start|stop|status
#   scripts/luigid.sh add-user NAME    # add NAME to the proxy's users file, or change its password:
#                                      # read from stdin (asked twice on a terminal), never an argument
#
# MLPIPE_LUIGID_ADDRESS  interface to bind (default 127.0.0.1: reach it from elsewhere via SSH or the proxy)
# MLPIPE_LUIGID_PORT     port (default 8082, luigi's default-scheduler-port)
# MLPIPE_LUIGID_DIR      state directory (default <project>/var/luigid): luigid.pid, state.pickle,
#                        history.db, log/, and luigid.cfg, the overlay written at each start
# MLPIPE_LUIGID_PROXY    ADDRESS:PORT where nginx listens, with basic auth, in front of luigid (which
#                        must then bind a loopback address); empty (the default): no proxy. nginx's
#                        config, pid file and logs are in <state directory>/proxy/
# MLPIPE_LUIGID_HTPASSWD the proxy's users file (default <state directory>/htpasswd), written by add-user
#
# `status` exits 0 when luigid (and the proxy, when configured) runs and 3 when not; `start` and
# `stop` are idempotent, and `stop` stops a running proxy whatever MLPIPE_LUIGID_PROXY says.
# luigid runs from the project directory, so it reads luigi.cfg ([scheduler] retry settings)
# and then the overlay, which enables the task history.
set -euo pipefail

source "$(dirname "$0")/setup.sh"

ADDRESS="${MLPIPE_LUIGID_ADDRESS:-127.0.0.1}"
PORT="${MLPIPE_LUIGID_PORT:-8082}"
DIR="${MLPIPE_LUIGID_DIR:-$PROJECT_DIR/var/luigid}"
STOP_TIMEOUT="${MLPIPE_LUIGID_STOP_TIMEOUT:-30}"
PROXY="${MLPIPE_LUIGID_PROXY:-}"

usage() {
    echo "usage: $0 start|stop|status|add-user NAME" >&2
    exit 2
}

case "$#:${1:-}" in 1:start | 1:stop | 1:status | 2:add-user) ;; *) usage ;; esac
case "$PORT" in '' | *[!0-9]*) echo "luigid: MLPIPE_LUIGID_PORT must be a port number, not '$PORT'" >&2; exit 2 ;; esac
if [ -n "$PROXY" ]; then
    case "${PROXY##*:}" in
        '' | *[!0-9]*) echo "luigid: MLPIPE_LUIGID_PROXY must be ADDRESS:PORT (e.g. 10.0.0.5:8443 or [::]:8443), not '$PROXY'" >&2; exit 2 ;;
    esac
    case "$PROXY" in
        *?:*) ;;
        *) echo "luigid: MLPIPE_LUIGID_PROXY must be ADDRESS:PORT (e.g. 10.0.0.5:8443 or [::]:8443), not '$PROXY'" >&2; exit 2 ;;
    esac
fi

case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
PIDFILE="$DIR/luigid.pid"
STATE="$DIR/state.pickle"
HISTORY="$DIR/history.db"
LOGDIR="$DIR/log"
CONFIG="$DIR/luigid.cfg"
LISTEN="$DIR/listen"   # "ADDRESS PORT" the running luigid was started with, for status
HTPASSWD="${MLPIPE_LUIGID_HTPASSWD:-$DIR/htpasswd}"
case "$HTPASSWD" in /*) ;; *) HTPASSWD="$PWD/$HTPASSWD" ;; esac
PROXY_DIR="$DIR/proxy"
PROXY_CONFIG="$PROXY_DIR/nginx.conf"
PROXY_PIDFILE="$PROXY_DIR/nginx.pid"
PROXY_LISTEN="$PROXY_DIR/listen"   # "ADDRESS:PORT" the running proxy was started with, for status

# The pid in the pid file if that process is alive and is a luigid, else nothing.
running_pid() {
    [ -f "$PIDFILE" ] || return 0
    local pid stat args
    pid="$(tr -dc '0-9' 2>/dev/null < "$PIDFILE" || true)"
    [ -n "$pid" ] || return 0
    stat="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
    args="$(ps -ww -o args= -p "$pid" 2>/dev/null || true)"
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

# ---- the proxy: nginx with basic auth in front of luigid ----------------------------------------

nginx_binary() {
    if command -v nginx 2>/dev/null; then
        return 0
    fi
    if [ -x /usr/sbin/nginx ]; then
        echo /usr/sbin/nginx
    fi
}

# The pid in the proxy's pid file if that process is an nginx master with this proxy's config.
running_proxy_pid() {
    [ -f "$PROXY_PIDFILE" ] || return 0
    local pid stat args
    pid="$(tr -dc '0-9' 2>/dev/null < "$PROXY_PIDFILE" || true)"   # nginx removes it as it exits
    [ -n "$pid" ] || return 0
    stat="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
    args="$(ps -ww -o args= -p "$pid" 2>/dev/null || true)"
    case "$stat" in '' | Z*) return 0 ;; esac
    case "$args" in *nginx*"$PROXY_CONFIG"*) echo "$pid" ;; esac
}

# Why the proxy cannot start, in one line on stderr (and status 1), before anything is started.
check_proxy() {
    case "$ADDRESS" in
        127.* | localhost | ::1) ;;
        *) echo "luigid: with MLPIPE_LUIGID_PROXY set, luigid must bind a loopback address, not MLPIPE_LUIGID_ADDRESS=$ADDRESS: anyone could go around the proxy's authentication" >&2
           return 1 ;;
    esac
    if [ -z "$(nginx_binary)" ]; then
        echo "luigid: MLPIPE_LUIGID_PROXY needs nginx, which is not installed: run scripts/install-nginx.sh" >&2
        return 1
    fi
    if ! grep -qs '^[^#:][^:]*:.' "$HTPASSWD"; then
        echo "luigid: the proxy has no users: $HTPASSWD is missing or empty; add one with \`scripts/luigid.sh add-user NAME\` (or set MLPIPE_LUIGID_HTPASSWD)" >&2
        return 1
    fi
}

write_proxy_config() {
    local upstream="$ADDRESS" user=""
    case "$upstream" in ::1) upstream="[::1]" ;; esac
    # Started as root, nginx would run its workers as nobody, who cannot read the users file in the
    # private state directory, so they stay root: run this script as the service user where you can.
    if [ "$(id -u)" -eq 0 ]; then
        user="user root root;"
    fi
    mkdir -p "$PROXY_DIR/temp"
    cat > "$PROXY_CONFIG" <<EOF
# Written by scripts/luigid.sh at every start of the proxy (MLPIPE_LUIGID_PROXY): nginx with basic
# auth on $PROXY in front of luigid, which listens on $ADDRESS:$PORT only.
$user
worker_processes 1;
pid $PROXY_PIDFILE;
error_log $PROXY_DIR/error.log warn;
events {
    worker_connections 512;
}
http {
    # combined: client address, \$remote_user, request line, status, size, referer, user agent;
    # never the Authorization header.
    access_log $PROXY_DIR/access.log combined;
    server_tokens off;
    client_body_temp_path $PROXY_DIR/temp/body;
    proxy_temp_path $PROXY_DIR/temp/proxy;
    fastcgi_temp_path $PROXY_DIR/temp/fastcgi;
    uwsgi_temp_path $PROXY_DIR/temp/uwsgi;
    scgi_temp_path $PROXY_DIR/temp/scgi;
    client_max_body_size 64m;   # a worker's add_task calls for a large task graph
    server {
        listen $PROXY;
        auth_basic "mlpipe luigid";
        auth_basic_user_file $HTPASSWD;
        location / {
            proxy_pass http://$upstream:$PORT;
            proxy_set_header Authorization "";   # luigid never sees the credentials
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_read_timeout 300s;
        }
    }
}
EOF
}

start_proxy() {
    local pid
    pid="$(running_proxy_pid)"
    if [ -n "$pid" ]; then
        echo "luigid: proxy already running (nginx pid $pid) on http://$(cat "$PROXY_LISTEN" 2>/dev/null)/"
        return 0
    fi
    rm -f "$PROXY_PIDFILE"
    write_proxy_config
    echo "$PROXY" > "$PROXY_LISTEN"
    # -e: the error log before the config is read; -p: the prefix. nginx returns once it listens.
    local out
    if ! out="$("$(nginx_binary)" -e "$PROXY_DIR/error.log" -p "$PROXY_DIR" -c "$PROXY_CONFIG" 2>&1 < /dev/null)"; then
        echo "luigid: the proxy (nginx) did not start on $PROXY: ${out:-see $PROXY_DIR/error.log}" >&2
        return 1
    fi
    local deadline=$((SECONDS + 10))
    while [ -z "$(running_proxy_pid)" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "luigid: the proxy (nginx) did not come up on $PROXY; see $PROXY_DIR/error.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "luigid: proxy started (nginx pid $(running_proxy_pid)) on http://$PROXY/ with basic auth (users in $HTPASSWD); config and logs in $PROXY_DIR"
}

# SIGTERM to pid $1, then wait up to STOP_TIMEOUT seconds for the function $2 (which prints the
# pid while the process runs) to print nothing; status 1 when it is still running then.
terminate() {
    local pid="$1" running="$2"
    kill -TERM "$pid"
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while [ -n "$("$running")" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.1
    done
}

stop_proxy() {
    local pid
    pid="$(running_proxy_pid)"
    if [ -z "$pid" ]; then
        rm -f "$PROXY_PIDFILE"
        return 0
    fi
    if ! terminate "$pid" running_proxy_pid; then
        echo "luigid: proxy (nginx pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM; see $PROXY_DIR/error.log" >&2
        return 1
    fi
    rm -f "$PROXY_PIDFILE" "$PROXY_LISTEN"
    echo "luigid: proxy stopped (nginx pid $pid)"
}

# Add NAME to the users file, or change its password. The password comes from stdin (on a
# terminal: asked twice, not echoed), is hashed with SHA-512 crypt (openssl passwd -6; nginx checks
# it with libc's crypt) and never appears on a command line.
add_user() {
    local name="$1" password again hash verb=added
    case "$name" in '' | *[:[:space:]#]*)
        echo "luigid: add-user NAME: the name must be non-empty, without ':', '#' or spaces, not '$name'" >&2
        return 2 ;;
    esac
    if [ -t 0 ]; then
        IFS= read -r -s -p "password for $name: " password; echo >&2
        IFS= read -r -s -p "the same again: " again; echo >&2
        if [ "$password" != "$again" ]; then
            echo "luigid: the two passwords differ; $HTPASSWD is unchanged" >&2
            return 1
        fi
    else
        IFS= read -r password || true
    fi
    if [ -z "$password" ]; then
        echo "luigid: empty password (it is read from stdin); $HTPASSWD is unchanged" >&2
        return 1
    fi
    hash="$(printf '%s\n' "$password" | openssl passwd -6 -stdin)"   # printf is a builtin: no argv
    mkdir -p "$(dirname "$HTPASSWD")"
    if [ "$(dirname "$HTPASSWD")" = "$DIR" ]; then
        chmod 700 "$DIR"
    fi
    if awk -F: -v name="$name" '$1 == name { found = 1 } END { exit !found }' "$HTPASSWD" 2>/dev/null; then
        verb="changed the password of"
    fi
    local tmp="$HTPASSWD.tmp.$$"
    (
        umask 077
        { awk -F: -v name="$name" '$1 != name' "$HTPASSWD" 2>/dev/null || true; echo "$name:$hash"; } > "$tmp"
    )
    mv -f "$tmp" "$HTPASSWD"
    echo "luigid: $verb user $name in $HTPASSWD (a running proxy reads it at every request)"
}

start() {
    local pid
    if [ -n "$PROXY" ]; then
        check_proxy || return 1
    fi
    pid="$(running_pid)"
    if [ -n "$pid" ]; then
        read -r address port < <(listen_address)
        echo "luigid: already running (pid $pid, port $port); UI: $(ui_url "$address" "$port")"
        if [ -n "$PROXY" ]; then
            start_proxy
        fi
        return
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
        local written
        while [ "$SECONDS" -lt "$deadline" ]; do
            # The pid file's content before the check of its process: a file read empty is one
            # still being written, not a daemon that died.
            written="$(tr -dc '0-9' 2>/dev/null < "$PIDFILE" || true)"
            pid="$(running_pid)"
            if [ -n "$pid" ] && answers "$ADDRESS" "$PORT"; then
                echo "luigid: started (pid $pid, port $PORT); state, logs and history in $DIR"
                echo "luigid: UI: $(ui_url "$ADDRESS" "$PORT")  history: http://$ADDRESS:$PORT/history"
                if [ -n "$PROXY" ]; then
                    start_proxy
                fi
                return
            fi
            if [ -n "$written" ] && [ -z "$pid" ]; then
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
    stop_proxy || return 1   # first: nobody reaches a luigid that is going away
    pid="$(running_pid)"
    if [ -z "$pid" ]; then
        rm -f "$PIDFILE"
        echo "luigid: not running"
        return 0
    fi
    if ! terminate "$pid" running_pid; then
        echo "luigid: pid $pid still running ${STOP_TIMEOUT}s after SIGTERM; see $LOGDIR" >&2
        return 1
    fi
    rm -f "$PIDFILE"
    echo "luigid: stopped (pid $pid); state saved in $STATE"
}

status() {
    local pid proxy_pid code=0
    pid="$(running_pid)"
    if [ -z "$pid" ]; then
        echo "luigid: not running (state directory $DIR)"
        code=3
    else
        read -r address port < <(listen_address)
        echo "luigid: running (pid $pid, port $port); UI: $(ui_url "$address" "$port")"
    fi
    proxy_pid="$(running_proxy_pid)"
    if [ -n "$proxy_pid" ]; then
        echo "luigid: proxy running (nginx pid $proxy_pid) on http://$(cat "$PROXY_LISTEN" 2>/dev/null)/ with basic auth"
    elif [ -n "$PROXY" ]; then
        echo "luigid: proxy not running (MLPIPE_LUIGID_PROXY=$PROXY)"
        code=3
    fi
    return "$code"
}

case "$1" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    add-user) add_user "$2" ;;
    *) usage ;;
esac
