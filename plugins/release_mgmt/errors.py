"""The exception root of release_mgmt and its few precise subclasses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def quoted(value: object, limit: int = 60) -> str:
    """A value as a message quotes it: in single quotes, cut to ``limit`` characters, with every character that
    does not print (controls, line breaks, invisible spaces) shown as U+FFFD; never a Python repr."""
    text = value if isinstance(value, str) else str(value)
    cut = text if len(text) <= limit else text[:limit] + "..."
    return "'" + "".join(c if c.isprintable() else "\ufffd" for c in cut) + "'"


class ReleaseMgmtError(Exception):
    """Root of every error release_mgmt raises on purpose."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in one definition file: where (key path) and what to do."""

    path: str
    message: str
    line: int | None = None

    def render(self, file: str) -> str:
        """One line: ``file:line: path: message`` (line and path left out when unknown)."""
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class DefinitionError(ReleaseMgmtError):
    """A release definition file that cannot be used, with every problem found in it."""

    def __init__(self, file: str, problems: list[Problem], path: Path | None = None) -> None:
        self.file = file
        self.path = path or Path(file)
        self.problems = tuple(problems)
        #: the release name the file gives, when it could be read (its error DAG is named after it)
        self.name: str | None = None
        #: made of an exception no check foresaw (the file is isolated, but it found a gap in the checks)
        self.unforeseen = False
        #: another file owns the release name this file declares (its DAG gets an id of its own)
        self.duplicate = False
        super().__init__(self.render())

    def lines(self) -> list[str]:
        """One line per problem, each naming the file and the key path."""
        return [p.render(self.file) for p in self.problems]

    def render(self) -> str:
        return "\n".join(self.lines())


class ParameterError(ReleaseMgmtError):
    """A trigger parameter of a run (version, environments) that the release cannot accept."""


class StepError(ReleaseMgmtError):
    """A deploy, validation or rollback step ended without success."""


class ServiceNowError(ReleaseMgmtError):
    """A call to a change system that failed: the HTTP status (0 when no answer came) and a short excerpt of
    the answer."""

    def __init__(self, message: str, status: int = 0, excerpt: str = "") -> None:
        self.status = status
        self.excerpt = excerpt
        super().__init__(message)


def excerpt(text: str, limit: int = 300) -> str:
    """The start of an answer's text, on one line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


class ApiError(ReleaseMgmtError):
    """A REST call that did not succeed: the status and a short excerpt of the answer."""

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{method} {path}: HTTP {status}: {detail[:300]}")


class SourceError(ReleaseMgmtError):
    """A component's version could not be found where it lives (repository, registry, endpoint, record)."""
