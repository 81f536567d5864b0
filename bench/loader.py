#!/usr/bin/env python3
"""Reads every file of a dataset once, with N reader threads, the way a
data loader does, and prints files per second.

    loader.py files DIR N          # open/read each file under DIR (native or a mount)
    loader.py snapshot POOL SPEC N # shale.torch's SnapshotFiles: no mount
"""

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def listing(root):
    out = []
    for d, _, names in os.walk(root):
        out.extend(os.path.join(d, n) for n in names)
    return out


def main():
    kind = sys.argv[1]
    start = time.perf_counter()
    if kind == "files":
        root, n = sys.argv[2], int(sys.argv[3])
        paths = listing(root)

        def read(p):
            with open(p, "rb") as f:
                return len(f.read())

        items = paths
    else:
        import shale
        from shale.torch import SnapshotFiles

        pool, spec, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        files = SnapshotFiles(spec, pool=shale.Pool(pool, create=False))
        read = lambda i: len(files.read(i))  # noqa: E731
        items = range(len(files))
    with ThreadPoolExecutor(n) as ex:
        total = sum(ex.map(read, items, chunksize=16))
    secs = time.perf_counter() - start
    print(f"{len(items) / secs:.0f} {total}")


if __name__ == "__main__":
    main()
