"""The console's FastAPI app: who is looking, which pages exist, how a page is rendered, and what an error
looks like (a page saying what happened, never a stack trace).

Every page needs a signed-in Airflow user (the UI's own session cookie, or a Bearer token); a release task's
service token is refused. Pages are read-only; what a viewer sees of a release follows Airflow's permission to
read its DAG. Decisions (authorizing a change) are posted by the page to the change service, whose permission
table decides again: hiding a button is a courtesy, never the control.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from release_mgmt import masking
from release_mgmt.console.sources import Sources
from release_mgmt.errors import ReleaseMgmtError

#: the console's permission table: every page, what it shows, who may open it. Humans read; nobody writes here.
PAGES: tuple[tuple[str, str], ...] = (
    ("/", "Releases: what runs where, the runs in progress and what they wait for"),
    ("/dags/{dag_id}", "one release (the DAG page's Release tab)"),
    ("/runs/{dag_id}/{run_id}", "one run: state, waits, links (the run page's Release tab)"),
    ("/runs/{dag_id}/{run_id}/evidence", "the run's evidence report, digest and downloads"),
    ("/calendar", "freeze and maintenance windows, scheduled and past runs"),
    ("/changes", "change requests of the releases the viewer may read"),
    ("/changes/{sys_id}", "one change: state, plans, journal, approvals; authorize buttons for its authorizers"),
)
READERS = ("viewer", "user", "op", "admin")


@dataclass(frozen=True)
class Viewer:
    """A signed-in person: name, Airflow role, which DAGs Airflow lets them read, and their token (used only to
    call Airflow's REST API on their behalf)."""

    name: str
    role: str
    can_read: Callable[[str], bool] = field(compare=False)
    token: str = field(default="", repr=False)


Authenticate = Callable[[Request], Awaitable[Viewer]]


@dataclass
class Settings:
    """Where the console reads from and links to."""

    sources: Sources
    #: where the change service is mounted (the page posts decisions there, same origin)
    change_service: str = "/change-service"
    #: Airflow's REST API as reached from this server (the evidence report is read through it, as the viewer)
    api_url: Callable[[], str] = lambda: "http://127.0.0.1:8080"
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


TEMPLATES = Environment(
    loader=PackageLoader("release_mgmt.console", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
    """A page: the template with the viewer, the console's root and the masker applied to every text shown."""
    root = request.scope.get("root_path", "").rstrip("/")
    viewer = getattr(request.state, "viewer", None)
    context = masking.redact_value(context)
    html = TEMPLATES.get_template(template).render(root=root, viewer=viewer, **context)
    return HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store"})


async def viewer_of(request: Request) -> Viewer:
    """The signed-in viewer (401 anonymous, 403 a release task or an unknown role); kept on the request."""
    viewer: Viewer = await request.app.state.authenticate(request)
    if viewer.role not in READERS:
        raise HTTPException(403, detail=f"{viewer.name} ({viewer.role}) may not open the release console")
    request.state.viewer = viewer
    return viewer


def settings(request: Request) -> Settings:
    found: Settings = request.app.state.settings
    return found


def create_app(authenticate: Authenticate, config: Settings) -> FastAPI:
    """The console over ``config``; ``authenticate(request)`` returns the Viewer or raises HTTPException 401."""
    from release_mgmt.console import calendar_page, changes_page, pages

    app = FastAPI(title="release_mgmt console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.authenticate = authenticate
    app.state.settings = config
    for module in (pages, calendar_page, changes_page):
        app.include_router(module.router)
    app.add_exception_handler(StarletteHTTPException, _error_page)  # type: ignore[arg-type]
    app.add_exception_handler(ReleaseMgmtError, _unavailable)  # type: ignore[arg-type]
    return app


TITLES = {401: "Not signed in", 403: "Not allowed", 404: "Not found", 405: "Not allowed", 503: "Unavailable"}


async def _error_page(request: Request, exc: StarletteHTTPException) -> Response:
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else "this page does not exist"
    if status == 404 and detail == "Not Found":
        detail = f"the console has no page {request.url.path}"
    title = TITLES.get(status, "Error")
    return render(request, "error.html", status, title=title, detail=detail, status=status)


async def _unavailable(request: Request, exc: ReleaseMgmtError) -> Response:
    return render(request, "error.html", 503, title="Unavailable", detail=str(exc), status=503)


def local_time(value: datetime | str | None) -> dict[str, str]:
    """An instant for a page: ISO (UTC) for the viewer's browser to show in their time zone, and UTC text."""
    if value is None or value == "":
        return {"iso": "", "utc": ""}
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return {"iso": when.isoformat(), "utc": when.strftime("%Y-%m-%d %H:%M UTC")}


TEMPLATES.globals["t"] = local_time
