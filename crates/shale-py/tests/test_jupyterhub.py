"""shale.jupyterhub on a real JupyterHub: LocalProcessSpawner, the dummy
authenticator, configurable-http-proxy, and two real system users made for
the test. Each gets their own volume (cloned from a template snapshot),
sees the shared dataset read-only, cannot see the other's files, and
snapshots and restores their own volume through the hub-side service."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import shale
from conftest import _free_port, needs_fuse

pytest.importorskip("jupyterhub")
pytestmark = [
    needs_fuse,
    pytest.mark.skipif(shutil.which("configurable-http-proxy") is None,
                       reason="needs configurable-http-proxy (npm install -g configurable-http-proxy)"),
]

ANN, BOB, ADMIN = "shale-hub-ann", "shale-hub-bob", "shale-hub-admin"


class Hub:
    """A running JupyterHub and the REST calls the test makes to it."""

    def __init__(self, url: str, proc: subprocess.Popen, log: Path) -> None:
        self.url, self.proc, self.log = url, proc, log
        self.tokens = {}

    def call(self, path, method="GET", body=None, token=None, service=False):
        """Calls the Hub's API (or, with ``service``, ours) through the proxy;
        returns (status, parsed body)."""
        base = f"{self.url}/services/shale/api/" if service else f"{self.url}/hub/api/"
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"token {token}"
        req = urllib.request.Request(base + path, method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                text = r.read()
                return r.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text.decode(errors="replace")

    def shutdown(self) -> None:
        """Stops the hub, which stops every server (its hooks unmounting)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def login(self, user: str) -> str:
        """A token for ``user``, got the way a script logs in: username and
        password in the body of the token request."""
        status, answer = self.call(f"users/{user}/tokens", "POST",
                                   {"auth": {"username": user, "password": "anything"}})
        assert status == 201, (status, answer)
        self.tokens[user] = answer["token"]
        return answer["token"]

    def contents(self, user, path, method="GET", body=None, token=None):
        """The Jupyter Contents API of ``user``'s server, through the proxy."""
        req = urllib.request.Request(
            f"{self.url}/user/{user}/api/contents/{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {token or self.tokens[user]}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None

    def spawn(self, user: str) -> None:
        status, answer = self.call(f"users/{user}/server", "POST", token=self.tokens[user])
        assert status in (201, 202), (status, answer, self.log.read_text()[-3000:])
        self.wait(user, ready=True)

    def stop(self, user: str) -> None:
        status, answer = self.call(f"users/{user}/server", "DELETE", token=self.tokens[user])
        assert status in (202, 204), (status, answer)
        self.wait(user, ready=False)

    def wait(self, user: str, ready: bool) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            _, model = self.call(f"users/{user}", token=self.tokens[user])
            server = model["servers"].get("")
            if (server is not None and server["ready"]) == ready and (ready or server is None):
                return
            time.sleep(0.3)
        pytest.fail(f"{user}'s server never became {'ready' if ready else 'stopped'}:\n"
                    + self.log.read_text()[-4000:])


def text_file(text: str) -> dict:
    return {"type": "file", "format": "text", "content": text}


def read(hub: Hub, user: str, path: str) -> str:
    status, model = hub.contents(user, path)
    assert status == 200, (user, path, status)
    return model["content"]


def as_user(user: str, argv, env=None):
    """Runs ``argv`` as system user ``user``."""
    return subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *argv],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def users():
    """Two system users (home directories in a temporary directory)."""
    homes = Path(tempfile.mkdtemp(prefix="shale-hub-homes-"))
    homes.chmod(0o755)
    for u in (ANN, BOB):
        subprocess.run(["userdel", "-r", u], capture_output=True)
        subprocess.run(["useradd", "-m", "-d", str(homes / u), "-s", "/bin/sh", u], check=True)
    yield {u: Path(homes / u) for u in (ANN, BOB)}
    for u in (ANN, BOB):
        subprocess.run(["pkill", "-KILL", "-u", u], capture_output=True)
        subprocess.run(["userdel", "-r", u], capture_output=True)
    shutil.rmtree(homes, ignore_errors=True)


