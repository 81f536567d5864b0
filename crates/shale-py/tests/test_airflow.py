"""The Airflow provider on a real Airflow 3 (SQLite metadata in a temporary
AIRFLOW_HOME): the example DAGs run with `airflow dags test`, on a local
pool and on a Garage + PostgreSQL pool, with a real MLflow server; the
snapshots, XCom values, MLflow tags and lineage are checked, and failing
steps fail their task with Shale's message and leave no clone behind."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import shale
from conftest import needs_fuse
from stores import Garage, Postgres, garage_binary, postgres_bin

pytest.importorskip("airflow")
pytest.importorskip("sklearn")
pytestmark = needs_fuse  # training steps mount snapshots

REPO = Path(__file__).resolve().parents[3]
DAGS = REPO / "examples" / "airflow_pipeline" / "dags"


class Airflow:
    """`airflow` commands against one AIRFLOW_HOME, with a `shale` connection."""

    def __init__(self, home: Path, connection: dict, env: dict, dags: Path = DAGS) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            **env,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW_CONN_SHALE_DEFAULT": json.dumps({"conn_type": "shale", **connection}),
        }
        self.airflow("db", "migrate")
        self.airflow("dags", "reserialize")

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, capture_output=True,
                              text=True, timeout=600, cwd=self.home)
        if check:
            assert done.returncode == 0, f"airflow {args}:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
        return done

    def test(self, dag: str, conf: dict, check: bool = True) -> subprocess.CompletedProcess:
        return self.airflow("dags", "test", dag, "-c", json.dumps(conf), check=check)

    def db(self, sql: str, *args):
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute(sql, args).fetchall()

    def last_run(self, dag: str) -> str:
        return self.db("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", dag)[0][0]

    def xcom(self, dag: str, task: str):
        """The return value task ``task`` pushed in the DAG's last run."""
        rows = self.db("SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
                       "AND run_id = ?", dag, task, self.last_run(dag))
        assert rows, f"no XCom from {dag}.{task}"
        value = rows[0][0]
        value = json.loads(value) if isinstance(value, (str, bytes)) else value
        return json.loads(value) if isinstance(value, str) else value

    def states(self, dag: str) -> dict:
        return dict(self.db("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                            dag, self.last_run(dag)))


def digits_csv(to: Path) -> None:
    """scikit-learn's bundled digits as three CSV files: the new data."""
    from sklearn.datasets import load_digits

    d = load_digits()
    to.mkdir(parents=True)
    for part in range(3):
        rows = [",".join([str(d.target[i])] + [str(int(v)) for v in d.data[i]])
                for i in range(part, len(d.target), 3)]
        (to / f"part-{part}.csv").write_text("\n".join(rows) + "\n")


def run_the_example_dags(af: Airflow, shale_cli, source: str) -> None:
    """The checks both pools share."""
    import mlflow

    af.test("shale_train", {"source": source})
    assert set(af.states("shale_train").values()) == {"success"}
    synced = af.xcom("shale_train", "sync_new_data")
    assert synced["copied"] == 3 and synced["errors"] == [], synced
    snap = af.xcom("shale_train", "snapshot_data")
    snapshots = json.loads(shale_cli("--json", "snapshot", "list", "digits"))
    assert [s["id"] for s in snapshots] == [snap["id"]]
    record = af.xcom("shale_train", "train")
    assert record["input"] == {"volume": "digits", "snapshot": snap["name"], "snapshot_id": snap["id"]}
    assert record["output"]["volume"] == "digits-model" and record["exit_code"] == 0
    assert record["labels"]["airflow.run_id"] == af.last_run("shale_train")

    # MLflow has the run, with the dataset's volume, snapshot and content id.
    tags = mlflow.MlflowClient().get_run(record["mlflow_run"]).data.tags
    assert tags["data_volume_name"] == "digits"
    assert tags["snapshot_name"] == snap["name"]
    assert tags["shale.snapshot_id"] == snap["id"]
    assert tags["shale.model_snapshot_id"] == record["output"]["snapshot_id"]
    assert mlflow.MlflowClient().get_run(record["mlflow_run"]).data.metrics["accuracy"] > 0.9

    # Lineage names the DAG's run.
    lineage = json.loads(shale_cli("--json", "lineage", f"digits-model@{record['output']['snapshot']}"))
    [run] = lineage["produced_by"]
    assert run["labels"] == {"airflow.dag_id": "shale_train", "airflow.task_id": "train",
                             "airflow.run_id": af.last_run("shale_train")}
    assert run["inputs"][0]["snapshot_id"] == snap["id"]

    # The experiment clones the snapshot the sensor found, trains, deletes the clone.
    af.test("shale_experiment", {"c": 0.5})
    assert set(af.states("shale_experiment").values()) == {"success"}
    assert af.xcom("shale_experiment", "wait_for_data")["id"] == snap["id"]
    clone = af.xcom("shale_experiment", "clone")
    assert clone["name"].startswith("exp-manual")
    assert af.xcom("shale_experiment", "experiment")["input"]["snapshot_id"] == snap["id"]
    names = {v["name"] for v in json.loads(shale_cli("--json", "volume", "list"))}
    assert names == {"digits", "digits-model"}, "the experiment's clone was not deleted"


def check_failures(af: Airflow, shale_cli) -> None:
    def run_state() -> str:
        return af.db("SELECT state FROM dag_run WHERE run_id = ?", af.last_run("shale_experiment"))[0][0]

    def volumes() -> set:
        return {v["name"] for v in json.loads(shale_cli("--json", "volume", "list"))}

    # A snapshot that does not exist: the clone task fails with Shale's
    # message, the run fails, and no clone is left half-made.
    done = af.test("shale_experiment", {"snapshot": "nope"}, check=False)
    states = af.states("shale_experiment")
    assert states["clone"] == "failed", states
    assert "snapshot 'digits@nope' not found" in done.stdout + done.stderr
    assert run_state() == "failed" and volumes() == {"digits", "digits-model"}
    # The experiment itself fails (C must be positive): the teardown still
    # deletes the clone, and the run still fails.
    done = af.test("shale_experiment", {"c": -1}, check=False)
    states = af.states("shale_experiment")
    assert states["experiment"] == "failed" and states["delete_clone"] == "success", states
    assert "exited with status 1" in done.stdout + done.stderr
    assert run_state() == "failed" and volumes() == {"digits", "digits-model"}
    # An unknown volume: the sensor's task fails with the message.
    done = af.test("shale_experiment", {"dataset": "nope"}, check=False)
    assert af.states("shale_experiment")["wait_for_data"] == "failed"
    assert "volume 'nope' not found" in done.stdout + done.stderr


def cli_for(pool: str, env: dict):
    def shale_cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "shale", "--pool", pool, *args], capture_output=True,
                              text=True, env={**os.environ, **env})
        assert done.returncode == 0, done.stderr
        return done.stdout

    return shale_cli


