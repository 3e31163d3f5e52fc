"""Release DAGs: one per release definition in include/releases (or $RELEASE_MGMT_RELEASES_DIR).

A broken definition becomes a paused DAG tagged ``invalid-definition`` whose description and
docs carry the file, key path and fix; every other release still loads.
"""

import os
from pathlib import Path

from release_mgmt.dag.builder import build_release_dags

REPO = Path(__file__).resolve().parents[1]
RELEASES_DIR = Path(os.environ.get("RELEASE_MGMT_RELEASES_DIR") or REPO / "include" / "releases")

# airflow DAG objects, one per definition, exposed as module globals for the DAG processor
globals().update(build_release_dags(RELEASES_DIR, display_root=REPO))
