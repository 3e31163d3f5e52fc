#!/usr/bin/env bash
# Re-resolve requirements.txt in a throw-away virtualenv and write the full pin set to constraints.txt.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3.11 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
"$tmp/venv/bin/pip" install -q -r "$repo/requirements.txt"
{
  echo "# Full pin set for requirements.txt (written by scripts/lock.sh; do not edit by hand)."
  "$tmp/venv/bin/pip" freeze --exclude-editable | LC_ALL=C sort -f
} > "$repo/constraints.txt"
echo "wrote $repo/constraints.txt ($(grep -vc '^#' "$repo/constraints.txt") packages)"
