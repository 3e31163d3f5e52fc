"""The release definition schema: strict pydantic models, exported as JSON schema for editors."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StringConstraints,
    model_validator,
)

from release_mgmt.definition.calendars import Window
from release_mgmt.definition.durations import Duration
from release_mgmt.definition.notify_rules import Directory, NotifyRule
from release_mgmt.errors import quoted
from release_mgmt.gates import Gate
from release_mgmt.gates.approval import USER_PATTERN, User
from release_mgmt.gates.base import GroupName
from release_mgmt.sources import Source
from release_mgmt.sources.base import VERSION_RE
from release_mgmt.sources.endpoint import FIELD_PATH
from release_mgmt.sources.git import REPOSITORY
from release_mgmt.steps import Step

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,49}$"
NAME_RULE = "lowercase letters, digits, '_' or '-', starting with a letter, at most 50 characters"
VERSION_PATTERN = VERSION_RE.pattern  # ':' allowed: a digest (sha256:...) is a version
VERSION_RULE = "letters, digits, '.', '_', '+', ':' or '-', starting with a letter or digit, at most 128 characters"
KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
KEY_RULE = "letters, digits or '_', starting with a letter or '_' (usable in templates)"

#: how many of each a definition may hold (README, "Limits"): past them a release is several releases
MAX_COMPONENTS, MAX_ENVIRONMENTS, MAX_CHECKS = 100, 20, 50

#: pattern -> the sentence an error message uses for it
PATTERN_RULES = {
    NAME_PATTERN: NAME_RULE,
    VERSION_PATTERN: VERSION_RULE,
    KEY_PATTERN: KEY_RULE,
    REPOSITORY: "a URL (https, http, git, ssh or file) or an absolute path, not starting with '-'",
    FIELD_PATH: "a dotted path of keys or list positions, e.g. release.version or builds.0.version",
    USER_PATTERN: "an Airflow user name: letters, digits, '.', '_', '@', '+' or '-', at most 100 characters",
}

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]
Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]


def _scalar(value: object) -> object:
    if isinstance(value, dict | list | tuple):
        kind = "a mapping" if isinstance(value, dict) else "a list"
        raise ValueError(f"must be a single value (text, number, true/false or null), not {kind}")
    return value


Scalar = Annotated[str | bool | None, BeforeValidator(_scalar)]


class Strict(BaseModel):
    """Base of every definition model: unknown keys are errors, values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False, allow_inf_nan=False)


class Component(Strict):
    """A versioned thing the release moves: how it is deployed, checked and rolled back."""

    name: Name
    description: str = ""
    version: Version | None = Field(
        default=None, description="Version offered by default in the trigger form (without a source)."
    )
    source: Source | None = Field(
        default=None,
        description="Where the run finds the version to deploy (git, oci, http, promote) when the trigger form "
        "leaves it empty.",
    )
    depends_on: tuple[Name, ...] = Field(default=(), description="Components deployed and validated before this one.")
    current_version: Step | None = Field(
        default=None,
        description="Step whose last output line is the version running now; rollback restores that version.",
    )
    deploy: Step
    validation: tuple[Step, ...] = Field(
        default=(), alias="validate", max_length=MAX_CHECKS, description="Checks run after deploy, in order."
    )
    rollback: Step | None = Field(
        default=None, description="Restores the last known good version ({{ previous_version }})."
    )
    undeploy: Step | None = Field(
        default=None, description="Removes the component when its first deployment fails (nothing to restore)."
    )

    @model_validator(mode="after")
    def _version_or_source(self) -> Component:
        if (self.version is None) == (self.source is None):
            raise ValueError(
                "give version (the trigger form's default) or source (where each run finds it), one of them"
            )
        return self


class Authorizers(Strict):
    """Who may authorize a change: Airflow users and approver groups (approver_groups)."""

    users: tuple[User, ...] = Field(default=(), description="Airflow user names that may authorize.")
    groups: tuple[GroupName, ...] = Field(default=(), description="Approver groups whose members may authorize.")

    def names(self, approver_groups: Mapping[str, Sequence[str]], assignment_group: str = "") -> list[str]:
        """Every user who may authorize, sorted: the users, the groups' members and, when the change's
        assignment group is an approver group, its members."""
        found = set(self.users)
        for group in (*self.groups, assignment_group):
            found.update(approver_groups.get(group, ()))
        return sorted(found)


