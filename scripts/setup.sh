#!/usr/bin/env bash
# Create the project's virtual environment (.venv) if needed and install the project into it.
# Sourced by the other scripts (which set -euo pipefail themselves); safe to run on its own, or to
# source in an interactive shell to put .venv/bin on PATH (it then leaves the shell's options
# alone). Honours $PYTHON and $MLPIPE_VENV.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
fi

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MLPIPE_VENV:-$PROJECT_DIR/.venv}"

find_python() {
    for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "setup: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

if [ ! -x "$VENV/bin/python" ]; then
    PY="$(find_python)"
    echo "setup: creating virtual environment $VENV with $("$PY" --version)" >&2
    "$PY" -m venv "$VENV"
fi

# Reinstall only when the project's packaging metadata changed since the last install.
STAMP="$VENV/.mlpipe-installed"
WANT="$(cat "$PROJECT_DIR/setup.cfg" "$PROJECT_DIR/pyproject.toml" | cksum)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "setup: installing the project and its test extras into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$PROJECT_DIR[test]" >&2
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
