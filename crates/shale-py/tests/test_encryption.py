"""An encrypted pool through the Python package (issue 33): the key comes
from SHALE_KEY_FILE (or SHALE_PASSPHRASE), as for the CLI."""

import json
import os
import subprocess
import sys

import pytest

import shale
from shale.torch import SnapshotFiles


def test_an_encrypted_pool_reads_and_writes_given_its_key(tmp_path, data_dir, monkeypatch):
    key = tmp_path / "pool.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    path = tmp_path / "pool"
    subprocess.run(
        [sys.executable, "-m", "shale", "--pool", str(path), "--key-file", str(key), "-q", "pool", "init", "--encrypt"],
        check=True,
    )
    monkeypatch.delenv("SHALE_KEY_FILE", raising=False)
    monkeypatch.delenv("SHALE_PASSPHRASE", raising=False)
    with pytest.raises(shale.ShaleError, match="is encrypted: give its key"):
        shale.Pool(path, create=False)

    monkeypatch.setenv("SHALE_KEY_FILE", str(key))
    pool = shale.Pool(path, create=False)
    info = subprocess.run([sys.executable, "-m", "shale", "--pool", str(path), "--json", "pool", "info"],
                          check=True, capture_output=True, text=True).stdout
    assert json.loads(info)["encryption"].startswith("encrypted (AES-256-GCM")
    vol = pool.create_volume("ds", from_dir=data_dir)
    vol.snapshot("s1")
    files = SnapshotFiles("ds@s1", pool=pool)
    got = {p: files.read(i) for i, p in enumerate(files.paths)}
    assert got == {"a.txt": b"alpha\n", "sub/b.bin": (data_dir / "sub" / "b.bin").read_bytes()}
    vol.export(tmp_path / "out")
    assert (tmp_path / "out" / "sub" / "b.bin").read_bytes() == got["sub/b.bin"]

    # the packs hold none of it in the clear
    secret = got["sub/b.bin"][100_000:100_032]
    for root, _, names in os.walk(path / "packs"):
        for n in names:
            assert secret not in open(os.path.join(root, n), "rb").read()
