"""shale.torch's reading and ordering (SnapshotFiles), without PyTorch:
every file once per epoch over ranks and workers, seeded and reproducible,
pack-aware, the snapshot's bytes whatever the volume does next; and the
torch datasets where torch is installed."""

import multiprocessing
import os
import pickle

import pytest

import shale
from shale.torch import SnapshotFiles, worker_runs


@pytest.fixture
def snap(pool, tmp_path):
    src = tmp_path / "src"
    for d in range(4):
        for f in range(6):
            p = src / f"class{d}" / f"img{f}.bin"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(os.urandom(1000 + 100 * f) + f"{d}/{f}".encode())
    v = pool.create_volume("ds", from_dir=src)
    # a second import writes a second pack: two groups
    more = tmp_path / "more"
    (more / "extra").mkdir(parents=True)
    for f in range(5):
        (more / "extra" / f"x{f}.bin").write_bytes(os.urandom(2000))
    v.import_dir(more)
    v.snapshot("v1")
    return src, more


def test_files_list_read_and_are_the_snapshots(pool, snap):
    src, more = snap
    files = SnapshotFiles("ds@v1", pool=pool)
    assert len(files) == 29 and files.paths == sorted(files.paths)
    assert files.snapshot_id == pool.resolve("ds@v1")["id"]
    assert len(set(files.groups)) == 2
    for i, p in enumerate(files.paths):
        root = more if p.startswith("extra/") else src
        assert files.read(i) == (root / p).read_bytes()
    assert files.item(0) == (files.paths[0], files.read(0))
    # the volume changes; the snapshot's bytes do not
    (src / "class0" / "img0.bin").write_bytes(b"changed")
    pool.volume("ds").import_dir(src)
    assert files.read(files.paths.index("class0/img0.bin")) != b"changed"
    sub = SnapshotFiles("ds@v1", path="class2", pool=pool, transform=lambda p, b: (p, len(b)))
    assert sub.paths == [f"img{f}.bin" for f in range(6)]
    assert sub.item(0) == ("img0.bin", (src / "class2" / "img0.bin").stat().st_size)


def test_a_kept_list_lists_as_the_tree_does(pool, snap):
    first = SnapshotFiles("ds@v1", pool=pool)
    kept = list((pool.path / "lists").iterdir())
    assert [k.name for k in kept] == [first.snapshot_id]
    again = SnapshotFiles("ds@v1", pool=pool)
    assert (again.paths, again.sizes) == (first.paths, first.sizes)
    assert [again.read(i) for i in range(len(again))] == [first.read(i) for i in range(len(first))]
    # A damaged list is listed again from the tree, and kept again.
    kept[0].write_bytes(kept[0].read_bytes()[:-1])
    damaged = kept[0].stat().st_size
    assert SnapshotFiles("ds@v1", pool=pool).paths == first.paths
    assert kept[0].stat().st_size == damaged + 1


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("workers", [1, 2, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_every_file_once_per_epoch_over_ranks_and_workers(pool, snap, world_size, workers, drop_last):
    seen, per_rank = [], []
    for rank in range(world_size):
        files = SnapshotFiles(
            "ds@v1", pool=pool, shuffle=True, seed=7, rank=rank, world_size=world_size, drop_last=drop_last
        )
        files.set_epoch(3)
        mine = [i for w in range(workers) for i in files.indices(w, workers)]
        assert sorted(mine) == sorted(files.share()), "the workers read the rank's share"
        per_rank.append(len(mine))
        seen.extend(mine)
    # every rank reads as many files: 29 padded or cut to a multiple of world_size
    assert len(set(per_rank)) == 1
    if drop_last:
        assert len(seen) == 29 - 29 % world_size and len(set(seen)) == len(seen)
    else:
        assert len(seen) == -(-29 // world_size) * world_size and sorted(set(seen)) == list(range(29))


def test_workers_read_runs_of_consecutive_files():
    share = list(range(300))
    parts = [worker_runs(share, w, 2) for w in range(2)]
    assert parts[0][:64] == list(range(64)) and parts[1][:64] == list(range(64, 128))
    assert sorted(parts[0] + parts[1]) == share
    # a small share is split evenly, every worker gets a run
    assert [worker_runs(list(range(10)), w, 4) for w in range(4)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert worker_runs([], 0, 3) == []
    with pytest.raises(ValueError):
        worker_runs(share, 2, 2)


def test_order_is_seeded_reproducible_and_pack_aware(pool, snap):
    a = SnapshotFiles("ds@v1", pool=pool, shuffle=True, seed=1)
    b = SnapshotFiles("ds@v1", pool=pool, shuffle=True, seed=1)
    assert a.order(0) == b.order(0)
    assert a.order(0) != a.order(1), "another epoch, another order"
    assert a.order(0) != SnapshotFiles("ds@v1", pool=pool, shuffle=True, seed=2).order(0)
    assert SnapshotFiles("ds@v1", pool=pool).order(0) == list(range(29))
    # one group at a time: each group's files come together
    one = SnapshotFiles("ds@v1", pool=pool, shuffle=True, seed=5, buffer_groups=1)
    groups = [one.groups[i] for i in one.order(0)]
    switches = sum(1 for x, y in zip(groups, groups[1:]) if x != y)
    assert switches == 1
    # what a worker reads, in order
    got = list(one.iterate(0, 1))
    assert [p for p, _ in got] == [one.paths[i] for i in one.order(0)]


def _read_first(files):
    return files.read(0)


def test_workers_after_fork_and_pickling_open_the_pool_again(pool, snap):
    files = SnapshotFiles("ds@v1", pool=pool)
    first = files.read(0)
    with multiprocessing.get_context("fork").Pool(2) as procs:
        assert procs.map(_read_first, [files, files]) == [first, first]
    again = pickle.loads(pickle.dumps(files))
    assert again.read(0) == first and again._pid == os.getpid()


def test_errors_are_clear(pool, snap, tmp_path):
    with pytest.raises(shale.SnapshotNotFoundError):
        SnapshotFiles("ds@nope", pool=pool)
    with pytest.raises(shale.PoolNotFoundError):
        SnapshotFiles("ds@v1", pool=_FakePool(tmp_path / "gone"))
    with pytest.raises(ValueError, match="rank"):
        SnapshotFiles("ds@v1", pool=pool, rank=3, world_size=2)
    with pytest.raises(shale.ShaleError, match="VOLUME@SNAPSHOT"):
        SnapshotFiles("ds", pool=pool).log_to_mlflow()


class _FakePool:
    """A pool path with nothing there."""

    def __init__(self, path):
        self.path = path
        self.is_remote = False


def test_torch_datasets_where_torch_is_installed(pool, snap):
    torch = pytest.importorskip("torch")
    from shale.torch import SnapshotDataset, SnapshotIterableDataset

    ds = SnapshotIterableDataset("ds@v1", pool=pool, shuffle=True, seed=0, transform=lambda p, b: p)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    assert sorted(loader) == sorted(SnapshotFiles("ds@v1", pool=pool).paths)
    m = SnapshotDataset("ds@v1", pool=pool, shuffle=True, transform=lambda p, b: len(b))
    assert len(list(torch.utils.data.DataLoader(m, sampler=m.sampler(), batch_size=None))) == 29
