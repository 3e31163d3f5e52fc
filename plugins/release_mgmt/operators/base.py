"""The release DAG's operators. Thin: they read parameters and task states and call steps.

Every task writes one audit line naming the release, environment, component and version it acts on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.errors import ParameterError
from release_mgmt.operators import windows as window_checks
from release_mgmt.records import audit
from release_mgmt.records import deployment as records_mod
from release_mgmt.rules import outcomes, run_params
from release_mgmt.steps import STEP_ADAPTER, StepContext, shell


def _selection(context: Mapping[str, Any], components: list[str], environments: list[str]) -> run_params.RunSelection:
    try:
        return run_params.select(context["params"], components, environments)
    except ParameterError as exc:
        raise AirflowFailException(str(exc)) from exc


def local_states(context: Mapping[str, Any], group: str, task_ids: Iterable[str]) -> dict[str, str | None]:
    """States of ``group``'s tasks in this run, keyed by their id inside the group."""
    ti = context["ti"]
    full = [f"{group}.{t}" for t in task_ids]
    found = ti.get_task_states(dag_id=ti.dag_id, task_ids=full, run_ids=[ti.run_id]).get(ti.run_id, {})
    return {t: found.get(f"{group}.{t}") for t in task_ids}


def _param_values(context: Mapping[str, Any]) -> dict[str, Any]:
    """The run's parameters as plain values (Airflow's ParamsDict resolved)."""
    return {k: context["params"][k] for k in context["params"]}


def _params_env(context: Mapping[str, Any]) -> dict[str, str]:
    """The run's parameters as RELEASE_PARAM_<NAME> variables; a value no environment can hold fails the task."""
    try:
        return shell.param_env(_param_values(context))
    except ParameterError as exc:
        raise AirflowFailException(str(exc)) from exc


def _run_after(context: Mapping[str, Any]) -> str:
    """When this run was triggered (ISO 8601, UTC), or empty when Airflow does not say."""
    moment = getattr(context.get("dag_run"), "run_after", None)
    return moment.astimezone(UTC).isoformat() if isinstance(moment, datetime) else ""


class ReleaseOperator(BaseOperator):
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


