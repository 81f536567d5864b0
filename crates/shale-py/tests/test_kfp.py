"""shale.kfp on real Kubeflow Pipelines: the MNIST example and its sweep
run with kfp.local's subprocess runner (no cluster) against a local pool
and a real MLflow server, and compile to pipeline YAML; container
components compile too (a cluster runs them, not this machine)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import shale
from conftest import needs_fuse

pytest.importorskip("kfp")
pytest.importorskip("sklearn")
yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[3]


def example():
    spec = importlib.util.spec_from_file_location("mnist_pipeline", REPO / "examples" / "kubeflow_mnist" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lineage(pool: shale.Pool, spec: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "shale", "--pool", str(pool.path), "--json", "lineage", spec],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@needs_fuse
def test_mnist_pipeline_and_sweep_run_locally_with_lineage(tmp_path, mlflow_server):
    import mlflow

    pool = shale.Pool(tmp_path / "pool")
    pipelines = example()
    single, sweep = pipelines.run_locally(str(pool.path), mlflow_server, tmp_path / "root")

    # The single run: its outputs are the snapshots' content ids, and MLflow has them as tags.
    [snap] = [s for s in pool.volume("mnist-data").snapshots() if s["name"].startswith("mnist-traced-")]
    assert single.outputs["dataset_snapshot_id"] == snap["id"]
    [model] = pool.volume("mnist-model").snapshots()
    assert single.outputs["model_snapshot_id"] == model["id"]
    run = mlflow.MlflowClient().get_run(single.outputs["mlflow_run"])
    assert run.data.tags["shale.snapshot_id"] == snap["id"]
    assert run.data.tags["shale.model_snapshot_id"] == model["id"]
    assert run.data.metrics["accuracy"] > 0.9
    [recorded] = lineage(pool, f"mnist-model@{model['name']}")["produced_by"]
    single_run_id = recorded["labels"]["kfp.run_id"]
    assert single_run_id

    # The sweep: three trials read its one snapshot, each wrote its own model volume.
    base = sweep.outputs["Output"]
    assert base.startswith("mnist-sweep-")
    used = lineage(pool, f"mnist-data@{base}")["used_by"]
    assert sorted(r["outputs"][0]["volume"] for r in used) == ["mnist-trial-0", "mnist-trial-1", "mnist-trial-2"]
    assert {r["inputs"][0]["snapshot"] for r in used} == {base}
    run_ids = {r["labels"]["kfp.run_id"] for r in used}
    assert len(run_ids) == 1 and run_ids != {single_run_id}
    assert {r["inputs"][0]["snapshot_id"] for r in used} == {pool.resolve(f"mnist-data@{base}")["id"]}


def test_pipelines_compile_to_yaml(tmp_path):
    from shale.kfp import IMAGE

    files = example().compile_to(tmp_path)
    specs = [yaml.safe_load(f.read_text()) for f in files]
    assert [s["pipelineInfo"]["name"] for s in specs] == ["mnist-traced", "mnist-sweep"]
    executors = specs[0]["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values()}
    assert images == {IMAGE}
    # Nothing is pip-installed at task start (PyPI's `shale` is another project).
    assert not any("pip install" in " ".join(e["container"]["command"]) for e in executors.values())
    assert len(specs[1]["root"]["dag"]["tasks"]) == 2 + 3  # load, snapshot, three trials


def test_container_components_compile(tmp_path):
    from kfp import compiler, dsl

    from shale.kfp import IMAGE, clone_volume_op, snapshot_volume_op, sync_op

    @dsl.pipeline(name="shale-container-steps")
    def steps(pool: str = "s3://ml/pool"):
        synced = sync_op(source="s3://incoming/digits", destination="volume:digits", pool=pool)
        snap = snapshot_volume_op(volume="digits", snapshot_name="v1", pool=pool).after(synced)
        clone_volume_op(source="digits@v1", new_volume="exp", pool=pool).after(snap)

    out = tmp_path / "steps.yaml"
    compiler.Compiler().compile(steps, str(out))
    executors = yaml.safe_load(out.read_text())["deploymentSpec"]["executors"]
    commands = {name: e["container"] for name, e in executors.items()}
    assert {c["image"] for c in commands.values()} == {IMAGE}
    assert any("snapshot create" in " ".join(c["command"]) for c in commands.values())
    assert any("volume clone" in " ".join(c["command"]) for c in commands.values())


def test_packages_to_install_name_our_distribution(tmp_path):
    """With SHALE_KFP_PACKAGES, tasks pip-install the package (by its own
    name, shale-volumes) on a stock Python image."""
    code = (
        "import sys; from kfp import compiler; from shale.kfp import snapshot_volume; "
        "compiler.Compiler().compile(snapshot_volume, sys.argv[1])"
    )
    out = tmp_path / "component.yaml"
    env = {**os.environ, "SHALE_KFP_PACKAGES": "shale-volumes==0.1.0", "SHALE_KFP_IMAGE": "python:3.11-slim"}
    subprocess.run([sys.executable, "-c", code, str(out)], env=env, check=True)
    [executor] = yaml.safe_load(out.read_text())["deploymentSpec"]["executors"].values()
    command = " ".join(executor["container"]["command"])
    assert executor["container"]["image"] == "python:3.11-slim"
    assert "'shale-volumes==0.1.0'" in command and "pip install" in command
