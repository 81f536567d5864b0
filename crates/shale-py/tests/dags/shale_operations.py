"""A DAG that exercises the operators the examples do not: restore,
snapshot deletion, mirror update, and a sensor that gives up."""

from datetime import datetime

from airflow.sdk import DAG, Param

from shale.airflow.operators import (
    ShaleDeleteOperator,
    ShaleMirrorUpdateOperator,
    ShaleRestoreOperator,
    ShaleSnapshotOperator,
    ShaleSyncOperator,
)
from shale.airflow.sensors import ShaleSnapshotSensor

with DAG(
    "shale_operations",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"good": Param(type="string"), "bad": Param(type="string"), "mirror": Param(type="string")},
):
    good = ShaleSyncOperator(task_id="sync_good", source="{{ params.good }}", destination="volume:work",
                             create_volume=True, snapshot="good")
    bad = ShaleSyncOperator(task_id="sync_bad", source="{{ params.bad }}", destination="volume:work", delete=True)
    snap_bad = ShaleSnapshotOperator(task_id="snapshot_bad", volume="work", snapshot_name="bad")
    restore = ShaleRestoreOperator(task_id="restore_good", volume="work", snapshot="good")
    drop = ShaleDeleteOperator(task_id="delete_bad_snapshot", volume="work", snapshot="bad")
    again = ShaleDeleteOperator(task_id="delete_it_again", volume="work", snapshot="bad", missing_ok=True)
    mirror = ShaleMirrorUpdateOperator(task_id="update_mirror", mirror="{{ params.mirror }}")
    good >> bad >> snap_bad >> restore >> drop >> again >> mirror

with DAG("shale_sensor_times_out", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    ShaleSnapshotSensor(task_id="wait", volume="work", since="2999-01-01T00:00:00Z", poke_interval=1, timeout=3)
