"""Dataset-to-model traceability with MLflow.

A Shale snapshot id is the hash of the snapshot's whole content. Recording
it on an MLflow run proves which bytes trained the model, and
:func:`checkout` gives those exact bytes back later.

Tags written on the run (the first two are the names the NetApp AI
reference architecture uses):

* ``data_volume_name``, ``snapshot_name``: the dataset's volume and snapshot;
* ``shale.snapshot_id``, ``shale.pool``: its content id and the pool path;
* ``model_volume_name``, ``model_snapshot_name``, ``shale.model_snapshot_id``
  (by :class:`traced` and ``shale run --mlflow``).

The run also gets an MLflow dataset input whose digest is the snapshot id
(as much of it as MLflow stores: its first 36 hex digits).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, Optional, Union

from ._api import Pool, Volume
from ._native import CorruptDataError, ShaleError

#: MLflow keeps at most this many characters of a dataset digest.
DIGEST_CHARS = 36


def _mlflow():
    try:
        import mlflow  # noqa: PLC0415 (optional dependency)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ShaleError("shale.mlflow needs MLflow: pip install 'mlflow>=2.10'") from e
    return mlflow


def _volume(volume: Union[str, Volume], pool: Optional[Pool]) -> Volume:
    if isinstance(volume, Volume):
        return volume
    return (pool or Pool()).volume(volume)


def _run_id(run: Any) -> str:
    mlflow = _mlflow()
    if run is None:
        active = mlflow.active_run() or mlflow.start_run()
        return active.info.run_id
    return run if isinstance(run, str) else run.info.run_id


def log_dataset(
    volume: Union[str, Volume],
    snapshot: Optional[str] = None,
    run: Any = None,
    pool: Optional[Pool] = None,
    context: str = "training",
) -> Dict[str, Any]:
    """Records the dataset a run uses: snapshots ``volume`` unless
    ``snapshot`` names one, then tags the active MLflow run (or ``run``: a
    run id or ``mlflow.ActiveRun``; a run is started if none is active) and
    logs an MLflow dataset input whose digest is the snapshot id.

    Returns ``{"run_id", "volume", "snapshot", "snapshot_id", "pool"}``.
    """
    mlflow = _mlflow()
    from mlflow.entities import Dataset, DatasetInput, InputTag  # noqa: PLC0415

    vol = _volume(volume, pool)
    snap = vol.snapshot() if snapshot is None else vol.snapshot_info(snapshot)
    run_id = _run_id(run)
    client = mlflow.MlflowClient()
    pool_path = str(vol.pool.path)
    for key, value in {
        "data_volume_name": vol.name,
        "snapshot_name": snap["name"],
        "shale.snapshot_id": snap["id"],
        "shale.pool": pool_path,
    }.items():
        client.set_tag(run_id, key, value)
    source = json.dumps({"uri": f"shale://{pool_path}::{vol.name}@{snap['name']}", "snapshot_id": snap["id"]})
    dataset = Dataset(
        name=f"{vol.name}@{snap['name']}",
        digest=snap["id"][:DIGEST_CHARS],
        source_type="shale",
        source=source,
        schema=None,
        profile=json.dumps({"files": snap["files"], "logical_bytes": snap["logical_bytes"]}),
    )
    client.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", context)])])
    return {"run_id": run_id, "volume": vol.name, "snapshot": snap["name"], "snapshot_id": snap["id"], "pool": pool_path}


def log_model_volume(
    volume: Union[str, Volume], run: Any = None, snapshot: Optional[str] = None, pool: Optional[Pool] = None
) -> Dict[str, Any]:
    """Snapshots a model volume (unless ``snapshot`` names one) and tags the
    run with it (``model_volume_name``, ``model_snapshot_name``,
    ``shale.model_snapshot_id``)."""
    mlflow = _mlflow()
    vol = _volume(volume, pool)
    snap = vol.snapshot() if snapshot is None else vol.snapshot_info(snapshot)
    run_id = _run_id(run)
    client = mlflow.MlflowClient()
    client.set_tag(run_id, "model_volume_name", vol.name)
    client.set_tag(run_id, "model_snapshot_name", snap["name"])
    client.set_tag(run_id, "shale.model_snapshot_id", snap["id"])
    return {"run_id": run_id, "volume": vol.name, "snapshot": snap["name"], "snapshot_id": snap["id"]}


def dataset_of(run_id: str) -> Dict[str, str]:
    """The dataset an MLflow run recorded: volume, snapshot, snapshot_id, pool."""
    run = _mlflow().MlflowClient().get_run(run_id)
    tags = run.data.tags
    missing = [t for t in ("data_volume_name", "snapshot_name", "shale.snapshot_id") if t not in tags]
    if missing:
        raise ShaleError(f"MLflow run {run_id} has no Shale dataset record (missing tags: {', '.join(missing)})")
    return {
        "volume": tags["data_volume_name"],
        "snapshot": tags["snapshot_name"],
        "snapshot_id": tags["shale.snapshot_id"],
        "pool": tags.get("shale.pool", ""),
    }


def checkout(
    run_id: str,
    name: Optional[str] = None,
    mountpoint: Optional[str] = None,
    pool: Optional[Pool] = None,
) -> Volume:
    """Gives back exactly the data an MLflow run was trained on: finds the
    dataset snapshot the run recorded, checks its id still matches (else
    ``CorruptDataError``: the snapshot was replaced), and clones it as a new
    volume (``name``, default ``VOLUME-RUNID8``), mounted at ``mountpoint``
    if given."""
    rec = dataset_of(run_id)
    pool = pool or Pool(rec["pool"] or None, create=False)
    vol = pool.volume(rec["volume"])
    snap = vol.snapshot_info(rec["snapshot"])
    if snap["id"] != rec["snapshot_id"]:
        raise CorruptDataError(
            f"snapshot {rec['volume']}@{rec['snapshot']} now has id {snap['id']}, but run {run_id} "
            f"recorded {rec['snapshot_id']}: the data it used is no longer there"
        )
    clone = vol.clone(name or f"{rec['volume']}-{run_id[:8]}", snapshot=rec["snapshot"])
    if mountpoint:
        clone.mount(mountpoint)
    return clone


class traced:
    """Context manager: snapshot the dataset volume before, the model volume
    after (if the block succeeds), log both on the MLflow run and record the
    lineage in the pool::

        with shale.mlflow.traced(dataset="digits", model="digits-model") as t:
            train(t.dataset_path, t.model_path)
    """

    def __init__(
        self,
        dataset: Union[str, Volume],
        model: Union[str, Volume, None] = None,
        run: Any = None,
        pool: Optional[Pool] = None,
    ) -> None:
        self.pool = pool or (dataset.pool if isinstance(dataset, Volume) else Pool())
        self.dataset = _volume(dataset, self.pool)
        if model is None:
            self.model = None
        elif isinstance(model, Volume):
            self.model = model
        else:
            try:
                self.model = self.pool.volume(model)
            except ShaleError:
                self.model = self.pool.create_volume(model)
        self._run = run
        self.input: Optional[Dict[str, Any]] = None
        self.output: Optional[Dict[str, Any]] = None
        self.shale_run: Optional[int] = None

    @property
    def run_id(self) -> Optional[str]:
        """The MLflow run id."""
        return self.input["run_id"] if self.input else None

    def __enter__(self) -> "traced":
        self.input = log_dataset(self.dataset, run=self._run, pool=self.pool)
        native = self.pool._native
        self.shale_run = native.begin_run(["mlflow-run", self.input["run_id"]])
        native.add_run_data(
            self.shale_run, self.input["volume"], self.input["snapshot"], self.input["snapshot_id"], output=False
        )
        native.set_run_mlflow(self.shale_run, self.input["run_id"])
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.model is not None:
            self.output = log_model_volume(self.model, run=self.input["run_id"], pool=self.pool)
            self.pool._native.add_run_data(
                self.shale_run, self.output["volume"], self.output["snapshot"], self.output["snapshot_id"], output=True
            )
        self.pool._native.end_run(self.shale_run, 0 if exc_type is None else 1)


def _hook(argv: Optional[list] = None) -> int:
    """``python -m shale.mlflow start|end``: the MLflow side of ``shale run --mlflow``."""
    p = argparse.ArgumentParser(prog="python -m shale.mlflow")
    sub = p.add_subparsers(dest="what", required=True)
    start = sub.add_parser("start", help="open an MLflow run for a shale run; print its id")
    start.add_argument("--pool", required=True)
    start.add_argument("--shale-run", required=True)
    start.add_argument("--volume", required=True)
    start.add_argument("--snapshot", required=True)
    start.add_argument("--snapshot-id", required=True)
    end = sub.add_parser("end", help="close the MLflow run of a shale run")
    end.add_argument("--pool", required=True)
    end.add_argument("--run-id", required=True)
    end.add_argument("--exit-code", type=int, required=True)
    end.add_argument("--model-volume")
    end.add_argument("--model-snapshot")
    end.add_argument("--model-snapshot-id")
    a = p.parse_args(argv)
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    pool = Pool(a.pool, create=False)
    if a.what == "start":
        exp = mlflow.get_experiment_by_name(__import__("os").environ.get("MLFLOW_EXPERIMENT_NAME", "Default"))
        run = client.create_run(exp.experiment_id if exp else "0", tags={"shale.run": a.shale_run})
        rec = log_dataset(a.volume, snapshot=a.snapshot, run=run.info.run_id, pool=pool)
        if rec["snapshot_id"] != a.snapshot_id:
            raise CorruptDataError(f"snapshot {a.volume}@{a.snapshot} changed during the run's start")
        print(run.info.run_id)
    else:
        if a.model_volume:
            log_model_volume(a.model_volume, run=a.run_id, snapshot=a.model_snapshot, pool=pool)
        client.set_tag(a.run_id, "shale.exit_code", str(a.exit_code))
        client.set_terminated(a.run_id, "FINISHED" if a.exit_code == 0 else "FAILED")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_hook())
    except ShaleError as e:
        print(f"shale.mlflow: error: {e}", file=sys.stderr)
        sys.exit(1)
