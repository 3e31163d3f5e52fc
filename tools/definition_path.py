"""The whole path a definition file takes in Airflow, run on one file: read and validate it, plan and build its
DAG, serialize the DAG as the DAG processor does, ask its timetable for the next run and decide every
environment's windows as a deploy task would. Used by the fuzzer (tools/fuzz_definitions.py) and its tests.

:func:`exercise` answers ``accepted`` or ``error`` (with the lines the user sees) and raises :class:`Crash`
for anything else: an exception that escaped, an error DAG made of an unforeseen exception (isolation held,
but the definition found a bug), or a message a user should never see (a traceback, a Python repr, a regex,
an overlong line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: the longest line of an error report a person is expected to read
MAX_LINE = 600
#: what never belongs in a message (a traceback, a Python object's repr, a raw regular expression)
_UNREADABLE = re.compile(r"Traceback \(most recent|File \"/|<class '|object at 0x|\\[dwsSWD]|\^\[|\(\?P<")


class Crash(Exception):  # noqa: N818 - the fuzzer's outcome class
    """The definition got past every control: ``signature`` groups crashes of one cause."""

    def __init__(self, signature: str, detail: str) -> None:
        self.signature = signature
        super().__init__(f"{signature}: {detail}")


@dataclass(frozen=True)
class Outcome:
    kind: str  # accepted | error
    lines: tuple[str, ...]


def exercise(path: Path, calendars_dir: Path | None = None, now: datetime | None = None) -> Outcome:
    """Run ``path`` through everything Airflow and the deploy tasks do with it (see the module doc)."""
    from release_mgmt.dag.builder import checked_dag
    from release_mgmt.errors import DefinitionError

    try:
        item, dag, error = checked_dag(path, path.parent, calendars_dir)
    except Exception as exc:
        raise Crash(_signature(exc), f"escaped: {type(exc).__name__}: {str(exc)[:300]}") from exc
    if error is not None:
        _readable(error, path.read_text(encoding="utf-8", errors="replace"))
        if getattr(error, "unforeseen", False):
            raise Crash("unforeseen:" + error.problems[0].message.split("(", 2)[1].split(":")[0], error.render()[:400])
        return Outcome("error", tuple(error.lines()))
    assert dag is not None
    assert item is not None
    try:
        _after_build(dag, now or datetime.now(UTC))
        _decide_windows(item.definition, now or datetime.now(UTC))
        route_every_event(item.definition)
    except DefinitionError:
        raise
    except Exception as exc:
        raise Crash(_signature(exc), f"after build: {type(exc).__name__}: {str(exc)[:300]}") from exc
    return Outcome("accepted", ())


def _after_build(dag: object, now: datetime) -> None:
    """Serialize (the DAG processor), the next scheduled run (the scheduler), every window decision."""
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import TimeRestriction

    from release_mgmt.dag.timetable import MaintenanceWindowTimetable

    encoded = DagSerialization.to_dict(dag)
    DagSerialization.from_dict(encoded)
    timetable = dag.timetable  # type: ignore[attr-defined]
    if isinstance(timetable, MaintenanceWindowTimetable):
        timetable.next_dagrun_info(
            last_automated_data_interval=None, restriction=TimeRestriction(earliest=None, latest=None, catchup=False)
        )


def _decide_windows(defn: Any, now: datetime) -> None:
    """What a deploy task's window check decides, for every environment, now and in a year."""
    from release_mgmt.rules.windows import decide

    for env in defn.environments:
        for component in defn.components:
            for t in (now, now + timedelta(days=365)):
                decide(
                    defn.windows,
                    t,
                    environment=env.name,
                    release=defn.name,
                    component=component.name,
                    expected=env.expected_duration,
                )


def route_every_event(defn: Any) -> None:
    """What a task's notifier makes of every notification event in every environment: messages and the people
    without an address (as rendered for delivery, markup escaped and secrets masked)."""
    from release_mgmt.definition.notify_rules import EVENTS
    from release_mgmt.notify import routes
    from release_mgmt.notify.messages import Occasion

    if defn.directory is None:
        return
    occasion = Occasion(f"release_{defn.name}", "manual__fuzz", "prod.task", "ann", {"api": "1.0"}, "http://127.0.0.1")
    eligible = sorted({*defn.approver_groups.get("leads", ()), "ann", "zed"})
    for env in [*(e.name for e in defn.environments), ""]:
        for kind in EVENTS.values():
            record = {
                "event": kind.audit,
                "outcome": kind.outcome or "waiting",
                "release": defn.name,
                "run_id": "manual__fuzz",
                "environment": env,
                "component": defn.components[0].name,
                "version": "1.0",
                "actor": "zed",
                "change": "CHG0000001",
                "details": {"eligible": eligible, "gate": "approval", "reason": "<blink>why</blink>", "sys_id": "a/b"},
            }
            for message in routes.messages_for(defn, record, occasion):
                if "<blink>" in message["html"]:
                    raise Crash("notify:markup-not-escaped", message["html"][:200])
            routes.unreachable(defn, record, occasion)


def _loaded(load: Any, text: str) -> Any:
    """What ``load()`` returns, or the error Outcome of a definition error (checked readable); anything else that
    escapes is a Crash."""
    from release_mgmt.errors import DefinitionError

    try:
        return load()
    except DefinitionError as error:
        _readable(error, text)
        return Outcome("error", tuple(error.lines()))
    except Exception as exc:
        raise Crash(_signature(exc), f"escaped: {type(exc).__name__}: {str(exc)[:300]}") from exc


