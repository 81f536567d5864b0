"""`shale sync` from a bucket holding keys that cannot be local names
(`a//b`, `../x`, `./x`, a leading `/`, a 300-byte segment, a control
character, directory markers) next to good ones (unicode, spaces, 1,024-byte
keys): the good objects arrive, each odd key is named in the report, nothing
is written outside the destination. The bucket is a real Garage, seeded with
botocore's signer over plain http.client, so that no client normalises a
key on the way in."""

import http.client
import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from stores import BUCKET, KEY_ID, SECRET, Garage, garage_binary

pytestmark = pytest.mark.skipif(garage_binary() is None, reason="needs garage (cargo install garage)")

LONG = "/".join(["k" * 250] * 4)  # 4 segments: a 1,004-byte name under odd/ (1,008 bytes)
GOOD = {
    "odd/good.txt": b"good\n",
    "odd/sub/deep.txt": b"deep\n",
    "odd/donn\u00e9es/\u00e9t\u00e9.txt": b"unicode\n",
    "odd/with space/f 1.txt": b"spaces\n",
    f"odd/{LONG}": b"long key\n",
}
ODD = {
    "odd/a//b.txt": "invalid local name (an empty segment)",
    "odd/../x": "invalid local name (a . or .. segment)",
    "odd/./y": "invalid local name (a . or .. segment)",
    "odd//z": "invalid local name (a leading /)",
    f"odd/{'s' * 300}": "invalid local name (a segment over 255 bytes)",
    "odd/ctl\x01.txt": "a control character in the key (the object client cannot address it)",
    "odd/dir/": "a directory marker (stores keep no directories)",
}


def put(garage: Garage, key: str, body: bytes) -> None:
    """PUT one object with exactly this key (percent-encoded, no dot-segment
    removal), signed with SigV4."""
    host = urllib.parse.urlsplit(garage.endpoint).netloc
    path = f"/{BUCKET}/" + urllib.parse.quote(key, safe="/")
    req = AWSRequest(method="PUT", url=f"{garage.endpoint}{path}", data=body)
    S3SigV4Auth(Credentials(KEY_ID, SECRET), "s3", "garage").add_auth(req)
    conn = http.client.HTTPConnection(host)
    conn.request("PUT", path, body=body, headers=dict(req.headers.items()))
    resp = conn.getresponse()
    assert resp.status == 200, (key, resp.status, resp.read())
    conn.close()


@pytest.fixture(scope="module")
def seeded():
    g = Garage()
    try:
        for k, v in GOOD.items():
            put(g, k, v)
        for k in ODD:
            put(g, k, b"odd\n")
        yield g
    finally:
        g.stop()


def shale(garage: Garage, pool: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **garage.env()}
    return subprocess.run(
        [sys.executable, "-m", "shale", "--pool", str(pool), "--json", *args],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
    )


def files_under(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_odd_keys_are_skipped_by_name_and_the_rest_syncs(seeded, tmp_path):
    work = tmp_path / "work"
    dst = work / "dst"
    done = shale(seeded, tmp_path / "pool", "sync", f"s3://{BUCKET}/odd", str(dst))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert files_under(dst) == {k.removeprefix("odd/"): v for k, v in GOOD.items()}
    assert report["copied"] == len(GOOD)
    skipped = {s["path"]: s["reason"] for s in report["skipped"]}
    assert skipped == {k.removeprefix("odd/"): why for k, why in ODD.items()}
    # nothing escaped: the work directory holds the destination only
    assert sorted(p.name for p in work.iterdir()) == ["dst"]
    assert not (tmp_path / "x").exists()

    # --strict: the same sync (nothing left to copy) exits 1, naming the count
    strict = shale(seeded, tmp_path / "pool", "sync", "--strict", f"s3://{BUCKET}/odd", str(dst))
    assert strict.returncode == 1
    assert f"{len(ODD)} entries skipped" in strict.stderr


def test_odd_keys_into_a_volume_and_from_the_bucket_root(seeded, tmp_path):
    pool = tmp_path / "pool"
    assert shale(seeded, pool, "pool", "init").returncode == 0
    assert shale(seeded, pool, "volume", "create", "v").returncode == 0
    done = shale(seeded, pool, "sync", f"s3://{BUCKET}/odd", "volume:v")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["skipped"]) == len(ODD)
    out = tmp_path / "out"
    assert shale(seeded, pool, "volume", "export", "v", str(out)).returncode == 0
    assert files_under(out) == {k.removeprefix("odd/"): v for k, v in GOOD.items()}
    # the whole bucket: the same keys, named from the root
    root = shale(seeded, pool, "sync", f"s3://{BUCKET}", str(tmp_path / "all"))
    assert root.returncode == 0, root.stderr
    assert set(files_under(tmp_path / "all")) == set(GOOD)
    assert {s["path"] for s in json.loads(root.stdout)["skipped"]} == set(ODD)