class ChangeConfig(Strict):
    """A change request per run in this environment: opened before the gates, authorized before any
    deploy, implemented while deploying, closed with the outcome."""

    type: Literal["normal", "standard", "emergency"] = "normal"
    connection: str = Field(
        default="servicenow_default",
        description="Airflow HTTP connection of the ServiceNow instance (or of the built-in change service).",
    )
    assignment_group: str = Field(
        default="", description="Group the change is assigned to; when it is an approver group, its members authorize."
    )
    authorizers: Authorizers = Field(
        default=Authorizers(),
        description="Who may authorize normal and emergency changes (besides the assignment group's members); "
        "the requester and whoever triggered the run never may.",
    )
    min_authorizations: int = Field(default=1, ge=1, le=20, description="Distinct authorizations needed.")
    cmdb_ci: str = Field(default="", description="Configuration item the change is about.")
    authorization_timeout: Duration = Field(default=timedelta(days=2), description="How long to wait for the CAB.")
    poll: Duration = Field(default=timedelta(seconds=30), description="First wait between checks; doubles to 10m.")


class Environment(Strict):
    """A stage of the promotion order (dev, staging, prod, ...)."""

    name: Name
    description: str = ""
    variables: dict[Key, Scalar] = Field(
        default_factory=dict, max_length=100, description="Available in templates as {{ vars.NAME }}."
    )
    gates: tuple[Gate, ...] = Field(
        default=(),
        max_length=20,
        description="Checked in order after the environment starts and before anything is deployed.",
    )
    on_freeze: Literal["wait", "fail"] = Field(
        default="wait", description="During a freeze: wait until it ends (no worker held), or fail at once."
    )
    outside_maintenance: Literal["wait", "fail"] = Field(
        default="wait",
        description="When the environment has maintenance windows and none is open (with expected_duration "
        "left): wait for the next, or fail at once.",
    )
    expected_duration: Duration = Field(
        default=timedelta(0), description="How long deploying here takes; a maintenance window must have it left."
    )
    change: ChangeConfig | None = Field(default=None, description="Open a change request for each run here.")
    lock: Name | None = Field(
        default=None,
        description="A lock shared with other releases deploying to the same place (e.g. prod-cluster): runs "
        "naming it deploy here one at a time, in the order they asked. Without it, runs of this release take "
        "turns when max_active_runs allows several.",
    )
    lock_timeout: Duration = Field(
        default=timedelta(days=1), description="How long a run waits in line for the lock before it fails."
    )
    lock_notice: Duration = Field(
        default=timedelta(minutes=30),
        description="After this long in line for the lock, the event lock.waiting_long is sent (once per run).",
    )
    notify: tuple[NotifyRule, ...] = Field(
        default=(), max_length=50, description="Who hears about this environment's events (after the release's)."
    )


def typed_default(kind: str, value: object, what: str = "default") -> object:
    """A parameter's default (or enum item) as its type wants it: YAML numbers arrive as text (see yaml_io), so
    an integer parameter's ``default: 3`` becomes 3 here; a value of another type is an error."""
    if value is None:
        return None
    shown = quoted(str(value))
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise ValueError(f"{what} {shown} is not true or false (write true or false, unquoted)")
    if isinstance(value, bool):
        raise ValueError(f"{what} {str(value).lower()} is a boolean, not a {kind} (quote it for a string)")
    text = str(value).strip()
    if kind == "integer":
        if re.fullmatch(r"[+-]?\d{1,18}", text):
            return int(text)
        raise ValueError(f"{what} {shown} is not an integer (write a whole number, e.g. 3)")
    if kind == "number":
        try:
            number = float(text) if len(text) <= 40 else math.nan
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
        raise ValueError(f"{what} {shown} is not a number (write e.g. 0.5)")
    return str(value)


