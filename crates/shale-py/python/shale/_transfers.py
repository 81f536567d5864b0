"""The DataOps Toolkit's transfer functions, on Shale: S3 push and pull,
saved syncs (the toolkit's cloud sync relationships), mirrors (its
SnapMirror relationships) and cache warm-up (``prepopulate_flex_cache``).

Each runs this package's ``shale`` command. Object-store credentials come
from the environment, as for ``shale sync``: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_REGION`` (or a
profile in ``~/.aws/credentials``). Arguments that only mean something on
ONTAP raise ``ShaleError`` naming them; see the README's toolkit table.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ._api import Pool, _cli, _ontap_only, _say
from ._native import ShaleError

PathLike = Union[str, os.PathLike]


def _json(pool: Optional[Pool], args: Sequence[str]) -> Any:
    out = _cli(pool or Pool(), ["--json", *args])
    return json.loads(out) if out.strip() else None


def _s3(bucket: str, key: str = "") -> str:
    key = key.strip("/")
    return f"s3://{bucket}/{key}" if key else f"s3://{bucket}"


def _sync(src: str, dst: str, pool: Optional[Pool], print_output: bool) -> Dict[str, Any]:
    report = _json(pool, ["sync", src, dst])
    _say(
        print_output,
        f"Synced {report['source']} -> {report['destination']}: {report['copied']} copied, "
        f"{report['unchanged']} unchanged, {len(report['skipped'])} skipped",
    )
    return report


# -- S3 ----------------------------------------------------------------------


def push_directory_to_s3(
    s3_bucket: str,
    local_directory: PathLike,
    s3_object_key_prefix: str = "",
    s3_extra_args: Optional[Dict[str, Any]] = None,
    print_output: bool = False,
    pool: Optional[Pool] = None,
) -> Dict[str, Any]:
    """Copies what differs of ``local_directory`` to ``s3://BUCKET/PREFIX``
    (``shale sync DIR s3://BUCKET/PREFIX``); returns the sync report."""
    _ontap_only("push_directory_to_s3", dict(s3_extra_args=s3_extra_args))
    return _sync(os.fspath(local_directory), _s3(s3_bucket, s3_object_key_prefix), pool, print_output)


def push_file_to_s3(
    s3_bucket: str,
    local_file: PathLike,
    s3_object_key: Optional[str] = None,
    s3_extra_args: Optional[Dict[str, Any]] = None,
    print_output: bool = False,
    pool: Optional[Pool] = None,
) -> Dict[str, Any]:
    """Copies ``local_file`` to ``s3://BUCKET/KEY`` (the key defaults to the
    file's name); returns the sync report."""
    _ontap_only("push_file_to_s3", dict(s3_extra_args=s3_extra_args))
    key = s3_object_key or Path(local_file).name
    return _sync(os.fspath(local_file), _s3(s3_bucket, key), pool, print_output)


def pull_bucket_from_s3(
    s3_bucket: str,
    local_directory: PathLike,
    s3_object_key_prefix: str = "",
    print_output: bool = False,
    pool: Optional[Pool] = None,
) -> Dict[str, Any]:
    """Copies what differs of ``s3://BUCKET/PREFIX`` into ``local_directory``;
    keys that cannot be local names are skipped and listed in the report."""
    return _sync(_s3(s3_bucket, s3_object_key_prefix), os.fspath(local_directory), pool, print_output)


def pull_object_from_s3(
    s3_bucket: str,
    s3_object_key: str,
    local_file: Optional[PathLike] = None,
    print_output: bool = False,
    pool: Optional[Pool] = None,
) -> Dict[str, Any]:
    """Copies ``s3://BUCKET/KEY`` to ``local_file`` (default: the key's last
    segment, in the current directory)."""
    dest = os.fspath(local_file) if local_file is not None else s3_object_key.rstrip("/").rsplit("/", 1)[-1]
    return _sync(_s3(s3_bucket, s3_object_key), dest, pool, print_output)


# -- saved syncs (cloud sync relationships) ------------------------------------


def create_cloud_sync_relationship(
    relationship_id: str,
    source: str,
    destination: str,
    delete: bool = False,
    exclude: Optional[Sequence[str]] = None,
    include: Optional[Sequence[str]] = None,
    every: Optional[str] = None,
    print_output: bool = False,
    pool: Optional[Pool] = None,
) -> Dict[str, Any]:
    """Saves a sync named ``relationship_id`` between two places (paths,
    ``s3://…``, ``volume:…``), run by :func:`sync_cloud_sync_relationship`
    or, with ``every`` (``"1h"``), by ``shale sync run --due``."""
    args = ["sync", "create", relationship_id, source, destination]
    args += ["--delete"] if delete else []
    for p in exclude or []:
        args += ["--exclude", p]
    for p in include or []:
        args += ["--include", p]
    args += ["--every", every] if every else []
    row = _json(pool, args)
    _say(print_output, f"Sync relationship saved: {relationship_id}")
    return {"id": row["name"], **row}


def list_cloud_sync_relationships(print_output: bool = False, pool: Optional[Pool] = None) -> List[Dict[str, Any]]:
    """Every saved sync: ``id`` (its name), ``source``, ``destination``,
    ``last_run``, ``last_ok``, ``last_report``, ``next_due``."""
    rows = [{"id": r["name"], **r} for r in _json(pool, ["sync", "list"])]
    for r in rows:
        _say(print_output, f"{r['id']}\t{r['source']} -> {r['destination']}\t{r['last_ok']}")
    return rows


def sync_cloud_sync_relationship(
    relationship_id: str,
    wait_until_complete: bool = False,
    print_output: bool = False,
    pool: Optional[Pool] = None,
) -> Optional[Dict[str, Any]]:
    """Runs saved sync ``relationship_id``. With ``wait_until_complete``,
    returns its report; otherwise it runs in the background and its outcome
    is recorded (see :func:`list_cloud_sync_relationships`)."""
    pool = pool or Pool()
    if wait_until_complete:
        report = _json(pool, ["sync", "run", relationship_id])
        _say(print_output, f"Sync relationship {relationship_id} ran: {report['copied']} copied")
        return report
    if relationship_id not in {r["name"] for r in _json(pool, ["sync", "list"])}:
        raise ShaleError(f"no sync named '{relationship_id}' is saved (shale sync list)")
    cmd = [sys.executable, "-m", "shale", "--pool", str(pool.path), "-q", "sync", "run", relationship_id]
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _say(print_output, f"Sync relationship {relationship_id} started")
    return None


# -- mirrors (SnapMirror relationships) ----------------------------------------

_POLICIES = {"MirrorAllSnapshots": "all", "MirrorLatest": "latest", "all": "all", "latest": "latest"}


def create_snap_mirror_relationship(
    source_svm: str,
    source_vol: str,
    target_vol: str,
    target_svm: Optional[str] = None,
    cluster_name: Optional[str] = None,
    schedule: str = "",
    policy: str = "MirrorAllSnapshots",
    action: Optional[str] = None,
    print_output: bool = False,
    pool: Optional[Pool] = None,
) -> Dict[str, Any]:
    """Makes ``target_vol`` of this pool a mirror of ``source_vol`` of the
    pool at ``source_svm`` (a path or URL: Shale's pools play the SVMs'
    part). ``action="initialize"`` transfers now; ``None`` only creates the
    relationship; ``"resync"`` mirrors again after a break."""
    _ontap_only("create_snap_mirror_relationship", dict(cluster_name=cluster_name, schedule=schedule))
    if target_svm is not None:
        pool = Pool(target_svm, create=False)
    if policy not in _POLICIES:
        raise ShaleError(f"policy {policy!r}: use MirrorAllSnapshots or MirrorLatest")
    if action == "resync":
        _cli(pool or Pool(), ["mirror", "resync", target_vol])
    elif action in (None, "initialize"):
        args = ["mirror", "create", target_vol, "--source", f"{source_svm}::{source_vol}",
                "--policy", _POLICIES[policy]]
        _cli(pool or Pool(), args + ([] if action == "initialize" else ["--no-transfer"]))
    else:
        raise ShaleError(f"action {action!r}: use None, 'initialize' or 'resync'")
    _say(print_output, f"Mirror relationship created: {source_svm}::{source_vol} -> {target_vol}")
    return next(m for m in list_snap_mirror_relationships(pool=pool) if m["uuid"] == target_vol)


def list_snap_mirror_relationships(
    print_output: bool = False, cluster_name: Optional[str] = None, pool: Optional[Pool] = None
) -> List[Dict[str, Any]]:
    """Every mirror of this pool: ``uuid`` (the mirror volume's name, which
    identifies it), source pool and volume, last snapshot, lag, state."""
    _ontap_only("list_snap_mirror_relationships", dict(cluster_name=cluster_name))
    rows = [{"uuid": m["volume"], **m} for m in _json(pool, ["mirror", "list"])]
    for m in rows:
        _say(print_output, f"{m['uuid']}\t{m['source_pool']}::{m['source_volume']}\t{m['state']}")
    return rows


def sync_snap_mirror_relationship(
    uuid: Optional[str] = None,
    svm_name: Optional[str] = None,
    volume_name: Optional[str] = None,
    cluster_name: Optional[str] = None,
    wait_until_complete: bool = False,
    print_output: bool = False,
    pool: Optional[Pool] = None,
) -> Optional[Dict[str, Any]]:
    """Transfers the source's new snapshots to the mirror named by ``uuid``
    or ``volume_name`` (both are the mirror volume's name). With
    ``wait_until_complete``, returns the update's report; otherwise the
    update runs in the background."""
    _ontap_only("sync_snap_mirror_relationship", dict(svm_name=svm_name, cluster_name=cluster_name))
    uuid = uuid or volume_name
    if not uuid:
        raise ShaleError("sync_snap_mirror_relationship: name the mirror (uuid= or volume_name=)")
    pool = pool or Pool()
    if wait_until_complete:
        report = _json(pool, ["mirror", "update", uuid])
        _say(print_output, f"Mirror {uuid} updated")
        return report
    cmd = [sys.executable, "-m", "shale", "--pool", str(pool.path), "-q", "mirror", "update", uuid]
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _say(print_output, f"Mirror {uuid} update started")
    return None


# -- cache warm-up -------------------------------------------------------------


def prepopulate_flex_cache(
    volume_name: str,
    paths: Optional[Sequence[str]] = None,
    print_output: bool = False,
    pool: Optional[Pool] = None,
) -> Dict[str, Any]:
    """Fetches ``volume_name`` (``VOLUME[@SNAPSHOT]``), or ``paths`` inside
    it, from the object store into this machine's read cache
    (``shale cache warm``); returns the report (bytes fetched, already
    cached, cache size). Refused when it would not fit in the cache."""
    report = _json(pool, ["cache", "warm", volume_name, *(paths or [])])
    _say(
        print_output,
        f"Cache warmed: {volume_name}: {report['bytes_fetched']} bytes fetched, "
        f"{report['bytes_already_cached']} already cached",
    )
    return report


# -- what has no meaning in Shale ----------------------------------------------


def _not_in_shale(name: str, why: str) -> Any:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise ShaleError(f"{name}: {why}")

    refuse.__name__ = refuse.__qualname__ = name
    refuse.__doc__ = f"Not in Shale (raises ShaleError): {why}"
    return refuse


_FLEXCACHE = (
    "Shale has no FlexCache volumes; each machine reading an object-store pool keeps its own read "
    "cache, filled on demand or ahead of time with prepopulate_flex_cache / shale cache warm"
)
_QTREE = "Shale has no qtrees; a directory that needs its own quota is a volume of its own (create_volume)"
_CIFS = (
    "Shale serves no SMB/CIFS shares; a volume is reached through a mount (mount_volume), "
    "the server's API (shale serve) or the Kubernetes CSI driver"
)
create_flexcache = _not_in_shale("create_flexcache", _FLEXCACHE)
list_flexcaches = _not_in_shale("list_flexcaches", _FLEXCACHE)
get_flexcache_origin = _not_in_shale("get_flexcache_origin", _FLEXCACHE)
update_flexcache = _not_in_shale("update_flexcache", _FLEXCACHE)
create_qtree = _not_in_shale("create_qtree", _QTREE)
list_qtrees = _not_in_shale("list_qtrees", _QTREE)
get_qtree = _not_in_shale("get_qtree", _QTREE)
get_qtree_metrics = _not_in_shale("get_qtree_metrics", _QTREE)
create_cifs_share = _not_in_shale("create_cifs_share", _CIFS)
list_cifs_shares = _not_in_shale("list_cifs_shares", _CIFS)
get_cifs_share = _not_in_shale("get_cifs_share", _CIFS)
