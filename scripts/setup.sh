#!/usr/bin/env bash
# Sets up borderwatch from nothing: system packages, .venv with pinned Python packages,
# and the web assets (Leaflet) from the npm registry. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# Debian installs the broker in /usr/sbin, which is not on an ordinary user's PATH.
{ command -v mosquitto || [ -x /usr/sbin/mosquitto ]; } >/dev/null 2>&1 || need_apt+=(mosquitto mosquitto-clients)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing system packages: ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install with your package manager: ${need_apt[*]}" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
# Without its dependencies: it would pull opencv-python over opencv-python-headless (see pyproject.toml).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt ultralytics

echo "setup: installing web assets from the npm registry"
(cd groundstation/web && npm ci --no-audit --no-fund --loglevel=error)
echo "setup: done"
