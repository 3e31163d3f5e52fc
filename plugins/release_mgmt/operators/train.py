"""A release train's own tasks. The train's plan is a release plan whose components are its members
(planning/train.py): entry, windows, gates, the change, results and summary are the release tasks themselves.
What differs is here: the preflight settles every member's versions (typed in the form, pinned by the train,
resolved from the member's sources, or the member's default); a member's stage of an environment runs the
member's own DAG for that environment with those versions and waits for it (deferred, no worker held); a
revert runs it again with the environment's last known good versions when the train's policy says so."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from release_mgmt.errors import ParameterError, SourceError
from release_mgmt.operators.base import ReleaseOperator, local_states, selection
from release_mgmt.operators.change import ChangeOpenOperator
from release_mgmt.operators.change_close import ChangeCloseOperator
from release_mgmt.operators.train_claim import CONF_KEY, make_claim
from release_mgmt.records import deployment
from release_mgmt.rules.run_params import check_version
from release_mgmt.rules.trains import failed_members, reverts, stage_starts
from release_mgmt.sources import SOURCE_ADAPTER, Resolved, SourceContext

#: the XCom key of the versions a stage or revert sent to its member run
SENT = "member_versions"


def train_param(member: str, component: str) -> str:
    """The train's trigger-form key overriding one member component's version."""
    return f"version_{member}__{component}"


def member_versions(context: Context) -> dict[str, dict[str, str]]:
    """member -> component -> version, as the train's preflight settled them."""
    found = context["ti"].xcom_pull(task_ids="preflight")
    return dict(found.get("members") or {}) if isinstance(found, dict) else {}


class TrainPreflightOperator(ReleaseOperator):
    """Settles the versions of every member before anything moves; a source that cannot answer stops the train."""

    def __init__(self, *, members: dict[str, dict[str, Any]], **kwargs: Any) -> None:
        kwargs["inlets"] = [
            deployment.record_asset(member, env, comp)
            for member, spec in members.items()
            for env in kwargs["environments"]
            for comp in spec["components"]
        ]
        super().__init__(**kwargs)
        self.members = members

    def _recorded(self, context: Context, member: str, env: str, comp: str) -> str | None:
        record = deployment.latest(context, deployment.record_asset(member, env, comp))
        return record.version if record else None

    def execute(self, context: Context) -> dict[str, Any]:
        chosen = selection(context, self.components, self.environments, self.components)
        found: list[Resolved] = []
        settled: dict[str, dict[str, str]] = {}
        for member, spec in self.members.items():
            settled[member] = {}
            for comp in spec["components"]:
                found.append(self._version(context, member, comp, spec, chosen))
                settled[member][comp] = found[-1].version
        previous = {
            env: {
                m: {c: self._recorded(context, m, env, c) for c in spec["components"]}
                for m, spec in self.members.items()
            }
            for env in chosen.environments
        }
        for item in found:
            self._audit(context, "version.resolved", item.how, component=item.component, details=item.as_dict())
        summary = {"members": settled, "environments": list(chosen.environments), "dry_run": chosen.dry_run}
        self._audit(context, "run.planned", "ok", details=summary)
        return summary | {"versions": {}, "previous": previous}

    def _version(self, context: Context, member: str, comp: str, spec: Mapping[str, Any], chosen: Any) -> Resolved:
        name = f"{member}.{comp}"
        typed = context["params"].get(train_param(member, comp))
        try:
            if typed:
                typed = check_version(comp, typed)
                return Resolved(name, "train form", train_param(member, comp), typed, how="override")
            if comp in spec["pins"]:
                return Resolved(name, "train", "pinned by the train", spec["pins"][comp], how="pinned")
            if comp not in spec["sources"]:
                return Resolved(name, "definition", f"release {member}", spec["defaults"][comp], how="default")
            source = SOURCE_ADAPTER.validate_python(spec["sources"][comp])
            ctx = SourceContext(
                member,
                comp,
                chosen.environments[0],
                chosen.source_environment,
                lambda env: self._recorded(context, member, env, comp),
                self.log,
            )
            resolved = source.resolve(ctx)
        except (SourceError, ParameterError) as exc:
            self._audit(context, "run.refused", "version_source", details={"component": name, "reason": str(exc)})
            raise AirflowFailException(f"{name}: no version: {exc}. Nothing was deployed.") from exc
        return Resolved(name, resolved.source, resolved.reference, resolved.version, resolved.digest)


