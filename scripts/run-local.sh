#!/usr/bin/env bash
# The main job: set up (virtualenv, pinned install) and start a local Airflow (airflow standalone:
# SQLite, LocalExecutor) with this repository's DAGs and plugin, release DAGs unpaused.
#   scripts/run-local.sh          start Airflow; prints the URL and the login; Ctrl-C stops it
#   scripts/run-local.sh --once   run the sample release once end to end (no browser): a local Airflow
#                                 is started, the run triggered as admin, the prod gate approved as alice,
#                                 the outcome printed, Airflow stopped
#   scripts/run-local.sh --once --conf '{"version_web": "2.0.0"}'   ... with the known-bad version
#   scripts/run-local.sh --stop-sample   stop the sample service's environments (they keep running after a run)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/bootstrap.sh
source scripts/airflow-env.sh

if [ "${1:-}" = "--stop-sample" ]; then  # the sample's environments keep running after a run; this stops them
  for env in "$RELEASE_MGMT_SAMPLE_ROOT"/*/; do
    [ -d "$env" ] && echo "$(basename "$env"): $(python include/sample_service/ctl.py stop --root "$env")"
  done
  exit 0
fi

passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
python - "$passwords" <<'PY'
import json, secrets, sys
path = sys.argv[1]
try:
    known = json.load(open(path))
except (OSError, ValueError):
    known = {}
for user in ("admin", "alice", "bob"):  # alice and bob are the sample's release managers
    known.setdefault(user, secrets.token_urlsafe(12))
json.dump(known, open(path, "w"))
PY
logins=$(python -c 'import json, sys; print("  ".join(f"{u} / {p}" for u, p in json.load(open(sys.argv[1])).items()))' "$passwords")
airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/db-migrate.log"; exit 1; }

if [ "${1:-}" = "--once" ]; then
  shift
  conf='{}'
  if [ "${1:-}" = "--conf" ]; then conf=$2; fi
  exec python -m tools.run_once sample_webshop --conf "$conf"
fi

url="http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT"
# own process group, so stopping this script stops every process standalone started
setsid airflow standalone >"$AIRFLOW_HOME/standalone.log" 2>&1 &
pid=$!
stop() { kill -TERM -- "-$pid" 2>/dev/null; sleep 5; kill -KILL -- "-$pid" 2>/dev/null; }
trap 'stop; exit 0' INT TERM
trap stop EXIT
echo "starting Airflow (log: $AIRFLOW_HOME/standalone.log) ..."
for _ in $(seq 1 180); do
  if curl -fsS "$url/api/v2/monitor/health" >/dev/null 2>&1; then break; fi
  kill -0 $pid 2>/dev/null || { tail -50 "$AIRFLOW_HOME/standalone.log"; exit 1; }
  sleep 1
done
echo
echo "Airflow is up:  $url"
echo "logins:         $logins"
echo "                trigger as admin; approve prod as alice or bob under Browse -> Required actions;"
echo "                then the CAB: bob (or alice, never the triggerer) authorizes prod's change"
echo "                under Browse -> Changes"
echo "release DAGs:   $url/dags?tags=release"
echo "console:        $url/plugin/releases  (what runs where, calendar, changes, evidence)"
echo "Ctrl-C stops it."
wait $pid
