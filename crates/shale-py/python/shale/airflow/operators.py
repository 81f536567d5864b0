"""Operators: each one Shale operation, its result pushed to XCom (the
operator's return value), its arguments templated, its failure the task's
with the command's message."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from .hooks import ShaleHook


class _ShaleOperator(BaseOperator):
    """What every Shale operator has: the connection it uses."""

    def __init__(self, *, shale_conn_id: str = ShaleHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shale_conn_id = shale_conn_id

    @property
    def hook(self) -> ShaleHook:
        return ShaleHook(self.shale_conn_id)


class ShaleSnapshotOperator(_ShaleOperator):
    """Snapshots ``volume`` (named ``snapshot_name``, else by time); pushes
    the snapshot: ``volume``, ``name``, ``id`` (the content hash),
    ``logical_bytes``, ``files``, ``created``."""

    template_fields: Sequence[str] = ("volume", "snapshot_name")

    def __init__(self, *, volume: str, snapshot_name: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.volume = volume
        self.snapshot_name = snapshot_name

    def execute(self, context: Any) -> Dict[str, Any]:
        return self.hook.snapshot(self.volume, self.snapshot_name or None)


class ShaleCloneOperator(_ShaleOperator):
    """Clones ``source`` (``VOLUME`` or ``VOLUME@SNAPSHOT``) into
    ``new_volume``, in constant time; pushes the new volume."""

    template_fields: Sequence[str] = ("source", "new_volume")

    def __init__(self, *, source: str, new_volume: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.new_volume = new_volume

    def execute(self, context: Any) -> Dict[str, Any]:
        return self.hook.clone(self.source, self.new_volume)


class ShaleRestoreOperator(_ShaleOperator):
    """Puts ``volume`` back to its snapshot ``snapshot``; pushes the snapshot."""

    template_fields: Sequence[str] = ("volume", "snapshot")

    def __init__(self, *, volume: str, snapshot: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.volume = volume
        self.snapshot = snapshot

    def execute(self, context: Any) -> Any:
        return self.hook.restore(self.volume, self.snapshot)


class ShaleDeleteOperator(_ShaleOperator):
    """Deletes ``volume`` with its snapshots, or only its ``snapshot``.
    ``missing_ok``: a volume or snapshot already gone is not a failure (for
    clean-up tasks that run whatever happened before)."""

    template_fields: Sequence[str] = ("volume", "snapshot")

    def __init__(
        self, *, volume: str, snapshot: Optional[str] = None, missing_ok: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.volume = volume
        self.snapshot = snapshot
        self.missing_ok = missing_ok

    def execute(self, context: Any) -> Dict[str, Any]:
        try:
            self.hook.delete(self.volume, self.snapshot or None)
        except AirflowException as e:
            if not (self.missing_ok and str(e).endswith("' not found")):
                raise
            self.log.info("already gone: %s", e)
            return {"volume": self.volume, "snapshot": self.snapshot, "deleted": False}
        return {"volume": self.volume, "snapshot": self.snapshot, "deleted": True}


class ShaleSyncOperator(_ShaleOperator):
    """``shale sync``: makes ``destination`` hold what ``source`` holds,
    copying only what differs (local paths, ``s3://BUCKET/PREFIX``,
    ``volume:NAME[@SNAPSHOT][/PATH]``); ``delete`` removes what the source
    lacks; ``snapshot`` snapshots a destination volume after (``""``: named
    by time); ``create_volume``: make a destination volume that does not
    exist yet. Pushes the sync report (files and bytes copied, the snapshot)."""

    template_fields: Sequence[str] = ("source", "destination", "snapshot")

    def __init__(
        self,
        *,
        source: str,
        destination: str,
        delete: bool = False,
        snapshot: Optional[str] = None,
        create_volume: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.destination = destination
        self.delete = delete
        self.snapshot = snapshot
        self.create_volume = create_volume

    def execute(self, context: Any) -> Dict[str, Any]:
        if self.create_volume and self.destination.startswith("volume:"):
            name = self.destination.removeprefix("volume:").split("/", 1)[0]
            if self.hook.ensure_volume(name):
                self.log.info("created volume %s", name)
        return self.hook.sync(self.source, self.destination, self.delete, self.snapshot)


class ShaleMirrorUpdateOperator(_ShaleOperator):
    """Transfers a mirror's new source snapshots; pushes what it did."""

    template_fields: Sequence[str] = ("mirror",)

    def __init__(self, *, mirror: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mirror = mirror

    def execute(self, context: Any) -> Any:
        return self.hook.mirror_update(self.mirror)


class ShaleRunOperator(_ShaleOperator):
    """A traced training step, as ``shale run``: snapshots ``dataset`` and
    mounts that snapshot read-only at ``$SHALE_DATASET_PATH`` for
    ``command``; mounts ``model`` (created if missing) read-write at
    ``$SHALE_MODEL_PATH`` and snapshots it after a successful exit; records
    both in the pool's lineage, labelled with the DAG, task and run ids;
    with ``mlflow``, logs the run to MLflow with both snapshot ids as tags.
    ``command``: a list, or a string split as a shell would. Pushes the run
    record (``run``, ``input``, ``output``, ``mlflow_run``, ``labels``); a
    non-zero exit fails the task."""

    template_fields: Sequence[str] = ("dataset", "model", "command")

    def __init__(
        self,
        *,
        dataset: str,
        command: Union[str, Sequence[str]],
        model: Optional[str] = None,
        mlflow: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.command = command
        self.model = model
        self.mlflow = mlflow

    def execute(self, context: Any) -> Dict[str, Any]:
        command = shlex.split(self.command) if isinstance(self.command, str) else list(self.command)
        labels = {
            "airflow.dag_id": self.dag_id,
            "airflow.task_id": self.task_id,
            "airflow.run_id": str(context["run_id"]),
        }
        with tempfile.TemporaryDirectory() as tmp:
            summary = Path(tmp) / "run.json"
            args = ["run", "--dataset", self.dataset, "--summary", str(summary)]
            if self.model:
                args += ["--model", self.model]
            if self.mlflow:
                args.append("--mlflow")
            for key, value in labels.items():
                args += ["--label", f"{key}={value}"]
            hook = self.hook
            # The command's own output goes to the task log as it comes.
            done = subprocess.run([sys.executable, "-m", "shale", *args, "--", *command],
                                  stdin=subprocess.DEVNULL, env=hook.full_environment())
            if not summary.exists():
                raise AirflowException(f"shale run failed (status {done.returncode}); see the log above")
            record = json.loads(summary.read_text())
        if record["exit_code"] != 0:
            raise AirflowException(f"{' '.join(command)} exited with status {record['exit_code']} (run {record['run']})")
        return record
