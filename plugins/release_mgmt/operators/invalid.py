"""The one task of a broken definition's DAG."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException


class DefinitionErrorOperator(BaseOperator):
    """Stands in a broken definition's DAG: running it fails with the definition's errors."""

    ui_color = "#ffd7d7"

    def __init__(self, *, errors: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.errors = list(errors)

    def execute(self, context: Context) -> None:
        for line in self.errors:
            self.log.error("%s", line)
        raise AirflowFailException("invalid release definition:\n" + "\n".join(self.errors))