def test_example_dags_on_a_local_pool(tmp_path, mlflow_server):
    pool = shale.Pool(tmp_path / "pool")
    digits_csv(tmp_path / "incoming")
    af = Airflow(tmp_path / "airflow", {"host": str(pool.path)}, {})
    providers = af.airflow("providers", "list").stdout
    assert "shale-volumes" in providers
    shale_cli = cli_for(str(pool.path), {})
    run_the_example_dags(af, shale_cli, str(tmp_path / "incoming"))
    check_failures(af, shale_cli)


@pytest.mark.skipif(garage_binary() is None or postgres_bin() is None,
                    reason="needs garage and PostgreSQL (.ci/run installs them)")
def test_example_dags_on_a_garage_and_postgresql_pool(tmp_path, mlflow_server):
    garage, pg = Garage(), Postgres()
    try:
        env = {**garage.env(), "SHALE_CACHE_DIR": str(tmp_path / "cache")}
        url = "s3://shale-test/airflow"
        shale_cli = cli_for(url, env)
        shale_cli("pool", "init", "--catalog", pg.url)
        digits_csv(tmp_path / "incoming")
        shale_cli("sync", str(tmp_path / "incoming"), "s3://shale-test/incoming/digits")
        connection = {"host": url, "login": env["AWS_ACCESS_KEY_ID"], "password": env["AWS_SECRET_ACCESS_KEY"],
                      "extra": {"endpoint": garage.endpoint, "region": "garage"}}
        # The connection alone carries the store's credentials to the tasks.
        af = Airflow(tmp_path / "airflow", connection, {"SHALE_CACHE_DIR": env["SHALE_CACHE_DIR"]})
        run_the_example_dags(af, shale_cli, "s3://shale-test/incoming/digits")
    finally:
        garage.stop()
        pg.stop()


def test_restore_delete_mirror_update_and_a_sensor_that_gives_up(tmp_path):
    pool = shale.Pool(tmp_path / "pool")
    source = shale.Pool(tmp_path / "source")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("v1\n")
    source.create_volume("upstream", from_dir=tmp_path / "src").snapshot("s1")
    shale_cli = cli_for(str(pool.path), {})
    shale_cli("mirror", "create", "copy", "--source", f"{source.path}::upstream")
    source.volume("upstream").import_dir(tmp_path / "src")  # unchanged files: nothing new
    (tmp_path / "src" / "b.txt").write_text("new\n")
    source.volume("upstream").import_dir(tmp_path / "src")
    source.volume("upstream").snapshot("s2")
    for name, files in {"good": {"keep.txt": "good\n"}, "bad": {"oops.txt": "bad\n"}}.items():
        (tmp_path / name).mkdir()
        for f, text in files.items():
            (tmp_path / name / f).write_text(text)

    af = Airflow(tmp_path / "airflow", {"host": str(pool.path)}, {}, dags=Path(__file__).parent / "dags")
    af.test("shale_operations", {"good": str(tmp_path / "good"), "bad": str(tmp_path / "bad"), "mirror": "copy"})
    assert set(af.states("shale_operations").values()) == {"success"}
    assert af.xcom("shale_operations", "restore_good")["name"] == "good"
    assert af.xcom("shale_operations", "delete_bad_snapshot")["deleted"] is True
    assert af.xcom("shale_operations", "delete_it_again")["deleted"] is False
    out = tmp_path / "out"
    pool.volume("work").export(out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert [s["name"] for s in pool.volume("work").snapshots()] == ["good"]
    assert [s["name"] for s in pool.volume("copy").snapshots()] == ["s1", "s2"]

    af.test("shale_sensor_times_out", {}, check=False)
    assert af.states("shale_sensor_times_out")["wait"] == "failed"
