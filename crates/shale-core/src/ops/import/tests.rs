//! Tests of importing: small files packed in name order, and a cancelled
//! import committing nothing.

use super::*;
use crate::ops::verify::VerifyOptions;
use crate::progress::Event;
use crate::tree::lookup;

/// Where the data of each file of directory `dir` of volume `v` lies:
/// (pack, offset, stored length), in name order.
fn places(pool: &Pool, dir: &str) -> Vec<(ObjectId, u64, u64)> {
    let root = pool.catalog().volume("v").unwrap().root;
    let entry = lookup(pool.blobs(), &root, &[dir.as_bytes().to_vec()])
        .unwrap()
        .unwrap();
    let Content::Dir(d) = entry.content else {
        panic!("{dir} is not a directory")
    };
    read_dir(pool.blobs(), &d.tree)
        .unwrap()
        .iter()
        .map(|e| match &e.content {
            Content::File { chunks, .. } => {
                let loc = pool.blobs().location(&chunks[0].id).unwrap().unwrap();
                (loc.pack, loc.head.offset, u64::from(loc.head.stored_len))
            }
            _ => panic!("not a file"),
        })
        .collect()
}

#[test]
fn the_small_files_of_a_directory_are_packed_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    // Two directories read in parallel, each more than two groups.
    let files = GROUP * 2 + 9;
    for (d, seed) in [("a", 0u64), ("b", 10_000)] {
        fs::create_dir_all(src.join(d)).unwrap();
        for i in 0..files {
            let data = crate::test_noise(seed + i as u64, 2_000 + i);
            fs::write(src.join(d).join(format!("f{i:04}")), data).unwrap();
        }
    }
    let pool = Pool::init(&dir.path().join("pool")).unwrap();
    pool.create_volume_from("v", &src, None, None, Filter::default())
        .unwrap();
    for (d, other) in [("a", "b"), ("b", "a")] {
        let (places, others) = (places(&pool, d), places(&pool, other));
        assert_eq!(places.len(), files);
        for w in places.windows(2) {
            assert_eq!(w[0].0, w[1].0, "{d}: one pack");
            assert!(
                w[0].1 < w[1].1,
                "{d}: a file packed before the one named before it"
            );
        }
        // Within a group, no file of the other directory lies between
        // one file and the next (a tree node may).
        for g in places[..GROUP].windows(2) {
            let between = others.iter().filter(|o| o.1 > g[0].1 && o.1 < g[1].1);
            assert_eq!(between.count(), 0, "{d}: a file of {other} in a group");
        }
    }
    let report = pool
        .verify(&VerifyOptions {
            read_data: true,
            ..Default::default()
        })
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// A progress that cancels once it has seen `after` files.
struct CancelAfter {
    counters: crate::progress::Counters,
    after: u64,
}

impl Progress for CancelAfter {
    fn event(&self, event: Event) {
        self.counters.event(event);
        if self.counters.files() >= self.after {
            self.counters.cancel();
        }
    }

    fn cancelled(&self) -> bool {
        self.counters.cancelled()
    }
}

#[test]
fn a_cancelled_import_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::init(&dir.path().join("pool")).unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..50 {
        fs::write(src.join(format!("f{i:02}")), format!("file {i}")).unwrap();
    }
    let cancel = || -> Option<Arc<dyn Progress>> {
        Some(Arc::new(CancelAfter {
            counters: Default::default(),
            after: 3,
        }))
    };
    let e = pool
        .create_volume_from("v", &src, None, cancel(), Filter::default())
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    assert!(matches!(
        pool.volume_info("v"),
        Err(Error::VolumeNotFound(_))
    ));

    pool.create_volume("v", None).unwrap();
    let before = pool.volume_info("v").unwrap();
    let opts = ImportOptions {
        progress: cancel(),
        ..Default::default()
    };
    let e = pool.import("v", &src, &opts).unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    assert_eq!(pool.volume_info("v").unwrap(), before);
}
