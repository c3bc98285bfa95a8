#!/usr/bin/env bash
# Set up a checkout on a new machine: a virtualenv with pinned Python packages, and the
# Node-side tools (anvil, solc, workerd, the official x402 JS client, the x402 paywall page,
# axe-core) from package-lock.json, and Chromium for the browser tests.
# Safe to run again: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "402claw needs Python 3.11+ (found $("$PYTHON" --version))" >&2; exit 1; }

if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: installing Node.js from the distribution" >&2
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi

if ! command -v chromium >/dev/null 2>&1; then
  # The browser tests (tests/gateway/test_browser.py) drive Debian's Chromium with Playwright;
  # Playwright's own browser download cannot work here.
  echo "chromium not found: installing it from the distribution" >&2
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]' 2>&1 \
  | grep -v '^WARNING: Location' || true
.venv/bin/python -c 'import claw402' # fail loudly if the install did not work

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "402claw is set up: .venv/bin/402claw --help"
