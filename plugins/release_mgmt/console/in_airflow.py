"""The console as Airflow's API server mounts it (the plugin's ``fastapi_apps``) and the UI shows it (the plugin's
``external_views``): Airflow's users and sessions, Airflow's database, the change service's database."""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from release_mgmt.console.app import Settings, Viewer, create_app
from release_mgmt.console.sources import Sources, releases_dir, repository

PREFIX = "/release-console"
CHANGE_SERVICE = "/change-service"


async def airflow_viewer(request: Request) -> Viewer:
    """The signed-in Airflow user of the UI's session cookie (or a Bearer token); a release task is refused."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    from release_mgmt.change_service.callers import airflow_caller

    caller = await airflow_caller(request)
    if caller.is_release_task:
        raise HTTPException(403, detail="release tasks have no business in the console")
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")
    return Viewer(caller.name, caller.role, caller.can_read, token)


def api_url() -> str:
    """Airflow's REST API as this server reaches it: $RELEASE_MGMT_API_URL, else Airflow's [api] host and port."""
    if url := os.environ.get("RELEASE_MGMT_API_URL"):
        return url.rstrip("/")
    from airflow.configuration import conf

    host = conf.get("api", "host", fallback="127.0.0.1") or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a listening address, not a bind
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{conf.getint('api', 'port', fallback=8080)}"


def _store() -> Any:
    from release_mgmt.change_service.in_airflow import default_store_url
    from release_mgmt.change_service.store import ChangeStore

    return ChangeStore(default_store_url())


def airflow_console() -> FastAPI:
    """The console app for Airflow's API server."""
    sources = Sources(releases_dir, _store, repository)  # files named as the DAG file names them
    return create_app(airflow_viewer, Settings(sources, CHANGE_SERVICE, api_url))


#: the pages in Airflow's UI: the navigation (Browse menu) and tabs on the DAG and run pages
EXTERNAL_VIEWS = [
    {"name": "Releases", "href": f"{PREFIX}/", "url_route": "releases", "destination": "nav", "category": "browse"},
    {
        "name": "Release calendar",
        "href": f"{PREFIX}/calendar",
        "url_route": "release-calendar",
        "destination": "nav",
        "category": "browse",
    },
    {
        "name": "Changes",
        "href": f"{PREFIX}/changes",
        "url_route": "changes",
        "destination": "nav",
        "category": "browse",
    },
    {"name": "Release", "href": f"{PREFIX}/dags/{{DAG_ID}}", "url_route": "release", "destination": "dag"},
    {
        "name": "Release run",
        "href": f"{PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
        "url_route": "release-run",
        "destination": "dag_run",
    },
]
