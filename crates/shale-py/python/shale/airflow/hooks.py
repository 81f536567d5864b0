"""The hook: a Shale pool named by an Airflow connection.

A ``shale`` connection (default id ``shale_default``) holds:

* ``host``: the pool — a directory, or ``s3://BUCKET/PREFIX``;
* ``login`` and ``password``: the object store's access key and secret;
* ``extra``: ``{"endpoint": URL, "region": NAME, "catalog_password": …,
  "no_instance_metadata": true}``; a PostgreSQL catalog is named by the
  pool itself (``pool.json``), so only its password is needed here.

For example, ``AIRFLOW_CONN_SHALE_DEFAULT='{"conn_type": "shale", "host":
"s3://ml-data/pool", "login": "…", "password": "…", "extra": {"endpoint":
"http://127.0.0.1:3900", "region": "garage"}}'``. Without a
``shale_default`` connection the hook uses the worker's default pool
(``$SHALE_POOL``, else the per-user default), as the CLI does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException


class ShaleHook(BaseHook):
    """Runs Shale operations on the pool of connection ``shale_conn_id``;
    each runs the ``shale`` command of this package, so a failure carries
    the command's own message."""

    conn_name_attr = "shale_conn_id"
    default_conn_name = "shale_default"
    conn_type = "shale"
    hook_name = "Shale"

    def __init__(self, shale_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.shale_conn_id = shale_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> Dict[str, Any]:
        """How the connection form names its fields."""
        return {
            "hidden_fields": ["schema", "port"],
            "relabeling": {"host": "Pool (directory or s3://BUCKET/PREFIX)", "login": "Access key",
                           "password": "Secret key"},
        }

    def environment(self) -> Dict[str, str]:
        """The variables the ``shale`` command reads, from the connection."""
        try:
            conn = self.get_connection(self.shale_conn_id)
        except AirflowNotFoundException:
            if self.shale_conn_id != self.default_conn_name:
                raise
            return {}
        extra = conn.extra_dejson
        env = {"SHALE_POOL": conn.host} if conn.host else {}
        pairs = {
            "AWS_ACCESS_KEY_ID": conn.login,
            "AWS_SECRET_ACCESS_KEY": conn.password,
            "AWS_ENDPOINT_URL": extra.get("endpoint"),
            "AWS_REGION": extra.get("region"),
            "PGPASSWORD": extra.get("catalog_password"),
            "SHALE_NO_INSTANCE_METADATA": "1" if extra.get("no_instance_metadata") else None,
        }
        env.update({k: str(v) for k, v in pairs.items() if v})
        return env

    def full_environment(self) -> Dict[str, str]:
        """This process's environment with the connection's variables."""
        return {**os.environ, **self.environment()}

    def run(self, args: Sequence[str], env: Optional[Dict[str, str]] = None) -> Any:
        """Runs ``shale --json ARGS``; returns its parsed output. A failure
        raises ``AirflowException`` with the command's message."""
        cmd = [sys.executable, "-m", "shale", "--json", *args]
        self.log.info("shale %s", " ".join(args))
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env={**self.full_environment(), **(env or {})})
        for line in done.stderr.splitlines():
            if line.strip():
                self.log.info("%s", line)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            message = lines[-1] if lines else f"shale exited with status {done.returncode}"
            raise AirflowException(message.removeprefix("shale: error: "))
        return json.loads(done.stdout) if done.stdout.strip() else None

    # -- operations -----------------------------------------------------------
    def snapshot(self, volume: str, name: Optional[str] = None) -> Dict[str, Any]:
        """Takes a snapshot; returns it (``name``, ``id``, bytes, files)."""
        return self.run(["snapshot", "create", volume, *([name] if name else [])])

    def snapshots(self, volume: str) -> List[Dict[str, Any]]:
        """A volume's snapshots, oldest first."""
        return self.run(["snapshot", "list", volume])

    def clone(self, source: str, new_volume: str) -> Dict[str, Any]:
        """Clones ``VOLUME[@SNAPSHOT]`` into a new volume; returns it."""
        return self.run(["volume", "clone", new_volume, "--from", source])

    def restore(self, volume: str, snapshot: str) -> Dict[str, Any]:
        """Puts a volume back to one of its snapshots."""
        return self.run(["snapshot", "restore", volume, snapshot])

    def delete(self, volume: str, snapshot: Optional[str] = None) -> None:
        """Deletes a snapshot, or a volume with its snapshots."""
        if snapshot:
            self.run(["snapshot", "delete", volume, snapshot])
        else:
            self.run(["volume", "delete", volume])

    def sync(
        self, source: str, destination: str, delete: bool = False, snapshot: Optional[str] = None
    ) -> Dict[str, Any]:
        """``shale sync SRC DST`` (directories, buckets, ``volume:NAME``);
        ``snapshot``: then snapshot the destination volume (``""``: by time)."""
        args = ["sync", source, destination]
        if delete:
            args.append("--delete")
        if snapshot is not None:
            args += ["--snapshot", snapshot] if snapshot else ["--snapshot"]
        return self.run(args)

    def ensure_volume(self, name: str) -> bool:
        """Creates volume ``name`` if there is none; True if it did."""
        if any(v["name"] == name for v in self.run(["volume", "list"])):
            return False
        self.run(["volume", "create", name])
        return True

    def mirror_update(self, mirror: str) -> Any:
        """Brings a mirror up to date with its source."""
        return self.run(["mirror", "update", mirror])
