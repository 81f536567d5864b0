"""Fixtures: a fresh pool per test, FUSE detection, and a real MLflow server."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import shale


@pytest.fixture
def pool(tmp_path):
    """A new pool in a temporary directory; unmounts whatever a test mounted."""
    p = shale.Pool(tmp_path / "pool")
    yield p
    # A failed workspace test may leave servers running.
    workspaces = p.path / "workspaces"
    for ws in workspaces.iterdir() if workspaces.is_dir() else []:
        subprocess.run([sys.executable, "-m", "shale", "--pool", str(p.path), "-q", "workspace", "stop", ws.name],
                       capture_output=True)
    for m in p.mountpoints():
        subprocess.run(["fusermount3", "-u", m["mountpoint"]], capture_output=True)


@pytest.fixture
def data_dir(tmp_path):
    """A small directory tree to import."""
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("alpha\n")
    (d / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    return d


def fuse_usable() -> bool:
    """Whether this process can mount FUSE file systems."""
    return os.geteuid() == 0 and Path("/dev/fuse").exists() and shutil.which("fusermount3") is not None


needs_fuse = pytest.mark.skipif(not fuse_usable(), reason="needs root, /dev/fuse and fusermount3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` (SQLite backend, local artifacts) on 127.0.0.1;
    MLFLOW_TRACKING_URI points at it for the whole session."""
    pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
            "--default-artifact-root", str(root / "artifacts"),
            "--workers", "1",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = url
    yield url
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old
    proc.terminate()
    proc.wait(timeout=30)
