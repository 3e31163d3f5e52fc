# Sourced by the scripts: a local Airflow whose DAGs and plugins folders are this repository's.
# AIRFLOW_HOME lives in the ignored folder .airflow/ unless already set.
repo=${repo:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export PATH="$repo/.venv/bin:$PATH"
export AIRFLOW_HOME=${AIRFLOW_HOME:-$repo/.airflow}
export AIRFLOW__CORE__DAGS_FOLDER="$repo/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$repo/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin,alice:user,bob:user}
export AIRFLOW__API__HOST=${AIRFLOW__API__HOST:-127.0.0.1}
export AIRFLOW__API__PORT=${AIRFLOW__API__PORT:-8080}
# one port setting moves every URL: the UI's links, the execution API the tasks call, the CLI's REST client
export AIRFLOW__API__BASE_URL=${AIRFLOW__API__BASE_URL:-http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT}
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-$AIRFLOW__API__BASE_URL/execution/}
export RELEASE_MGMT_SAMPLE_ROOT=${RELEASE_MGMT_SAMPLE_ROOT:-$AIRFLOW_HOME/sample_environments}
# steps see no worker variable unless listed here (never AIRFLOW_* or the service's secret)
export RELEASE_MGMT_STEP_ENV=${RELEASE_MGMT_STEP_ENV:-RELEASE_MGMT_SAMPLE_ROOT}
mkdir -p "$AIRFLOW_HOME"
