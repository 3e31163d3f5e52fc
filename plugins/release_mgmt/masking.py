"""One way out for every text that leaves the task log: Airflow's secrets masker.

Work notes, close notes, change descriptions, step error excerpts, evidence, CLI output: whatever
a release writes outside Airflow's own (already masked) task log passes through :func:`redact`,
which replaces every secret Airflow's masker knows in this process -- connection passwords and
sensitive extras fetched by the task, variables with sensitive names, values registered with
``mask_secret`` -- with ``***``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def redact(text: str) -> str:
    """``text`` with every secret the masker knows replaced by ``***``."""
    from airflow.sdk._shared.secrets_masker import redact as airflow_redact

    return str(airflow_redact(text))


def redact_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A record's fields with every text value redacted (other values unchanged)."""
    return {k: redact(v) if isinstance(v, str) else v for k, v in fields.items()}


def redact_value(value: Any) -> Any:
    """A nested value (an audit record, a report) with known secrets replaced in every text, and the values
    of sensitive keys (password, token, secret, api_key, ...) hidden, as Airflow's masker does."""
    from airflow.sdk._shared.secrets_masker import redact as airflow_redact

    return airflow_redact(value, max_depth=20)
