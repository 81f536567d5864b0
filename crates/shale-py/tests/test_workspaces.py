"""Workspaces on a real JupyterLab: the Contents REST API, snapshot, clone,
restore, a killed server recovered, bad input leaving nothing half-made,
and a headless Chromium that sees the volume's files in the lab."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import shale
from conftest import needs_fuse

pytest.importorskip("jupyterlab")
pytestmark = needs_fuse

ARTIFACTS = Path(__file__).resolve().parents[3] / "target" / "test-artifacts"


def api(url: str, path: str, method: str = "GET", body=None):
    """Calls the Jupyter server's REST API with the token in ``url``."""
    base, token = url.split("/lab?token=")
    req = urllib.request.Request(
        f"{base}/api/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def notebook(text: str) -> dict:
    return {
        "type": "notebook",
        "format": "json",
        "content": {
            "cells": [{"cell_type": "markdown", "metadata": {}, "source": text}],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
    }


def cell(url: str, name: str = "work.ipynb") -> str:
    return api(url, f"contents/{name}")["content"]["cells"][0]["source"]


def by_name(pool, name):
    return next(w for w in shale.list_jupyter_labs(pool=pool) if w["name"] == name)


def test_snapshot_clone_restore_and_delete_through_real_labs(pool):
    url = shale.create_jupyter_lab("alice", workspace_size="1GiB", pool=pool)
    assert url.startswith("http://127.0.0.1:")
    api(url, "contents/work.ipynb", "PUT", notebook("version 1"))
    snap = shale.create_jupyter_lab_snapshot("alice", "before-refactor", pool=pool)
    assert len(snap["id"]) == 64
    api(url, "contents/work.ipynb", "PUT", notebook("version 2"))

    clone_url = shale.clone_jupyter_lab("alice-exp", "alice", "before-refactor", pool=pool)
    assert clone_url != url
    assert cell(clone_url) == "version 1"
    assert cell(url) == "version 2"
    exp = by_name(pool, "alice-exp")
    assert (exp["state"], exp["origin"], exp["volume"]) == ("running", "alice@before-refactor", "alice-exp")
    assert by_name(pool, "alice")["token"] == url.split("token=")[1]

    assert [s["name"] for s in shale.list_jupyter_lab_snapshots("alice", pool=pool)] == ["before-refactor"]
    shale.restore_jupyter_lab_snapshot("alice", "before-refactor", pool=pool)
    assert cell(url) == "version 1"  # running again, same URL

    shale.delete_jupyter_lab("alice-exp", keep_volume=True, pool=pool)
    assert "alice-exp" in [v["name"] for v in pool.list_volumes()]
    shale.delete_jupyter_lab("alice", pool=pool)
    assert "alice" not in [v["name"] for v in pool.list_volumes()]
    assert shale.list_jupyter_labs(pool=pool) == []
    assert not pool.mountpoints()


def test_a_killed_server_is_shown_and_recovered(pool):
    url = shale.create_jupyter_lab("bob", pool=pool)
    api(url, "contents/kept.ipynb", "PUT", notebook("saved"))
    os.killpg(by_name(pool, "bob")["pid"], signal.SIGKILL)
    assert by_name(pool, "bob")["state"] == "died"
    with pytest.raises(urllib.error.URLError):
        api(url, "contents")
    assert shale.start_jupyter_lab("bob", pool=pool) == url
    assert cell(url, "kept.ipynb") == "saved"
    with pytest.raises(shale.ShaleError, match="already running"):
        shale.start_jupyter_lab("bob", pool=pool)
    shale.stop_jupyter_lab("bob", pool=pool)
    assert by_name(pool, "bob")["state"] == "stopped"
    shale.delete_jupyter_lab("bob", pool=pool)


def test_a_dataset_snapshot_sits_read_only_beside_the_code(pool, data_dir):
    ds = pool.create_volume("ds", from_dir=data_dir)
    ds.snapshot("v1")
    url = shale.create_jupyter_lab("carol", data=["ds@v1:/data"], pool=pool)
    names = {e["name"] for e in api(url, "contents/data")["content"]}
    assert names == {"a.txt", "sub"}
    with pytest.raises(urllib.error.HTTPError):
        api(url, "contents/data/new.txt", "PUT", {"type": "file", "format": "text", "content": "x"})
    shale.delete_jupyter_lab("carol", pool=pool)
    assert not pool.mountpoints()


def test_a_python_without_jupyterlab_is_named(pool, tmp_path, monkeypatch):
    bare = tmp_path / "bare-python"  # this Python without its site-packages
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S -I \"$@\"\n")
    bare.chmod(0o755)
    monkeypatch.setenv("SHALE_PYTHON", str(bare))
    with pytest.raises(shale.ShaleError, match="JupyterLab is not installed for .*pip install jupyterlab"):
        shale.create_jupyter_lab("eve", pool=pool)
    assert pool.list_volumes() == [] and not pool.mountpoints()
    assert shale.list_jupyter_labs(pool=pool) == []


def test_bad_input_is_refused_and_leaves_nothing(pool):
    shale.create_volume("taken", pool=pool)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        cases = [
            (lambda: shale.create_jupyter_lab("bad/name", pool=pool), "invalid name"),
            (lambda: shale.create_jupyter_lab("p", port=port, pool=pool), f"port {port}"),
            (lambda: shale.clone_jupyter_lab("c", "taken", "nope", pool=pool), "not found"),
            (lambda: shale.create_jupyter_lab("taken", pool=pool), "already exists"),
            (lambda: shale.create_jupyter_lab("d", data=["missing:/data"], pool=pool), "not found"),
            (lambda: shale.create_jupyter_lab("t", token="", pool=pool), "never an open server"),
        ]
        for call, message in cases:
            with pytest.raises(shale.ShaleError, match=message):
                call()
    assert [v["name"] for v in pool.list_volumes()] == ["taken"]
    assert shale.list_jupyter_labs(pool=pool) == []
    assert not pool.mountpoints()
    out = subprocess.run(["pgrep", "-f", f"root_dir={pool.path}"], capture_output=True, text=True).stdout
    assert out.strip() == ""


def chromium():
    return next((b for b in ["chromium", "chromium-browser", "google-chrome"] if shutil.which(b)), None)


@pytest.mark.skipif(chromium() is None, reason="needs chromium")
def test_a_browser_sees_the_volumes_files_in_the_lab(pool, data_dir):
    pool.create_volume("seed", from_dir=data_dir)
    url = shale.clone_jupyter_lab("dave", "seed", pool=pool)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "workspace-lab.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000", "--window-size=1280,800"]
    dom = subprocess.run([chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    subprocess.run([chromium(), *flags, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    assert "jp-DirListing-item" in dom, dom[-2000:]
    assert "a.txt" in dom and "sub" in dom
    assert shot.stat().st_size > 10_000
    shale.delete_jupyter_lab("dave", pool=pool)
