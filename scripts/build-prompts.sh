#!/usr/bin/env bash
# Rebuilds the IVR prompt audio (ivr_flows/prompts/) from ivr_flows/prompt_texts.yaml with offline TTS.
# Only prompts whose text, engine or voice changed are synthesised; commit the WAVs and MANIFEST.json afterwards.
#   scripts/build-prompts.sh                         # everything that changed
#   scripts/build-prompts.sh --lang zh,en --only welcome
#   scripts/build-prompts.sh --force
# First run: installs espeak-ng and sox (apt) if missing, and creates the TTS environments under var/tts/
# (about 2.3 GB, a few minutes). See ivr_flows/prompts/README.md for the engines and their licences.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in espeak-ng sox; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "[build-prompts] installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || { echo "build-prompts: run scripts/setup.sh first (.venv is missing)" >&2; exit 1; }
exec .venv/bin/python -m tools.prompts build "$@"
