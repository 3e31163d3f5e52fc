#!/usr/bin/env bash
# Set up (virtualenv, pinned install) and run the whole test suite: lint, type check, pytest.
# Extra arguments go to pytest, e.g.  scripts/test.sh -m "not e2e"  or  scripts/test.sh tests/definition
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/bootstrap.sh
export PATH="$repo/.venv/bin:$PATH"
ruff check .
mypy
python -m release_mgmt validate include/releases
exec python -m pytest "$@"
