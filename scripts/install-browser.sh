#!/usr/bin/env bash
# Install a headless Chromium (and a font for its text) for the browser tests of the HTML reports.
# Idempotent: does nothing when a Chromium is already on PATH.
set -euo pipefail

for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then
        echo "install-browser: $candidate is already installed at $(command -v "$candidate")"
        exit 0
    fi
done

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: installing chromium and fonts-dejavu-core with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core
    echo "install-browser: installed $(command -v chromium)"
    exit 0
fi

cat >&2 <<'EOF'
install-browser: no chromium on PATH, and this script can only install it as root with apt-get.
Install one of these yourself, then re-run the tests:
  Debian/Ubuntu:  sudo apt-get install --no-install-recommends chromium fonts-dejavu-core
  Fedora:         sudo dnf install chromium dejavu-sans-fonts
  macOS:          brew install --cask chromium   (or put google-chrome on PATH)
EOF
exit 1
