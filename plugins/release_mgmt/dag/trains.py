"""Train -> Airflow DAG (``train_<name>``): the train's plan (planning/train.py) made into operators by the
release DAG builder, with the train's own trigger form (environments, dry run, a version override per member
component) and docs. Trains are read from include/trains (or ``$RELEASE_MGMT_TRAINS_DIR``) and checked against
the valid releases; a broken train file becomes an error DAG and never hides another train or any release."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, get_parsing_context
from airflow.sdk.definitions.param import ParamsDict

from release_mgmt.dag.broken import build_broken_dag, safe_stem
from release_mgmt.dag.builder import build_dag
from release_mgmt.definition.loader import load_paths
from release_mgmt.definition.models import VERSION_PATTERN
from release_mgmt.definition.trains import LoadedTrain, load_trains, member_order
from release_mgmt.planning.train import dag_id_for_train, member_arguments, plan_train

POLICY_WORDS = {
    "rollback_train": "revert every member already deployed there to its last known good version",
    "stop": "start no other member there",
    "continue": "let the members that do not depend on it go on",
}


def train_params(loaded: LoadedTrain) -> dict[str, Param]:
    envs = [e.name for e in loaded.train.environments]
    params: dict[str, Param] = {
        "environments": Param(
            envs,
            type="array",
            items={"type": "string", "enum": envs},
            minItems=1,
            title="Environments",
            description=f"Consecutive environments of the train's promotion order {' -> '.join(envs)}.",
        ),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Every member runs as a dry run."),
    }
    for member, spec in member_arguments(loaded).items():
        for comp in spec["components"]:
            given = spec["pins"].get(comp) or ("its source" if comp in spec["sources"] else spec["defaults"][comp])
            params[f"version_{member}__{comp}"] = Param(
                None,
                type=["null", "string"],
                pattern=VERSION_PATTERN,
                title=f"{member}: version of {comp}",
                description=f"Leave empty for the train's choice ({given}).",
            )
    return params


def train_doc(loaded: LoadedTrain) -> str:
    train = loaded.train
    rows = []
    for name in member_order(train):
        member = next(m for m in train.members if m.release == name)
        after = f", after {', '.join(member.after)}" if member.after else ""
        rows.append(f"- **{name}** (`release_{name}`{after})")
    return (
        f"## Release train {train.name}\n\n{train.description}\n\n"
        f"Owner: {train.owner}. Defined in `{loaded.source}`.\n\n"
        f"Environments: {' -> '.join(e.name for e in train.environments)}; the next starts only when every member "
        f"succeeded in the one before.\n\nMembers (each runs its own DAG per environment):\n\n"
        + "\n".join(rows)
        + f"\n\nWhen a member fails in an environment it rolls itself back; then the train will "
        f"{POLICY_WORDS[train.on_member_failure]} (`on_member_failure: {train.on_member_failure}`)."
    )


def build_train_dag(loaded: LoadedTrain) -> DAG:
    dag = build_dag(plan_train(loaded))
    dag.params = ParamsDict(train_params(loaded))
    dag.doc_md = train_doc(loaded)
    dag.tags = {*dag.tags, "train"}
    return dag


def build_train_dags(trains_dir: Path, releases_dir: Path, display_root: Path | None = None) -> dict[str, DAG]:
    """Every train DAG of ``trains_dir``, checked against the valid releases of ``releases_dir``."""
    if not trains_dir.is_dir() or not any(trains_dir.glob("*.y*ml")):
        return {}
    wanted = get_parsing_context().dag_id
    if wanted is not None and not wanted.startswith("train_"):
        return {}
    releases = {i.definition.name: i.definition for i in load_paths([releases_dir], root=display_root).loaded}
    report = load_trains(trains_dir, releases, display_root)
    dags: dict[str, DAG] = {}
    for loaded in report.loaded:
        dag_id = dag_id_for_train(loaded.train.name)
        if wanted in (None, dag_id):
            dags[dag_id] = build_train_dag(loaded)
    for error in report.errors:
        dag_id = dag_id_for_train(f"invalid_{safe_stem(error.path)}")
        if wanted in (None, dag_id) and dag_id not in dags:
            dags[dag_id] = build_broken_dag(error, dag_id)
    return dags


def train_dags(dag_file: str) -> dict[str, Any]:
    """What ``dags/release_trains.py`` exposes: the trains of include/trains (or ``$RELEASE_MGMT_TRAINS_DIR``)."""
    repo = Path(dag_file).resolve().parents[1]
    releases = Path(os.environ.get("RELEASE_MGMT_RELEASES_DIR") or repo / "include" / "releases")
    trains = Path(os.environ.get("RELEASE_MGMT_TRAINS_DIR") or releases.parent / "trains")
    return build_train_dags(trains, releases, display_root=repo)
