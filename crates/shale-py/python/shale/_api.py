"""The Python API: pool, volume and dataset objects, and toolkit-style functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from . import _native
from ._native import ShaleError, VolumeNotFoundError

PathLike = Union[str, "os.PathLike[str]"]


def default_pool_path() -> Path:
    """The pool the ``shale`` command uses by default: ``$SHALE_POOL``, else
    ``$XDG_DATA_HOME/shale/pool``, else ``~/.local/share/shale/pool``."""
    if os.environ.get("SHALE_POOL"):
        return Path(os.environ["SHALE_POOL"])
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "shale" / "pool"


def _cli(pool: "Pool", args: Sequence[str]) -> str:
    """Runs the shale command (this package's own) on ``pool``; returns its
    stdout, raises ``ShaleError`` with its message if it fails."""
    env = None
    if pool.is_remote:
        cmd = [sys.executable, "-m", "shale", "--server", str(pool.path), *args]
        env = {**os.environ, "SHALE_TOKEN": pool._native._token}
    else:
        cmd = [sys.executable, "-m", "shale", "--pool", str(pool.path), *args]
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = [l for l in done.stderr.splitlines() if l.strip()]
        msg = lines[-1] if lines else f"shale exited with status {done.returncode}"
        raise ShaleError(msg.removeprefix("shale: error: "))
    return done.stdout


class Pool:
    """A Shale pool: a directory holding volumes, snapshots and their data.

    ``Pool()`` opens the default pool (see :func:`default_pool_path`),
    creating it if missing; ``Pool(path, create=False)`` refuses to create.
    ``Pool("https://host:8470", token=…)`` (or ``$SHALE_SERVER`` and
    ``$SHALE_TOKEN``) works through a ``shale serve`` server: volumes and
    snapshots, same dicts and exceptions; what needs the pool itself
    (import, export, mounts, runs) raises ``ShaleError`` saying so.
    """

    def __init__(self, path: Optional[PathLike] = None, create: bool = True, token: Optional[str] = None) -> None:
        where = str(path or os.environ.get("SHALE_SERVER") or default_pool_path())
        if where.startswith(("http://", "https://")):
            from ._remote import RemotePool

            self._native = RemotePool(where, token or os.environ.get("SHALE_TOKEN"))
        else:
            self._native = _native.NativePool(where, create)

    def __repr__(self) -> str:
        return f"shale.Pool({str(self.path)!r})"

    @property
    def is_remote(self) -> bool:
        """Whether this pool is reached through a server."""
        return not isinstance(self._native, _native.NativePool)

    @property
    def path(self) -> Union[Path, str]:
        """The pool directory, or its ``s3://`` URL for an object-store pool."""
        p = self._native.path
        return p if "://" in p else Path(p)

    def fix_permissions(self) -> Dict[str, int]:
        """Closes the pool's local files (or an object-store pool's cache) to
        everyone its description does not name, as ``shale pool
        fix-permissions`` does; safe while the pool is in use. Returns
        ``{"changed": N, "not_owned": M}``."""
        return self._native.fix_permissions()

    # -- volumes ---------------------------------------------------------
    def volume(self, name: str) -> "Volume":
        """An existing volume (``VolumeNotFoundError`` if there is none)."""
        self._native.volume_info(name)
        return Volume(self, name)

    def volumes(self) -> List["Volume"]:
        """Every volume."""
        return [Volume(self, v["name"]) for v in self._native.list_volumes()]

    def list_volumes(self) -> List[Dict[str, Any]]:
        """Every volume, described: name, bytes, files, origin, quota, snapshots…"""
        return self._native.list_volumes()

    def create_volume(
        self,
        name: str,
        from_dir: Optional[PathLike] = None,
        size: Optional[str] = None,
        exclude: Optional[Sequence[str]] = None,
        include: Optional[Sequence[str]] = None,
    ) -> "Volume":
        """Creates a volume, empty or holding a copy of ``from_dir``; ``size``
        is a quota such as ``"500GiB"``; ``exclude``/``include`` are
        gitignore-style patterns of ``from_dir`` paths to leave out (as
        ``shale volume create --exclude/--include``)."""
        src = None if from_dir is None else os.fspath(from_dir)
        if exclude or include:
            self._native.create_volume(name, size, src, list(exclude or []), list(include or []))
        else:
            self._native.create_volume(name, size, src)
        return Volume(self, name)

    # -- snapshots, lineage ------------------------------------------------
    def list_snapshots(self, volume: Optional[str] = None) -> List[Dict[str, Any]]:
        """Snapshots of one volume or of all: volume, name, id, bytes, files, created."""
        return self._native.list_snapshots(volume)

    def resolve(self, spec: str) -> Dict[str, Any]:
        """What ``VOLUME`` or ``VOLUME@SNAPSHOT`` names: its id, bytes and files."""
        return self._native.resolve(spec)

    def lineage(self, spec: str) -> Dict[str, Any]:
        """Where ``VOLUME[@SNAPSHOT]`` came from (clone origins, the runs that
        wrote it and what they read) and what was made from it."""
        return self._native.lineage(spec)

    def runs(self) -> List[Dict[str, Any]]:
        """Every recorded run, oldest first."""
        return self._native.runs()

    # -- mounts ----------------------------------------------------------
    def mountpoints(self) -> List[Dict[str, Any]]:
        """This pool's running mounts: ``{"pid", "mountpoint"}`` each."""
        return self._native.mounts()

    def root_mountpoint(self) -> Optional[Path]:
        """Where the whole pool is mounted (``shale mount DIR``), if anywhere."""
        for m in self.mountpoints():
            at = Path(m["mountpoint"])
            # A volume's root always answers `.snapshot`; the pool root does not.
            if at.is_dir() and not (at / ".snapshot").exists():
                return at
        return None

    def mount(
        self, mountpoint: PathLike, volume: Optional[str] = None, readonly: bool = False
    ) -> Path:
        """Mounts the pool, or one ``VOLUME[@SNAPSHOT]``, on an empty directory
        (created if missing); the mount runs in the background."""
        mp = Path(mountpoint)
        mp.mkdir(parents=True, exist_ok=True)
        args = ["-q", "mount", str(mp)]
        if volume:
            args += ["--volume", volume]
        if readonly:
            args.append("--read-only")
        _cli(self, args)
        return mp

    def unmount(self, mountpoint: PathLike) -> None:
        """Unmounts, once the mount has committed its last writes."""
        _cli(self, ["-q", "unmount", str(mountpoint)])


class Volume:
    """A volume of a pool (a dataset, a workspace, a model directory)."""

    def __init__(self, pool: Pool, name: str) -> None:
        self.pool = pool
        self.name = name

    def __repr__(self) -> str:
        return f"shale.Volume({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Volume) and (other.pool.path, other.name) == (self.pool.path, self.name)

    def __hash__(self) -> int:
        return hash((str(self.pool.path), self.name))

    def info(self) -> Dict[str, Any]:
        """Name, root id, bytes, files, clone origin, quota, snapshot count."""
        return self.pool._native.volume_info(self.name)

    def snapshot(self, name: Optional[str] = None) -> Dict[str, Any]:
        """Takes a snapshot (default name ``shale.YYYYMMDDhhmmss``); returns it,
        with its ``id``: the content hash that names exactly these bytes. A
        mount writing this volume is asked to commit first."""
        return self.pool._native.create_snapshot(self.name, name)

    def snapshots(self) -> List[Dict[str, Any]]:
        """This volume's snapshots."""
        return self.pool.list_snapshots(self.name)

    def snapshot_info(self, name: str) -> Dict[str, Any]:
        """One snapshot (``SnapshotNotFoundError`` if there is none)."""
        for s in self.snapshots():
            if s["name"] == name:
                return s
        self.pool.resolve(f"{self.name}@{name}")  # raises SnapshotNotFoundError
        raise ShaleError(f"no snapshot {self.name}@{name}")

    def delete_snapshot(self, name: str) -> None:
        """Deletes one snapshot."""
        self.pool._native.delete_snapshot(self.name, name)

    def clone(self, new: str, snapshot: Optional[str] = None) -> "Volume":
        """A new writable volume sharing all data with this one (its current
        state, or ``snapshot``), in constant time."""
        source = self.name if snapshot is None else f"{self.name}@{snapshot}"
        self.pool._native.clone_volume(new, source)
        return Volume(self.pool, new)

    def restore(self, snapshot: str) -> Dict[str, Any]:
        """Puts the volume back to ``snapshot`` (mounts see it at once)."""
        return self.pool._native.restore_snapshot(self.name, snapshot)

    def resize(self, size: Union[int, str, None]) -> Dict[str, Any]:
        """Sets the quota (bytes, or a size such as ``"500GiB"``; ``None``:
        no limit); a quota below what the volume holds is refused with
        ``QuotaExceededError``. Returns the volume, as :meth:`info`."""
        return self.pool._native.resize_volume(self.name, size)

    def delete(self, keep_snapshots: bool = False) -> None:
        """Deletes the volume and its snapshots (clones keep their data); with
        ``keep_snapshots``, the volume alone: its snapshots stay listable and
        clonable as ``NAME@SNAPSHOT`` until deleted."""
        self.pool._native.delete_volume(self.name, keep_snapshots)

    def import_dir(
        self,
        source: PathLike,
        to: Optional[str] = None,
        delete: bool = False,
        checksum: bool = False,
        exclude: Optional[Sequence[str]] = None,
        include: Optional[Sequence[str]] = None,
    ) -> Dict[str, Any]:
        """Copies directory ``source`` into the volume (at ``to`` inside it):
        only changed files are read; ``delete`` also removes what ``source``
        lacks. ``exclude``/``include`` are gitignore-style patterns of paths
        to leave out; what they leave out is neither copied nor deleted.
        Returns the import report."""
        return self.pool._native.import_dir(
            self.name, os.fspath(source), to, delete, checksum, list(exclude or []), list(include or [])
        )

    def export(
        self,
        dest: PathLike,
        snapshot: Optional[str] = None,
        path: Optional[str] = None,
        force: bool = False,
    ) -> Dict[str, Any]:
        """Writes the volume (or ``snapshot``; or only ``path`` inside it) out
        to directory ``dest``."""
        spec = self.name if snapshot is None else f"{self.name}@{snapshot}"
        return self.pool._native.export(spec, os.fspath(dest), path, force)

    def lineage(self, snapshot: Optional[str] = None) -> Dict[str, Any]:
        """See :meth:`Pool.lineage`."""
        return self.pool.lineage(self.name if snapshot is None else f"{self.name}@{snapshot}")

    @property
    def path(self) -> Path:
        """This volume's directory under the running pool-root mount
        (``shale mount DIR``); ``ShaleError`` if the pool is not mounted."""
        root = self.pool.root_mountpoint()
        if root is None:
            raise ShaleError(
                f"volume '{self.name}' has no path: the pool is not mounted (run `shale mount DIR` or Pool.mount)"
            )
        return root / self.name

    def mount(self, mountpoint: PathLike, snapshot: Optional[str] = None, readonly: bool = False) -> Path:
        """Mounts this volume (or one of its snapshots, read-only) alone."""
        spec = self.name if snapshot is None else f"{self.name}@{snapshot}"
        return self.pool.mount(mountpoint, volume=spec, readonly=readonly)


class Dataset:
    """A named dataset as a local directory, as the DataOps Toolkit's Dataset
    Manager gives: creates the volume if missing, and ``path`` is where it
    can be read and written — under the pool-root mount if one runs, else
    on its own mount at ``mountpoint`` (default ``~/shale-datasets/NAME``),
    made on first use."""

    def __init__(self, name: str, pool: Optional[Pool] = None, mountpoint: Optional[PathLike] = None) -> None:
        self.pool = pool or Pool()
        try:
            self.volume = self.pool.volume(name)
        except VolumeNotFoundError:
            self.volume = self.pool.create_volume(name)
        self.name = name
        self._mountpoint = Path(mountpoint) if mountpoint else Path.home() / "shale-datasets" / name
        self._own_mount = False

    def __repr__(self) -> str:
        return f"shale.Dataset({self.name!r})"

    @property
    def path(self) -> Path:
        """A local directory holding the dataset."""
        root = self.pool.root_mountpoint()
        if root is not None:
            return root / self.name
        for m in self.pool.mountpoints():
            if Path(m["mountpoint"]) == self._mountpoint:
                return self._mountpoint
        self.volume.mount(self._mountpoint)
        self._own_mount = True
        return self._mountpoint

    def snapshot(self, name: Optional[str] = None) -> Dict[str, Any]:
        """Snapshots the dataset; see :meth:`Volume.snapshot`."""
        return self.volume.snapshot(name)

    def close(self) -> None:
        """Unmounts the dataset's own mount, if this object made one."""
        if self._own_mount:
            self.pool.unmount(self._mountpoint)
            self._own_mount = False


def run(
    dataset: str,
    command: Sequence[str],
    model: Optional[str] = None,
    mlflow: bool = False,
    pool: Optional[Pool] = None,
    labels: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """``shale run``: runs ``command`` on a snapshot of ``dataset`` (mounted
    read-only at ``$SHALE_DATASET_PATH``), with ``model`` mounted read-write at
    ``$SHALE_MODEL_PATH`` and snapshotted after a successful exit; records
    the lineage, with ``labels`` (a pipeline's run id…). Returns the run
    record (``exit_code`` included)."""
    pool = pool or Pool()
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "run.json"
        args = ["-q", "run", "--dataset", dataset, "--summary", str(summary)]
        if model:
            args += ["--model", model]
        if mlflow:
            args.append("--mlflow")
        for key, value in (labels or {}).items():
            args += ["--label", f"{key}={value}"]
        cmd = [sys.executable, "-m", "shale", "--pool", str(pool.path), *args, "--", *command]
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL)
        if not summary.exists():
            raise ShaleError(f"shale run failed (status {done.returncode}); see its messages above")
        record = json.loads(summary.read_text())
    return record


def lineage(spec: str, pool: Optional[Pool] = None) -> Dict[str, Any]:
    """See :meth:`Pool.lineage`."""
    return (pool or Pool()).lineage(spec)


# -- DataOps Toolkit-style functions -------------------------------------


def _say(print_output: bool, msg: str) -> None:
    if print_output:
        print(msg)


#: Arguments of the DataOps Toolkit that only mean something on ONTAP
#: (clusters, SVMs, aggregates, junctions, export policies, FlexCache and
#: SnapMirror labels …). Given a value, they raise ``ShaleError`` naming
#: them; other unknown names raise ``TypeError`` as Python would.
ONTAP_ONLY = frozenset(
    {
        "cluster_name", "svm_name", "source_svm", "target_svm", "aggregate", "junction",
        "export_policy", "export_hosts", "guarantee_space", "volume_type", "tiering_policy",
        "vol_dp", "snaplock_type", "snapshot_policy", "split", "refresh", "svm_dr_unprotect",
        "snapmirror_label", "skip_owned", "mount_options", "lif_name", "delete_mirror",
        "delete_non_clone", "include_space_usage_details", "s3_extra_args", "schedule",
    }
)


def _ontap_only(function: str, given: Dict[str, Any]) -> None:
    for name, value in given.items():
        if name not in ONTAP_ONLY:
            raise TypeError(f"{function}() got an unexpected keyword argument '{name}'")
        if value not in (None, False, "", "default", "flexvol"):
            raise ShaleError(
                f"{function}: {name}={value!r} has no meaning for Shale (ONTAP only; a pool is "
                "chosen with pool= or $SHALE_POOL): see the README's DataOps Toolkit table"
            )


def _set_root(pool: "Pool", volume: str, unix_permissions: Any, unix_uid: Any, unix_gid: Any) -> None:
    """The toolkit's ``unix_permissions`` (octal, ``"0755"``), ``unix_uid``
    and ``unix_gid`` for a new volume's top directory."""
    if unix_permissions is None and unix_uid is None and unix_gid is None:
        return
    mode = int(str(unix_permissions), 8) if unix_permissions is not None else None
    uid = int(unix_uid) if unix_uid is not None else None
    gid = int(unix_gid) if unix_gid is not None else None
    pool._native.set_root(volume, mode, uid, gid)


def create_volume(
    volume_name: str,
    volume_size: Optional[str] = None,
    from_dir: Optional[PathLike] = None,
    mountpoint: Optional[PathLike] = None,
    readonly: bool = False,
    pool: Optional[Pool] = None,
    print_output: bool = False,
    unix_permissions: Optional[str] = None,
    unix_uid: Optional[Union[int, str]] = None,
    unix_gid: Optional[Union[int, str]] = None,
    **ontap: Any,
) -> Dict[str, Any]:
    """Creates a volume (quota ``volume_size``, e.g. ``"100GiB"``), optionally
    filled from ``from_dir`` and mounted at ``mountpoint``; its top
    directory gets ``unix_permissions`` (octal, ``"0755"``), ``unix_uid`` and
    ``unix_gid`` if given."""
    _ontap_only("create_volume", ontap)
    pool = pool or Pool()
    v = pool.create_volume(volume_name, from_dir=from_dir, size=volume_size)
    _set_root(pool, volume_name, unix_permissions, unix_uid, unix_gid)
    _say(print_output, f"Volume created: {volume_name}")
    if mountpoint:
        mount_volume(volume_name, mountpoint, readonly=readonly, pool=pool, print_output=print_output)
    return v.info()


def clone_volume(
    new_volume_name: str,
    source_volume_name: str,
    source_snapshot_name: Optional[str] = None,
    mountpoint: Optional[PathLike] = None,
    readonly: bool = False,
    pool: Optional[Pool] = None,
    print_output: bool = False,
    unix_uid: Optional[Union[int, str]] = None,
    unix_gid: Optional[Union[int, str]] = None,
    **ontap: Any,
) -> Dict[str, Any]:
    """Clones a volume (its current state, or ``source_snapshot_name``) in
    constant time; optionally mounts the clone, whose top directory gets
    ``unix_uid``/``unix_gid`` if given."""
    _ontap_only("clone_volume", ontap)
    pool = pool or Pool()
    v = pool.volume(source_volume_name).clone(new_volume_name, snapshot=source_snapshot_name)
    _set_root(pool, new_volume_name, None, unix_uid, unix_gid)
    _say(print_output, f"Volume cloned: {source_volume_name} -> {new_volume_name}")
    if mountpoint:
        mount_volume(new_volume_name, mountpoint, readonly=readonly, pool=pool, print_output=print_output)
    return v.info()


def resize_volume(
    volume_name: str,
    new_size: Union[int, str, None],
    pool: Optional[Pool] = None,
    print_output: bool = False,
    **ontap: Any,
) -> Dict[str, Any]:
    """Sets a volume's quota (``None``: no limit); see :meth:`Volume.resize`."""
    _ontap_only("resize_volume", ontap)
    v = (pool or Pool()).volume(volume_name).resize(new_size)
    _say(print_output, f"Volume resized: {volume_name}")
    return v


def delete_volume(
    volume_name: str,
    pool: Optional[Pool] = None,
    print_output: bool = False,
    keep_snapshots: bool = False,
    mountpoint: Optional[PathLike] = None,
    **ontap: Any,
) -> None:
    """Deletes a volume and its snapshots (with ``keep_snapshots``, the
    volume alone); unmounts ``mountpoint`` first if given."""
    _ontap_only("delete_volume", ontap)
    pool = pool or Pool()
    if mountpoint is not None:
        pool.unmount(mountpoint)
    pool.volume(volume_name).delete(keep_snapshots)
    _say(print_output, f"Volume deleted: {volume_name}")


def get_volume(volume_name: str, print_output: bool = False, pool: Optional[Pool] = None) -> Dict[str, Any]:
    """One volume, described (as in :func:`list_volumes`)."""
    info = (pool or Pool()).volume(volume_name).info()
    _say(print_output, f"{info['name']}\t{info['logical_bytes']} bytes\t{info['files']} files")
    return info


def list_volumes(
    pool: Optional[Pool] = None, print_output: bool = False, check_local_mounts: bool = False, **ontap: Any
) -> List[Dict[str, Any]]:
    """Every volume, as dicts (with ``local_mountpoint`` where the pool is
    mounted; always filled in, so ``check_local_mounts`` changes nothing)."""
    _ontap_only("list_volumes", ontap)
    pool = pool or Pool()
    root = pool.root_mountpoint()
    out = pool.list_volumes()
    for v in out:
        v["local_mountpoint"] = str(root / v["name"]) if root else None
    if print_output:
        for v in out:
            print(f"{v['name']}\t{v['logical_bytes']} bytes\t{v['files']} files\t{v['snapshots']} snapshots")
    return out


def create_snapshot(
    volume_name: str,
    snapshot_name: Optional[str] = None,
    pool: Optional[Pool] = None,
    print_output: bool = False,
    retention_count: int = 0,
    retention_days: bool = False,
    **ontap: Any,
) -> Dict[str, Any]:
    """Snapshots a volume; returns the snapshot with its content ``id``.

    With ``retention_count`` N > 0 (the DataOps Toolkit's retention), the
    snapshot is named ``SNAPSHOT_NAME.YYYYMMDDhhmmss`` (``shale.…`` without
    a name) and older snapshots of that series beyond the newest N are
    deleted, or with ``retention_days=True`` those older than N days; other
    snapshots, and any a clone, run or mirror depends on, are kept. The
    returned dict then also has ``deleted`` and ``kept`` (name and reason)."""
    _ontap_only("create_snapshot", ontap)
    pool = pool or Pool()
    if retention_count < 0:
        raise ValueError("retention_count must be 0 (no retention) or more")
    if retention_count == 0:
        snap = pool.volume(volume_name).snapshot(snapshot_name)
    else:
        keep, days = (None, retention_count) if retention_days else (retention_count, None)
        r = pool._native.snapshot_series(volume_name, snapshot_name, keep, days)
        snap = {**r["snapshot"], "deleted": r["pruned"]["deleted"], "kept": r["pruned"]["kept"]}
        for name in snap["deleted"]:
            _say(print_output, f"Snapshot deleted: {volume_name}@{name}")
    _say(print_output, f"Snapshot created: {volume_name}@{snap['name']} (id {snap['id']})")
    return snap


def delete_snapshot(
    volume_name: str, snapshot_name: str, pool: Optional[Pool] = None, print_output: bool = False, **ontap: Any
) -> None:
    """Deletes a snapshot."""
    _ontap_only("delete_snapshot", ontap)
    (pool or Pool()).volume(volume_name).delete_snapshot(snapshot_name)
    _say(print_output, f"Snapshot deleted: {volume_name}@{snapshot_name}")


def list_snapshots(
    volume_name: Optional[str] = None, pool: Optional[Pool] = None, print_output: bool = False, **ontap: Any
) -> List[Dict[str, Any]]:
    """Snapshots of one volume (or of all), as dicts."""
    _ontap_only("list_snapshots", ontap)
    out = (pool or Pool()).list_snapshots(volume_name)
    if print_output:
        for s in out:
            print(f"{s['volume']}@{s['name']}\t{s['created']}\t{s['id']}")
    return out


def restore_snapshot(
    volume_name: str, snapshot_name: str, pool: Optional[Pool] = None, print_output: bool = False, **ontap: Any
) -> Dict[str, Any]:
    """Puts a volume back to one of its snapshots."""
    _ontap_only("restore_snapshot", ontap)
    snap = (pool or Pool()).volume(volume_name).restore(snapshot_name)
    _say(print_output, f"Snapshot restored: {volume_name}@{snapshot_name}")
    return snap


def mount_volume(
    volume_name: str,
    mountpoint: PathLike,
    readonly: bool = False,
    pool: Optional[Pool] = None,
    print_output: bool = False,
    **ontap: Any,
) -> str:
    """Mounts a volume (``NAME`` or ``NAME@SNAPSHOT``) at ``mountpoint``."""
    _ontap_only("mount_volume", ontap)
    mp = (pool or Pool()).mount(mountpoint, volume=volume_name, readonly=readonly)
    _say(print_output, f"Volume mounted: {volume_name} at {mp}")
    return str(mp)


def unmount_volume(mountpoint: PathLike, pool: Optional[Pool] = None, print_output: bool = False) -> None:
    """Unmounts a mount made by ``mount_volume`` (after its last commit)."""
    (pool or Pool()).unmount(mountpoint)
    _say(print_output, f"Volume unmounted: {mountpoint}")