def exercise_notify(folder: Path, text: str, *, as_directory: bool) -> Outcome:
    """A directory (or, with ``as_directory`` False, a shared rules file) as ``text``, used by a definition with
    notification rules (tests/definition/corpus/payments.yaml naming the shared rules ``oncall``): loaded and
    every event routed. ``folder`` holds releases/, notify/ and directory.yaml (made here)."""
    from release_mgmt.definition.loader import load_file

    repo = Path(__file__).resolve().parents[1]
    (folder / "releases").mkdir(exist_ok=True)
    (folder / "notify").mkdir(exist_ok=True)
    definition = (repo / "tests/definition/corpus/payments.yaml").read_text() + "notify_routes: [oncall]\n"
    (folder / "releases" / "payments.yaml").write_text(definition)
    directory = text if as_directory else (repo / "include/directory.yaml").read_text()
    rules = text if not as_directory else NOTIFY_RULES
    (folder / "directory.yaml").write_text(directory, encoding="utf-8", errors="surrogatepass")
    (folder / "notify" / "oncall.yaml").write_text(rules, encoding="utf-8", errors="surrogatepass")
    item = _loaded(lambda: load_file(folder / "releases" / "payments.yaml"), text)
    if isinstance(item, Outcome):
        return item
    try:
        route_every_event(item.definition)
    except Crash:
        raise
    except Exception as exc:
        raise Crash(_signature(exc), f"routing: {type(exc).__name__}: {str(exc)[:300]}") from exc
    return Outcome("accepted", ())


#: the shared rules file the notification fuzzer starts from
NOTIFY_RULES = """\
rules:
  - {events: ["run.*", "rollback.*"], channels: [release-chat], to: [triggered_by, group:leads, bob]}
  - {events: [approval.requested], channels: [release-mail], to: [bob, admin@example.com]}
  - {events: ["*"], channels: [release-chat]}
"""


def _readable(error: object, source: str) -> None:
    """Every line short, and free of tracebacks, reprs and regular expressions (unless the file itself wrote them:
    a message may quote the author's own value)."""
    for line in error.lines():  # type: ignore[attr-defined]
        if len(line) > MAX_LINE:
            raise Crash("message:too-long", line[:200])
        for found in _UNREADABLE.finditer(line):
            if found.group(0) not in source:
                raise Crash(f"message:unreadable:{found.group(0)}", line[:300])


def _signature(exc: BaseException) -> str:
    """Exception type and the innermost frame of release_mgmt (or of the library) that raised it."""
    tb = exc.__traceback__
    where = "?"
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if "release_mgmt" in name or where == "?":
            where = f"{Path(name).name}:{tb.tb_frame.f_code.co_name}"
        tb = tb.tb_next
    return f"{type(exc).__name__}@{where}"


#: the train the train fuzzer starts from (its members: TRAIN_MEMBERS)
TRAIN = """\
name: corpus_train
owner: release-office
description: the corpus releases moved together
members:
  - release: infra
  - release: payments
    after: [infra]
    versions: {api: 1.2.3}
environments:
  - name: staging
  - name: prod
    gates: [{type: approval, name: cab, users: [bob, carol], min_approvals: 1}]
    change: {type: normal, authorizers: {users: [bob, carol]}, poll: 30s}
on_member_failure: rollback_train
windows:
  - name: year-end
    kind: freeze
    reason: year-end close
    timezone: Europe/Berlin
    start: "2026-12-20T00:00"
    end: "2027-01-04T00:00"
poke_seconds: 10
"""


def _member(name: str, components: list[str], environments: list[str]) -> dict[str, Any]:
    step = {"type": "command", "command": "true"}
    return {
        "name": name,
        "owner": "team",
        "components": [{"name": c, "version": "1.0.0", "deploy": step, "rollback": step} for c in components],
        "environments": [{"name": e} for e in environments],
    }


#: the releases a fuzzed train may name (valid, so a train's own problems are what the campaign finds)
TRAIN_MEMBERS = {
    "infra": _member("infra", ["edge", "web"], ["staging", "prod"]),
    "payments": _member("payments", ["db", "api"], ["dev", "staging", "prod"]),
    "identity": _member("identity", ["api"], ["dev", "prod"]),
}


def exercise_train(folder: Path, text: str) -> Outcome:
    """A train file as ``text``: loaded against :data:`TRAIN_MEMBERS`, planned, built and serialized as the DAG
    processor would. ``folder`` holds trains/ (made here)."""
    from release_mgmt.dag.trains import build_train_dag
    from release_mgmt.definition.models import ReleaseDefinition
    from release_mgmt.definition.trains import load_train

    (folder / "trains").mkdir(exist_ok=True)
    path = folder / "trains" / "case.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    releases = {name: ReleaseDefinition.model_validate(data) for name, data in TRAIN_MEMBERS.items()}
    loaded = _loaded(lambda: load_train(path, releases), text)
    if isinstance(loaded, Outcome):
        return loaded
    try:
        _after_build(build_train_dag(loaded), datetime.now(UTC))
    except Exception as exc:
        raise Crash(_signature(exc), f"build: {type(exc).__name__}: {str(exc)[:300]}") from exc
    return Outcome("accepted", ())
