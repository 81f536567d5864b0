"""The dashboard in headless Chromium (Debian's, driven by Playwright):
sign in with a token, see the volumes, take a snapshot from the page and
see it on the timeline, open the lineage of a run made by `shale run`;
no console errors; screenshots kept in target/test-artifacts."""

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import _free_port, needs_fuse

pytest.importorskip("playwright")
CHROMIUM = next((shutil.which(b) for b in ["chromium", "chromium-browser"] if shutil.which(b)), None)
pytestmark = [needs_fuse, pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (Debian's)")]
ARTIFACTS = Path(__file__).resolve().parents[3] / "target" / "test-artifacts"


def shale(pool, *args):
    done = subprocess.run([sys.executable, "-m", "shale", "--pool", str(pool), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def server(tmp_path, data_dir):
    pool = tmp_path / "pool"
    shale(pool, "pool", "init")
    shale(pool, "volume", "create", "imagenet", "--from", str(data_dir))
    shale(pool, "snapshot", "create", "imagenet", "v1")
    shale(pool, "gc")  # records the pool's totals: the history's first sample
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "new.txt").write_text("added after v1")
    shale(pool, "volume", "import", "imagenet", str(tmp_path / "extra"), "--to", "extra")
    shale(pool, "volume", "clone", "exp", "--from", "imagenet@v1")
    shale(pool, "-q", "run", "--dataset", "imagenet", "--model", "resnet", "--",
          "sh", "-c", 'ls "$SHALE_DATASET_PATH" > "$SHALE_MODEL_PATH/seen.txt"')
    token = json.loads(shale(pool, "--json", "token", "create", "--role", "admin"))["token"]
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "shale", "--pool", str(pool), "serve", "--listen",
                             f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    # The server samples the pool's totals as it starts: wait for that
    # sample, the history's second, before the page reads it.
    import urllib.request
    while True:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/pool/history",
                                     headers={"Authorization": f"Bearer {token}"})
        if len(json.load(urllib.request.urlopen(req))) >= 2:
            break
        assert time.monotonic() < deadline, "the server took no sample of the pool's totals"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", token, pool
    proc.terminate()
    proc.wait(30)


def test_the_dashboard_signs_in_snapshots_and_shows_lineage(server):
    from playwright.sync_api import expect, sync_playwright

    url, token, pool = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        # A wrong token is refused on the page.
        page.fill("#token", "shale_wrong")
        page.keyboard.press("Enter")
        expect(page.locator("#login-error")).to_contain_text("not valid here")
        page.fill("#token", token)
        page.keyboard.press("Enter")
        volumes = page.get_by_role("table")
        expect(volumes.get_by_role("link", name="imagenet")).to_be_visible()
        expect(volumes.get_by_role("link", name="resnet")).to_be_visible()
        expect(page.locator("#clone-tree")).to_contain_text("exp from imagenet@v1")
        expect(page.locator("#history")).to_contain_text("the 3 snapshots as plain copies")
        # gc's sample, then the server's at start (the pool has grown since)
        expect(page.locator("#ratios")).to_contain_text("2 samples")
        expect(page.locator("#ratios svg")).to_have_count(2)
        page.screenshot(path=str(ARTIFACTS / "dashboard-pool.png"), full_page=True)

        volumes.get_by_role("link", name="imagenet").click()
        page.fill("#snapshot-name", "from-the-page")
        page.get_by_role("button", name="Snapshot").click()
        expect(page.locator("#timeline")).to_contain_text("from-the-page")
        expect(page.locator("#snapshots")).to_contain_text("from-the-page")
        # What changed since v1, as the page shows it.
        page.select_option("#diff-a", "imagenet@v1")
        page.select_option("#diff-b", "imagenet")
        page.get_by_role("button", name="Compare").click()
        expect(page.locator("#diff")).to_contain_text("2 added, 0 removed")
        expect(page.locator("#diff")).to_contain_text("extra/new.txt")
        page.screenshot(path=str(ARTIFACTS / "dashboard-volume.png"), full_page=True)

        page.goto(url + "/#/volume/resnet")
        expect(page.locator("#lineage")).to_contain_text("run 1")
        expect(page.locator("#lineage")).to_contain_text("imagenet@run-1")
        expect(page.locator("#lineage")).to_contain_text("resnet@run-1")
        page.screenshot(path=str(ARTIFACTS / "dashboard-lineage.png"), full_page=True)

        # A verify job started from the page, its progress and result.
        page.get_by_role("link", name="Jobs").click()
        page.get_by_role("button", name="Verify the pool").click()
        expect(page.locator("#jobs")).to_contain_text("succeeded", timeout=30_000)
        expect(page.locator("#jobs")).to_contain_text("0 problems")
        page.screenshot(path=str(ARTIFACTS / "dashboard-jobs.png"), full_page=True)
        page.get_by_role("link", name="Mirrors").click()
        expect(page.get_by_text("No mirrors")).to_be_visible()
        # A mirror made through the API, updated from the page as a job.
        source = pool.parent / "source"
        shale(source, "pool", "init")
        shale(source, "volume", "create", "ds")
        shale(source, "snapshot", "create", "ds", "s1")
        import urllib.request
        made = urllib.request.urlopen(urllib.request.Request(
            url + "/api/v1/mirrors", method="POST",
            data=json.dumps({"volume": "ds-copy", "source": f"{source}::ds"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}))
        assert made.status == 201
        page.reload()
        expect(page.locator("#mirrors")).to_contain_text("ds-copy")
        page.locator("#mirrors tr", has_text="ds-copy").get_by_role("button", name="Update").click()
        expect(page.locator("#jobs")).to_contain_text("sent s1", timeout=30_000)

        # Tokens: one made on the page is shown once, listed, then revoked.
        page.get_by_role("link", name="Tokens").click()
        page.select_option("#token-role", "read")
        page.fill("#token-volume", "imagenet")
        page.fill("#token-note", "from the page")
        page.get_by_role("button", name="Create token").click()
        expect(page.locator("#new-token")).to_contain_text("shale_")
        expect(page.locator("#tokens")).to_contain_text("from the page")
        page.screenshot(path=str(ARTIFACTS / "dashboard-tokens.png"), full_page=True)
        page.on("dialog", lambda d: d.accept())
        page.locator("#tokens tr", has_text="from the page").get_by_role("button", name="Revoke").click()
        expect(page.locator("#tokens tr", has_text="from the page")).to_contain_text("revoked")
        browser.close()

    # The snapshot taken in the browser is in the pool, and in the audit log.
    snaps = json.loads(shale(pool, "--json", "snapshot", "list", "imagenet"))
    assert "from-the-page" in {s["name"] for s in snaps}
    made = [t for t in json.loads(shale(pool, "--json", "token", "list")) if t["note"] == "from the page"]
    assert len(made) == 1 and made[0]["volume"] == "imagenet" and made[0]["revoked"] is not None
    # Browsers log a failed fetch (the wrong token's 401) as a console error; nothing else.
    assert [e for e in errors if "401" not in e] == [], errors
