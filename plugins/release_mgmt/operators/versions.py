"""The run's versions, settled in its first task: a component with a source and no version typed in the trigger
form gets the version its source gives now (git, oci, http, promote); a typed version overrides the source. What
was found (source, reference, version, digest) is an audit line and the preflight's XCom, which every later task
reads; for git sources the release notes of each selected environment (its last known good version to the new
one) are written the same way. A source that cannot answer fails the run before anything is deployed."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from release_mgmt.errors import SourceError
from release_mgmt.operators.base import ReleaseOperator
from release_mgmt.records import deployment
from release_mgmt.rules.run_params import RunSelection
from release_mgmt.sources import SOURCE_ADAPTER, Resolved, SourceContext, SourceModel
from release_mgmt.sources.notes import notes as empty_notes
from release_mgmt.sources.notes import to_markdown


class VersionsMixin(ReleaseOperator):
    """What the preflight does with the components' sources (``self.sources``: component -> source as JSON)."""

    sources: dict[str, dict[str, Any]]

    def _source(self, component: str) -> SourceModel | None:
        spec = self.sources.get(component)
        return SOURCE_ADAPTER.validate_python(spec) if spec else None

    def _recorded(self, context: Context, environment: str, component: str) -> str | None:
        record = deployment.latest(context, deployment.record_asset(self.release, environment, component))
        return record.version if record else None

    def _settle(
        self, context: Context, chosen: RunSelection, claim: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], list[Resolved]]:
        """The version of every component, and how each sourced one was found (typed in the form, or given by
        the train whose ``claim`` the run carries)."""
        versions, found = dict(chosen.versions), []
        typed_by = f"train {claim['train']} run {claim['train_run_id']}" if claim else "trigger form"
        for comp in self.components:
            source = self._source(comp)
            if versions[comp]:
                if source is not None:
                    how = "train" if claim else "override"
                    found.append(Resolved(comp, source.type, typed_by, versions[comp], how=how))
                continue
            if source is None:
                raise AirflowFailException(f"parameter version_{comp}: give the version to deploy; nothing was run")
            ctx = SourceContext(
                self.release,
                comp,
                chosen.environments[0],
                chosen.source_environment,
                lambda env, comp=comp: self._recorded(context, env, comp),  # type: ignore[misc]
                self.log,
            )
            try:
                found.append(source.resolve(ctx))
            except SourceError as exc:
                details = {"component": comp, "source": source.describe(), "reason": str(exc)}
                self._audit(context, "run.refused", "version_source", details=details)
                raise AirflowFailException(
                    f"{comp}: the version source ({source.describe()}) gave no version: {exc}. Nothing was deployed."
                ) from exc
            versions[comp] = found[-1].version
        for item in found:
            self.log.info(
                "version of %s: %s (%s, %s %s)", item.component, item.version, item.how, item.source, item.reference
            )
            self._audit(context, "version.resolved", item.how, component=item.component, details=item.as_dict())
        return versions, found

    def _notes(self, context: Context, chosen: RunSelection, versions: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Release notes per selected environment and component with a git source: the commits from the
        environment's last known good version to this run's. Notes that cannot be read say why; they never
        stop the run."""
        by_env: dict[str, dict[str, Any]] = {env: {} for env in chosen.environments}
        for comp in self.components:
            source = self._source(comp)
            if source is None or not source.has_notes:
                continue
            ranges = {env: (self._recorded(context, env, comp), versions[comp]) for env in chosen.environments}
            try:
                found = source.notes(comp, ranges)  # type: ignore[attr-defined]
            except SourceError as exc:
                found = {e: empty_notes(comp, p, v, [], note=f"no notes: {exc}") for e, (p, v) in ranges.items()}
            for env, entry in found.items():
                by_env[env][comp] = entry
                self._audit(context, "release.notes", "ok", environment=env, component=comp, details=entry)
        return {env: comps for env, comps in by_env.items() if comps}


#: how much of a change's description release notes may take (ServiceNow's description field holds 4,000
#: characters by default; the rest of the description needs room too)
NOTES_LIMIT = 3000


def notes_text(context: Context, environment: str) -> str:
    """The release notes of ``environment`` as the preflight wrote them, as text for a change's description
    (cut to :data:`NOTES_LIMIT` characters, saying so); empty when there are none."""
    found = context["ti"].xcom_pull(task_ids="preflight")
    entries = (found.get("notes") or {}).get(environment) if isinstance(found, dict) else None
    if not isinstance(entries, dict) or not entries:
        return ""
    text = "\n\n".join(to_markdown(entry, level=3) for _, entry in sorted(entries.items()))
    if len(text) > NOTES_LIMIT:
        text = text[:NOTES_LIMIT].rsplit("\n", 1)[0] + "\n... (cut; the run's evidence report has the whole notes)"
    return "\n\nRelease notes:\n" + text
