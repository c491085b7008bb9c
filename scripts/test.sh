#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs them.
# System packages that a test needs a real one of (a database server, a browser) are installed
# from Debian when missing; the Python side goes into .venv. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# "command-to-look-for:debian-package" for each system tool the tests run for real.
# A browser for the Datasette plugin's test; PostgreSQL, the archive's second backend
# (tests/pgserver.py starts a throwaway cluster).
system_tools=(chromium:chromium chromedriver:chromium-driver initdb:postgresql)

# Debian keeps a server's programs off PATH, in /usr/lib/postgresql/<version>/bin.
have() {
  command -v "$1" >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null
}

missing=()
for pair in "${system_tools[@]}"; do
  have "${pair%%:*}" || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python3 -m venv .venv
.venv/bin/pip install -q -e '.[test,stt]'
exec .venv/bin/python -m pytest -q "$@"