class Parameter(Strict):
    """An extra field of the manual trigger form, available in templates as {{ params.NAME }}."""

    type: Literal["string", "integer", "number", "boolean"] = "string"
    default: Annotated[str | bool | int | float | None, BeforeValidator(_scalar)] = None
    description: str = ""
    enum: tuple[str | int | float, ...] | None = Field(default=None, min_length=1, max_length=100)
    pattern: str | None = Field(
        default=None,
        description="A string parameter's values must match this regular expression (JSON schema semantics: "
        "anchor it with ^...$), in the trigger form and again before the run does anything.",
    )

    @model_validator(mode="before")
    @classmethod
    def _typed(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        kind = data.get("type", "string")
        if kind not in ("string", "integer", "number", "boolean"):
            return data
        if "default" in data and not isinstance(data["default"], dict | list):
            data = {**data, "default": typed_default(kind, data["default"])}
        enum = data.get("enum")
        if isinstance(enum, list | tuple):
            if kind == "boolean":
                raise ValueError("enum applies to string, integer and number parameters, not boolean")
            items = [item if isinstance(item, dict | list) else typed_default(kind, item, "enum item") for item in enum]
            data = {**data, "enum": items}
        return data

    @model_validator(mode="after")
    def _default_in_enum(self) -> Parameter:
        if self.enum is not None and self.default is not None and self.default not in self.enum:
            allowed = ", ".join(str(e)[:30] for e in self.enum[:10]) + (", ..." if len(self.enum) > 10 else "")
            raise ValueError(f"default {quoted(str(self.default))} is not one of enum: {allowed}")
        if self.pattern is not None:
            if self.type != "string":
                raise ValueError(f"pattern applies to string parameters, not {self.type}")
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a regular expression ({exc.msg} at position {exc.pos})") from None
            if self.default is not None and not compiled.search(str(self.default)):
                raise ValueError(f"default {quoted(str(self.default))} does not match this parameter's pattern")
        return self


class Schedule(Strict):
    """When runs start without a person: at the openings of an environment's maintenance windows."""

    at_maintenance_windows: Name = Field(description="The environment whose maintenance windows start runs.")


class Policy(Strict):
    """Release-wide rules the checks enforce."""

    require_rollback: StrictBool = Field(default=True, description="Every component must declare a rollback step.")


class ReleaseDefinition(Strict):
    """One release: its components, the environments they move through, and its rules."""

    name: Name = Field(description="Release name; the DAG id is release_<name>.")
    description: str = ""
    owner: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    team: str = Field(default="", max_length=80, description="Team that owns the release (a DAG tag team:<team>).")
    components: tuple[Component, ...] = Field(min_length=1, max_length=MAX_COMPONENTS)
    environments: tuple[Environment, ...] = Field(
        min_length=1,
        max_length=MAX_ENVIRONMENTS,
        description="In promotion order: each starts only after the one before succeeded.",
    )
    parameters: dict[Key, Parameter] = Field(default_factory=dict, max_length=50)
    approver_groups: dict[GroupName, tuple[User, ...]] = Field(
        default_factory=dict, max_length=200, description="Named groups of Airflow users, for approval gates."
    )
    approver_groups_file: str | None = Field(
        default=None,
        description="A YAML file of more groups (group: [users]) shared by several releases, relative to "
        "this definition (e.g. ../approver_groups.yaml).",
    )
    calendars: tuple[Name, ...] = Field(
        default=(), description="Shared calendars (include/calendars/<name>.yaml) whose windows apply."
    )
    windows: tuple[Window, ...] = Field(
        default=(), max_length=200, description="Freeze and maintenance windows of this release."
    )
    schedule: Schedule | None = Field(default=None, description="Unattended runs; default: manual runs only.")
    break_glass: Gate | None = Field(
        default=None,
        description="The extra approval an emergency run (trigger parameter emergency_change) needs to deploy "
        "during a freeze. Without it, freezes always hold.",
    )
    max_active_runs: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Runs of this release at once (more wait queued). With more than one, each environment "
        "is deployed by one run at a time: a run waits for the environment's lock before its first deploy.",
    )
    policy: Policy = Policy()
    notify: tuple[NotifyRule, ...] = Field(
        default=(), max_length=50, description="Who hears about which events, through which channels."
    )
    notify_routes: tuple[Name, ...] = Field(
        default=(), max_length=20, description="Shared notification rules (include/notify/<name>.yaml) that apply."
    )
    #: include/directory.yaml as loaded with the definition (channels and people); None without notify rules
    _directory: Directory | None = PrivateAttr(default=None)

    @property
    def directory(self) -> Directory | None:
        return self._directory


def json_schema() -> dict[str, Any]:
    """The JSON schema of a release definition file (by alias, as users write it)."""
    schema = ReleaseDefinition.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["patternProperties"] = {"^x-": {"description": "Left to the author, e.g. anchors for merge keys."}}
    schema["title"] = "release_mgmt release definition"
    return schema
