"""Each JupyterHub user's volume: made on first spawn, mounted while their
server runs, with the shared dataset mounted read-only inside it."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .._api import Pool
from .._native import ShaleError, VolumeNotFoundError

_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

# How long a stopping server's last processes get to let go of its mounts.
_UNMOUNT_PATIENCE = 30.0


class UserVolumes:
    """The per-user volumes of one hub.

    ``pool``: the pool's path (or ``s3://`` URL); ``mount_root``: where the
    users' volumes are mounted (``MOUNT_ROOT/VOLUME``, each the user's
    notebook directory); ``prefix``: what users' volume names start with;
    ``template``: ``VOLUME@SNAPSHOT`` cloned for a new user (else an empty
    volume); ``dataset``: ``VOLUME[@SNAPSHOT]`` mounted read-only at
    ``dataset_dir`` inside every user's directory; ``size``: a new volume's
    quota (``"50GiB"``).
    """

    def __init__(
        self,
        pool: str,
        mount_root: str,
        prefix: str = "jupyterhub-",
        template: Optional[str] = None,
        dataset: Optional[str] = None,
        dataset_dir: str = "data",
        size: Optional[str] = None,
    ) -> None:
        if not prefix or not _VALID.fullmatch(prefix + "x"):
            raise ShaleError(f"volume prefix {prefix!r}: use letters, digits, '_', '-', '.'; start with a letter")
        if template is not None and "@" not in template:
            raise ShaleError(f"template {template!r}: name a snapshot (VOLUME@SNAPSHOT), so new users all start alike")
        if "/" in dataset_dir or dataset_dir in ("", ".", "..") or dataset_dir.startswith("."):
            raise ShaleError(f"dataset_dir {dataset_dir!r}: give one visible directory name, such as 'data'")
        self.pool_path = str(pool)
        self.mount_root = Path(mount_root)
        self.prefix = prefix
        self.template = template
        self.dataset = dataset
        self.dataset_dir = dataset_dir
        self.size = size

    def settings(self) -> Dict[str, Any]:
        """What the hub-side service needs to find the same volumes."""
        return {
            "pool": self.pool_path,
            "mount_root": str(self.mount_root),
            "prefix": self.prefix,
            "template": self.template,
            "dataset": self.dataset,
            "dataset_dir": self.dataset_dir,
            "size": self.size,
        }

    def pool(self) -> Pool:
        """The pool (never created here: a hub needs an existing one)."""
        return Pool(self.pool_path, create=False)

    # -- names and places -------------------------------------------------
    def volume_name(self, user: str) -> str:
        """The volume of hub user ``user``: ``PREFIX + user``, or, for a
        user name a volume name cannot hold, its letters and a hash."""
        name = self.prefix + user
        if _VALID.fullmatch(name):
            return name
        digest = hashlib.sha256(user.encode()).hexdigest()[:12]
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", user)[: 127 - len(self.prefix) - 13]
        return f"{self.prefix}{safe}-{digest}"

    def mountpoint(self, user: str) -> Path:
        """Where the user's volume is mounted: their notebook directory."""
        return self.mount_root / self.volume_name(user)

    def dataset_mountpoint(self, user: str) -> Path:
        """Where the shared dataset appears in the user's directory."""
        return self.mountpoint(user) / self.dataset_dir

    def user_volumes(self) -> List[str]:
        """Every volume of this hub's users (named with the prefix)."""
        return sorted(v["name"] for v in self.pool().list_volumes() if v["name"].startswith(self.prefix))

    # -- spawn and stop ---------------------------------------------------
    def prepare(self, user: str, owner: Optional[Tuple[int, int]] = None) -> Path:
        """Makes the user's volume if they have none (cloned from the
        template, or empty), mounts it, and mounts the dataset read-only in
        it; returns the notebook directory. ``owner`` (uid, gid): who a new
        volume's files are given to. Undoes what it did if a step fails."""
        pool = self.pool()
        volume = self.volume_name(user)
        created = self._ensure_volume(pool, volume)
        mounted: List[Path] = []
        try:
            home = self.mountpoint(user)
            if self._mount(pool, home, volume, read_only=False):
                mounted.append(home)
            if created and owner is not None:
                _give(home, owner)
            if self.dataset:
                data = self.dataset_mountpoint(user)
                if data.exists() and not data.is_dir():
                    raise ShaleError(f"cannot show the dataset at {data}: a file of that name is there")
                if self._mount(pool, data, self.dataset, read_only=True):
                    mounted.append(data)
            return home
        except BaseException:
            for m in reversed(mounted):
                _unmount(pool, m, patience=5.0)
            if created:
                pool.volume(volume).delete()
            raise

    def release(self, user: str) -> None:
        """Unmounts the user's dataset and volume, committing their files.
        A mount a process still uses stays (committed), for the next spawn."""
        pool = self.pool()
        for m in (self.dataset_mountpoint(user), self.mountpoint(user)):
            if _is_mounted(pool, m):
                _unmount(pool, m, patience=_UNMOUNT_PATIENCE)

    def _ensure_volume(self, pool: Pool, volume: str) -> bool:
        try:
            pool.volume(volume)
            return False
        except VolumeNotFoundError:
            pass
        if self.template:
            source, _, snap = self.template.partition("@")
            pool.volume(source).clone(volume, snap)
            if self.size:
                pool.volume(volume).resize(self.size)
        else:
            pool.create_volume(volume, size=self.size)
        return True

    def _mount(self, pool: Pool, at: Path, spec: str, read_only: bool) -> bool:
        """Mounts ``spec`` at ``at`` unless it already is; True if it mounted."""
        if _is_mounted(pool, at):
            return False
        if not self.mount_root.exists():
            self.mount_root.mkdir(parents=True)
            self.mount_root.chmod(0o755)  # users reach their own directory through it
        pool.mount(at, volume=spec, readonly=read_only)
        return True

    # -- snapshots (for the service) ---------------------------------------
    def snapshot(self, user: str, name: Optional[str] = None) -> Dict[str, Any]:
        """Snapshots the user's volume (its running server's saved files)."""
        return self.pool().volume(self.volume_name(user)).snapshot(name)

    def snapshots(self, user: str) -> List[Dict[str, Any]]:
        """The user's snapshots."""
        return self.pool().volume(self.volume_name(user)).snapshots()

    def delete_snapshot(self, user: str, name: str) -> None:
        """Deletes one of the user's snapshots."""
        self.pool().volume(self.volume_name(user)).delete_snapshot(name)

    def restore(self, user: str, snapshot: str) -> Dict[str, Any]:
        """Puts the user's volume back to ``snapshot``; their running server
        sees it at once. The dataset mount inside it is lifted for the
        moment the volume changes under it, then put back."""
        pool = self.pool()
        volume = pool.volume(self.volume_name(user))
        volume.snapshot_info(snapshot)  # SnapshotNotFoundError before anything changes
        data = self.dataset_mountpoint(user)
        lifted = bool(self.dataset) and _is_mounted(pool, data)
        if lifted:
            try:
                _unmount(pool, data, patience=5.0)
            except ShaleError:
                raise ShaleError(
                    f"{self.dataset_dir}/ is in use (a kernel reading it?): stop what reads it, then restore again"
                ) from None
        try:
            return volume.restore(snapshot)
        finally:
            if lifted:
                self._mount(pool, data, self.dataset or "", read_only=True)

    def snapshot_all(self, name: Optional[str] = None) -> List[Dict[str, Any]]:
        """Snapshots every user's volume; one entry per volume, with the
        snapshot or the error that stopped it (the others still go on)."""
        done = []
        for volume in self.user_volumes():
            try:
                snap = self.pool().volume(volume).snapshot(name)
                done.append({"volume": volume, "snapshot": snap})
            except ShaleError as e:
                done.append({"volume": volume, "error": str(e)})
        return done


def _is_mounted(pool: Pool, at: Path) -> bool:
    target = os.path.abspath(at)
    return any(os.path.abspath(m["mountpoint"]) == target for m in pool.mountpoints())


def _unmount(pool: Pool, at: Path, patience: float) -> None:
    """Unmounts, waiting up to ``patience`` seconds for processes to let go."""
    deadline = time.monotonic() + patience
    while True:
        try:
            pool.unmount(at)
            return
        except ShaleError as e:
            if "still using it" not in str(e) or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def _give(home: Path, owner: Tuple[int, int]) -> None:
    """Gives a new volume's files (a template's) to their user, and closes
    the volume's root to everyone else."""
    uid, gid = owner
    for root, dirs, files in os.walk(home):
        for entry in dirs + files:
            os.lchown(os.path.join(root, entry), uid, gid)
    os.chown(home, uid, gid)
    os.chmod(home, 0o700)
