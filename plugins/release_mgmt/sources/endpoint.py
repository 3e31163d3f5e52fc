"""``http`` version source: a field of a JSON document an HTTP endpoint serves (through an Airflow HTTP
connection), e.g. what a build system says was last built."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from release_mgmt.errors import SourceError, excerpt, quoted
from release_mgmt.sources.base import Resolved, SourceContext, SourceModel, checked_version

FIELD_PATH = r"^[A-Za-z0-9_-]{1,100}(\.[A-Za-z0-9_-]{1,100}){0,9}$"


class HttpSource(SourceModel):
    """The version is ``field`` (a dotted path) of the JSON ``endpoint`` answers with."""

    type: Literal["http"]
    connection: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,200}$", description="HTTP connection of the endpoint.")
    endpoint: str = Field(default="", max_length=500, description="Path after the connection's URL.")
    field: str = Field(
        pattern=FIELD_PATH,
        description="Dotted path of the version in the JSON answer, e.g. release.version (a number indexes a list).",
    )
    timeout_seconds: float = Field(default=10, gt=0, le=120, description="Time limit of the request.")

    def describe(self) -> str:
        return f"http {self.connection}/{self.endpoint.lstrip('/')}: field {self.field}"

    def resolve(self, ctx: SourceContext) -> Resolved:
        import requests
        from airflow.providers.http.hooks.http import HttpHook

        hook = HttpHook(method="GET", http_conn_id=self.connection)
        where = f"http {self.connection}/{self.endpoint.lstrip('/')}"
        try:
            answer = hook.run(self.endpoint, extra_options={"timeout": self.timeout_seconds, "check_response": False})
        except requests.RequestException as exc:
            raise SourceError(f"{where}: unreachable ({type(exc).__name__})") from None
        if answer.status_code != 200:
            raise SourceError(f"{where}: HTTP {answer.status_code}: {excerpt(answer.text, 200)}")
        try:
            value: Any = answer.json()
        except ValueError:
            raise SourceError(f"{where}: the answer is not JSON") from None
        for part in self.field.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                raise SourceError(f"{where}: the answer has no field {quoted(self.field)} (missing at {part!r})")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SourceError(f"{where}: field {self.field} is not a text or a number")
        version = checked_version(str(value), f"{where} field {self.field}")
        return Resolved(ctx.component, "http", f"{where}#{self.field}", version)
