"""JupyterLab workspaces, with the NetApp DataOps Toolkit's function names.

A workspace is a volume plus a JupyterLab server whose root directory is
that volume, mounted through Shale's FUSE mount (``shale workspace …``).
JupyterLab runs in this Python, so ``jupyterlab`` must be installed here.

Differences from the toolkit:

* ``restore_jupyter_lab_snapshot`` and ``list_jupyter_lab_snapshots`` take
  a ``workspace_name``: Shale's snapshot names are per volume.
* ``delete_jupyter_lab`` deletes the volume too unless ``keep_volume``.
* There is no namespace; ``pool`` chooses the pool.
"""

import json
from typing import Any, Dict, List, Optional, Sequence

from ._api import Pool, _cli, _say


def _ws(pool: Optional[Pool], args: Sequence[str]) -> Any:
    out = _cli(pool or Pool(), ["--json", "workspace", *args])
    return json.loads(out) if out.strip() else None


def _listen_args(port: Optional[int], token: Optional[str], data: Optional[Sequence[str]]) -> List[str]:
    args: List[str] = []
    if port is not None:
        args += ["--port", str(port)]
    if token is not None:
        args += ["--token", token]
    for d in data or []:
        args += ["--data", d]
    return args


def create_jupyter_lab(
    workspace_name: str,
    workspace_size: Optional[str] = None,
    port: Optional[int] = None,
    token: Optional[str] = None,
    data: Optional[Sequence[str]] = None,
    pool: Optional[Pool] = None,
    print_output: bool = False,
) -> str:
    """Creates a workspace (a volume of quota ``workspace_size``, e.g.
    ``"200GiB"``, mounted, with JupyterLab running on it); returns its URL
    with its token. ``data``: extra ``VOLUME[@SNAPSHOT]:/PATH[:rw]`` mounts."""
    args = ["create", workspace_name, *_listen_args(port, token, data)]
    if workspace_size:
        args += ["--size", workspace_size]
    url = _ws(pool, args)["url"]
    _say(print_output, f"Workspace created: {workspace_name} at {url}")
    return url


def clone_jupyter_lab(
    new_workspace_name: str,
    source_workspace_name: str,
    source_snapshot_name: Optional[str] = None,
    port: Optional[int] = None,
    token: Optional[str] = None,
    data: Optional[Sequence[str]] = None,
    pool: Optional[Pool] = None,
    print_output: bool = False,
) -> str:
    """A new running workspace from a workspace (its current files, or its
    snapshot ``source_snapshot_name``), in constant time; returns its URL."""
    source = source_workspace_name
    if source_snapshot_name:
        source += "@" + source_snapshot_name
    args = ["clone", new_workspace_name, "--from", source, *_listen_args(port, token, data)]
    url = _ws(pool, args)["url"]
    _say(print_output, f"Workspace cloned: {source} -> {new_workspace_name} at {url}")
    return url


def delete_jupyter_lab(
    workspace_name: str, keep_volume: bool = False, pool: Optional[Pool] = None, print_output: bool = False
) -> None:
    """Stops and deletes a workspace and, unless ``keep_volume``, its volume
    and snapshots."""
    args = ["delete", workspace_name, "--keep-volume" if keep_volume else "--yes"]
    _ws(pool, args)
    _say(print_output, f"Workspace deleted: {workspace_name}")


def list_jupyter_labs(pool: Optional[Pool] = None, print_output: bool = False) -> List[Dict[str, Any]]:
    """Every workspace: name, state (running, stopped, died), url, token
    (your own workspaces only), volume, size, snapshots, origin, owner."""
    out = _ws(pool, ["list"])
    if print_output:
        for w in out:
            print(f"{w['name']}\t{w['state']}\t{w['url'] or '-'}\t{w['origin'] or '-'}")
    return out


def create_jupyter_lab_snapshot(
    workspace_name: str, snapshot_name: Optional[str] = None, pool: Optional[Pool] = None, print_output: bool = False
) -> Dict[str, Any]:
    """Snapshots a workspace (running or not): every file saved before."""
    args = ["snapshot", workspace_name] + ([snapshot_name] if snapshot_name else [])
    snap = _ws(pool, args)
    _say(print_output, f"Snapshot created: {workspace_name}@{snap['name']} (id {snap['id']})")
    return snap


def list_jupyter_lab_snapshots(
    workspace_name: str, pool: Optional[Pool] = None, print_output: bool = False
) -> List[Dict[str, Any]]:
    """A workspace's snapshots."""
    out = _ws(pool, ["snapshots", workspace_name])
    if print_output:
        for s in out:
            print(f"{workspace_name}@{s['name']}\t{s['created']}\t{s['id']}")
    return out


def restore_jupyter_lab_snapshot(
    workspace_name: str, snapshot_name: str, pool: Optional[Pool] = None, print_output: bool = False
) -> Dict[str, Any]:
    """Puts a workspace back to a snapshot, discarding what changed since
    (a running one is stopped and started again, on the same URL)."""
    snap = _ws(pool, ["restore", workspace_name, snapshot_name, "--yes"])
    _say(print_output, f"Workspace restored: {workspace_name}@{snapshot_name}")
    return snap


def start_jupyter_lab(workspace_name: str, pool: Optional[Pool] = None, print_output: bool = False) -> str:
    """Starts a stopped workspace (or one whose server died); returns its URL."""
    url = _ws(pool, ["start", workspace_name])["url"]
    _say(print_output, f"Workspace started: {workspace_name} at {url}")
    return url


def stop_jupyter_lab(workspace_name: str, pool: Optional[Pool] = None, print_output: bool = False) -> None:
    """Stops a workspace's server and unmounts it, committing its files."""
    _ws(pool, ["stop", workspace_name])
    _say(print_output, f"Workspace stopped: {workspace_name}")
