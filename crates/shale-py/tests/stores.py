"""A real Garage (S3) and a real PostgreSQL on 127.0.0.1 for the Python
suite's object-store runs, as the Rust suite's tests/common has them: each
started in a fresh temporary directory, stopped when done. Without the
binaries, ``garage_binary()``/``postgres_bin()`` are None and the tests that
need them say so (``.ci/run`` installs both)."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional

KEY_ID = "GK5ba1e0f4a8c3b2d1e0f9a8b7"
SECRET = "6a0c9f3e2b1d4c5a6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5"
BUCKET = "shale-test"
RPC_SECRET = "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def garage_binary() -> Optional[str]:
    """The garage binary on PATH or in ~/.cargo/bin."""
    cargo = Path.home() / ".cargo" / "bin" / "garage"
    return shutil.which("garage") or (str(cargo) if cargo.is_file() else None)


def postgres_bin() -> Optional[Path]:
    """The directory holding initdb and postgres (PATH, else Debian's)."""
    candidates = [Path(d) for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    versions = Path("/usr/lib/postgresql")
    if versions.is_dir():
        candidates += sorted((v / "bin" for v in versions.iterdir()), reverse=True)
    found = next((d for d in candidates if (d / "initdb").is_file() and (d / "postgres").is_file()), None)
    # Resolve links (/usr/local/bin/initdb -> …/15/bin/initdb) to find pg_isready beside them.
    return found and (found / "initdb").resolve().parent


class Garage:
    """A one-node Garage with bucket ``shale-test`` and one key."""

    def __init__(self) -> None:
        binary = garage_binary()
        assert binary, "garage is not installed"
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="shale-garage-"))
        rpc, s3, admin = _port(), _port(), _port()
        self.config = self.dir / "garage.toml"
        self.config.write_text(
            f'metadata_dir = "{self.dir}/meta"\ndata_dir = "{self.dir}/data"\ndb_engine = "sqlite"\n'
            f'replication_factor = 1\nrpc_bind_addr = "127.0.0.1:{rpc}"\nrpc_public_addr = "127.0.0.1:{rpc}"\n'
            f'rpc_secret = "{RPC_SECRET}"\n\n[s3_api]\ns3_region = "garage"\napi_bind_addr = "127.0.0.1:{s3}"\n\n'
            f'[admin]\napi_bind_addr = "127.0.0.1:{admin}"\n'
        )
        self.endpoint = f"http://127.0.0.1:{s3}"
        log = open(self.dir / "garage.log", "wb")
        self.proc = subprocess.Popen([binary, "-c", str(self.config), "server"], stdout=log, stderr=log)
        try:
            self._set_up()
        except BaseException:
            self.stop()
            raise

    def _cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, "-c", str(self.config), *args], capture_output=True, text=True)

    def _step(self, *args: str) -> str:
        """Runs a garage command, retried while a young node is not ready."""
        for _ in range(40):
            done = self._cli(*args)
            if done.returncode == 0:
                return done.stdout
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"garage {args}: {done.stderr}\n{(self.dir / 'garage.log').read_text()[-2000:]}")

    def _set_up(self) -> None:
        node = self._step("node", "id", "-q").strip().split("@")[0]
        self._step("layout", "assign", "-z", "dc1", "-c", "1G", node)
        self._step("layout", "apply", "--version", "1")
        self._step("bucket", "create", BUCKET)
        self._step("key", "import", "--yes", "-n", "shale-test", KEY_ID, SECRET)
        self._step("bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_ID)

    def env(self) -> Dict[str, str]:
        """What a client of this store needs."""
        return {
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "garage",
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Postgres:
    """A fresh PostgreSQL cluster (user ``shale``, trust auth), run as the
    ``postgres`` user when root, since PostgreSQL refuses root."""

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        assert bin_dir, "PostgreSQL is not installed"
        self.dir = Path(tempfile.mkdtemp(prefix="shale-pg-"))
        user = None
        if os.geteuid() == 0:
            user = "postgres" if subprocess.run(["id", "postgres"], capture_output=True).returncode == 0 else "nobody"
            shutil.chown(self.dir, user)
        as_user = ["runuser", "-u", user, "--"] if user else []
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(self.dir / "data"), "-A", "trust",
                        "-U", "shale", "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
        self.port = _port()
        self.url = f"postgres://shale@127.0.0.1:{self.port}/postgres"
        log = self.dir / "postgres.log"
        log.touch()
        if user:
            shutil.chown(log, user)
        self.proc = subprocess.Popen(
            [*as_user, str(bin_dir / "postgres"), "-D", str(self.dir / "data"), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}", "-c", "fsync=off"],
            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        ready = [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"]
        while subprocess.run(ready).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
