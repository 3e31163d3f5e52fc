"""Small helpers shared by tests: writing definitions, free ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tools.local_airflow import free_port

__all__ = ["command", "free_port", "minimal_definition", "write_definition"]


def write_definition(folder: Path, name: str, data: dict[str, Any] | str) -> Path:
    """Write ``data`` (a mapping, dumped as YAML, or raw text) to ``folder/name``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def command(text: str, **extra: Any) -> dict[str, Any]:
    """A command step."""
    return {"type": "command", "command": text, **extra}


def minimal_definition(name: str = "shop", **overrides: Any) -> dict[str, Any]:
    """A small valid definition: one component, dev and prod."""
    data: dict[str, Any] = {
        "name": name,
        "owner": "team-a",
        "components": [
            {
                "name": "api",
                "version": "1.0.0",
                "deploy": command("echo deploy {{ component }} {{ version }}"),
                "validate": [command("echo check")],
                "rollback": command("echo rollback to {{ previous_version }}"),
            }
        ],
        "environments": [{"name": "dev"}, {"name": "prod"}],
    }
    data.update(overrides)
    return data
