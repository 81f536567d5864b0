#!/usr/bin/env python3
"""Walks a dataset tree the ways data loaders do, and prints
"<seconds> <files>".

    walk.py find DIR            # find(1), its output counted as `find | wc -l` does
    walk.py oswalk DIR          # os.walk: every file's path
    walk.py imagefolder DIR     # torchvision ImageFolder's scan (its logic, no torch)
    walk.py stat DIR            # os.scandir + stat of every file
    walk.py snapshot POOL SPEC  # shale.torch's file list straight from the tree
    walk.py snapshot-groups POOL SPEC  # the same, shuffling: each file's pack too
    walk.py import-snapshot POOL SPEC  # `import shale.torch`, then the file list

The snapshot walks time opening the pool and listing, after the module is
loaded (a cost paid once per process, whatever the tree: its own walk,
import-snapshot, times both).
"""

import os
import subprocess
import sys
import time

# torchvision.datasets.folder.IMG_EXTENSIONS
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def find(root):
    with subprocess.Popen(["find", root], stdout=subprocess.PIPE) as p:
        lines = sum(block.count(b"\n") for block in iter(lambda: p.stdout.read(1 << 20), b""))
    if p.returncode:
        sys.exit(f"find {root} failed ({p.returncode})")
    return lines


def oswalk(root):
    return sum(len(names) for _, _, names in os.walk(root))


def imagefolder(root):
    """What ImageFolder does before its first item: find_classes (one
    scandir of the root) and make_dataset (os.walk of each class, names
    sorted, extension checked); it stats nothing."""
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    samples = []
    for index, name in enumerate(classes):
        for d, _, names in sorted(os.walk(os.path.join(root, name), followlinks=True)):
            for n in sorted(names):
                if n.lower().endswith(IMG_EXTENSIONS):
                    samples.append((os.path.join(d, n), index))
    return len(samples)


def stat_walk(root):
    count, stack = 0, [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    e.stat(follow_symlinks=False)
                    count += 1
    return count


def snapshot(pool, spec, shuffle=False):
    import shale
    from shale.torch import SnapshotFiles

    return len(SnapshotFiles(spec, pool=shale.Pool(pool, create=False), shuffle=shuffle))


def snapshot_groups(pool, spec):
    return snapshot(pool, spec, shuffle=True)


def import_snapshot(pool, spec):
    return snapshot(pool, spec)


# Walks whose module is loaded before the clock starts.
PRELOADED = {snapshot, snapshot_groups}


def main():
    kind, args = sys.argv[1], sys.argv[2:]
    walks = {"find": find, "oswalk": oswalk, "imagefolder": imagefolder, "stat": stat_walk, "snapshot": snapshot,
             "snapshot-groups": snapshot_groups, "import-snapshot": import_snapshot}
    if kind not in walks:
        sys.exit(f"unknown walk {kind}; one of {', '.join(walks)}")
    if walks[kind] in PRELOADED:
        import shale.torch  # noqa: F401
    start = time.perf_counter()
    files = walks[kind](*args)
    print(f"{time.perf_counter() - start:.3f} {files}")


if __name__ == "__main__":
    main()
