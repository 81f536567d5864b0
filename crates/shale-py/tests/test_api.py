"""The Python API over a real pool: objects, toolkit functions, errors, mounts, runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import shale
from conftest import needs_fuse


def test_objects_round_trip(pool, data_dir, tmp_path):
    v = pool.create_volume("ds", from_dir=data_dir)
    info = v.info()
    assert info["files"] == 2 and info["logical_bytes"] == 6 + 300_000
    s1 = v.snapshot("v1")
    assert len(s1["id"]) == 64 and s1["name"] == "v1"
    # the snapshot id is the content: the same data gives the same id
    twin = pool.create_volume("twin", from_dir=data_dir)
    assert twin.snapshot("t")["id"] == s1["id"]

    (data_dir / "a.txt").write_text("changed\n")
    report = v.import_dir(data_dir)
    assert report["files_read"] == 1
    assert v.snapshot("v2")["id"] != s1["id"]
    assert [s["name"] for s in v.snapshots()] == ["v1", "v2"]

    c = v.clone("exp", snapshot="v1")
    assert c.info()["origin"] == "ds@v1"
    c.export(tmp_path / "out")
    assert (tmp_path / "out" / "a.txt").read_text() == "alpha\n"

    v.restore("v1")
    assert pool.resolve("ds")["id"] == s1["id"]
    v.delete_snapshot("v2")
    assert [s["name"] for s in v.snapshots()] == ["v1"]
    assert {x.name for x in pool.volumes()} == {"ds", "twin", "exp"}
    c.delete()
    assert "exp" not in {x["name"] for x in pool.list_volumes()}


def test_toolkit_functions(pool, data_dir):
    out = shale.create_volume(volume_name="proj", from_dir=data_dir, volume_size="1GiB", pool=pool)
    assert out["name"] == "proj" and out["quota"] == 1 << 30
    snap = shale.create_snapshot(volume_name="proj", snapshot_name="s1", pool=pool)
    assert snap["id"] == pool.resolve("proj@s1")["id"]
    clone = shale.clone_volume(
        new_volume_name="proj2", source_volume_name="proj", source_snapshot_name="s1", pool=pool
    )
    assert clone["origin"] == "proj@s1"
    names = [v["name"] for v in shale.list_volumes(pool=pool)]
    assert names == ["proj", "proj2"]
    assert [s["name"] for s in shale.list_snapshots(volume_name="proj", pool=pool)] == ["s1"]
    shale.restore_snapshot(volume_name="proj", snapshot_name="s1", pool=pool)
    shale.delete_snapshot(volume_name="proj", snapshot_name="s1", pool=pool)
    shale.delete_volume(volume_name="proj2", pool=pool)
    assert [v["name"] for v in shale.list_volumes(pool=pool)] == ["proj"]


def test_retention_and_filters(pool, data_dir):
    shale.create_volume(volume_name="r", pool=pool)
    shale.create_snapshot(volume_name="r", snapshot_name="hand", pool=pool)
    made = [
        shale.create_snapshot(volume_name="r", snapshot_name="nightly", retention_count=2, pool=pool)
        for _ in range(3)
    ]
    assert all(m["name"].startswith("nightly.") for m in made)
    assert made[2]["deleted"] == [made[0]["name"]] and made[2]["kept"] == []
    names = {s["name"] for s in shale.list_snapshots(volume_name="r", pool=pool)}
    assert names == {"hand", made[1]["name"], made[2]["name"]}
    # by days: nothing is a day old yet
    by_days = shale.create_snapshot(
        volume_name="r", snapshot_name="nightly", retention_count=1, retention_days=True, pool=pool
    )
    assert by_days["deleted"] == []
    with pytest.raises(shale.ShaleError, match="keep at least 1"):
        pool._native.snapshot_series("r", "x", 0, None)
    # filters: import_dir and create_volume leave paths out
    (data_dir / "junk.tmp").write_text("x")
    v = pool.create_volume("f", from_dir=data_dir, exclude=["*.tmp", "sub/"])
    assert v.info()["files"] == 1
    report = v.import_dir(data_dir, delete=True, exclude=["*.tmp"], include=[])
    assert v.info()["files"] == 2 and report["files_read"] == 1


def test_print_output(pool, capsys):
    shale.create_volume(volume_name="p", pool=pool, print_output=True)
    shale.create_snapshot(volume_name="p", snapshot_name="x", pool=pool, print_output=True)
    out = capsys.readouterr().out
    assert "Volume created: p" in out and "Snapshot created: p@x" in out


def test_errors_are_a_hierarchy(pool, tmp_path):
    with pytest.raises(shale.VolumeNotFoundError, match="nope"):
        pool.volume("nope")
    pool.create_volume("v")
    with pytest.raises(shale.NameExistsError):
        pool.create_volume("v")
    with pytest.raises(shale.SnapshotNotFoundError):
        pool.volume("v").restore("missing")
    with pytest.raises(shale.InvalidNameError):
        pool.create_volume("bad/name")
    big = tmp_path / "big"
    big.mkdir()
    (big / "f").write_bytes(os.urandom(200_000))
    small = pool.create_volume("small", size="100KiB")
    with pytest.raises(shale.QuotaExceededError):
        small.import_dir(big)
    with pytest.raises(shale.PoolNotFoundError):
        shale.Pool(tmp_path / "no-pool", create=False)
    for cls in (shale.VolumeNotFoundError, shale.QuotaExceededError, shale.CorruptDataError):
        assert issubclass(cls, shale.ShaleError)
    # every error is also caught as ShaleError
    with pytest.raises(shale.ShaleError):
        pool.volume("nope")


def test_default_pool_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SHALE_POOL", str(tmp_path / "envpool"))
    shale.create_volume(volume_name="e")
    assert shale.Pool().path == tmp_path / "envpool"
    assert [v["name"] for v in shale.list_volumes()] == ["e"]


def test_command_line_from_the_package(pool):
    pool.create_volume("c")
    out = subprocess.run(
        [sys.executable, "-m", "shale", "--pool", str(pool.path), "--json", "volume", "list"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert [v["name"] for v in json.loads(out)] == ["c"]
    bad = subprocess.run([sys.executable, "-m", "shale", "--pool", str(pool.path), "volume", "info", "zz"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "volume 'zz' not found" in bad.stderr


def test_lineage_of_clones(pool):
    v = pool.create_volume("base")
    v.snapshot("s")
    v.clone("child", snapshot="s").clone("grandchild")
    lin = pool.lineage("grandchild")
    assert lin["origins"][0].startswith("child@") and lin["origins"][1] == "base@s"
    assert pool.lineage("base@s")["clones"] == ["child"]


@needs_fuse
def test_mount_and_paths(pool, data_dir, tmp_path):
    v = pool.create_volume("ds", from_dir=data_dir)
    with pytest.raises(shale.ShaleError, match="not mounted"):
        v.path
    mp = tmp_path / "mnt"
    pool.mount(mp)
    try:
        assert v.path == mp / "ds"
        assert (v.path / "a.txt").read_text() == "alpha\n"
        (v.path / "new.txt").write_text("written through the mount\n")
        snap = v.snapshot("after-write")  # asks the mount to commit first
        assert pool.resolve("ds@after-write")["files"] == 3
        d = shale.Dataset("fresh", pool=pool)
        assert d.path == mp / "fresh" and d.path.is_dir()
        (d.path / "x").write_text("x")
        assert d.snapshot("one")["files"] == 1
        listed = shale.list_volumes(pool=pool)
        assert {x["local_mountpoint"] for x in listed} == {str(mp / "ds"), str(mp / "fresh")}
        assert len(snap["id"]) == 64
    finally:
        pool.unmount(mp)
    # toolkit-style mount of one snapshot, read-only
    one = tmp_path / "one"
    shale.mount_volume(volume_name="ds@after-write", mountpoint=one, pool=pool)
    try:
        assert (one / "new.txt").read_text() == "written through the mount\n"
        with pytest.raises(OSError):
            (one / "other").write_text("no")
    finally:
        shale.unmount_volume(mountpoint=one, pool=pool)
    with pytest.raises(shale.ShaleError, match="not mounted"):
        shale.unmount_volume(mountpoint=one, pool=pool)


@needs_fuse
def test_dataset_mounts_itself_without_a_pool_mount(pool, tmp_path):
    d = shale.Dataset("solo", pool=pool, mountpoint=tmp_path / "solo")
    try:
        assert d.path == tmp_path / "solo"
        (d.path / "f").write_text("hi")
    finally:
        d.close()
    assert pool.resolve("solo")["files"] == 1


@needs_fuse
def test_run_records_lineage(pool, data_dir, tmp_path):
    pool.create_volume("data", from_dir=data_dir)
    script = (
        "import os, pathlib; d = pathlib.Path(os.environ['SHALE_DATASET_PATH']);"
        "m = pathlib.Path(os.environ['SHALE_MODEL_PATH']);"
        "(m / 'model.txt').write_text(str(sorted(p.name for p in d.iterdir())))"
    )
    rec = shale.run("data", [sys.executable, "-c", script], model="model", pool=pool)
    assert rec["exit_code"] == 0
    assert rec["input"]["volume"] == "data"
    run_id = rec["run"]
    assert rec["output"]["snapshot"] == f"run-{run_id}"
    out = tmp_path / "model-out"
    pool.volume("model").export(out, snapshot=f"run-{run_id}")
    assert (out / "model.txt").read_text() == "['a.txt', 'sub']"
    lin = pool.lineage(f"model@run-{run_id}")
    assert lin["produced_by"][0]["inputs"][0]["snapshot_id"] == pool.resolve(f"data@run-{run_id}")["id"]
    # a failing command: recorded, no model snapshot, its status passed on
    rec = shale.run("data", [sys.executable, "-c", "raise SystemExit(3)"], model="model", pool=pool)
    assert rec["exit_code"] == 3 and rec["output"] is None
    assert [r["exit_code"] for r in pool.runs()] == [0, 3]


def _cli_json(pool, *args):
    """The shale command's ``--json`` answer on ``pool``."""
    cmd = [sys.executable, "-m", "shale", "--json", "--pool", str(pool.path), *args]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def test_cli_json_and_python_dicts_have_one_shape(pool, data_dir):
    """A volume and a snapshot are the same dict from Python as from the CLI's
    ``--json``: same keys, same values (docs/JSON.md)."""
    v = pool.create_volume("ds", from_dir=data_dir, size="1GiB")
    snap = v.snapshot("s1")
    pool.volume("ds").clone("exp", snapshot="s1")
    assert _cli_json(pool, "volume", "info", "ds") == v.info()
    assert _cli_json(pool, "volume", "list") == pool.list_volumes()
    assert _cli_json(pool, "snapshot", "list") == pool.list_snapshots()
    assert _cli_json(pool, "snapshot", "list", "ds")[0] == snap
    assert set(v.info()) == {
        "name", "id", "origin", "logical_bytes", "files", "snapshots", "quota", "created", "updated",
    }
    assert set(snap) == {"volume", "name", "id", "created", "logical_bytes", "files"}
    assert v.snapshot_info("s1") == snap


