"""What deploy, validate and rollback share: one component's steps in one environment, rendered, run, noted
on the change and recorded.

``steps`` (and ``probe``, ``fallback``) are step definitions as plain dicts; every string in them is rendered
with Jinja, with ``release``, ``environment``, ``component``, ``version``, ``previous_version``, ``vars`` and
``params`` available; shell strings (steps/shell.py) see trigger parameters only as quoted references to their
environment variables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from airflow.sdk import Context

from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.errors import ServiceNowError
from release_mgmt.operators.base import ReleaseOperator, param_values, params_env, run_after, run_version
from release_mgmt.operators.windows import WindowsMixin
from release_mgmt.records import deployment
from release_mgmt.steps import STEP_ADAPTER, StepContext, shell
from release_mgmt.steps.base import Stopper

#: how long a step task tries to write a work note before queuing it for change_close
NOTE_DEADLINE = 30.0
#: the XCom key under which a step task keeps the work notes it could not write
QUEUED_NOTES = "queued_work_notes"


class StepOperator(WindowsMixin, ReleaseOperator):
    """Runs one component's steps in one environment; deploy, validate and rollback build on it."""

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
        change: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if records:  # the deployment record is added through this alias, never on a dry run
            kwargs["outlets"] = [deployment.record_alias(kwargs["release"], environment, component)]
        super().__init__(**kwargs)
        self.environment = environment
        self.component = component
        self.steps = steps
        self.variables = dict(variables)
        self.workdir = workdir
        self.records = records
        self.change = dict(change) if change else None
        self._opened: dict[str, Any] | None = None  # change_open's answer, once read
        self._stopper: Stopper | None = None  # what stops the running step (on_kill); made when steps run
        self._queued: list[str] = []  # work notes the change system did not take (change_close writes them)
        self._set_windows(windows, on_freeze, outside_maintenance, expected_seconds)

    def _version(self, context: Context) -> str:
        return run_version(context, self.component)

    def _origin(self, context: Context) -> dict[str, str]:
        """Where this run's version of the component came from, as the preflight found it (its source's
        reference and digest); empty for a version typed in the trigger form."""
        found = context["ti"].xcom_pull(task_ids="preflight")
        for item in found.get("resolved", []) if isinstance(found, dict) else []:
            if item.get("component") == self.component and item.get("how") == "resolved":
                return {"source": f"{item['source']} {item['reference']}", "digest": str(item.get("digest", ""))}
        return {}

    def _previous_version(self, context: Context) -> str:
        """The last known good version the deploy task found (empty when there is none)."""
        task = f"{self.environment}.deploy_{self.component}"
        return str(context["ti"].xcom_pull(task_ids=task, key="previous_version") or "")

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Every string of the steps rendered with Jinja; shell strings with the release's own names only,
        trigger parameters as quoted references to their environment variables."""
        extras = {
            "release": self.release,
            "environment": self.environment,
            "component": self.component,
            "version": self._version(context),
            "previous_version": "" if self.action == "deploy" else self._previous_version(context),
            "vars": self.variables,
            "task_id": self.task_id,
        }
        # an optional text parameter left empty arrives as null: it renders as empty text, never "None"
        plain = {k: "" if v is None else v for k, v in param_values(context).items()}
        sources = list(self._shell_strings())
        super().render_template_fields(cast("Any", {**dict(context), **extras, "params": plain}), jinja_env)
        env = jinja_env or self.get_template_env()
        params = param_values(context)
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

    def _where(self, context: Context) -> dict[str, str]:
        """What an audit line of this task names: environment, component, version and the change it runs under."""
        return {
            "environment": self.environment,
            "component": self.component,
            "version": self._version(context),
            "change": self._change_number(context),
        }

    def _opened_change(self, context: Context) -> dict[str, Any]:
        """What ``change_open`` returned for this environment (empty without a change, or on a dry run); read
        once per task run, however many audit lines, work notes and records name it. A read that fails (the API
        server away) never fails the step: the change is then unnamed here, and read again next time."""
        if self._opened is None:
            try:
                opened = context["ti"].xcom_pull(task_ids=f"{self.environment}.change_open") if self.change else None
            except Exception as exc:  # noqa: BLE001 - evidence must never undo a deploy that succeeded
                self.log.warning("could not read this run's change (change_open's answer): %s", exc)
                return {}
            self._opened = opened if isinstance(opened, dict) and opened.get("sys_id") else {}
        return self._opened

    def _change_number(self, context: Context) -> str:
        return str(self._opened_change(context).get("number", ""))

    def _step_context(self, context: Context, previous: str) -> StepContext:
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
            params_env=params_env(context),
            run_id=str(context["run_id"]),
            stopper=self._running(),
        )

    def _running(self) -> Stopper:
        if self._stopper is None:
            self._stopper = Stopper()
        return self._stopper

    def on_kill(self) -> None:
        """Airflow kills this task (marked failed, timed out, shut down): stop the running step's processes
        (a command's whole process group; an ssh session's remote command) before the task's process ends."""
        if self._stopper is None:
            return
        for said in self._stopper.stop() or ["no step was running"]:
            self.log.warning("task killed: %s", said)

    def _announce(self, context: Context) -> bool:
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

    def _dry_run(self, context: Context, steps: list[dict[str, Any]]) -> dict[str, Any]:
        for step in steps:
            self.log.info("DRY RUN: would %s", STEP_ADAPTER.validate_python(step).describe())
        self._audit(context, f"{self.action}.dry_run", "skipped", **self._where(context))
        return {"version": self._version(context), "dry_run": True}

    def _run_steps(self, context: Context, steps: list[dict[str, Any]], previous: str) -> None:
        where = self._where(context)
        details = {"previous_version": previous} if previous else None
        self._audit(context, f"{self.action}.started", "started", **where, details=details)
        step_ctx = self._step_context(context, previous)
        models = [STEP_ADAPTER.validate_python(s) for s in steps]
        from release_mgmt.operators.fencing import StepFence, lease_for

        fence = StepFence(context, self.component, self.log, lease_for(models))
        fence.wait_for_others()  # the run's killed deploy, or another run's step, may still be changing it
        try:
            with fence:
                for number, step in enumerate(models, start=1):
                    self.log.info("step %d/%d: %s", number, len(models), step.describe())
                    step.run(step_ctx)
        except Exception as exc:
            self._audit(context, f"{self.action}.finished", "failed", **where, details={"error": str(exc)})
            self._work_note(context, f"{self.action} of {self.component} {where['version']}: FAILED: {exc}")
            raise
        self._audit(context, f"{self.action}.finished", "success", **where)
        self._work_note(context, f"{self.action} of {self.component} {where['version']}: succeeded")

    def _work_note(self, context: Context, text: str) -> None:
        """Evidence on this run's change request, when the environment has one. A note the change system does
        not take (after the hook's retries) is queued -- kept in this task's XCom and an audit line -- and
        ``change_close`` writes it before closing the change: never lost, never failing the step."""
        if not self.change:
            return
        note = f"{text} (Airflow run {context['run_id']}, task {self.task_id})"
        opened = self._opened_change(context)
        try:
            if not opened:
                raise ServiceNowError("this run's change is not known here yet")
            from release_mgmt.hooks.change_backend import backend_for

            backend = backend_for(self.change, TaskIdentity.from_context(context), deadline=NOTE_DEADLINE, max_wait=10)
            backend.note(opened["sys_id"], note)
        except Exception as exc:  # noqa: BLE001 - any failure to write queues the note instead
            self._queue_note(context, note, exc)

    def _queue_note(self, context: Context, note: str, error: Exception) -> None:
        self._queued.append(note)
        self.log.warning("work note not written now (%s); queued: %s's change_close writes it", error, self.environment)
        self._audit(context, "change.note_queued", "queued", **self._where(context), details={"note": note})
        try:
            context["ti"].xcom_push(key=QUEUED_NOTES, value=list(self._queued))
        except Exception as exc:  # noqa: BLE001 - the audit line above still holds the note
            self.log.error("could not queue the work note either (%s); it is in this log's audit line", exc)

    def _record(self, context: Context) -> None:
        """Add the deployment record when this task is the component's last step in the environment."""
        if not self.records:
            return
        record = deployment.DeploymentRecord(
            version=self._version(context),
            run_id=context["run_id"],
            deployed_at=datetime.now(UTC).isoformat(timespec="seconds"),
            change=self._change_number(context),
            run_after=run_after(context),
            **self._origin(context),
        )
        deployment.add(context, self.release, self.environment, self.component, record)
        self._audit(context, "deployment.recorded", "success", **self._where(context))
