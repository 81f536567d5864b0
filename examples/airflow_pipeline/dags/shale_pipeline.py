"""The platform's data flow as two Airflow DAGs, with Shale steps.

``shale_train``: sync new data from a bucket (or any directory) into the
dataset volume, snapshot it, train on that snapshot mounted read-only,
logging to MLflow with the dataset's volume, snapshot name and content id
as tags, and snapshot the model volume (ShaleRunOperator does the last
two, and records the lineage with the DAG's run id).

``shale_experiment``: wait for a snapshot of the dataset, clone it for an
experiment, train on the clone with other settings, and delete the clone
at the end, whatever happened (a teardown task).
"""

import sys
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param

from shale.airflow import volume_name
from shale.airflow.operators import (
    ShaleCloneOperator,
    ShaleDeleteOperator,
    ShaleRunOperator,
    ShaleSnapshotOperator,
    ShaleSyncOperator,
)
from shale.airflow.sensors import ShaleSnapshotSensor

TRAIN = [sys.executable, str(Path(__file__).resolve().parents[2] / "digits" / "train.py")]

with DAG(
    "shale_train",
    description="sync new data, snapshot it, train on the snapshot, keep the model",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "source": Param("s3://incoming/digits", type="string", description="where new data lands"),
        "dataset": Param("digits", type="string"),
        "model": Param("digits-model", type="string"),
    },
    tags=["shale"],
):
    sync = ShaleSyncOperator(
        task_id="sync_new_data",
        source="{{ params.source }}",
        destination="volume:{{ params.dataset }}",
        create_volume=True,
    )
    snapshot = ShaleSnapshotOperator(task_id="snapshot_data", volume="{{ params.dataset }}")
    train = ShaleRunOperator(
        task_id="train",
        dataset="{{ params.dataset }}@{{ ti.xcom_pull(task_ids='snapshot_data')['name'] }}",
        model="{{ params.model }}",
        mlflow=True,
        command=TRAIN,
    )
    sync >> snapshot >> train

with DAG(
    "shale_experiment",
    description="clone the dataset for an experiment, train on the clone, delete the clone",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    user_defined_filters={"volume_name": volume_name},
    params={
        "dataset": Param("digits", type="string"),
        "snapshot": Param("", type="string", description="a snapshot to clone; empty: the newest since `since`"),
        "since": Param("1970-01-01T00:00:00Z", type="string"),
        "c": Param(0.1, type="number"),
    },
    tags=["shale"],
):
    experiment_volume = "exp-{{ run_id | volume_name }}"
    wait = ShaleSnapshotSensor(
        task_id="wait_for_data", volume="{{ params.dataset }}", since="{{ params.since }}", poke_interval=5, timeout=3600
    )
    clone = ShaleCloneOperator(
        task_id="clone",
        source="{{ params.dataset }}@{{ params.snapshot or ti.xcom_pull(task_ids='wait_for_data')['name'] }}",
        new_volume=experiment_volume,
    )
    experiment = ShaleRunOperator(
        task_id="experiment", dataset=experiment_volume, command=[*TRAIN, "--c", "{{ params.c }}"]
    )
    # A teardown: it runs whatever happened, and the DAG run still fails
    # when the experiment did.
    cleanup = ShaleDeleteOperator(task_id="delete_clone", volume=experiment_volume, missing_ok=True)
    wait >> clone >> experiment >> cleanup.as_teardown(setups=clone)
