"""Release DAGs: one per release definition in include/releases (or $RELEASE_MGMT_RELEASES_DIR).

This file and release_pipelines_1.py ... release_pipelines_7.py are the same thin file: each builds the releases
of its shard, so each has its own import timeout and the number of definitions never costs the whole folder
(plugins/release_mgmt/dag/shards.py). A broken definition becomes a paused DAG tagged ``invalid-definition``
whose description and docs carry the file, key path and fix; every other release still loads.
"""

import os
from pathlib import Path

from release_mgmt.dag.builder import build_release_dags
from release_mgmt.dag.shards import shard_of_file

REPO = Path(__file__).resolve().parents[1]
RELEASES_DIR = Path(os.environ.get("RELEASE_MGMT_RELEASES_DIR") or REPO / "include" / "releases")

# airflow DAG objects of this shard, one per definition, exposed as module globals for the DAG processor
globals().update(build_release_dags(RELEASES_DIR, display_root=REPO, shard=shard_of_file(__file__)))
