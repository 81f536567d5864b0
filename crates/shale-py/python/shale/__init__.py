"""Shale: versioned data volumes for machine learning.

Volumes are created, snapshotted, cloned and restored in constant time;
a snapshot id is the hash of the snapshot's content, so a record of it
proves which bytes a model was trained on.

Two ways in, over the same pool:

* functions named like the NetApp DataOps Toolkit's (``create_volume``,
  ``clone_volume``, ``create_snapshot``, ``mount_volume`` …), returning
  plain dicts and lists, so a notebook moves over by changing its import;
* objects: ``Pool``, ``Volume``, ``Dataset``.

``shale.mlflow`` ties snapshots to MLflow runs. Every failure raises a
subclass of ``ShaleError``.
"""

from ._native import (
    ConflictError,
    CorruptDataError,
    InvalidNameError,
    NameExistsError,
    PoolNotFoundError,
    QuotaExceededError,
    ShaleError,
    SnapshotNotFoundError,
    VolumeNotFoundError,
    __version__,
)
from ._api import (
    Dataset,
    Pool,
    Volume,
    clone_volume,
    create_snapshot,
    create_volume,
    delete_snapshot,
    delete_volume,
    lineage,
    list_snapshots,
    list_volumes,
    mount_volume,
    resize_volume,
    restore_snapshot,
    run,
    unmount_volume,
)
from .workspaces import (
    clone_jupyter_lab,
    create_jupyter_lab,
    create_jupyter_lab_snapshot,
    delete_jupyter_lab,
    list_jupyter_lab_snapshots,
    list_jupyter_labs,
    restore_jupyter_lab_snapshot,
    start_jupyter_lab,
    stop_jupyter_lab,
)

__all__ = [
    "ConflictError",
    "CorruptDataError",
    "Dataset",
    "InvalidNameError",
    "NameExistsError",
    "Pool",
    "PoolNotFoundError",
    "QuotaExceededError",
    "ShaleError",
    "SnapshotNotFoundError",
    "Volume",
    "VolumeNotFoundError",
    "__version__",
    "clone_volume",
    "create_snapshot",
    "create_volume",
    "delete_snapshot",
    "delete_volume",
    "lineage",
    "list_snapshots",
    "list_volumes",
    "mount_volume",
    "resize_volume",
    "restore_snapshot",
    "run",
    "unmount_volume",
    "clone_jupyter_lab",
    "create_jupyter_lab",
    "create_jupyter_lab_snapshot",
    "delete_jupyter_lab",
    "list_jupyter_lab_snapshots",
    "list_jupyter_labs",
    "restore_jupyter_lab_snapshot",
    "start_jupyter_lab",
    "stop_jupyter_lab",
]
