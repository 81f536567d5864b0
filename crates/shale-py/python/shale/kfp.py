"""Kubeflow Pipelines (v2 SDK) components for Shale (``pip install
'shale-volumes[kfp]'``).

Lightweight Python components, run locally by ``kfp.local`` or on a
cluster in :data:`IMAGE` (``deploy/kfp.Dockerfile``: Python, kfp, FUSE and
this package)::

    from kfp import dsl
    from shale.kfp import snapshot_volume, clone_volume, train_traced

    @dsl.pipeline
    def mnist(pool: str):
        snap = snapshot_volume(pool=pool, volume="mnist-data")
        train_traced(pool=pool, dataset="mnist-data", dataset_snapshot=snap.outputs["snapshot_name"],
                     model="mnist-model", command=["python", "train.py"],
                     pipeline_run=dsl.PIPELINE_JOB_ID_PLACEHOLDER)

``pool``: the pool's directory or ``s3://`` URL (empty: the default pool);
an object-store pool's credentials come from the task's environment
(``AWS_ACCESS_KEY_ID`` …, from a Kubernetes secret on a cluster).

The same operations as container components (``snapshot_volume_op``,
``clone_volume_op``, ``sync_op``) run the ``shale`` command in the image,
for clusters that prefer no Python wrapper.
"""

import os
from typing import List, NamedTuple

from kfp import dsl

#: The image the components run in on a cluster (build it from
#: deploy/kfp.Dockerfile and push it where the cluster pulls from; set
#: SHALE_KFP_IMAGE before importing this module to name yours).
IMAGE = os.environ.get("SHALE_KFP_IMAGE", "shale-python:0.1.0")

#: Packages to pip-install when a task starts, instead of using an image
#: that holds them (SHALE_KFP_PACKAGES, comma-separated: e.g.
#: ``shale-volumes==0.1.0`` from your index, or a wheel's URL; PyPI's
#: ``shale`` is an unrelated project). Empty: nothing is installed.
PACKAGES = [p.strip() for p in os.environ.get("SHALE_KFP_PACKAGES", "").split(",") if p.strip()]

_component = dsl.component(
    base_image=IMAGE, packages_to_install=PACKAGES or None, install_kfp_package=bool(PACKAGES)
)


@_component
def snapshot_volume(
    volume: str, snapshot_name: str = "", pool: str = ""
) -> NamedTuple("Snapshot", [("snapshot_name", str), ("snapshot_id", str)]):
    """Snapshots ``volume`` (named ``snapshot_name``, else by time); outputs
    its name and its content id."""
    import shale

    snap = shale.Pool(pool or None, create=False).volume(volume).snapshot(snapshot_name or None)
    print(f"snapshot {volume}@{snap['name']}: id {snap['id']}")
    return (snap["name"], snap["id"])


@_component
def clone_volume(source: str, new_volume: str, source_snapshot: str = "", pool: str = "") -> str:
    """Clones ``source`` (at ``source_snapshot``, else its current state)
    into ``new_volume``, in constant time; outputs the new volume's name."""
    import shale

    shale.Pool(pool or None, create=False).volume(source).clone(new_volume, source_snapshot or None)
    print(f"cloned {source}{'@' + source_snapshot if source_snapshot else ''} into {new_volume}")
    return new_volume


@_component
def sync(
    source: str, destination: str, delete: bool = False, snapshot_name: str = "", pool: str = ""
) -> NamedTuple("Synced", [("copied", int), ("bytes", int), ("snapshot_id", str)]):
    """``shale sync SOURCE DESTINATION`` (directories, ``s3://`` prefixes,
    ``volume:NAME``); with ``snapshot_name``, snapshots a destination
    volume after. Outputs files and bytes copied, and the snapshot's id."""
    import json
    import subprocess
    import sys

    args = [sys.executable, "-m", "shale", "--json"] + (["--pool", pool] if pool else [])
    args += ["sync", source, destination] + (["--delete"] if delete else [])
    args += ["--snapshot", snapshot_name] if snapshot_name else []
    done = subprocess.run(args, capture_output=True, text=True)
    print(done.stderr, end="")
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "shale sync failed")
    report = json.loads(done.stdout)
    return (report["copied"], report["bytes"], (report.get("snapshot") or {}).get("id", ""))


