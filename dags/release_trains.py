"""Release train DAGs for Airflow: one per train in include/trains (or $RELEASE_MGMT_TRAINS_DIR), each moving its
member releases together (plugins/release_mgmt/dag/trains.py). A broken train file becomes a paused error DAG."""

from release_mgmt.dag.trains import train_dags

# airflow DAG objects of the trains, exposed as module globals for the DAG processor
globals().update(train_dags(__file__))
