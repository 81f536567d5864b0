"""The README's DataOps Toolkit table, row by row: every function it names
exists in ``shale`` and is called here with the toolkit's keyword
arguments, on a real pool (and a real Garage for the S3 rows)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import shale
from stores import BUCKET, Garage, garage_binary

README = Path(__file__).resolve().parents[3] / "README.md"


def table_functions():
    text = README.read_text()
    start = text.index("### The DataOps Toolkit, function by function")
    table = text[start:].split("\n\n")[2]
    names = set()
    for row in table.splitlines()[2:]:
        first = row.split("|")[1]
        names.update(re.findall(r"`([a-z_0-9]+)[(`]", first))
    return names


#: The functions `netapp_dataops.traditional.__all__` (3.1.0) exports.
TOOLKIT = {
    "clone_volume", "create_volume", "delete_volume", "mount_volume", "unmount_volume", "list_volumes",
    "create_snapshot", "delete_snapshot", "restore_snapshot", "list_snapshots",
    "list_snap_mirror_relationships", "create_snap_mirror_relationship", "sync_snap_mirror_relationship",
    "list_cloud_sync_relationships", "sync_cloud_sync_relationship", "pull_bucket_from_s3",
    "pull_object_from_s3", "push_directory_to_s3", "push_file_to_s3", "prepopulate_flex_cache",
    "create_cifs_share", "list_cifs_shares", "get_cifs_share", "create_qtree", "list_qtrees", "get_qtree",
    "get_qtree_metrics", "list_flexcaches", "get_flexcache_origin", "create_flexcache", "update_flexcache",
}


def test_every_function_in_the_table_exists_and_is_exported():
    names = table_functions()
    assert TOOLKIT <= names, sorted(TOOLKIT - names)
    missing = [n for n in sorted(names) if not callable(getattr(shale, n, None))]
    assert missing == []
    assert set(names) <= set(shale.__all__)


def test_volume_and_snapshot_rows(pool, data_dir):
    out = shale.create_volume(
        volume_name="tk", volume_size="1GiB", unix_permissions="0750", unix_uid="1000", unix_gid="1000",
        mountpoint=None, readonly=False, print_output=True, pool=pool,
    )
    assert out["quota"] == 1 << 30
    assert tuple(pool._native.set_root("tk")) == (0o750, 1000, 1000)
    assert shale.get_volume(volume_name="tk", print_output=True, pool=pool)["name"] == "tk"
    listed = shale.list_volumes(check_local_mounts=True, include_space_usage_details=False, print_output=True,
                                pool=pool)
    assert [v["name"] for v in listed] == ["tk"]
    shale.create_snapshot(volume_name="tk", snapshot_name="s1", snapmirror_label=None, pool=pool)
    kept = shale.create_snapshot(volume_name="tk", snapshot_name="daily", retention_count=1, pool=pool)
    assert kept["name"].startswith("daily.")
    assert [s["name"] for s in shale.list_snapshots(volume_name="tk", pool=pool)][0] == "s1"
    shale.restore_snapshot(volume_name="tk", snapshot_name="s1", pool=pool)
    clone = shale.clone_volume(new_volume_name="tk2", source_volume_name="tk", source_snapshot_name="s1",
                               unix_uid="7", unix_gid="8", split=False, refresh=False, pool=pool)
    assert clone["origin"] == "tk@s1"
    assert tuple(pool._native.set_root("tk2"))[1:] == (7, 8)
    shale.delete_snapshot(volume_name="tk", snapshot_name="s1", skip_owned=False, pool=pool)
    shale.delete_volume(volume_name="tk2", delete_mirror=False, delete_non_clone=False, pool=pool)
    # ONTAP-only arguments with a value, and unknown names
    with pytest.raises(shale.ShaleError, match="cluster_name='c1' has no meaning"):
        shale.create_volume(volume_name="x", volume_size="1GiB", cluster_name="c1", pool=pool)
    with pytest.raises(shale.ShaleError, match="aggregate"):
        shale.create_volume(volume_name="x", volume_size="1GiB", aggregate="aggr1", pool=pool)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        shale.list_snapshots(volume_name="tk", colour="red", pool=pool)
    assert "x" not in [v["name"] for v in shale.list_volumes(pool=pool)]


def test_mirror_and_saved_sync_rows(pool, data_dir, tmp_path):
    source = shale.Pool(tmp_path / "site-a")
    source.create_volume("src", from_dir=data_dir).snapshot("v1")
    m = shale.create_snap_mirror_relationship(
        source_svm=str(source.path), source_vol="src", target_vol="copy", policy="MirrorAllSnapshots",
        action="initialize", pool=pool,
    )
    assert m["uuid"] == "copy" and m["last_snapshot"] == "v1"
    source.volume("src").snapshot("v2")
    shale.sync_snap_mirror_relationship(uuid="copy", wait_until_complete=True, pool=pool)
    rows = shale.list_snap_mirror_relationships(print_output=True, pool=pool)
    assert rows[0]["last_snapshot"] == "v2"
    with pytest.raises(shale.ShaleError, match="schedule"):
        shale.create_snap_mirror_relationship(source_svm=str(source.path), source_vol="src", target_vol="c2",
                                              schedule="hourly", pool=pool)

    dst = tmp_path / "synced"
    shale.create_cloud_sync_relationship(relationship_id="daily", source=str(data_dir), destination=str(dst),
                                         exclude=["*.bin"], pool=pool)
    report = shale.sync_cloud_sync_relationship(relationship_id="daily", wait_until_complete=True, pool=pool)
    assert report["copied"] == 1 and (dst / "a.txt").exists()
    rel = shale.list_cloud_sync_relationships(print_output=True, pool=pool)
    assert rel[0]["id"] == "daily" and rel[0]["last_ok"] is True
    with pytest.raises(shale.ShaleError, match="no sync named 'nope'"):
        shale.sync_cloud_sync_relationship(relationship_id="nope", pool=pool)


@pytest.mark.parametrize("function", ["create_flexcache", "list_flexcaches", "get_flexcache_origin",
                                      "update_flexcache", "create_qtree", "list_qtrees", "get_qtree",
                                      "get_qtree_metrics", "create_cifs_share", "list_cifs_shares",
                                      "get_cifs_share"])
def test_what_has_no_meaning_says_so(function):
    with pytest.raises(shale.ShaleError, match="Shale"):
        getattr(shale, function)(volume_name="v", cluster_name=None)


@pytest.mark.skipif(garage_binary() is None, reason="needs garage (cargo install garage)")
def test_s3_rows_and_cache_warm(pool, data_dir, tmp_path, monkeypatch):
    g = Garage()
    try:
        for k, v in g.env().items():
            monkeypatch.setenv(k, v)
        up = shale.push_directory_to_s3(s3_bucket=BUCKET, local_directory=str(data_dir),
                                        s3_object_key_prefix="tk", print_output=True, pool=pool)
        assert up["copied"] == 2
        shale.push_file_to_s3(s3_bucket=BUCKET, local_file=str(data_dir / "a.txt"), s3_object_key="one/a.txt",
                              pool=pool)
        with pytest.raises(shale.ShaleError, match="s3_extra_args"):
            shale.push_file_to_s3(s3_bucket=BUCKET, local_file=str(data_dir / "a.txt"),
                                  s3_extra_args={"ACL": "private"}, pool=pool)
        down = tmp_path / "down"
        shale.pull_bucket_from_s3(s3_bucket=BUCKET, local_directory=str(down), s3_object_key_prefix="tk",
                                  pool=pool)
        assert (down / "sub" / "b.bin").read_bytes() == (data_dir / "sub" / "b.bin").read_bytes()
        one = tmp_path / "one.txt"
        shale.pull_object_from_s3(s3_bucket=BUCKET, s3_object_key="one/a.txt", local_file=str(one), pool=pool)
        assert one.read_text() == "alpha\n"

        monkeypatch.setenv("SHALE_CACHE_DIR", str(tmp_path / "cache"))
        url = f"s3://{BUCKET}/warm"
        subprocess.run([sys.executable, "-m", "shale", "--pool", url, "pool", "init"], check=True)
        remote = shale.Pool(url)
        remote.create_volume("ds", from_dir=data_dir)
        warmed = shale.prepopulate_flex_cache(volume_name="ds", paths=["sub"], print_output=True, pool=remote)
        assert warmed["files"] == 1
        assert warmed["bytes_fetched"] + warmed["bytes_already_cached"] > 0
    finally:
        g.stop()
