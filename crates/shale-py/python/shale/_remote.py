"""A pool through a `shale serve` server: the subset of NativePool's
methods the server's API offers, answering the same dicts and raising the
same exceptions. ``Pool("https://…", token=…)`` (or ``SHALE_SERVER`` and
``SHALE_TOKEN``) uses it."""

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Union

from . import _native
from ._native import ShaleError

# The server's error kinds, as this package's exceptions.
_KINDS = {
    "volume_not_found": _native.VolumeNotFoundError,
    "snapshot_not_found": _native.SnapshotNotFoundError,
    "name_exists": _native.NameExistsError,
    "invalid_name": _native.InvalidNameError,
    "quota_exceeded": _native.QuotaExceededError,
    "conflict": _native.ConflictError,
    "corrupt": _native.CorruptDataError,
}


def _seg(s: str) -> str:
    return urllib.parse.quote(s, safe="")


class RemotePool:
    """The pool behind server ``url``, reached with ``token``."""

    def __init__(self, url: str, token: Optional[str]) -> None:
        if not token:
            raise ShaleError(f"a pool on a server ({url}) needs a token: token=… or SHALE_TOKEN")
        self.path = url.rstrip("/")
        self._token = token
        self._context = None
        if os.environ.get("SHALE_CA_CERT"):
            self._context = ssl.create_default_context(cafile=os.environ["SHALE_CA_CERT"])

    def _call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        request = urllib.request.Request(
            f"{self.path}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=3600, context=self._context) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                answer = json.loads(e.read())
            except ValueError:
                answer = {}
            kind = _KINDS.get(answer.get("kind"), ShaleError)
            raise kind(answer.get("error") or f"the server answered {e.code}") from None
        except urllib.error.URLError as e:
            raise ShaleError(f"cannot reach the server {self.path}: {e.reason}") from None

    @staticmethod
    def _needs_pool(what: str) -> ShaleError:
        return ShaleError(f"{what} works on the pool itself, not through a server")

    # -- what the server offers -------------------------------------------------
    def list_volumes(self) -> List[Dict[str, Any]]:
        return self._call("GET", "/volumes")

    def volume_info(self, name: str) -> Dict[str, Any]:
        return self._call("GET", f"/volumes/{_seg(name)}")

    def create_volume(
        self,
        name: str,
        size: Union[int, str, None] = None,
        from_dir: Optional[str] = None,
        exclude: Optional[List[str]] = None,
        include: Optional[List[str]] = None,
    ):
        if from_dir is not None:
            raise self._needs_pool("creating a volume from a directory")
        if isinstance(size, str):
            size = _native.parse_size(size)
        return self._call("POST", "/volumes", {"name": name, "quota": size})

    def snapshot_series(self, volume: str, prefix=None, keep=None, keep_days=None):
        raise self._needs_pool("snapshot retention")

    def clone_volume(self, new: str, source: str) -> Dict[str, Any]:
        volume, _, snapshot = source.partition("@")
        return self._call("POST", f"/volumes/{_seg(volume)}/clone", {"name": new, "snapshot": snapshot or None})

    def delete_volume(self, name: str, keep_snapshots: bool = False) -> None:
        keep = "true" if keep_snapshots else "false"
        self._call("DELETE", f"/volumes/{_seg(name)}?keep_snapshots={keep}")

    def resize_volume(self, name: str, size: Union[int, str, None]) -> Dict[str, Any]:
        if isinstance(size, str):
            size = _native.parse_size(size)
        return self._call("PATCH", f"/volumes/{_seg(name)}", {"quota": size})

    def create_snapshot(self, volume: str, name: Optional[str] = None) -> Dict[str, Any]:
        return self._call("POST", f"/volumes/{_seg(volume)}/snapshots", {"name": name})

    def delete_snapshot(self, volume: str, name: str) -> None:
        self._call("DELETE", f"/volumes/{_seg(volume)}/snapshots/{_seg(name)}")

    def list_snapshots(self, volume: Optional[str] = None) -> List[Dict[str, Any]]:
        if volume is not None:
            return self._call("GET", f"/volumes/{_seg(volume)}/snapshots")
        # As the pool lists them: by volume, then age (kept snapshots of a
        # deleted volume too).
        every = self._call("GET", "/snapshots")
        return sorted(every, key=lambda s: (s["volume"], s["created"], s["name"]))

    def restore_snapshot(self, volume: str, name: str) -> Dict[str, Any]:
        return self._call("POST", f"/volumes/{_seg(volume)}/snapshots/{_seg(name)}/restore")

    def resolve(self, spec: str) -> Dict[str, Any]:
        volume, _, snapshot = spec.partition("@")
        if snapshot:
            return self._call("GET", f"/volumes/{_seg(volume)}/snapshots/{_seg(snapshot)}")
        return self.volume_info(volume)

    def lineage(self, spec: str) -> Dict[str, Any]:
        volume, _, snapshot = spec.partition("@")
        if snapshot:
            return self._call("GET", f"/volumes/{_seg(volume)}/snapshots/{_seg(snapshot)}/lineage")
        return self._call("GET", f"/volumes/{_seg(spec)}/lineage")

    def mounts(self) -> List[Dict[str, Any]]:
        return []  # nothing of a server's pool is mounted here

    def __getattr__(self, name: str) -> Any:
        # import_dir, export, runs, fix_permissions …
        def refuse(*_: Any, **__: Any) -> Any:
            raise self._needs_pool(name.replace("_", " "))

        return refuse
