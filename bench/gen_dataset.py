#!/usr/bin/env python3
"""Make an ImageNet-like tree for Shale's benchmarks.

    gen_dataset.py images OUT [--files 20000] [--per-class 200] [--seed 1] [--fixed-size BYTES]
    gen_dataset.py checkpoints OUT [--count 4] [--size-mib 64]
    gen_dataset.py mutate OUT [--fraction 0.01] [--seed 2] [--what both|images|checkpoints]
    gen_dataset.py flat OUT [--files 1000000]
    gen_dataset.py tree OUT [--files 200000]

`images`: class directories (n01440764, …) of files with log-normal sizes
around 110 KB of incompressible bytes: 20,000 files is about 2.1 GB.
`checkpoints`: a few large files, to be edited in place by `mutate`.
`mutate`: rewrites the given fraction of files (new random bytes, same
size) and edits each checkpoint in place (a few 64 KiB spans).
`flat`: one directory with many tiny files, for the big-directory test.
`tree`: many small files (0–4 KiB, a tenth of them empty, mixed
extensions) in directories of 100 under 100 top directories, for scans.
Everything is deterministic for a given seed.
"""

import argparse
import math
import os
import random
import sys


def rand_bytes(rng, n):
    return rng.randbytes(n)


def images(args):
    rng = random.Random(args.seed)
    mean = 110_000
    sigma = 0.6
    mu = math.log(mean) - sigma * sigma / 2
    classes = max(1, args.files // args.per_class)
    made = 0
    total = 0
    for c in range(classes):
        wnid = f"n{1440764 + c * 997:08d}"
        d = os.path.join(args.out, "train", wnid)
        os.makedirs(d, exist_ok=True)
        count = args.per_class if c < classes - 1 else args.files - made
        for i in range(count):
            size = args.fixed_size or max(1024, int(rng.lognormvariate(mu, sigma)))
            with open(os.path.join(d, f"{wnid}_{i:05d}.JPEG"), "wb") as f:
                f.write(rand_bytes(rng, size))
            total += size
        made += count
    print(f"{made} files, {total} bytes in {classes} classes under {args.out}")


def checkpoints(args):
    rng = random.Random(args.seed)
    d = os.path.join(args.out, "checkpoints")
    os.makedirs(d, exist_ok=True)
    for i in range(args.count):
        with open(os.path.join(d, f"model-{i}.pt"), "wb") as f:
            for _ in range(args.size_mib):
                f.write(rand_bytes(rng, 1 << 20))
    print(f"{args.count} checkpoints of {args.size_mib} MiB under {d}")


def mutate(args):
    rng = random.Random(args.seed)
    files = []
    for root, _, names in os.walk(args.out):
        for n in names:
            files.append(os.path.join(root, n))
    files.sort()
    images = [f for f in files if "/checkpoints/" not in f]
    ckpts = [f for f in files if "/checkpoints/" in f]
    if args.what == "checkpoints":
        images = []
    if args.what == "images":
        ckpts = []
    chosen = rng.sample(images, max(1, int(len(images) * args.fraction))) if images else []
    changed = 0
    for path in chosen:
        size = os.path.getsize(path)
        with open(path, "wb") as f:
            f.write(rand_bytes(rng, size))
        changed += size
    for path in ckpts:
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            for _ in range(4):
                f.seek(rng.randrange(0, max(1, size - 65536)))
                f.write(rand_bytes(rng, 65536))
                changed += 65536
    print(f"changed {len(chosen)} files and {len(ckpts)} checkpoints: {changed} bytes")


def flat(args):
    d = os.path.join(args.out, "flat")
    os.makedirs(d, exist_ok=True)
    for i in range(args.files):
        with open(os.path.join(d, f"item{i:07d}"), "wb") as f:
            f.write(b"%d\n" % i)
    print(f"{args.files} files in {d}")


def tree(args):
    rng = random.Random(args.seed)
    exts = [".jpg", ".png", ".txt", ".json", ".csv", ".bin", ""]
    for i in range(args.files):
        d = os.path.join(args.out, f"d{i % 100:02d}", f"s{(i // 100) % 20:02d}")
        if i < 2000:
            os.makedirs(d, exist_ok=True)
        size = 0 if rng.random() < 0.1 else rng.randint(1, 4096)
        with open(os.path.join(d, f"f{i:07d}{rng.choice(exts)}"), "wb") as f:
            f.write(rng.randbytes(size))
    print(f"{args.files} files under {args.out}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("tree")
    a.add_argument("out")
    a.add_argument("--files", type=int, default=200000)
    a.add_argument("--seed", type=int, default=5)
    a.set_defaults(fn=tree)

    a = sub.add_parser("images")
    a.add_argument("out")
    a.add_argument("--files", type=int, default=20000)
    a.add_argument("--per-class", type=int, default=200)
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--fixed-size", type=int, default=0, help="every file this many bytes")
    a.set_defaults(fn=images)
    a = sub.add_parser("checkpoints")
    a.add_argument("out")
    a.add_argument("--count", type=int, default=4)
    a.add_argument("--size-mib", type=int, default=64)
    a.add_argument("--seed", type=int, default=3)
    a.set_defaults(fn=checkpoints)
    a = sub.add_parser("mutate")
    a.add_argument("out")
    a.add_argument("--fraction", type=float, default=0.01)
    a.add_argument("--seed", type=int, default=2)
    a.add_argument("--what", choices=["both", "images", "checkpoints"], default="both")
    a.set_defaults(fn=mutate)
    a = sub.add_parser("flat")
    a.add_argument("out")
    a.add_argument("--files", type=int, default=1_000_000)
    a.set_defaults(fn=flat)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
