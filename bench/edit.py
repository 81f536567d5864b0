#!/usr/bin/env python3
"""In-place edits of large files through a mount (issue 31): a checkpoint,
a database or a Parquet file changed in a few places.

For each file size, a file of random bytes is put in a volume, the volume
is mounted, and edits of 4 KiB, 64 KiB and 1 MiB are made at random
offsets, four of each, each written with `pwrite`, `fsync`'d and then
committed (`shale snapshot create`). Measured, beside the same edits of the
same file on the native file system (ext4 here):

  first write   the first 64 KiB `pwrite` after the mount (page cache
                dropped before it): what a program waits for before its
                first write returns
  write+fsync   each edit's `pwrite` and `fsync` (median of four)
  commit        `shale snapshot create` after each edit (median of four)
  growth        the pool's stored bytes after the four edits and commits
                over the bytes changed

With --old OLD_SHALE, another build (e.g. the last landed commit's) runs
the same edits, taking turns with this one.

Needs root (drop_caches) and fuse3.

    cargo build --release -p shale-cli
    bench/edit.py [--sizes-mib 64,1024] [--old OLD_SHALE]

Writes bench/results/EDIT.md.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EDITS = [4 << 10, 64 << 10, 1 << 20]
PER_SIZE = 4


def settle():
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def random_file(path, size):
    rng = random.Random(size)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(rng.randbytes(n))
            left -= n


def offsets(size, seed):
    rng = random.Random(seed)
    return [rng.randrange(0, size - (1 << 20)) for _ in range(len(EDITS) * PER_SIZE)]


def timed_write(path, data, at, sync):
    fd = os.open(path, os.O_WRONLY)
    try:
        t = time.perf_counter()
        os.pwrite(fd, data, at)
        if sync:
            os.fsync(fd)
        return time.perf_counter() - t
    finally:
        os.close(fd)


class Shale:
    """One build of shale with a pool holding the file, mounted."""

    def __init__(self, exe, work, src):
        self.exe, self.work = exe, work
        self.pool, self.mnt = work / "pool", work / "mnt"
        subprocess.run(["rm", "-rf", str(work)], check=True)
        self.mnt.mkdir(parents=True)
        self.run("pool", "init")
        self.run("volume", "create", "v", "--from", str(src))

    def run(self, *args):
        return subprocess.run(
            [self.exe, "-q", "--pool", str(self.pool), *args],
            check=True, capture_output=True, text=True,
        ).stdout

    def stored(self):
        out = subprocess.run(
            [self.exe, "--json", "--pool", str(self.pool), "pool", "info"],
            check=True, capture_output=True, text=True,
        ).stdout
        return json.loads(out)["stored_bytes"]

    def mount(self):
        self.run("mount", str(self.mnt), "--volume", "v", "--commit-interval", "3600")

    def unmount(self):
        self.run("unmount", str(self.mnt))

    def commit(self, name):
        t = time.perf_counter()
        self.run("snapshot", "create", "v", name)
        return time.perf_counter() - t


def measure_shale(exe, work, src, name, size):
    """Times and growth of the edits on one build."""
    s = Shale(exe, work, src)
    path = s.mnt / name
    rng = random.Random(7)
    at = offsets(size, 1)
    s.mount()
    try:
        settle()
        out = {"first": timed_write(path, rng.randbytes(64 << 10), at[0], False)}
        s.commit("first")
        for e, edit in enumerate(EDITS):
            before = s.stored()
            writes, commits = [], []
            for i in range(PER_SIZE):
                k = e * PER_SIZE + i
                writes.append(timed_write(path, rng.randbytes(edit), at[k], True))
                commits.append(s.commit(f"e{k}"))
            out[edit] = {
                "write": statistics.median(writes),
                "commit": statistics.median(commits),
                "growth": (s.stored() - before) / (edit * PER_SIZE),
            }
    finally:
        s.unmount()
    s.run("verify")
    subprocess.run(["rm", "-rf", str(work)], check=True)
    return out


def measure_native(work, src, name, size):
    """The same edits on the native file system."""
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    path = work / name
    subprocess.run(["cp", str(src / name), str(path)], check=True)
    rng = random.Random(7)
    at = offsets(size, 1)
    settle()
    out = {"first": timed_write(path, rng.randbytes(64 << 10), at[0], False)}
    for e, edit in enumerate(EDITS):
        writes = [
            timed_write(path, rng.randbytes(edit), at[e * PER_SIZE + i], True)
            for i in range(PER_SIZE)
        ]
        out[edit] = {"write": statistics.median(writes)}
    subprocess.run(["rm", "-rf", str(work)], check=True)
    return out


def kib(n):
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def ms(t):
    return f"{t * 1000:.1f} ms"


def table(sizes, results, old):
    builds = ["new"] + (["old"] if old else [])
    head = "| file | measure | ext4 | shale |" + (" shale before |" if old else "")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for size in sizes:
        r = results[size]
        f = kib(size)
        cells = " | ".join(ms(r[b]["first"]) for b in builds)
        rows.append(f"| {f} | first 64 KiB write after the mount (cold) | {ms(r['native']['first'])} | {cells} |")
        for edit in EDITS:
            cells = " | ".join(ms(r[b][edit]["write"]) for b in builds)
            rows.append(f"| {f} | {kib(edit)} write + fsync, median of {PER_SIZE} | {ms(r['native'][edit]['write'])} | {cells} |")
            cells = " | ".join(ms(r[b][edit]["commit"]) for b in builds)
            rows.append(f"| {f} | commit (snapshot create) after a {kib(edit)} edit, median | — | {cells} |")
            cells = " | ".join(f"{r[b][edit]['growth']:.2f}x" for b in builds)
            rows.append(f"| {f} | pool growth / bytes changed, {PER_SIZE} edits of {kib(edit)} | — | {cells} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes-mib", default="64,1024")
    ap.add_argument("--old")
    args = ap.parse_args()
    root = HERE.parent
    new = os.environ.get("SHALE_BIN_DIR", str(root / "target/release")) + "/shale"
    for exe in [new] + ([args.old] if args.old else []):
        if not os.access(exe, os.X_OK):
            sys.exit(f"missing {exe}: cargo build --release -p shale-cli")
    work = Path(os.environ.get("BENCH_WORK", "/tmp/shale-edit-bench"))
    sizes = [int(s) << 20 for s in args.sizes_mib.split(",")]
    results = {}
    for size in sizes:
        src = work / "src"
        subprocess.run(["rm", "-rf", str(src)], check=True)
        src.mkdir(parents=True)
        name = f"model-{size >> 20}m.bin"
        random_file(src / name, size)
        r = {"native": measure_native(work / "native", src, name, size)}
        r["new"] = measure_shale(new, work / "shale", src, name, size)
        if args.old:
            r["old"] = measure_shale(args.old, work / "shale", src, name, size)
        results[size] = r
        print(f"{kib(size)} done", file=sys.stderr)
    subprocess.run(["rm", "-rf", str(work)], check=True)
    text = (
        "# In-place edits of large files through a mount\n\n"
        f"`bench/edit.py`, run on {time.strftime('%Y-%m-%d', time.gmtime())}, "
        f"{os.cpu_count()} cores; native = ext4 on the same disk; "
        "pool at its default chunk size (128 KiB average)."
        + (" \"shale before\" is the build given as --old." if args.old else "")
        + "\n\n" + table(sizes, results, args.old) + "\n"
    )
    (HERE / "results" / "EDIT.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
