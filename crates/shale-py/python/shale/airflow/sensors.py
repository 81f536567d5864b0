"""A sensor that waits for a new snapshot of a volume."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional, Sequence

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from .hooks import ShaleHook


class ShaleSnapshotSensor(BaseSensorOperator):
    """Waits until ``volume`` has a snapshot created at or after ``since`` (an
    ISO 8601 time, templated; default: the DAG run's logical date, else its
    start), optionally one whose name starts with ``name_prefix``. Pushes
    that snapshot (the newest such)."""

    template_fields: Sequence[str] = ("volume", "since", "name_prefix")

    def __init__(
        self,
        *,
        volume: str,
        since: Optional[str] = None,
        name_prefix: str = "",
        shale_conn_id: str = ShaleHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.volume = volume
        self.since = since
        self.name_prefix = name_prefix
        self.shale_conn_id = shale_conn_id

    def poke(self, context: Any) -> PokeReturnValue:
        # Snapshot times are whole seconds: one taken in the same second counts.
        since = _since(self.since, context).replace(microsecond=0)
        fresh = [
            s
            for s in ShaleHook(self.shale_conn_id).snapshots(self.volume)
            if s["name"].startswith(self.name_prefix) and _time(s["created"]) >= since
        ]
        if not fresh:
            self.log.info("no snapshot of %s after %s yet", self.volume, since.isoformat())
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=max(fresh, key=lambda s: _time(s["created"])))


def _since(given: Optional[str], context: Any) -> datetime:
    if given:
        return _time(given)
    dag_run = context["dag_run"]
    when = getattr(dag_run, "logical_date", None) or dag_run.start_date
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
