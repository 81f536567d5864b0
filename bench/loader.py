#!/usr/bin/env python3
"""Reads every file of a dataset once, with N reader threads, the way a
data loader's workers do, and prints files per second.

    loader.py files DIR N          # open/read each file under DIR (native or a mount)
    loader.py snapshot POOL SPEC N # shale.torch's SnapshotFiles: no mount

Both split the work alike: reader w reads `shale.torch.worker_runs` of the
list (runs of up to 64 consecutive files, dealt out in turn, as DataLoader
workers read whole batches), native in os.walk's order, shale.torch in the
snapshot's.
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
    if kind == "files":
        from shale.torch import worker_runs  # imported before timing: native uses only the split

        root, n = sys.argv[2], int(sys.argv[3])
        start = time.perf_counter()
        paths = listing(root)

        def read_one(p):
            with open(p, "rb") as f:
                return len(f.read())

        count = len(paths)
        parts = [worker_runs(paths, w, n) for w in range(n)]
    else:
        start = time.perf_counter()
        import shale
        from shale.torch import SnapshotFiles

        pool, spec, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        files = SnapshotFiles(spec, pool=shale.Pool(pool, create=False))
        read_one = lambda i: len(files.read(i))  # noqa: E731
        count = len(files)
        parts = [files.indices(w, n) for w in range(n)]
    with ThreadPoolExecutor(n) as ex:
        total = sum(ex.map(lambda part: sum(map(read_one, part)), parts))
    secs = time.perf_counter() - start
    print(f"{count / secs:.0f} {total}")


if __name__ == "__main__":
    main()
