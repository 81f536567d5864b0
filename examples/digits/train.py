"""Trains a digits classifier on the CSV files of a dataset snapshot.

Run by `shale run` (the Airflow DAGs' ShaleRunOperator, the Kubeflow
pipeline's traced step): the snapshot is mounted read-only at
$SHALE_DATASET_PATH, the model volume read-write at $SHALE_MODEL_PATH, and
MLFLOW_RUN_ID names the MLflow run that `shale run --mlflow` opened (with
the dataset's volume, snapshot name and content id as tags).

Each CSV row: the digit, then its 64 pixel values.
"""

import argparse
import csv
import json
import os
import pickle
from pathlib import Path

from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def load(root: Path):
    xs, ys = [], []
    for f in sorted(root.rglob("*.csv")):
        with open(f, newline="") as rows:
            for row in csv.reader(rows):
                ys.append(int(row[0]))
                xs.append([float(v) for v in row[1:]])
    if not ys:
        raise SystemExit(f"no CSV rows under {root}")
    return xs, ys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularization strength")
    args = parser.parse_args()
    xs, ys = load(Path(os.environ["SHALE_DATASET_PATH"]))
    x_train, x_test, y_train, y_test = train_test_split(xs, ys, test_size=0.25, random_state=0)
    model = LogisticRegression(C=args.c, max_iter=3000).fit(x_train, y_train)
    accuracy = model.score(x_test, y_test)
    out = os.environ.get("SHALE_MODEL_PATH")
    if out:
        with open(Path(out) / "model.pkl", "wb") as f:
            pickle.dump(model, f)
        Path(out, "metrics.json").write_text(json.dumps({"accuracy": accuracy, "c": args.c, "rows": len(ys)}))
    if os.environ.get("MLFLOW_RUN_ID"):
        import mlflow

        with mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"]):
            mlflow.log_param("c", args.c)
            mlflow.log_metric("accuracy", accuracy)
    print(f"trained on {len(ys)} rows: accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
