"""Dataset-to-model traceability with Shale and MLflow, end to end.

1. Puts scikit-learn's bundled digits data into a Shale volume, as files.
2. Trains a classifier on it with MLflow tracking; shale.mlflow records
   the dataset snapshot (its content id) on the run.
3. Changes the data (a labelling mistake relabels a fifth of the samples)
   and trains again: the accuracy changes.
4. Retrains from the first run's id alone: shale.mlflow.checkout gives
   back exactly the data that run saw, and the first accuracy comes back.

    python examples/mlflow_traceability/train.py [--work DIR]

Needs: pip install ./crates/shale-py mlflow scikit-learn
"""

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import mlflow
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import shale
import shale.mlflow


def write_digits(out: Path, mislabel: float = 0.0) -> None:
    """The digits set as files: CLASS/NNNN.txt, 64 pixel values each."""
    digits = load_digits()
    rng = np.random.default_rng(7)
    labels = digits.target.copy()
    if mislabel:
        wrong = rng.random(len(labels)) < mislabel
        labels[wrong] = (labels[wrong] + 1) % 10
    if out.exists():
        shutil.rmtree(out)
    for i, (pixels, label) in enumerate(zip(digits.data, labels)):
        d = out / str(label)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:04d}.txt").write_text(" ".join(str(int(p)) for p in pixels))


def load_dir(root: Path):
    """Reads the files back: (X, y), in a fixed order."""
    xs, ys, names = [], [], []
    for f in sorted(root.glob("*/*.txt")):
        names.append(f.name)
        xs.append([float(v) for v in f.read_text().split()])
        ys.append(int(f.parent.name))
    order = np.argsort(names)  # sample order, whatever the labels say
    return np.array(xs)[order], np.array(ys)[order]


def train(volume: shale.Volume, snapshot: str) -> float:
    """Trains on `volume@snapshot`; returns test accuracy."""
    with tempfile.TemporaryDirectory() as tmp:
        volume.export(Path(tmp) / "data", snapshot=snapshot)
        X, y = load_dir(Path(tmp) / "data")
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
    # pixel values are 0-16: scaled to 0-1 so the solver converges
    model = LogisticRegression(max_iter=2000, random_state=0).fit(X_tr / 16.0, y_tr)
    X_te = X_te / 16.0
    return float((model.predict(X_te) == y_te).mean())


def tracked_training(volume: shale.Volume, label: str) -> tuple:
    """One MLflow run: record the dataset snapshot, train, log accuracy."""
    with mlflow.start_run(run_name=label) as run:
        rec = shale.mlflow.log_dataset(volume)
        acc = train(volume, rec["snapshot"])
        mlflow.log_metric("accuracy", acc)
    print(f"{label:<28} run {run.info.run_id[:8]}  data {rec['volume']}@{rec['snapshot']} "
          f"id {rec['snapshot_id'][:16]}…  accuracy {acc:.4f}")
    return run.info.run_id, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "shale-mlflow-example")
    args = ap.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    pool = shale.Pool(args.work / "pool")
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{args.work}/mlflow.db"))
    mlflow.set_experiment("shale-digits")

    files = args.work / "digits"
    write_digits(files)
    digits = pool.create_volume("digits", from_dir=files)
    first_run, first_acc = tracked_training(digits, "1. original data")

    write_digits(files, mislabel=0.2)
    digits.import_dir(files, delete=True)
    _, changed_acc = tracked_training(digits, "2. after a labelling error")

    again = shale.mlflow.checkout(first_run, name="digits-run1", pool=pool)
    snap = again.snapshot("retrain")
    acc = train(again, snap["name"])
    print(f"{'3. retrained from run 1':<28} via checkout: clone {again.name}, id {snap['id'][:16]}…  accuracy {acc:.4f}")
    assert acc == first_acc, "checkout did not reproduce the first run's data"
    assert changed_acc != first_acc
    print(f"the first run's accuracy is back ({acc:.4f}); the changed data gave {changed_acc:.4f}")


if __name__ == "__main__":
    main()
