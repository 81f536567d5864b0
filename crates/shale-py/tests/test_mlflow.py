"""MLflow traceability against a real `mlflow server`."""

import os
import sys

import pytest

import shale
from conftest import needs_fuse

mlflow = pytest.importorskip("mlflow")
import shale.mlflow as smlflow  # noqa: E402


def test_log_dataset_and_checkout(pool, data_dir, mlflow_server):
    v = pool.create_volume("digits", from_dir=data_dir)
    with mlflow.start_run() as run:
        rec = smlflow.log_dataset("digits", pool=pool)
    tags = mlflow.MlflowClient().get_run(run.info.run_id).data.tags
    assert tags["data_volume_name"] == "digits"
    assert tags["snapshot_name"] == rec["snapshot"]
    assert tags["shale.snapshot_id"] == rec["snapshot_id"] == pool.resolve(f"digits@{rec['snapshot']}")["id"]
    assert tags["shale.pool"] == str(pool.path)
    inputs = mlflow.MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert inputs[0].dataset.digest == rec["snapshot_id"][: smlflow.DIGEST_CHARS]
    assert inputs[0].dataset.name == f"digits@{rec['snapshot']}"

    # the data changes; checkout gives back exactly what the run saw
    (data_dir / "a.txt").write_text("new data\n")
    v.import_dir(data_dir)
    back = smlflow.checkout(run.info.run_id, name="digits-again", pool=pool)
    assert pool.resolve("digits-again")["id"] == rec["snapshot_id"]
    assert back.info()["origin"] == f"digits@{rec['snapshot']}"

    # a snapshot replaced under the same name is detected
    v.delete_snapshot(rec["snapshot"])
    v.snapshot(rec["snapshot"])
    with pytest.raises(shale.CorruptDataError, match="no longer there"):
        smlflow.checkout(run.info.run_id, pool=pool)


def test_log_named_snapshot_on_given_run(pool, mlflow_server):
    v = pool.create_volume("d2")
    v.snapshot("golden")
    client = mlflow.MlflowClient()
    run = client.create_run("0")
    rec = smlflow.log_dataset(v, snapshot="golden", run=run.info.run_id)
    assert client.get_run(run.info.run_id).data.tags["snapshot_name"] == "golden"
    assert rec["snapshot_id"] == pool.resolve("d2@golden")["id"]
    with pytest.raises(shale.SnapshotNotFoundError):
        smlflow.log_dataset(v, snapshot="missing", run=run.info.run_id)


def test_checkout_of_a_run_without_shale_tags(mlflow_server, pool):
    run = mlflow.MlflowClient().create_run("0")
    with pytest.raises(shale.ShaleError, match="no Shale dataset record"):
        smlflow.checkout(run.info.run_id, pool=pool)


def test_traced_logs_both_and_records_lineage(pool, data_dir, mlflow_server):
    pool.create_volume("data", from_dir=data_dir)
    with mlflow.start_run() as run:
        with smlflow.traced(dataset="data", model="model", pool=pool) as t:
            assert t.run_id == run.info.run_id
    tags = mlflow.MlflowClient().get_run(run.info.run_id).data.tags
    assert tags["model_volume_name"] == "model"
    assert tags["shale.model_snapshot_id"] == t.output["snapshot_id"]
    lin = pool.lineage(f"model@{t.output['snapshot']}")
    assert lin["produced_by"][0]["mlflow_run"] == run.info.run_id
    assert lin["produced_by"][0]["inputs"][0]["snapshot_id"] == t.input["snapshot_id"]

    # a failing block: no model snapshot, the run is recorded as failed
    with mlflow.start_run():
        with pytest.raises(ValueError):
            with smlflow.traced(dataset="data", model="model", pool=pool) as t2:
                raise ValueError("training blew up")
    assert t2.output is None
    assert pool.runs()[-1]["exit_code"] == 1


@needs_fuse
def test_shale_run_with_mlflow(pool, data_dir, mlflow_server, monkeypatch):
    pool.create_volume("data", from_dir=data_dir)
    script = (
        "import mlflow, os; mlflow.start_run(); mlflow.log_metric('files', len(os.listdir(os.environ['SHALE_DATASET_PATH'])));"
        "open(os.path.join(os.environ['SHALE_MODEL_PATH'], 'w.bin'), 'w').write('w'); mlflow.end_run()"
    )
    monkeypatch.setenv("SHALE_PYTHON", sys.executable)
    rec = shale.run("data", [sys.executable, "-c", script], model="model", mlflow=True, pool=pool)
    assert rec["exit_code"] == 0 and rec["mlflow_run"]
    r = mlflow.MlflowClient().get_run(rec["mlflow_run"])
    assert r.info.status == "FINISHED"
    assert r.data.metrics["files"] == 2  # the command logged into the same run
    assert r.data.tags["shale.snapshot_id"] == rec["input"]["snapshot_id"]
    assert r.data.tags["shale.model_snapshot_id"] == rec["output"]["snapshot_id"]
    assert pool.runs()[-1]["mlflow_run"] == rec["mlflow_run"]