@pytest.fixture
def hub_dir():
    """A directory every user can reach (pytest's own is root's alone), with
    this test's Python environment bound into it so users can run it."""
    d = Path(tempfile.mkdtemp(prefix="shale-hub-"))
    d.chmod(0o755)
    py = d / "py"
    py.mkdir()
    subprocess.run(["mount", "--bind", sys.prefix, str(py)], check=True)
    yield d
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        at = line.split()[4]
        if at.startswith(str(d) + "/"):
            subprocess.run(["umount", "-l", at], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def hub(pool, tmp_path, users, hub_dir):
    """JupyterHub with shale.jupyterhub: template notebooks@v1 for new
    users, dataset mnist@v3 at data/ in every server."""
    src = tmp_path / "template"
    src.mkdir()
    (src / "README.md").write_text("# Start here\n")
    (src / "lessons").mkdir()
    (src / "lessons" / "one.py").write_text("print('one')\n")
    pool.create_volume("notebooks", from_dir=src).snapshot("v1")
    ds = tmp_path / "mnist"
    ds.mkdir()
    (ds / "train.csv").write_text("label,pixels\n7,0 0 1\n")
    pool.create_volume("mnist", from_dir=ds).snapshot("v3")

    port, hub_port, proxy_port, service_port = (_free_port() for _ in range(4))
    config = hub_dir / "jupyterhub_config.py"
    config.write_text(f"""
from shale.jupyterhub import configure
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.JupyterHub.db_url = "sqlite:///{hub_dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{hub_dir}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{"{ANN}", "{BOB}"}}
c.Authenticator.admin_users = {{"{ADMIN}"}}
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = ["{hub_dir}/py/bin/python", "-m", "jupyterhub.singleuser"]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
configure(c, pool="{pool.path}", mount_root="{hub_dir}/users", template="notebooks@v1",
          dataset="mnist@v3", service_port={service_port})
""")
    log = hub_dir / "hub.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=hub_dir,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    h = Hub(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 90
    while not up(h):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.3)
    yield h
    h.shutdown()
    print(log.read_text()[-3000:])


def up(hub: Hub) -> bool:
    try:
        return hub.call("")[0] == 200
    except urllib.error.URLError:
        return False


def server_env(user: str) -> dict:
    """The environment of ``user``'s running server (as its notebooks have)."""
    pid = subprocess.run(["pgrep", "-u", user, "-f", "jupyterhub.singleuser"],
                         capture_output=True, text=True).stdout.split()[0]
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in raw if b"=" in e)


def client(hub_dir: Path, user: str, code: str):
    """Runs shale.jupyterhub client code as ``user``, with their server's
    environment (its token and the service's address), as a notebook would."""
    env = server_env(user)
    done = as_user(user, [f"{hub_dir}/py/bin/python", "-c",
                          f"import json, shale.jupyterhub as h\nprint(json.dumps({code}))"], env=env)
    return done


