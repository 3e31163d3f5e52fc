#!/usr/bin/env bash
# Creates .venv and installs the pinned dependencies plus this package (editable). Idempotent:
# does nothing when requirements.txt, constraints.txt and pyproject.toml have not changed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
stamp=.venv/.release_mgmt_installed
want=$(cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing dependencies (pinned by constraints.txt)"
  .venv/bin/python -m pip install -q "pip==26.3"
  .venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
# Third-party ServiceNow clients the change service is tested against (tests/clients), in their own virtualenv:
# their pins clash with Airflow's.
clients=.venv-clients
want=$(sha256sum requirements-clients.txt | cut -d' ' -f1)
if [ "$(cat "$clients/.installed" 2>/dev/null)" != "$want" ]; then
  echo "installing the third-party ServiceNow clients into $clients"
  [ -x "$clients/bin/python" ] || "$python" -m venv "$clients"
  "$clients/bin/python" -m pip install -q -r requirements-clients.txt
  echo "$want" > "$clients/.installed"
fi