class TrainStageOperator(ReleaseOperator, TriggerDagRunOperator):
    """A member's stage of one environment: the member's own DAG, run for that environment with the train's
    versions; succeeds when that run succeeds. Under ``stop`` and ``rollback_train`` it does not start once
    another member failed in the environment."""

    purpose = "stage"

    def __init__(
        self,
        *,
        release: str,
        components: list[str],
        environments: list[str],
        environment: str,
        member: str,
        policy: str,
        poke_seconds: int = 30,
        waive_gates: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            release=release,
            components=components,
            environments=environments,
            trigger_dag_id=f"release_{member}",
            wait_for_completion=True,
            deferrable=True,
            poke_interval=poke_seconds,
            allowed_states=["success"],
            failed_states=["failed"],
            fail_when_dag_is_paused=True,
            openlineage_inject_parent_info=False,
            **kwargs,
        )
        self.environment, self.member, self.policy = environment, member, policy
        self.waive_gates = waive_gates

    def _states(self, context: Context) -> dict[str, str | None]:
        return local_states(context, self.environment, [f"deploy_{m}" for m in self.components])

    def _versions(self, context: Context) -> dict[str, str]:
        states = self._states(context)
        if not stage_starts(self.policy, states, self.member):
            failed = ", ".join(failed_members(states))
            raise AirflowSkipException(f"{failed} failed in {self.environment}; the train's policy is {self.policy}")
        return member_versions(context)[self.member]

    def execute(self, context: Context) -> None:
        versions = self._versions(context)
        run = re.sub(r"[^A-Za-z0-9_.~:+-]", "_", str(context["run_id"]))
        member_run = f"train__{self.release}__{self.environment}__{self.purpose}__{run}"[:250]
        claim = make_claim(
            train=self.release,
            train_run_id=str(context["run_id"]),
            release=self.member,
            run_id=member_run,
            environment=self.environment,
            purpose=self.purpose,
            versions=versions,
            waive_gates=self.waive_gates,
        )
        dry_run = bool(context["params"].get("dry_run"))
        self.trigger_run_id = member_run
        self.conf = {"environments": [self.environment], "dry_run": dry_run, CONF_KEY: claim}
        self.conf |= {f"version_{c}": v for c, v in versions.items()}
        self.note = f"{self.purpose} of train {self.release} (run {context['run_id']}) in {self.environment}"
        context["ti"].xcom_push(key=SENT, value=versions)  # what execute_complete reports (a revert's are older)
        self._say(context, "train.member_started", "running", versions, member_run)
        super().execute(context)

    def execute_complete(self, context: Context, event: Any) -> None:
        versions = context["ti"].xcom_pull(task_ids=self.task_id, key=SENT) or {}
        try:
            super().execute_complete(context, event)
        except Exception:
            self._say(context, "train.member_finished", "failed", versions, str(self.trigger_run_id or ""))
            raise
        self._say(context, "train.member_finished", "success", versions, str(self.trigger_run_id or ""))

    def _say(self, context: Context, event: str, outcome: str, versions: Mapping[str, str], member_run: str) -> None:
        details = {
            "member": self.member,
            "purpose": self.purpose,
            "member_run_id": member_run,
            "versions": dict(versions),
        }
        self._audit(context, event, outcome, environment=self.environment, component=self.member, details=details)


class TrainRevertOperator(TrainStageOperator):
    """With ``rollback_train``: once a member failed in the environment, a member that had succeeded there is
    deployed again at the environment's last known good versions (from before the train), by its own DAG."""

    purpose = "revert"

    def _versions(self, context: Context) -> dict[str, str]:
        states = self._states(context)
        if not reverts(self.policy, states, self.member):
            raise AirflowSkipException(f"{self.member} in {self.environment}: nothing to revert")
        failed = failed_members(states)
        found = context["ti"].xcom_pull(task_ids="preflight") or {}
        previous = (found.get("previous") or {}).get(self.environment, {}).get(self.member, {})
        missing = sorted(c for c, v in previous.items() if not v)
        if missing or not previous:
            raise AirflowFailException(
                f"{self.member} in {self.environment}: cannot revert {', '.join(missing) or 'it'}: nothing was "
                "recorded there before the train (a first deployment); restore by hand"
            )
        self.log.info("reverting %s in %s (%s failed): %s", self.member, self.environment, ", ".join(failed), previous)
        return dict(previous)


class _TrainVersions:
    """A train's change lists every member's components and versions."""

    def versions(self, context: Context) -> dict[str, str]:
        return {f"{m} {c}": v for m, comps in member_versions(context).items() for c, v in comps.items()}


class TrainChangeOpenOperator(_TrainVersions, ChangeOpenOperator):
    """The train's one change in an environment, listing every member's versions."""


class TrainChangeCloseOperator(_TrainVersions, ChangeCloseOperator):
    """Closes the train's change with the environment's outcome over every member."""
