"""shale.Pool through a `shale serve` server: the same dicts and exception
classes as on the pool, scoped tokens enforced, and what needs the pool
itself refused plainly."""

import json
import socket
import subprocess
import sys
import time

import pytest

import shale
from conftest import _free_port


@pytest.fixture
def served(tmp_path):
    """A pool served on 127.0.0.1, its admin token, and a token for imagenet only."""
    pool = tmp_path / "pool"

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "shale", "--pool", str(pool), *args],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("pool", "init")
    cli("volume", "create", "imagenet")
    cli("volume", "create", "hr-data")
    admin = json.loads(cli("--json", "token", "create", "--role", "admin"))["token"]
    scoped = json.loads(cli("--json", "token", "create", "--role", "write", "--volume", "imagenet"))["token"]
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "shale", "--pool", str(pool), "serve",
                               "--listen", f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", admin, scoped, shale.Pool(pool, create=False)
    server.terminate()
    server.wait(30)


def test_a_pool_through_the_server_behaves_like_the_pool(served):
    url, admin, _, local = served
    remote = shale.Pool(url, token=admin)
    assert remote.is_remote and remote.path == url
    assert {v["name"] for v in remote.list_volumes()} == {"imagenet", "hr-data"}
    snap = remote.volume("imagenet").snapshot("v1")
    assert snap == local.volume("imagenet").snapshot_info("v1")
    clone = remote.volume("imagenet").clone("exp", snapshot="v1")
    assert clone.info() == local.volume("exp").info()
    assert remote.resolve("imagenet@v1")["id"] == snap["id"]
    remote.volume("imagenet").restore("v1")
    assert remote.volume("imagenet").lineage()["clones"] == local.lineage("imagenet")["clones"]
    assert remote.lineage("imagenet@v1") == local.lineage("imagenet@v1")
    made = remote.create_volume("sized", size="1GiB")
    assert made.info()["quota"] == 1 << 30
    assert made.resize("2GiB")["quota"] == 2 << 30
    assert made.resize(None)["quota"] is None
    made.snapshot("s")
    made.delete(keep_snapshots=True)
    assert [s["name"] for s in local.list_snapshots("sized")] == ["s"]
    # every snapshot, those of the deleted volume too, in the pool's order
    assert remote.list_snapshots() == local.list_snapshots()

    with pytest.raises(shale.VolumeNotFoundError):
        remote.volume("nope")
    with pytest.raises(shale.SnapshotNotFoundError):
        remote.volume("imagenet").restore("nope")
    with pytest.raises(shale.NameExistsError):
        remote.create_volume("imagenet")
    with pytest.raises(shale.InvalidNameError):
        remote.create_volume("bad@name")
    with pytest.raises(shale.ShaleError, match="not through a server"):
        remote.volume("imagenet").export("/tmp/x")
    with pytest.raises(shale.ShaleError, match="not through --server"):
        remote.mount("/tmp/shale-remote-mount", volume="imagenet")
    remote.volume("exp").delete()
    assert "exp" not in {v["name"] for v in local.list_volumes()}


def test_tokens_decide_what_a_remote_pool_shows(served, monkeypatch):
    url, _, scoped, _ = served
    monkeypatch.setenv("SHALE_SERVER", url)
    monkeypatch.setenv("SHALE_TOKEN", scoped)
    pool = shale.Pool()  # from the environment
    assert [v["name"] for v in pool.list_volumes()] == ["imagenet"]
    with pytest.raises(shale.ShaleError, match="limited to volume imagenet"):
        pool.volume("hr-data")
    monkeypatch.delenv("SHALE_TOKEN")
    with pytest.raises(shale.ShaleError, match="needs a token"):
        shale.Pool(url)
    monkeypatch.setenv("SHALE_TOKEN", "shale_wrong")
    with pytest.raises(shale.ShaleError, match="not valid here"):
        shale.Pool().list_volumes()
