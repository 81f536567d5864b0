"""The MLflow traceability example runs end to end and reproduces run 1."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "mlflow_traceability" / "train.py"


def test_example_reproduces_the_first_run(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the first run's accuracy is back" in done.stdout