@_component
def train_traced(
    dataset: str,
    command: List[str],
    model: str = "",
    dataset_snapshot: str = "",
    mlflow_tracking_uri: str = "",
    pipeline_run: str = "",
    pool: str = "",
) -> NamedTuple(
    "TracedRun", [("run", int), ("dataset_snapshot_id", str), ("model_snapshot_id", str), ("mlflow_run", str)]
):
    """A traced training step, as ``shale run``: ``command`` runs with the
    dataset snapshot (``dataset_snapshot``, else a new one) mounted
    read-only at ``$SHALE_DATASET_PATH`` and ``model`` (created if missing)
    read-write at ``$SHALE_MODEL_PATH``, snapshotted after a successful
    exit; the run is recorded in the pool's lineage, labelled
    ``kfp.run_id=pipeline_run``. With ``mlflow_tracking_uri``, the run is
    logged to MLflow with both snapshot ids as tags. A command starting
    with ``python`` or ``python3`` runs in this component's Python."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    if command and command[0] in ("python", "python3"):
        command = [sys.executable] + list(command[1:])
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        summary = os.path.join(tmp, "run.json")
        spec = dataset + ("@" + dataset_snapshot if dataset_snapshot else "")
        args = [sys.executable, "-m", "shale"] + (["--pool", pool] if pool else [])
        args += ["run", "--dataset", spec, "--summary", summary] + (["--model", model] if model else [])
        if mlflow_tracking_uri:
            env["MLFLOW_TRACKING_URI"] = mlflow_tracking_uri
            args.append("--mlflow")
        if pipeline_run:
            args += ["--label", "kfp.run_id=" + pipeline_run]
        done = subprocess.run(args + ["--"] + list(command), env=env)
        if not os.path.exists(summary):
            raise RuntimeError(f"shale run failed (status {done.returncode}); see the messages above")
        with open(summary) as f:
            record = json.load(f)
    if record["exit_code"] != 0:
        raise RuntimeError(f"{' '.join(command)} exited with status {record['exit_code']} (run {record['run']})")
    output = record.get("output") or {}
    return (record["run"], record["input"]["snapshot_id"], output.get("snapshot_id", ""), record.get("mlflow_run") or "")


# -- container components: the shale command itself, in IMAGE ------------------
@dsl.container_component
def snapshot_volume_op(volume: str, snapshot_name: str, pool: str, snapshot: dsl.OutputPath(str)):
    """Snapshots ``volume``; writes the snapshot (JSON) to ``snapshot``."""
    return dsl.ContainerSpec(
        image=IMAGE,
        command=["sh", "-c", 'shale --pool "$0" --json snapshot create "$1" "$2" > "$3"'],
        args=[pool, volume, snapshot_name, snapshot],
    )


@dsl.container_component
def clone_volume_op(source: str, new_volume: str, pool: str, volume: dsl.OutputPath(str)):
    """Clones ``source`` (``VOLUME[@SNAPSHOT]``) into ``new_volume``; writes
    the new volume (JSON) to ``volume``."""
    return dsl.ContainerSpec(
        image=IMAGE,
        command=["sh", "-c", 'shale --pool "$0" --json volume clone "$2" --from "$1" > "$3"'],
        args=[pool, source, new_volume, volume],
    )


@dsl.container_component
def sync_op(source: str, destination: str, pool: str, report: dsl.OutputPath(str)):
    """``shale sync SOURCE DESTINATION``; writes the report (JSON) to ``report``."""
    return dsl.ContainerSpec(
        image=IMAGE,
        command=["sh", "-c", 'shale --pool "$0" --json sync "$1" "$2" > "$3"'],
        args=[pool, source, destination, report],
    )
