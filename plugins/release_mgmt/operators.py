"""The release DAG's operators. Thin: they read parameters and task states and call steps.

Every task writes one audit line naming the release, environment, component and version it acts on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from release_mgmt import audit, outcomes, run_params
from release_mgmt.errors import ParameterError
from release_mgmt.steps import STEP_ADAPTER, StepContext


def _selection(context: Mapping[str, Any], components: list[str], environments: list[str]) -> run_params.RunSelection:
    try:
        return run_params.select(context["params"], components, environments)
    except ParameterError as exc:
        raise AirflowFailException(str(exc)) from exc


def _local_states(context: Mapping[str, Any], group: str, task_ids: Iterable[str]) -> dict[str, str | None]:
    """States of ``group``'s tasks in this run, keyed by their id inside the group."""
    ti = context["ti"]
    full = [f"{group}.{t}" for t in task_ids]
    found = ti.get_task_states(dag_id=ti.dag_id, task_ids=full, run_ids=[ti.run_id]).get(ti.run_id, {})
    return {t: found.get(f"{group}.{t}") for t in task_ids}


class _ReleaseOperator(BaseOperator):
    """What every release task knows: its release, the components and the promotion order."""

    ui_color = "#e8f0fe"

    def __init__(self, *, release: str, components: list[str], environments: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release = release
        self.components = list(components)
        self.environments = list(environments)

    def _audit(self, context: Mapping[str, Any], event: str, outcome: str, **fields: Any) -> None:
        audit.emit(
            self.log,
            event,
            release=self.release,
            run_id=context["run_id"],
            outcome=outcome,
            actor=str(context["dag_run"].triggering_user_name or ""),
            **fields,
        )


class PreflightOperator(_ReleaseOperator):
    """Checks the trigger parameters before anything is touched and logs the plan of the run."""

    def __init__(self, *, plan_lines: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_lines = list(plan_lines)

    def execute(self, context: Any) -> dict[str, Any]:
        selection = _selection(context, self.components, self.environments)
        mode = "DRY RUN: nothing will be changed" if selection.dry_run else "live run"
        self.log.info("release %s, %s, environments %s", self.release, mode, " -> ".join(selection.environments))
        for comp in self.components:
            self.log.info("  %s %s", comp, selection.versions[comp])
        for line in self.plan_lines:
            self.log.info("  plan: %s", line)
        self._audit(
            context,
            "run.planned",
            "ok",
            details={
                "versions": selection.versions,
                "environments": list(selection.environments),
                "dry_run": selection.dry_run,
            },
        )
        return {
            "versions": selection.versions,
            "environments": list(selection.environments),
            "dry_run": selection.dry_run,
        }


class EnvironmentEntryOperator(_ReleaseOperator):
    """The entry of an environment: skips when the run does not select it. Gates attach here."""

    def __init__(self, *, environment: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment

    def execute(self, context: Any) -> None:
        selection = _selection(context, self.components, self.environments)
        if self.environment not in selection.environments:
            self._audit(context, "environment.skipped", "not_selected", environment=self.environment)
            raise AirflowSkipException(f"environment {self.environment} is not selected for this run")
        self._audit(
            context,
            "environment.entered",
            "ok",
            environment=self.environment,
            details={"versions": selection.versions, "dry_run": selection.dry_run},
        )


class ReleaseStepOperator(_ReleaseOperator):
    """Deploys, validates or rolls back one component in one environment by running its steps.

    ``steps`` (and ``probe``) are step definitions as plain dicts; every string in them is
    rendered with Jinja, with ``release``, ``environment``, ``component``, ``version``,
    ``previous_version``, ``vars`` and ``params`` available.
    """

    template_fields: Sequence[str] = ("steps", "probe")
    ACTIONS = ("deploy", "validate", "rollback")

    def __init__(
        self,
        *,
        action: str,
        environment: str,
        component: str,
        steps: list[dict[str, Any]],
        variables: dict[str, Any],
        workdir: str,
        probe: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if action not in self.ACTIONS:
            raise ValueError(f"action must be one of {', '.join(self.ACTIONS)}, not {action!r}")
        self.action = action
        self.environment = environment
        self.component = component
        self.steps = steps
        self.probe = probe
        self.variables = dict(variables)
        self.workdir = workdir

    def _version(self, context: Mapping[str, Any]) -> str:
        try:
            return run_params.check_version(self.component, context["params"].get(f"version_{self.component}"))
        except ParameterError as exc:
            raise AirflowFailException(str(exc)) from exc

    def _previous_version(self, context: Mapping[str, Any]) -> str:
        if self.action == "deploy":
            return ""
        value = context["ti"].xcom_pull(task_ids=f"{self.environment}.deploy_{self.component}", key="previous_version")
        return value or ""

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        extras = {
            "release": self.release,
            "environment": self.environment,
            "component": self.component,
            "version": self._version(context),
            "previous_version": self._previous_version(context),
            "vars": self.variables,
        }
        super().render_template_fields(cast("Any", {**dict(context), **extras}), jinja_env)

    def _context(self, context: Mapping[str, Any], previous: str) -> StepContext:
        return StepContext(
            release=self.release,
            environment=self.environment,
            component=self.component,
            version=self._version(context),
            action=self.action,
            workdir=self.workdir,
            previous_version=previous,
            log=self.log,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        version = self._version(context)
        dry_run = bool(context["params"].get("dry_run", False))
        where = {"environment": self.environment, "component": self.component, "version": version}
        self.log.info(
            "%s: release %s, environment %s, component %s, version %s%s",
            self.action,
            self.release,
            self.environment,
            self.component,
            version,
            " (DRY RUN)" if dry_run else "",
        )
        if self.action == "rollback":
            self._skip_unless_needed(context, dry_run, where)
        previous = self._previous_version(context)
        steps = [STEP_ADAPTER.validate_python(s) for s in self.steps]
        if dry_run:
            for step in steps:
                self.log.info("DRY RUN: would %s", step.describe())
            self._audit(context, f"{self.action}.dry_run", "skipped", **where)
            return {"version": version, "dry_run": True}
        if self.action == "deploy":
            previous = self._probe(context)
        self._audit(
            context,
            f"{self.action}.started",
            "started",
            **where,
            details={"previous_version": previous} if previous else None,
        )
        step_ctx = self._context(context, previous)
        if self.action == "deploy":  # from here on the target may have changed: rollback must act
            context["ti"].xcom_push(key="deploy_started", value=True)
        try:
            for number, step in enumerate(steps, start=1):
                self.log.info("step %d/%d: %s", number, len(steps), step.describe())
                step.run(step_ctx)
        except Exception as exc:
            self._audit(context, f"{self.action}.finished", "failed", **where, details={"error": str(exc)})
            raise
        self._audit(context, f"{self.action}.finished", "success", **where)
        return {"version": previous if self.action == "rollback" else version, "previous_version": previous}

    def _probe(self, context: Any) -> str:
        """Ask the component which version runs now (for rollback) and keep it in XCom."""
        if self.probe is None:
            self.log.info("no current_version step: a rollback will not know which version to restore")
            return ""
        step = STEP_ADAPTER.validate_python(self.probe)
        self.log.info("current version: %s", step.describe())
        answer = step.run(self._context(context, "")).output
        try:
            previous = run_params.check_version(self.component, answer) if answer else ""
        except ParameterError:
            self.log.warning("current_version printed %r, which is not a version; treating as unknown", answer)
            previous = ""
        self.log.info("running before this deploy: %s", previous or "nothing")
        context["ti"].xcom_push(key="previous_version", value=previous)
        return previous

    def _skip_unless_needed(self, context: Any, dry_run: bool, where: dict[str, str]) -> None:
        work = [f"deploy_{c}" for c in self.components] + [f"validate_{c}" for c in self.components]
        states = _local_states(context, self.environment, work)
        started = context["ti"].xcom_pull(task_ids=f"{self.environment}.deploy_{self.component}", key="deploy_started")
        if dry_run or not started or not outcomes.needs_rollback(states, self.component):
            env_failed = any(s in outcomes.FAILED for s in states.values())
            if dry_run:
                reason = "dry run"
            elif not env_failed:
                reason = "the environment succeeded"
            else:
                reason = f"{self.component} was not changed by this run"
            self._audit(context, "rollback.skipped", "skipped", **where, details={"reason": reason})
            raise AirflowSkipException(f"no rollback needed: {reason}")
        self.log.info(
            "rolling back %s in %s: failed tasks: %s",
            self.component,
            self.environment,
            ", ".join(outcomes.work_failed(states)) or "upstream",
        )


class EnvironmentResultOperator(_ReleaseOperator):
    """Fails when its environment failed (after rollback), so the next environment never starts."""

    def __init__(self, *, environment: str, local_task_ids: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.local_task_ids = list(local_task_ids)

    def execute(self, context: Any) -> dict[str, Any]:
        selected = self.environment in _selection(context, self.components, self.environments).environments
        outcome = outcomes.environment_outcome(_local_states(context, self.environment, self.local_task_ids), selected)
        sentence = outcome.sentence(self.environment)
        self._audit(
            context,
            "environment.finished",
            outcome.status,
            environment=self.environment,
            details={
                "failed": list(outcome.failed_tasks),
                "rolled_back": list(outcome.rolled_back),
                "rollback_failed": list(outcome.rollback_failed),
            },
        )
        if outcome.status in ("not_selected", "not_started"):
            raise AirflowSkipException(sentence)
        if outcome.is_failure:
            raise AirflowFailException(sentence)
        self.log.info("%s", sentence)
        return {"status": outcome.status}


class ReleaseSummaryOperator(_ReleaseOperator):
    """The last task: one line per environment, and the run fails when any environment failed."""

    def __init__(self, *, tasks_by_environment: dict[str, list[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tasks_by_environment = {k: list(v) for k, v in tasks_by_environment.items()}

    def execute(self, context: Any) -> dict[str, str]:
        selection = _selection(context, self.components, self.environments)
        statuses: dict[str, str] = {}
        lines = []
        failed = False
        for env in self.environments:
            outcome = outcomes.environment_outcome(
                _local_states(context, env, self.tasks_by_environment[env]), env in selection.environments
            )
            statuses[env] = outcome.status
            lines.append(outcome.sentence(env))
            failed = failed or outcome.is_failure
        verdict = "FAILED" if failed else "SUCCEEDED"
        self.log.info("release %s %s", self.release, verdict)
        for line in lines:
            self.log.info("  %s", line)
        self._audit(context, "run.finished", verdict.lower(), details={"environments": statuses})
        if failed:
            raise AirflowFailException(f"release {self.release} FAILED: " + " | ".join(lines))
        return statuses
