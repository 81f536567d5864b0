"""The MNIST pipeline with a snapshot step for traceability, and a small
hyperparameter sweep over one dataset snapshot (the Katib idea), on Shale.

    python examples/kubeflow_mnist/pipeline.py --pool /tmp/pool --mlflow http://127.0.0.1:5000

runs both pipelines locally (``kfp.local``, subprocess runner, no cluster)
and compiles them to ``mnist.yaml`` and ``mnist_sweep.yaml`` for a cluster.
The data is scikit-learn's bundled digits (8x8 images of 0-9): nothing is
downloaded.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import NamedTuple

from kfp import compiler, dsl

from shale.kfp import IMAGE, snapshot_volume, train_traced

# The training script (shared with the Airflow example). On a cluster the
# image must hold it at this path: deploy/kfp.Dockerfile copies examples/
# to /opt/shale/examples; compile with SHALE_EXAMPLES=/opt/shale/examples.
EXAMPLES = Path(os.environ.get("SHALE_EXAMPLES", Path(__file__).resolve().parents[1]))
TRAIN = str(EXAMPLES / "digits" / "train.py")
C_VALUES = [0.01, 0.1, 1.0]


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def load_digits_into_volume(volume: str, pool: str = "") -> int:
    """Writes scikit-learn's digits into ``volume`` (made if missing) as
    CSV files (the digit, then 64 pixel values per row); outputs the rows."""
    import tempfile
    from pathlib import Path

    import shale
    from sklearn.datasets import load_digits

    digits = load_digits()
    p = shale.Pool(pool or None, create=False)
    if volume not in {v["name"] for v in p.list_volumes()}:
        p.create_volume(volume)
    with tempfile.TemporaryDirectory() as tmp:
        for part in range(3):
            rows = [",".join([str(digits.target[i])] + [str(int(v)) for v in digits.data[i]])
                    for i in range(part, len(digits.target), 3)]
            (Path(tmp) / f"part-{part}.csv").write_text("\n".join(rows) + "\n")
        p.volume(volume).import_dir(tmp)
    return len(digits.target)


Traced = NamedTuple("Traced", [("dataset_snapshot_id", str), ("model_snapshot_id", str), ("mlflow_run", str)])


@dsl.pipeline(name="mnist-traced", description="MNIST (digits) training with a snapshot for traceability")
def mnist(
    pool: str = "", dataset: str = "mnist-data", model: str = "mnist-model", mlflow_tracking_uri: str = ""
) -> Traced:
    data = load_digits_into_volume(volume=dataset, pool=pool)
    # The snapshot is named after the pipeline run: one per run, found by it.
    snap = snapshot_volume(volume=dataset, snapshot_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, pool=pool).after(data)
    train = train_traced(
        dataset=dataset,
        dataset_snapshot=snap.outputs["snapshot_name"],
        model=model,
        command=["python", TRAIN],
        mlflow_tracking_uri=mlflow_tracking_uri,
        pipeline_run=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        pool=pool,
    )
    return Traced(snap.outputs["snapshot_id"], train.outputs["model_snapshot_id"], train.outputs["mlflow_run"])


@dsl.pipeline(name="mnist-sweep", description="several trials over one dataset snapshot, a model volume each")
def mnist_sweep(pool: str = "", dataset: str = "mnist-data", mlflow_tracking_uri: str = "") -> str:
    """Outputs the one dataset snapshot every trial read (its name)."""
    data = load_digits_into_volume(volume=dataset, pool=pool)
    snap = snapshot_volume(volume=dataset, snapshot_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, pool=pool).after(data)
    for trial, c in enumerate(C_VALUES):
        train_traced(
            dataset=dataset,
            dataset_snapshot=snap.outputs["snapshot_name"],
            model=f"mnist-trial-{trial}",
            command=["python", TRAIN, "--c", str(c)],
            mlflow_tracking_uri=mlflow_tracking_uri,
            pipeline_run=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            pool=pool,
        ).set_display_name(f"trial {trial} (C={c})")
    return snap.outputs["snapshot_name"]


def compile_to(directory: Path) -> list:
    """Writes both pipelines as pipeline YAML; returns the files."""
    files = [directory / "mnist.yaml", directory / "mnist_sweep.yaml"]
    compiler.Compiler().compile(mnist, str(files[0]))
    compiler.Compiler().compile(mnist_sweep, str(files[1]))
    return files


def run_locally(pool: str, mlflow_tracking_uri: str, pipeline_root: Path):
    """Runs both pipelines with kfp.local's subprocess runner, in this Python."""
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
    single = mnist(pool=pool, mlflow_tracking_uri=mlflow_tracking_uri)
    sweep = mnist_sweep(pool=pool, mlflow_tracking_uri=mlflow_tracking_uri)
    return single, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default="", help="pool directory or s3:// URL (default: the default pool)")
    parser.add_argument("--mlflow", default="", help="an MLflow tracking URI to log the runs to")
    parser.add_argument("--out", default=".", help="where the pipeline YAML and pipeline root go")
    args = parser.parse_args()
    out = Path(args.out)
    run_locally(args.pool, args.mlflow, out / "pipeline-root")
    for f in compile_to(out):
        print(f"compiled {f}")


if __name__ == "__main__":
    sys.exit(main())
