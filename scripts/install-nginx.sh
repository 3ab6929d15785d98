#!/usr/bin/env bash
# Install nginx, the reverse proxy with basic auth that scripts/luigid.sh can put in front of luigid
# (MLPIPE_LUIGID_PROXY), and that the proxy tests run. Only the binary is needed: the proxy and the
# tests start nginx themselves with their own config (-c) and prefix (-p), so the package's own
# service is kept from starting and, where systemd runs, from starting at boot.
# Idempotent: does nothing when nginx is already installed.
set -euo pipefail

for candidate in "$(command -v nginx 2>/dev/null || true)" /usr/sbin/nginx; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
        echo "install-nginx: nginx is already installed at $candidate"
        exit 0
    fi
done

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-nginx: installing nginx-light with apt-get" >&2
    # Debian's postinst starts nginx with its default site on port 80 unless policy-rc.d says no
    # (container images usually ship one that does): add one for the install when there is none.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# written by mlpipe scripts/install-nginx.sh while it installs nginx\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --quiet nginx.service 2>/dev/null || true
        echo "install-nginx: the package's nginx.service is disabled (this project starts its own nginx)" >&2
    fi
    echo "install-nginx: installed $(command -v nginx || echo /usr/sbin/nginx)"
    exit 0
fi

cat >&2 <<'EOF'
install-nginx: no nginx on PATH or at /usr/sbin/nginx, and this script can only install it as root
with apt-get. Install it yourself, then re-run the tests:
  Debian/Ubuntu:  sudo apt-get install --no-install-recommends nginx-light
  Fedora:         sudo dnf install nginx
  macOS:          brew install nginx
EOF
exit 1
