"""The hub-managed service through which users snapshot and restore their
own volume (``python -m shale.jupyterhub.service``, started by the hub as
``shale.jupyterhub.configure`` sets up).

It runs as the hub's user, who can open the pool; a request names no
volume: the caller's token says whose it is. Only a token in the
``Authorization`` header is taken (no cookies, so no cross-site requests),
and it must carry ``access:services!service=NAME``.

    GET    api/volume              the caller's volume
    GET    api/snapshots           its snapshots
    POST   api/snapshots           {"name": optional}: snapshot it
    DELETE api/snapshots/NAME      delete one
    POST   api/restore             {"snapshot": NAME}: put it back
    POST   api/snapshot-all        {"name": optional}: every user's (admins)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any, Callable, Dict, Optional
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth
from tornado import httpserver, web

from .._native import ShaleError
from . import SETTINGS_ENV
from .volumes import UserVolumes

# HTTP status for each failure a request can meet.
_STATUS = {
    "VolumeNotFoundError": 404,
    "SnapshotNotFoundError": 404,
    "InvalidNameError": 400,
    "NameExistsError": 409,
    "QuotaExceededError": 507,
    "ConflictError": 409,
}


class _Handler(web.RequestHandler):
    """Authenticates every request and answers JSON."""

    def initialize(self, volumes: UserVolumes, auth: HubAuth) -> None:
        self.volumes = volumes
        self.auth = auth
        self.user: Dict[str, Any] = {}

    async def prepare(self) -> None:
        match = self.auth.auth_header_pat.match(self.request.headers.get("Authorization", ""))
        if not match:
            raise web.HTTPError(401, "send your JupyterHub token: Authorization: token …")
        model = await self.auth.user_for_token(match.group(1), sync=False)
        if not model:
            raise web.HTTPError(403, "the hub does not know this token")
        if model.get("kind") != "user":
            raise web.HTTPError(403, f"{model.get('kind')} {model.get('name')} has no volume: use a user's token")
        if not self.auth.check_scopes(self.auth.access_scopes, model):
            raise web.HTTPError(403, f"user {model['name']}'s token may not use this service")
        self.user = model

    def body(self) -> Dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except ValueError:
            raise web.HTTPError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return data

    async def answer(self, work: Callable[..., Any], *args: Any) -> None:
        """Runs a pool operation off the event loop; writes its result."""
        try:
            result = await asyncio.to_thread(work, *args)
        except ShaleError as e:
            kind = type(e).__name__
            self.set_status(_STATUS.get(kind, 500 if kind == "CorruptDataError" else 400))
            self.finish({"error": str(e), "type": kind})
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(result))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        message = getattr(error, "log_message", None) or self._reason
        self.finish({"error": message, "type": "ShaleError"})


class VolumeHandler(_Handler):
    async def get(self) -> None:
        name = self.volumes.volume_name(self.user["name"])
        await self.answer(lambda: self.volumes.pool().volume(name).info())


class SnapshotsHandler(_Handler):
    async def get(self) -> None:
        await self.answer(self.volumes.snapshots, self.user["name"])

    async def post(self) -> None:
        await self.answer(self.volumes.snapshot, self.user["name"], _name(self.body(), "name"))


class SnapshotHandler(_Handler):
    async def delete(self, snapshot: str) -> None:
        await self.answer(self.volumes.delete_snapshot, self.user["name"], snapshot)


class RestoreHandler(_Handler):
    async def post(self) -> None:
        snapshot = _name(self.body(), "snapshot")
        if snapshot is None:
            raise web.HTTPError(400, 'name the snapshot: {"snapshot": NAME}')
        await self.answer(self.volumes.restore, self.user["name"], snapshot)


class SnapshotAllHandler(_Handler):
    async def post(self) -> None:
        if not self.auth.check_scopes({"admin:servers"}, self.user):
            raise web.HTTPError(403, f"user {self.user['name']} is not a hub admin")
        await self.answer(self.volumes.snapshot_all, _name(self.body(), "name"))


def _name(body: Dict[str, Any], key: str) -> Optional[str]:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise web.HTTPError(400, f"{key!r} must be a string")
    return value


def make_app(volumes: UserVolumes, auth: HubAuth, prefix: str) -> web.Application:
    """The service's routes under ``prefix`` (``/services/NAME/``)."""
    api = prefix.rstrip("/") + "/api/"
    args = {"volumes": volumes, "auth": auth}
    return web.Application(
        [
            (api + "volume", VolumeHandler, args),
            (api + "snapshots", SnapshotsHandler, args),
            (api + r"snapshots/([^/]+)", SnapshotHandler, args),
            (api + "restore", RestoreHandler, args),
            (api + "snapshot-all", SnapshotAllHandler, args),
        ]
    )


def main() -> None:
    """Serves on the address the hub gave ($JUPYTERHUB_SERVICE_URL)."""
    settings = os.environ.get(SETTINGS_ENV)
    url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if not settings or not url:
        sys.exit(f"shale.jupyterhub.service: run by JupyterHub (${SETTINGS_ENV} or $JUPYTERHUB_SERVICE_URL unset)")
    volumes = UserVolumes(**json.loads(settings))
    try:
        volumes.pool()  # fail now, clearly, if the pool cannot be opened
    except ShaleError as e:
        sys.exit(f"shale.jupyterhub.service: {e}")
    asyncio.run(_serve(volumes, urlparse(url), os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")))


async def _serve(volumes: UserVolumes, address: Any, prefix: str) -> None:
    """Serves until the hub stops it (SIGTERM or SIGINT); requests under way
    finish first."""
    server = httpserver.HTTPServer(make_app(volumes, HubAuth(), prefix))
    server.listen(address.port or 80, address.hostname or "127.0.0.1")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    await server.close_all_connections()


if __name__ == "__main__":
    main()
