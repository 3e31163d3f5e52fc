"""The run's and each environment's entry: the preflight checks the trigger parameters and the promotion rule
before anything is touched; an environment's entry skips when the run does not select it and waits out a
freeze or a closed maintenance window (no worker held)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from release_mgmt.operators.base import ReleaseOperator, params_env, selection
from release_mgmt.operators.train_claim import CONF_KEY, check_claim
from release_mgmt.operators.versions import VersionsMixin
from release_mgmt.operators.windows import WindowsMixin
from release_mgmt.planning.words import with_version
from release_mgmt.records import deployment
from release_mgmt.rules.promotion import promotion_problems
from release_mgmt.rules.run_params import RunSelection


class PreflightOperator(VersionsMixin, ReleaseOperator):
    """Checks the trigger parameters, settles the versions (sources resolved) and the release notes before
    anything is touched, and logs the plan of the run."""

    def __init__(
        self,
        *,
        plan_lines: list[str],
        patterns: dict[str, str] | None = None,
        sources: dict[str, dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["inlets"] = [
            deployment.record_asset(kwargs["release"], env, comp)
            for env in kwargs["environments"]
            for comp in kwargs["components"]
        ]
        super().__init__(**kwargs)
        self.plan_lines = list(plan_lines)
        self.patterns = dict(patterns or {})
        self.sources = dict(sources or {})

    def execute(self, context: Context) -> dict[str, Any]:
        chosen = selection(context, self.components, self.environments, self.sources)
        self._check_parameters(context)
        claim = self._train_claim(context, chosen)
        versions, resolved = self._settle(context, chosen, claim)
        chosen = replace(chosen, versions=versions)
        if chosen.source_environment and claim and claim["purpose"] == "revert":
            details = {"train": claim["train"], "train_run_id": claim["train_run_id"], "versions": versions}
            self._audit(context, "promotion.waived", "train_revert", details=details)
        elif chosen.source_environment:
            self._check_promotion(context, chosen)
        mode = "DRY RUN: nothing will be changed" if chosen.dry_run else "live run"
        self.log.info("release %s, %s, environments %s", self.release, mode, " -> ".join(chosen.environments))
        for comp in self.components:
            self.log.info("  %s %s", comp, chosen.versions[comp])
        for line in self.plan_lines:  # "<env>.<kind>_<component>: steps", with this run's version
            component = line.split(":", 1)[0].split(".", 1)[-1].partition("_")[2]
            self.log.info("  plan: %s", with_version(line, chosen.versions.get(component, "{{ version }}")))
        summary = {"versions": chosen.versions, "environments": list(chosen.environments), "dry_run": chosen.dry_run}
        self._audit(context, "run.planned", "ok", details=summary)
        return summary | {"resolved": [r.as_dict() for r in resolved], "notes": self._notes(context, chosen, versions)}

    def _train_claim(self, context: Context, chosen: RunSelection) -> dict[str, Any] | None:
        """The train's claim this run carries (operators/train_claim.py), checked; None without one. A claim that
        does not verify for exactly this run fails it: only a train's task can make one."""
        conf = getattr(context.get("dag_run"), "conf", None) or {}
        if CONF_KEY not in conf:
            return None
        found = check_claim(
            conf[CONF_KEY],
            release=self.release,
            run_id=str(context["run_id"]),
            environments=list(chosen.environments),
            versions=chosen.versions,
        )
        if isinstance(found, str):
            self._audit(context, "run.refused", "train_claim", details={"reason": found})
            raise AirflowFailException(f"the run carries a train claim that is not valid ({found}); nothing was run")
        self.log.info("run of train %s (run %s): %s", found["train"], found["train_run_id"], found["purpose"])
        return found

    def _check_parameters(self, context: Context) -> None:
        """Parameters match their declared patterns (a run created around the trigger form's checks too) and
        hold no NUL byte; a value that fails stops the run before anything is touched."""
        params_env(context)
        for name, pattern in sorted(self.patterns.items()):
            value = context["params"].get(name)
            if value is not None and not re.search(pattern, str(value)):
                self._audit(context, "run.refused", "parameter_pattern", details={"parameter": name})
                raise AirflowFailException(f"parameter {name} does not match its pattern {pattern!r}; nothing was run")

    def _check_promotion(self, context: Context, chosen: RunSelection) -> None:
        """A run starting after the first environment may only deploy what the one before runs."""
        source = chosen.source_environment or ""
        recorded = {
            comp: deployment.latest(context, deployment.record_asset(self.release, source, comp))
            for comp in chosen.versions
        }
        problems = promotion_problems(chosen.versions, source, recorded)
        if problems:
            self._audit(context, "run.refused", "promotion_rule", details={"source": source, "problems": problems})
            raise AirflowFailException(
                f"promotion rule: a run starting at {chosen.environments[0]} may only deploy versions that "
                f"{source} already runs successfully: "
                + "; ".join(problems)
                + f". Deploy them to {source} first, or start the run there."
            )
        for comp, record in recorded.items():
            if record is not None:
                self.log.info(
                    "promotion: %s %s runs in %s (%s)", comp, chosen.versions[comp], source, record.describe()
                )


class EnvironmentEntryOperator(WindowsMixin, ReleaseOperator):
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

    def execute(self, context: Context, event: Any = None) -> None:
        chosen = selection(context, self.components, self.environments)
        if self.environment not in chosen.environments:
            self._audit(context, "environment.skipped", "not_selected", environment=self.environment)
            raise AirflowSkipException(f"environment {self.environment} is not selected for this run")
        self._enforce_windows(context, self.environment, None)
        self._audit(
            context,
            "environment.entered",
            "ok",
            environment=self.environment,
            details={"versions": chosen.versions, "dry_run": chosen.dry_run},
        )