def test_resize(pool, data_dir):
    v = pool.create_volume("ds", from_dir=data_dir, size="1GiB")
    assert v.resize("2GiB")["quota"] == 2 << 30
    assert shale.resize_volume("ds", 3 << 30, pool=pool)["quota"] == 3 << 30
    with pytest.raises(shale.QuotaExceededError):
        v.resize(1000)
    assert v.info()["quota"] == 3 << 30
    assert v.resize(None)["quota"] is None


def test_delete_keeping_snapshots(pool, data_dir):
    v = pool.create_volume("ds", from_dir=data_dir)
    snap = v.snapshot("s1")
    v.delete(keep_snapshots=True)
    assert pool.list_volumes() == []
    assert pool.list_snapshots("ds") == [snap]
    assert pool.resolve("ds@s1")["id"] == snap["id"]
    with pytest.raises(shale.NameExistsError):
        pool.create_volume("ds")


def test_loose_permissions_warn_and_are_fixed(tmp_path):
    path = tmp_path / "pool"
    shale.Pool(path).create_volume("v")
    assert (path.stat().st_mode & 0o7777) == 0o700
    os.chmod(path / "pool.json", 0o644)
    with pytest.warns(UserWarning, match="fix-permissions"):
        pool = shale.Pool(path)
    assert pool.fix_permissions() == {"changed": 1, "not_owned": 0}
    assert (path / "pool.json").stat().st_mode & 0o7777 == 0o600
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shale.Pool(path)
