"""Release DAGs for Airflow: one per release definition in include/releases (or $RELEASE_MGMT_RELEASES_DIR).

This file and release_pipelines_1.py ... _7.py are the same: each builds the releases of its shard, so each has
its own import timeout (plugins/release_mgmt/dag/shards.py). A broken definition becomes a paused DAG tagged
``invalid-definition`` carrying the file, key path and fix; every other release still loads.
"""

from release_mgmt.dag.builder import shard_dags

# airflow DAG objects of this shard, exposed as module globals for the DAG processor
globals().update(shard_dags(__file__))