def test_users_get_their_own_volumes_the_dataset_read_only_and_snapshots(pool, hub, hub_dir, users):
    for user in (ANN, BOB):
        hub.login(user)
        hub.spawn(user)
    hub.login(ADMIN)
    volumes = {v["name"] for v in pool.list_volumes()}
    assert {f"jupyterhub-{ANN}", f"jupyterhub-{BOB}"} <= volumes

    # Both start from the template; both see the dataset, read-only.
    for user in (ANN, BOB):
        status, listing = hub.contents(user, "")
        assert status == 200
        assert {e["name"] for e in listing["content"]} >= {"README.md", "lessons", "data"}
        assert read(hub, user, "README.md") == "# Start here\n"
        assert read(hub, user, "data/train.csv") == "label,pixels\n7,0 0 1\n"
        status, _ = hub.contents(user, "data/mine.txt", "PUT", text_file("no"))
        assert status >= 400, "the dataset took a write"
        # The template's files are the user's own: they can change them.
        status, _ = hub.contents(user, "lessons/one.py", "PUT", text_file(f"print('{user}')\n"))
        assert status in (200, 201)
    assert not (Path(hub_dir) / "users" / f"jupyterhub-{ANN}" / "data" / "mine.txt").exists()

    # Ann's files are hers: Bob sees none of them, through Jupyter or the system.
    assert hub.contents(ANN, "notes.txt", "PUT", text_file("ann's v1\n"))[0] == 201
    ann_home = Path(hub_dir) / "users" / f"jupyterhub-{ANN}"
    assert (ann_home / "notes.txt").stat().st_uid == users_uid(ANN)
    assert hub.contents(BOB, "notes.txt")[0] == 404
    assert hub.contents(ANN, "", token=hub.tokens[BOB])[0] in (403, 404)
    denied = as_user(BOB, ["ls", str(ann_home)])
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert as_user(ANN, ["cat", str(ann_home / "notes.txt")]).stdout == "ann's v1\n"

    # Ann snapshots from her server (its own token), changes, restores.
    done = client(hub_dir, ANN, "h.snapshot('before')")
    assert done.returncode == 0, done.stderr
    snap = json.loads(done.stdout)
    assert snap["name"] == "before" and snap["id"]
    hub.contents(ANN, "notes.txt", "PUT", text_file("ann's v2\n"))
    done = client(hub_dir, ANN, "h.restore('before')")
    assert done.returncode == 0, done.stderr
    assert read(hub, ANN, "notes.txt") == "ann's v1\n"
    assert read(hub, ANN, "data/train.csv").startswith("label")  # the dataset is back in place
    # Her snapshots are hers alone; a missing one is named.
    assert [s["name"] for s in json.loads(client(hub_dir, ANN, "h.snapshots()").stdout)] == ["before"]
    assert json.loads(client(hub_dir, BOB, "h.snapshots()").stdout) == []
    missing = client(hub_dir, BOB, "h.restore('before')")
    assert missing.returncode != 0 and "SnapshotNotFoundError" in missing.stderr

    # The service wants a user's token with access to it.
    assert hub.call("snapshots", service=True)[0] == 401
    assert hub.call("snapshots", token="not-a-token", service=True)[0] == 403
    # Snapshot everyone's volume: admins only.
    status, answer = hub.call("snapshot-all", "POST", {"name": "nightly"}, hub.tokens[ANN], service=True)
    assert status == 403 and "not a hub admin" in answer["error"]
    status, answer = hub.call("snapshot-all", "POST", {"name": "nightly"}, hub.tokens[ADMIN], service=True)
    assert status == 200, answer
    assert {a["volume"] for a in answer if "snapshot" in a} == {f"jupyterhub-{ANN}", f"jupyterhub-{BOB}"}

    # Stopping commits and unmounts; the next spawn finds the same volume.
    hub.stop(ANN)
    assert not any(m["mountpoint"].startswith(str(ann_home)) for m in pool.mountpoints())
    out = Path(tempfile.mkdtemp())
    pool.volume(f"jupyterhub-{ANN}").export(out / "ann")
    assert (out / "ann" / "notes.txt").read_text() == "ann's v1\n"
    assert (out / "ann" / "lessons" / "one.py").read_text() == f"print('{ANN}')\n"
    shutil.rmtree(out)
    hub.spawn(ANN)
    assert read(hub, ANN, "notes.txt") == "ann's v1\n"
    hub.contents(BOB, "late.txt", "PUT", text_file("saved just before the hub stopped\n"))

    # A hub shutting down stops every server: each volume is committed and unmounted.
    hub.shutdown()
    assert not any(m["mountpoint"].startswith(str(hub_dir)) for m in pool.mountpoints())
    out = Path(tempfile.mkdtemp())
    pool.volume(f"jupyterhub-{BOB}").export(out / "bob")
    assert (out / "bob" / "late.txt").read_text() == "saved just before the hub stopped\n"
    shutil.rmtree(out)


def users_uid(user: str) -> int:
    import pwd
    return pwd.getpwnam(user).pw_uid


def test_configure_checks_its_input(pool):
    from shale.jupyterhub import UserVolumes
    with pytest.raises(shale.ShaleError, match="name a snapshot"):
        UserVolumes(str(pool.path), "/srv/x", template="notebooks")
    with pytest.raises(shale.ShaleError, match="one visible directory name"):
        UserVolumes(str(pool.path), "/srv/x", dataset="d", dataset_dir="../etc")
    v = UserVolumes(str(pool.path), "/srv/x")
    assert v.volume_name("ann") == "jupyterhub-ann"
    odd = v.volume_name("ann@example.org")
    assert odd.startswith("jupyterhub-ann-example.org-") and odd != v.volume_name("ann#example.org")
