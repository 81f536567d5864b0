#!/usr/bin/env python3
"""One epoch of ResNet-50 training (torchvision, bf16, channels-last) fed by
a PyTorch DataLoader from one source, and the images per second it ran at.

    train.py files DIR [options]        # files under DIR: native disk or a mount
    train.py snapshot POOL SPEC [options]  # shale.torch.SnapshotDataset, no mount
    train.py ceiling N [options]        # N synthetic images already on the device

Each file is one image of 224x224x3 bytes (150,528; `gen_dataset.py images
--fixed-size 150528`), taken as raw pixels: no decoding, so the loader's
reads are what is measured. Its label is its directory's. `--model none`
measures the loader alone (the batch is moved, converted and normalised,
as before a forward pass): the CPU-only variant, which runs anywhere.

Prints one JSON line: source, images, seconds, images_per_s, device, model.
"""

import argparse
import json
import os
import time
import zlib

import torch
import torch.utils.data as tud

SIDE = 224
IMAGE_BYTES = SIDE * SIDE * 3
CLASSES = 1000


def label_of(path):
    """A stable class for the file's directory."""
    return zlib.crc32(os.path.basename(os.path.dirname(path)).encode()) % CLASSES


def pixels(data):
    """The file's bytes as an HxWxC uint8 image."""
    if len(data) != IMAGE_BYTES:
        raise ValueError(f"expected {IMAGE_BYTES}-byte images, got {len(data)} bytes")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(SIDE, SIDE, 3)


class Files(tud.Dataset):
    """The files under a directory, listed with os.walk, read with open()."""

    def __init__(self, root):
        self.paths = sorted(
            os.path.join(d, n) for d, _, names in os.walk(root) for n in names
        )

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        path = self.paths[i]
        with open(path, "rb") as f:
            return pixels(f.read()), label_of(path)


def snapshot_item(path, data):
    """shale.torch's transform: the same item Files gives."""
    return pixels(data), label_of(path)


def loader(args):
    """The DataLoader of the source, shuffled with seed 0."""
    common = dict(
        batch_size=args.batch,
        num_workers=args.workers,
        pin_memory=args.device.startswith("cuda"),
        drop_last=False,
        persistent_workers=False,
    )
    if args.workers:
        common["prefetch_factor"] = args.prefetch
    if args.source == "files":
        ds = Files(args.where[0])
        gen = torch.Generator().manual_seed(0)
        return tud.DataLoader(ds, shuffle=True, generator=gen, **common), len(ds)
    import shale
    from shale.torch import SnapshotDataset

    pool, spec = args.where
    ds = SnapshotDataset(
        spec,
        pool=shale.Pool(pool, create=False),
        shuffle=True,
        seed=0,
        transform=snapshot_item,
    )
    return tud.DataLoader(ds, sampler=ds.sampler(), **common), len(ds)


def ceiling_batches(args):
    """Synthetic batches, already on the device: the GPU's own ceiling."""
    n = int(args.where[0])
    x = torch.randint(0, 256, (args.batch, SIDE, SIDE, 3), dtype=torch.uint8, device=args.device)
    y = torch.randint(0, CLASSES, (args.batch,), device=args.device)
    full, rest = divmod(n, args.batch)
    for _ in range(full):
        yield x, y
    if rest:
        yield x[:rest], y[:rest]


class Step:
    """One training step on a batch of uint8 HxWxC images."""

    def __init__(self, args):
        self.device = torch.device(args.device)
        self.mean = torch.tensor([0.485, 0.456, 0.406], device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor([0.229, 0.224, 0.225], device=self.device).view(1, 3, 1, 1) * 255
        self.model = None
        if args.model == "resnet50":
            import torchvision

            model = torchvision.models.resnet50(num_classes=CLASSES)
            self.model = model.to(self.device, memory_format=torch.channels_last)
            self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
            self.loss = torch.nn.CrossEntropyLoss()
            self.autocast = self.device.type == "cuda"

    def __call__(self, x, y):
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        x = x.float().sub_(self.mean).div_(self.std).contiguous(memory_format=torch.channels_last)
        if self.model is None:
            return float(x[0, 0, 0, 0])
        y = y.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.loss(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return None

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def warm_up(step, args):
    """A few steps on synthetic data first: cuDNN picks its kernels and the
    model's memory is allocated outside the measured epoch."""
    x = torch.randint(0, 256, (args.batch, SIDE, SIDE, 3), dtype=torch.uint8)
    y = torch.randint(0, CLASSES, (args.batch,))
    for _ in range(args.warmup_steps):
        step(x, y)
    step.sync()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", choices=["files", "snapshot", "ceiling"])
    p.add_argument("where", nargs="+")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", choices=["resnet50", "none"], default="resnet50")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    p.add_argument("--prefetch", type=int, default=4, help="batches each worker reads ahead")
    p.add_argument("--warmup-steps", type=int, default=5)
    args = p.parse_args()
    want = {"files": 1, "snapshot": 2, "ceiling": 1}[args.source]
    if len(args.where) != want:
        p.error(f"{args.source} takes {want} argument(s)")
    torch.backends.cudnn.benchmark = True
    step = Step(args)
    warm_up(step, args)
    start = time.perf_counter()
    if args.source == "ceiling":
        batches, images = ceiling_batches(args), int(args.where[0])
    else:
        batches, images = loader(args)
    seen = 0
    for x, y in batches:
        step(x, y)
        seen += len(y)
    step.sync()
    secs = time.perf_counter() - start
    if seen != images:
        raise SystemExit(f"read {seen} images of {images}")
    print(json.dumps({
        "source": args.source,
        "images": seen,
        "seconds": round(secs, 3),
        "images_per_s": round(seen / secs, 1),
        "device": args.device,
        "model": args.model,
    }))


if __name__ == "__main__":
    main()
