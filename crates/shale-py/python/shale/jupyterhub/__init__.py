"""Per-user Shale volumes in JupyterHub.

In ``jupyterhub_config.py`` (the hub runs as root, with a spawner that runs
each user's server as their own system user, such as LocalProcessSpawner)::

    from shale.jupyterhub import configure
    configure(c, pool="/srv/shale/pool",
              template="notebooks@v1",      # new users start from this snapshot (else empty)
              dataset="imagenet@v3")        # read-only at data/ in every user's server

Each user's server then runs on their own volume (``jupyterhub-NAME``,
mounted at ``/srv/shale/users/jupyterhub-NAME``, theirs alone), made on
their first spawn; stopping the server unmounts it, committing every file.

Users cannot open an owner-only pool, so a small hub-managed service
(``shale.jupyterhub.service``) does snapshots for them: from a notebook,
:func:`snapshot`, :func:`snapshots`, :func:`restore` and
:func:`delete_snapshot` act on the caller's own volume, and an admin's
:func:`snapshot_all` snapshots every user's volume in one call.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import sys
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from .. import _native
from .._native import ShaleError
from .volumes import UserVolumes

__all__ = [
    "UserVolumes",
    "configure",
    "delete_snapshot",
    "restore",
    "snapshot",
    "snapshot_all",
    "snapshots",
    "volume",
]

#: The environment variable that tells a user's server where the service is.
SERVICE_URL_ENV = "SHALE_JUPYTERHUB_URL"
#: The environment variable that carries the service's settings.
SETTINGS_ENV = "SHALE_JUPYTERHUB_SETTINGS"
# The scopes a server's $JUPYTERHUB_API_TOKEN has by default (JupyterHub's
# `server` role), to which configure adds access to the service.
_SERVER_ROLE_SCOPES = ["users:activity!user", "access:servers!server"]


def configure(
    c: Any,
    pool: str,
    *,
    mount_root: str = "/srv/shale/users",
    template: Optional[str] = None,
    dataset: Optional[str] = None,
    dataset_dir: str = "data",
    volume_prefix: str = "jupyterhub-",
    volume_size: Optional[str] = None,
    service_port: int = 8472,
    service_name: str = "shale",
) -> UserVolumes:
    """Sets up a JupyterHub config ``c``: spawn and stop hooks that mount each
    user's volume as their notebook directory, and the snapshot service on
    127.0.0.1:``service_port``. Call it after your own settings of
    ``load_roles``, ``services``, ``Spawner.environment`` and
    ``Spawner.server_token_scopes``: it adds to them."""
    volumes = UserVolumes(pool, mount_root, volume_prefix, template, dataset, dataset_dir, volume_size)
    c.Spawner.pre_spawn_hook = _pre_spawn_hook(volumes)
    c.Spawner.post_stop_hook = _post_stop_hook(volumes)

    url = f"http://127.0.0.1:{service_port}"
    passed = {k: v for k, v in os.environ.items() if k.startswith(("SHALE_", "AWS_"))}
    c.JupyterHub.services.append(
        {
            "name": service_name,
            "url": url,
            "command": [sys.executable, "-m", "shale.jupyterhub.service"],
            "environment": {**passed, SETTINGS_ENV: json.dumps(volumes.settings())},
            "display": False,
        }
    )
    scope = f"access:services!service={service_name}"
    _grant_users(c, scope)
    _add_server_token_scope(c, scope)
    c.Spawner.environment.update({SERVICE_URL_ENV: f"{url}/services/{service_name}/"})
    return volumes


def _grant_users(c: Any, scope: str) -> None:
    """Adds ``scope`` to the `user` role every hub user has."""
    roles = c.JupyterHub.load_roles
    for role in roles if isinstance(roles, list) else []:
        if role.get("name") == "user":
            role.setdefault("scopes", ["self"]).append(scope)
            return
    roles.append({"name": "user", "scopes": ["self", scope]})


def _add_server_token_scope(c: Any, scope: str) -> None:
    """Lets each server's own token ($JUPYTERHUB_API_TOKEN) reach the service."""
    if "server_token_scopes" not in c.Spawner:
        c.Spawner.server_token_scopes = [*_SERVER_ROLE_SCOPES, scope]
    elif callable(c.Spawner.server_token_scopes):
        theirs = c.Spawner.server_token_scopes
        c.Spawner.server_token_scopes = lambda spawner: [*theirs(spawner), scope]
    else:
        c.Spawner.server_token_scopes = [*c.Spawner.server_token_scopes, scope]