class PreflightOperator(ReleaseOperator):
    """Checks the trigger parameters before anything is touched and logs the plan of the run."""

    def __init__(self, *, plan_lines: list[str], patterns: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_lines = list(plan_lines)
        self.patterns = dict(patterns or {})

    def execute(self, context: Any) -> dict[str, Any]:
        selection = _selection(context, self.components, self.environments)
        self._check_parameters(context)
        if selection.source_environment:
            self._check_promotion(context, selection)
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

    def _check_parameters(self, context: Any) -> None:
        """Parameters match their declared patterns (a run created around the trigger form's checks too) and
        hold no NUL byte; a value that fails stops the run before anything is touched."""
        _params_env(context)
        for name, pattern in sorted(self.patterns.items()):
            value = context["params"].get(name)
            if value is not None and not re.search(pattern, str(value)):
                self._audit(context, "run.refused", "parameter_pattern", details={"parameter": name})
                raise AirflowFailException(f"parameter {name} does not match its pattern {pattern!r}; nothing was run")

    def _check_promotion(self, context: Any, selection: run_params.RunSelection) -> None:
        """A run starting after the first environment may only deploy what the one before runs."""
        source = selection.source_environment or ""
        problems = []
        for comp, version in selection.versions.items():
            record = records_mod.latest(context, records_mod.record_asset(self.release, source, comp))
            if record is None:
                problems.append(f"{comp} {version} was never deployed to {source}")
            elif record.version != version:
                problems.append(f"{comp} {version} is not what {source} runs ({record.describe()})")
            else:
                self.log.info("promotion: %s %s runs in %s (%s)", comp, version, source, record.describe())
        if problems:
            self._audit(context, "run.refused", "promotion_rule", details={"source": source, "problems": problems})
            raise AirflowFailException(
                f"promotion rule: a run starting at {selection.environments[0]} may only deploy versions that "
                f"{source} already runs successfully: "
                + "; ".join(problems)
                + f". Deploy them to {source} first, or start the run there."
            )


class _WindowsMixin:
    """Freeze and maintenance windows an operator honours (plain dicts, checked at run time)."""

    def _set_windows(
        self, windows: list[dict[str, Any]] | None, on_freeze: str, outside_maintenance: str, expected_seconds: float
    ) -> None:
        self.windows = list(windows or [])
        self.on_freeze = on_freeze
        self.outside_maintenance = outside_maintenance
        self.expected_seconds = expected_seconds

    def _enforce_windows(self, context: Any, environment: str, component: str | None) -> None:
        window_checks.enforce(
            self,
            context,
            self.windows,
            environment=environment,
            component=component,
            on_freeze=self.on_freeze,
            outside_maintenance=self.outside_maintenance,
            expected=timedelta(seconds=self.expected_seconds),
        )


class EnvironmentEntryOperator(_WindowsMixin, ReleaseOperator):
    """The entry of an environment: skips when the run does not select it, waits out a freeze or
    a closed maintenance window (no worker held), then lets the gates and deployments start."""

    def __init__(
        self,
        *,
        environment: str,
        windows: list[dict[str, Any]] | None = None,
        on_freeze: str = "wait",
        outside_maintenance: str = "wait",
        expected_seconds: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self._set_windows(windows, on_freeze, outside_maintenance, expected_seconds)

    def execute(self, context: Any, event: Any = None) -> None:
        selection = _selection(context, self.components, self.environments)
        if self.environment not in selection.environments:
            self._audit(context, "environment.skipped", "not_selected", environment=self.environment)
            raise AirflowSkipException(f"environment {self.environment} is not selected for this run")
        self._enforce_windows(context, self.environment, None)
        self._audit(
            context,
            "environment.entered",
            "ok",
            environment=self.environment,
            details={"versions": selection.versions, "dry_run": selection.dry_run},
        )


class _StepOperator(_WindowsMixin, ReleaseOperator):
    """Runs one component's steps in one environment; deploy, validate and rollback build on it.

    ``steps`` (and ``probe``, ``fallback``) are step definitions as plain dicts; every string in
    them is rendered with Jinja, with ``release``, ``environment``, ``component``, ``version``,
    ``previous_version``, ``vars`` and ``params`` available.
    """

    template_fields: Sequence[str] = ("steps",)
    action = ""

    def __init__(
        self,
        *,
        environment: str,
        component: str,
        steps: list[dict[str, Any]],
        variables: dict[str, Any],
        workdir: str,
        records: bool = False,
        windows: list[dict[str, Any]] | None = None,
        on_freeze: str = "wait",
        outside_maintenance: str = "wait",
        expected_seconds: float = 0.0,
        change_connection: str | None = None,
        **kwargs: Any,
    ) -> None:
        if records:  # the deployment record is added through this alias, never on a dry run
            kwargs["outlets"] = [records_mod.record_alias(kwargs["release"], environment, component)]
        super().__init__(**kwargs)
        self.environment = environment
        self.component = component
        self.steps = steps
        self.variables = dict(variables)
        self.workdir = workdir
        self.records = records
        self.change_connection = change_connection
        self._set_windows(windows, on_freeze, outside_maintenance, expected_seconds)

    def _version(self, context: Mapping[str, Any]) -> str:
        try:
            return run_params.check_version(self.component, context["params"].get(f"version_{self.component}"))
        except ParameterError as exc:
            raise AirflowFailException(str(exc)) from exc

    def _previous_version(self, context: Mapping[str, Any]) -> str:
        """The last known good version the deploy task found (empty when there is none)."""
        task = f"{self.environment}.deploy_{self.component}"
        return context["ti"].xcom_pull(task_ids=task, key="previous_version") or ""

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Every string of the steps rendered with Jinja; shell strings (steps/shell.py) with the release's own
        names only, trigger parameters as quoted references to their environment variables."""
        extras = {
            "release": self.release,
            "environment": self.environment,
            "component": self.component,
            "version": self._version(context),
            "previous_version": "" if self.action == "deploy" else self._previous_version(context),
            "vars": self.variables,
            "task_id": self.task_id,
        }
        sources = list(self._shell_strings())
        super().render_template_fields(cast("Any", {**dict(context), **extras}), jinja_env)
        env = jinja_env or self.get_template_env()
        params = _param_values(context)
        for (field_name, index), key, template in sources:
            step = list(self._steps_of_field(field_name))[index]
            step[key] = shell.render(template, env, extras, params, str(context["run_id"]))

    def _steps_of_field(self, field_name: str) -> Iterable[dict[str, Any]]:
        value = getattr(self, field_name, None)
        if isinstance(value, dict):
            yield value
        elif isinstance(value, list):
            yield from (s for s in value if isinstance(s, dict))

    def _shell_strings(self) -> Iterable[tuple[tuple[str, int], str, str]]:
        """((field, step index), key, template) of every shell string, before rendering."""
        for field_name in self.template_fields:
            for index, step in enumerate(self._steps_of_field(field_name)):
                for key in shell.SHELL_KEYS.get(str(step.get("type")), ()):
                    if isinstance(step.get(key), str):
                        yield (field_name, index), key, step[key]

    def _where(self, context: Mapping[str, Any]) -> dict[str, str]:
        return {"environment": self.environment, "component": self.component, "version": self._version(context)}

    def _step_context(self, context: Mapping[str, Any], previous: str) -> StepContext:
        ti = context["ti"]
        deploy_task = f"{self.environment}.deploy_{self.component}"
        return StepContext(
            release=self.release,
            environment=self.environment,
            component=self.component,
            version=self._version(context),
            action=self.action,
            workdir=self.workdir,
            previous_version=previous,
            log=self.log,
            remember=lambda key, value: ti.xcom_push(key=f"restore:{key}", value=value),
            recall=lambda key: ti.xcom_pull(task_ids=deploy_task, key=f"restore:{key}"),
            params_env=_params_env(context),
            run_id=str(context["run_id"]),
        )

    def _announce(self, context: Mapping[str, Any]) -> bool:
        """Log who and what this task acts on; True on a dry run."""
        dry_run = bool(context["params"].get("dry_run", False))
        self.log.info(
            "%s: release %s, environment %s, component %s, version %s%s",
            self.action,
            self.release,
            self.environment,
            self.component,
            self._version(context),
            " (DRY RUN)" if dry_run else "",
        )
        return dry_run

    def _dry_run(self, context: Mapping[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
        for step in steps:
            self.log.info("DRY RUN: would %s", STEP_ADAPTER.validate_python(step).describe())
        self._audit(context, f"{self.action}.dry_run", "skipped", **self._where(context))
        return {"version": self._version(context), "dry_run": True}

    def _run_steps(self, context: Mapping[str, Any], steps: list[dict[str, Any]], previous: str) -> None:
        where = self._where(context)
        details = {"previous_version": previous} if previous else None
        self._audit(context, f"{self.action}.started", "started", **where, details=details)
        step_ctx = self._step_context(context, previous)
        models = [STEP_ADAPTER.validate_python(s) for s in steps]
        try:
            for number, step in enumerate(models, start=1):
                self.log.info("step %d/%d: %s", number, len(models), step.describe())
                step.run(step_ctx)
        except Exception as exc:
            self._audit(context, f"{self.action}.finished", "failed", **where, details={"error": str(exc)})
            self._work_note(context, f"{self.action} of {self.component} {where['version']}: FAILED: {exc}")
            raise
        self._audit(context, f"{self.action}.finished", "success", **where)
        self._work_note(context, f"{self.action} of {self.component} {where['version']}: succeeded")

    def _work_note(self, context: Mapping[str, Any], text: str) -> None:
        """Evidence on this run's change request, when the environment has one (a failure to write is logged)."""
        if not self.change_connection:
            return
        opened = context["ti"].xcom_pull(task_ids=f"{self.environment}.change_open")
        if not isinstance(opened, dict) or not opened.get("sys_id"):
            return
        from release_mgmt.hooks.servicenow import ServiceNowChangeHook, ServiceNowError

        try:
            hook = ServiceNowChangeHook(self.change_connection, identity=TaskIdentity.from_context(context))
            hook.add_work_note(opened["sys_id"], f"{text} (Airflow run {context['run_id']}, task {self.task_id})")
        except ServiceNowError as exc:
            self.log.warning("could not add a work note to change %s: %s", opened.get("number"), exc)

    def _record(self, context: Mapping[str, Any]) -> None:
        """Add the deployment record when this task is the component's last step in the environment."""
        if not self.records:
            return
        change = context["ti"].xcom_pull(task_ids=f"{self.environment}.change_open")
        record = records_mod.DeploymentRecord(
            version=self._version(context),
            run_id=context["run_id"],
            deployed_at=datetime.now(UTC).isoformat(timespec="seconds"),
            change=str(change.get("number", "")) if isinstance(change, dict) else "",
            run_after=_run_after(context),
        )
        records_mod.add(context, self.release, self.environment, self.component, record)
        self._audit(context, "deployment.recorded", "success", **self._where(context))


class DeployOperator(_StepOperator):
    """Finds the last known good version, then deploys the component."""

    action = "deploy"
    template_fields: Sequence[str] = ("steps", "probe")

    def __init__(self, *, probe: dict[str, Any] | None = None, lock: str | None = None, **kwargs: Any) -> None:
        kwargs["inlets"] = [records_mod.record_asset(kwargs["release"], kwargs["environment"], kwargs["component"])]
        super().__init__(**kwargs)
        self.probe = probe
        self.lock = lock

    def execute(self, context: Any, event: Any = None) -> dict[str, Any]:
        dry_run = self._announce(context)
        self._enforce_windows(context, self.environment, self.component)  # checked again after every wait
        if dry_run:
            return self._dry_run(context, self.steps)
        self._check_lock(context)
        self._check_not_superseded(context)
        previous = self._last_known_good(context)
        context["ti"].xcom_push(key="previous_version", value=previous)
        context["ti"].xcom_push(key="deploy_started", value=True)  # the target may change from here on
        self._run_steps(context, self.steps, previous)
        self._record(context)
        return {"version": self._version(context), "previous_version": previous}

    def _check_lock(self, context: Any) -> None:
        """With an environment lock, deploy only while this run holds it: a deploy cleared and run again
        after ``unlock`` takes the lock back when it is free, and fails when another run holds it."""
        if not self.lock:
            return
        from release_mgmt.hooks.locks import LockClient, describe
        from release_mgmt.hooks.servicenow import ServiceNowError

        client = LockClient(identity=TaskIdentity.from_context(context))
        try:
            answer = client.acquire(self.lock)
            if not answer["granted"]:  # leave the line it just joined: this deploy is not waiting
                client.release(self.lock, "deploy found the lock taken")
        except ServiceNowError as exc:
            raise AirflowFailException(f"{self.environment}: could not check lock {self.lock}: {exc}") from exc
        if not answer["granted"]:
            raise AirflowFailException(
                f"{self.environment}: lock {self.lock} is held by {describe(answer['holder'])}; this run no longer "
                "holds it, so it deploys nothing. Clear the environment's lock task together with this one to "
                "wait in line for it."
            )

    def _check_not_superseded(self, context: Any) -> None:
        """Where several runs of the release may be active (the environment has a lock), never deploy over
        what a run triggered after this one already deployed: that would put an older release back."""
        if not self.lock:
            return
        record = records_mod.latest(context, records_mod.record_asset(self.release, self.environment, self.component))
        ours = _run_after(context)
        if record is None or record.run_id == context["run_id"] or not (record.run_after and ours):
            return
        if record.version == self._version(context):  # the same version again moves nothing backwards
            return
        if datetime.fromisoformat(record.run_after) <= datetime.fromisoformat(ours):
            return
        self._audit(
            context,
            "deploy.superseded",
            "refused",
            **self._where(context),
            details={"deployed_version": record.version, "deployed_by_run": record.run_id},
        )
        raise AirflowFailException(
            f"{self.environment}: superseded: {self.component} {record.version} from run {record.run_id}, triggered "
            f"after this run, is already deployed here; deploying {self._version(context)} now would put an older "
            "release back. Trigger a new run to deploy it anyway."
        )

    def _last_known_good(self, context: Any) -> str:
        """The recorded version; without a record, what ``current_version`` reports; else nothing."""
        asset = records_mod.record_asset(self.release, self.environment, self.component)
        record = records_mod.latest(context, asset)
        if record is not None:
            self.log.info("last known good (deployment record): %s", record.describe())
            return record.version
        if self.probe is None:
            self.log.info("no deployment record and no current_version step: nothing to restore on failure")
            return ""
        step = STEP_ADAPTER.validate_python(self.probe)
        self.log.info("no deployment record yet; asking the target: %s", step.describe())
        answer = step.run(self._step_context(context, "")).output
        try:
            previous = run_params.check_version(self.component, answer) if answer else ""
        except ParameterError:
            self.log.warning("current_version printed %r, which is not a version; treating as unknown", answer)
            previous = ""
        self.log.info("running before this deploy: %s", previous or "nothing")
        return previous


class ValidateOperator(_StepOperator):
    """Runs the component's checks after its deploy; the last one records the deployment."""

    action = "validate"

    def execute(self, context: Any) -> dict[str, Any]:
        if self._announce(context):
            return self._dry_run(context, self.steps)
        context["ti"].xcom_push(key="attempt", value=context["ti"].try_number)  # a pass after a retry has issues
        self._run_steps(context, self.steps, self._previous_version(context))
        self._record(context)
        return {"version": self._version(context)}


class RollbackOperator(_StepOperator):
    """Restores the last known good version when the environment failed and this component was changed.

    With no version to restore it runs ``fallback`` (the component's ``undeploy``) or says so.
    """

    action = "rollback"
    template_fields: Sequence[str] = ("steps", "fallback")

    def __init__(self, *, fallback: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fallback = fallback or []

    def execute(self, context: Any) -> dict[str, Any]:
        dry_run = self._announce(context)
        self._skip_unless_needed(context, dry_run)
        window_checks.note_for_rollback(
            self, context, self.windows, environment=self.environment, component=self.component
        )
        previous = self._previous_version(context)
        if previous and self.steps:
            self.log.info("restoring %s %s in %s", self.component, previous, self.environment)
            self._run_steps(context, self.steps, previous)
            return {"restored": previous}
        if self.fallback:
            self.log.info(
                "nothing to restore (no earlier deployment of %s in %s): undeploying", self.component, self.environment
            )
            self._run_steps(context, self.fallback, "")
            return {"restored": "", "undeployed": True}
        reason = (
            f"nothing to restore: no earlier deployment of {self.component} in {self.environment} is "
            "recorded and it has no undeploy step; the failed version may still be running"
        )
        self._audit(
            context, "rollback.skipped", "nothing_to_restore", **self._where(context), details={"reason": reason}
        )
        raise AirflowFailException(reason)

    def _skip_unless_needed(self, context: Any, dry_run: bool) -> None:
        work = [f"deploy_{c}" for c in self.components] + [f"validate_{c}" for c in self.components]
        states = local_states(context, self.environment, work)
        started = context["ti"].xcom_pull(task_ids=f"{self.environment}.deploy_{self.component}", key="deploy_started")
        if dry_run or not started or not outcomes.needs_rollback(states, self.component):
            env_failed = any(s in outcomes.FAILED for s in states.values())
            if dry_run:
                reason = "dry run"
            elif not env_failed:
                reason = "the environment succeeded"
            else:
                reason = f"{self.component} was not changed by this run"
            self._audit(context, "rollback.skipped", "skipped", **self._where(context), details={"reason": reason})
            raise AirflowSkipException(f"no rollback needed: {reason}")
        self.log.info(
            "rolling back %s in %s: failed tasks: %s",
            self.component,
            self.environment,
            ", ".join(outcomes.work_failed(states)) or "upstream",
        )


class EnvironmentResultOperator(ReleaseOperator):
    """Fails when its environment failed (after rollback), so the next environment never starts."""

    def __init__(self, *, environment: str, local_task_ids: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.local_task_ids = list(local_task_ids)

    def execute(self, context: Any) -> dict[str, Any]:
        selected = self.environment in _selection(context, self.components, self.environments).environments
        outcome = outcomes.environment_outcome(local_states(context, self.environment, self.local_task_ids), selected)
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


class ReleaseSummaryOperator(ReleaseOperator):
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
                local_states(context, env, self.tasks_by_environment[env]), env in selection.environments
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
