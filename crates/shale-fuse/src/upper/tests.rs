//! Tests of upper files: commits split as splitting the whole file would,
//! reads over written and unwritten bytes, filling in.

use super::*;

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.below(256) as u8).collect()
    }
}

/// What splitting all of `data` gives, stored through `w`.
fn split_whole(data: &[u8], w: &BlobWriter, params: ChunkParams) -> Vec<ChunkRef> {
    let mut out = Vec::new();
    params
        .chunk_stream(data, data.len() as u64, Path::new("model"), |c| {
            out.push(w.put_chunk(&c).unwrap());
            Ok(())
        })
        .unwrap();
    out
}

fn setup(dir: &Path) -> (Arc<Pool>, ChunkParams) {
    let pool = Pool::init(&dir.join("pool")).unwrap();
    (Arc::new(pool), ChunkParams::new(16 << 10).unwrap())
}

/// `data` stored in `pool` as its chunks.
fn stored(pool: &Pool, data: &[u8], params: ChunkParams) -> Arc<ChunkList> {
    let w = pool.blobs().writer("test").unwrap();
    let chunks = split_whole(data, &w, params);
    w.finish().unwrap();
    Arc::new(ChunkList::new(chunks))
}

/// Everything a read of `up` gives.
fn read_all(up: &Upper) -> Vec<u8> {
    let mut buf = vec![0; up.size as usize + 10];
    let n = up
        .view(false)
        .unwrap()
        .read_full(&mut buf, 0, &ChunkCache::default())
        .unwrap();
    buf.truncate(n);
    buf
}

/// Random writes and truncations of `up` (holding `model`), each
/// round read back and committed, the chunks compared with splitting
/// the whole file.
fn edit_and_commit(pool: &Pool, params: ChunkParams, mut up: Upper, mut model: Vec<u8>, seed: u64) {
    let mut rng = Rng(seed);
    for round in 0..60 {
        for _ in 0..=rng.below(3) {
            let size = model.len() as u64;
            if rng.below(6) == 0 {
                let to = rng.below(size + (200 << 10)) as usize;
                up.truncate(to as u64).unwrap();
                model.resize(to, 0);
            } else {
                let at = rng.below(size + (100 << 10)) as usize;
                let len = 1 + rng.below(80 << 10) as usize;
                let data = rng.bytes(len);
                up.write(at as u64, &data).unwrap();
                if model.len() < at + data.len() {
                    model.resize(at + data.len(), 0);
                }
                model[at..at + data.len()].copy_from_slice(&data);
            }
            assert!(read_all(&up) == model, "round {round}: read back");
        }
        let w = pool.blobs().writer("test").unwrap();
        let chunks = up.chunks(&w, params).unwrap();
        assert_eq!(chunks, split_whole(&model, &w, params), "round {round}");
        w.finish().unwrap();
        up.committed(chunks, params);
        assert!(!up.changed());
        assert!(
            read_all(&up) == model,
            "round {round}: read after the commit"
        );
    }
}

#[test]
fn committing_writes_splits_as_splitting_the_whole_file_would() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, params) = setup(dir.path());
    let model = Rng(0x5eed).bytes(1 << 20);
    let mut up = Upper::create(dir.path().join("up"), &OpenUppers::default()).unwrap();
    up.write(0, &model).unwrap();
    edit_and_commit(&pool, params, up, model, 0x5eed);
}

#[test]
fn a_file_written_over_its_chunks_reads_and_commits_as_a_copy_would() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, params) = setup(dir.path());
    let model = Rng(11).bytes(1 << 20);
    let known = stored(&pool, &model, params);
    let path = dir.path().join("up");
    let up = Upper::over(path, &OpenUppers::default(), pool.clone(), known, 1 << 20).unwrap();
    edit_and_commit(&pool, params, up, model, 11);
}

#[test]
fn a_first_write_copies_nothing_and_many_writes_fill_the_rest_once() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, params) = setup(dir.path());
    let mut model = Rng(3).bytes(8 << 20);
    let known = stored(&pool, &model, params);
    let path = dir.path().join("up");
    let mut up = Upper::over(path.clone(), &OpenUppers::default(), pool, known, 8 << 20).unwrap();
    up.write(4 << 20, &[1; 4096]).unwrap();
    model[4 << 20..(4 << 20) + 4096].fill(1);
    let held =
        |p: &Path| std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(p).unwrap()) * 512;
    assert!(
        held(&path) < 1 << 20,
        "{} bytes held after one write",
        held(&path)
    );
    assert!(read_all(&up) == model);
    for i in 0..=MAX_PRESENT as u64 {
        let at = (i * 20_000) as usize;
        up.write(at as u64, b"x").unwrap();
        model[at] = b'x';
    }
    assert!(up.lower.is_none(), "filled in");
    assert!(held(&path) >= 8 << 20);
    assert!(read_all(&up) == model);
    let mut whole = vec![0; 8 << 20];
    up.file().unwrap().read_exact_at(&mut whole, 0).unwrap();
    assert!(whole == model, "the upper file itself holds the file");
}

#[test]
fn a_commit_reads_only_around_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, params) = setup(dir.path());
    let w = pool.blobs().writer("test").unwrap();
    let mut rng = Rng(7);
    let model = rng.bytes(4 << 20);
    let mut up = Upper::create(dir.path().join("up"), &OpenUppers::default()).unwrap();
    up.write(0, &model).unwrap();
    let before = up.chunks(&w, params).unwrap();
    up.committed(before.clone(), params);
    // Bytes changed behind the upper file's back, far from the edit,
    // are not read: the chunks there are the ones already known.
    up.file()
        .unwrap()
        .write_all_at(&[0; 4096], 3 << 20)
        .unwrap();
    up.write(100_000, b"edited").unwrap();
    let after = up.chunks(&w, params).unwrap();
    let tail = |c: &[ChunkRef]| c[c.len() - 20..].to_vec();
    assert_eq!(tail(&after), tail(&before));
    let new = after.iter().filter(|c| !before.contains(c)).count();
    assert!(
        (1..=4).contains(&new),
        "{new} new chunks for one small edit"
    );
}