def _system_owner(user: str) -> Optional[Tuple[int, int]]:
    """The uid and gid of the system user a root hub runs ``user``'s server
    as (LocalProcessSpawner's rule: the same name); None when there is none
    or the hub is not root (its spawner then runs every server as itself)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _pre_spawn_hook(volumes: UserVolumes) -> Any:
    async def hook(spawner: Any) -> None:
        name = spawner.user.name
        home = await asyncio.to_thread(volumes.prepare, name, _system_owner(name))
        spawner.notebook_dir = str(home)
        spawner.log.info("shale: %s's server runs on volume %s at %s", name, volumes.volume_name(name), home)

    return hook


def _post_stop_hook(volumes: UserVolumes) -> Any:
    async def hook(spawner: Any) -> None:
        name = spawner.user.name
        try:
            await asyncio.to_thread(volumes.release, name)
        except ShaleError as e:
            spawner.log.error("shale: %s's volume %s stays mounted: %s", name, volumes.volume_name(name), e)
            raise

    return hook


# -- in a user's server: their own volume, through the service ---------------
def _call(method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
    base = os.environ.get(SERVICE_URL_ENV)
    token = os.environ.get("JUPYTERHUB_API_TOKEN")
    if not base or not token:
        raise ShaleError(
            f"not in a JupyterHub server set up by shale.jupyterhub.configure "
            f"(${SERVICE_URL_ENV} or $JUPYTERHUB_API_TOKEN is not set)"
        )
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base.rstrip("/") + "/api/" + path,
        data=data,
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            text = response.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        raise _error(e) from None
    except urllib.error.URLError as e:
        raise ShaleError(f"cannot reach the Shale service at {base}: {e.reason}") from None


def _error(e: "urllib.error.HTTPError") -> ShaleError:
    try:
        answer = json.loads(e.read())
    except ValueError:
        answer = {}
    kind = getattr(_native, str(answer.get("type")), ShaleError)
    if not (isinstance(kind, type) and issubclass(kind, ShaleError)):
        kind = ShaleError
    return kind(answer.get("error") or f"the Shale service answered {e.code} {e.reason}")


def volume() -> Dict[str, Any]:
    """Your volume: name, bytes, files, quota, snapshot count."""
    return _call("GET", "volume")


def snapshot(name: Optional[str] = None) -> Dict[str, Any]:
    """Snapshots your volume (every file saved before the call); returns the
    snapshot with its content ``id``."""
    return _call("POST", "snapshots", {"name": name})


def snapshots() -> List[Dict[str, Any]]:
    """Your volume's snapshots."""
    return _call("GET", "snapshots")


def restore(snapshot: str) -> Dict[str, Any]:
    """Puts your volume back to ``snapshot``, discarding what changed since;
    your server sees it at once (reload open notebooks)."""
    return _call("POST", "restore", {"snapshot": snapshot})


def delete_snapshot(name: str) -> None:
    """Deletes one of your snapshots."""
    _call("DELETE", "snapshots/" + urllib.request.quote(name, safe=""))


def snapshot_all(name: Optional[str] = None) -> List[Dict[str, Any]]:
    """Hub admins only: snapshots every user's volume; one entry per volume
    (``{"volume", "snapshot"}``, or ``{"volume", "error"}``)."""
    return _call("POST", "snapshot-all", {"name": name})
