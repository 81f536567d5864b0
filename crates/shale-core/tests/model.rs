//! Random sequences of volume operations, checked against a plain
//! in-memory model: after every step, every volume and snapshot exports
//! exactly the model's state.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use proptest::prelude::*;
use shale_core::ops::export::ExportOptions;
use shale_core::ops::import::ImportOptions;
use shale_core::Pool;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    File(Vec<u8>, u32),
    Dir,
    Link(String),
}

/// A file tree as a map from `a/b/c` paths to nodes.
type Tree = BTreeMap<String, Node>;

#[derive(Clone, Debug)]
enum Op {
    Create(usize),
    Import {
        vol: usize,
        tree: Tree,
        to: Option<String>,
        delete: bool,
        checksum: bool,
    },
    Snapshot(usize, usize),
    Clone {
        new: usize,
        from: usize,
        snap: Option<usize>,
    },
    Restore(usize, usize),
    DeleteVolume(usize),
    DeleteSnapshot(usize, usize),
}

const VOLS: [&str; 3] = ["va", "vb", "vc"];
const SNAPS: [&str; 2] = ["s1", "s2"];

fn tree_strategy() -> impl Strategy<Value = Tree> {
    let names = prop::sample::select(vec!["a", "b", "c"]);
    let node = prop_oneof![
        4 => (prop::sample::select(vec![&b""[..], b"x", b"hello", b"0123456789"]), prop::sample::select(vec![0o644u32, 0o600, 0o755]))
            .prop_map(|(d, m)| Node::File(d.to_vec(), m)),
        1 => prop::sample::select(vec!["a", "../up", "/abs"]).prop_map(|t| Node::Link(t.to_string())),
    ];
    prop::collection::vec((names.clone(), prop::option::of(names), node), 0..6).prop_map(|items| {
        let mut t = Tree::new();
        for (top, sub, node) in items {
            match sub {
                None => {
                    t.retain(|k, _| !k.starts_with(&format!("{top}/")));
                    t.insert(top.to_string(), node);
                }
                Some(sub) => {
                    if t.get(top).is_some_and(|n| *n != Node::Dir) {
                        continue;
                    }
                    t.insert(top.to_string(), Node::Dir);
                    t.insert(format!("{top}/{sub}"), node);
                }
            }
        }
        t
    })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let v = 0..VOLS.len();
    let s = 0..SNAPS.len();
    prop_oneof![
        2 => v.clone().prop_map(Op::Create),
        5 => (v.clone(), tree_strategy(), prop::option::of(prop::sample::select(vec!["a", "d", "d/e"])), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(vol, tree, to, delete, checksum)| Op::Import { vol, tree, to: to.map(str::to_string), delete, checksum }),
        2 => (v.clone(), s.clone()).prop_map(|(a, b)| Op::Snapshot(a, b)),
        2 => (v.clone(), v.clone(), prop::option::of(s.clone())).prop_map(|(new, from, snap)| Op::Clone { new, from, snap }),
        1 => (v.clone(), s.clone()).prop_map(|(a, b)| Op::Restore(a, b)),
        1 => v.clone().prop_map(Op::DeleteVolume),
        1 => (v, s).prop_map(|(a, b)| Op::DeleteSnapshot(a, b)),
    ]
}

/// Distinct mtimes, so that "unchanged" detection never confuses two writes.
static CLOCK: AtomicI64 = AtomicI64::new(1_000_000_000);

fn materialise(tree: &Tree, root: &Path) {
    fs::create_dir_all(root).unwrap();
    for (path, node) in tree {
        let p = root.join(path);
        match node {
            Node::Dir => fs::create_dir_all(&p).unwrap(),
            Node::File(data, mode) => {
                fs::write(&p, data).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
                let t = CLOCK.fetch_add(1, Ordering::Relaxed);
                filetime::set_file_mtime(&p, filetime::FileTime::from_unix_time(t, 0)).unwrap();
            }
            Node::Link(target) => symlink(target, &p).unwrap(),
        }
    }
}

fn read_back(root: &Path) -> Tree {
    let mut t = Tree::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            let md = fs::symlink_metadata(&p).unwrap();
            let node = if md.file_type().is_symlink() {
                Node::Link(fs::read_link(&p).unwrap().to_str().unwrap().to_string())
            } else if md.is_dir() {
                stack.push(p.clone());
                Node::Dir
            } else {
                Node::File(fs::read(&p).unwrap(), md.permissions().mode() & 0o7777)
            };
            t.insert(rel, node);
        }
    }
    t
}

fn prefixes(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (1..=parts.len()).map(|i| parts[..i].join("/")).collect()
}

/// The model of `import`: None if the real import must fail.
fn model_import(vol: &Tree, src: &Tree, to: Option<&str>, delete: bool) -> Option<Tree> {
    let mut out = vol.clone();
    let base = to.unwrap_or("");
    if !base.is_empty() {
        for p in prefixes(base) {
            match out.get(&p) {
                Some(Node::Dir) => {}
                None => {
                    out.insert(p, Node::Dir);
                }
                Some(_) => return None,
            }
        }
    }
    let full = |k: &str| {
        if base.is_empty() {
            k.to_string()
        } else {
            format!("{base}/{k}")
        }
    };
    let remove_below = |t: &mut Tree, p: &str| t.retain(|k, _| !k.starts_with(&format!("{p}/")));
    if delete {
        if base.is_empty() {
            out.clear();
        } else {
            remove_below(&mut out, base);
        }
    }
    for (k, node) in src {
        let path = full(k);
        if *node == Node::Dir && out.get(&path) == Some(&Node::Dir) {
            continue;
        }
        remove_below(&mut out, &path);
        out.insert(path, node.clone());
    }
    Some(out)
}

#[derive(Default, Debug)]
struct Model {
    vols: BTreeMap<String, Tree>,
    snaps: BTreeMap<(String, String), Tree>,
}

fn check(pool: &Pool, model: &Model, scratch: &Path) {
    let mut n = 0;
    let specs = model.vols.iter().map(|(v, t)| (v.clone(), t)).chain(
        model
            .snaps
            .iter()
            .map(|((v, s), t)| (format!("{v}@{s}"), t)),
    );
    for (spec, tree) in specs {
        n += 1;
        let out = scratch.join(format!("export{n}"));
        pool.export(&spec, &out, &ExportOptions::default()).unwrap();
        assert_eq!(&read_back(&out), tree, "{spec} differs from the model");
        fs::remove_dir_all(&out).unwrap();
    }
    let listed: Vec<String> = pool
        .list_volumes()
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(listed, model.vols.keys().cloned().collect::<Vec<_>>());
}

fn apply(pool: &Pool, model: &mut Model, op: &Op, scratch: &Path, step: usize) {
    match op {
        Op::Create(v) => {
            let name = VOLS[*v];
            let r = pool.create_volume(name, None);
            assert_eq!(r.is_ok(), !model.vols.contains_key(name), "{r:?}");
            model.vols.entry(name.into()).or_default();
        }
        Op::Import {
            vol,
            tree,
            to,
            delete,
            checksum,
        } => {
            let name = VOLS[*vol];
            let src = scratch.join(format!("src{step}"));
            materialise(tree, &src);
            let opts = ImportOptions {
                to: to.clone(),
                delete: *delete,
                checksum: *checksum,
                ..Default::default()
            };
            let r = pool.import(name, &src, &opts);
            match model.vols.get(name) {
                None => assert!(r.is_err()),
                Some(current) => match model_import(current, tree, to.as_deref(), *delete) {
                    Some(next) => {
                        r.unwrap();
                        model.vols.insert(name.into(), next);
                    }
                    None => assert!(r.is_err(), "import into a file path must fail"),
                },
            }
        }
        Op::Snapshot(v, s) => {
            let (vn, sn) = (VOLS[*v], SNAPS[*s]);
            let r = pool.create_snapshot(vn, Some(sn));
            let key = (vn.to_string(), sn.to_string());
            match model.vols.get(vn) {
                Some(t) if !model.snaps.contains_key(&key) => {
                    r.unwrap();
                    model.snaps.insert(key, t.clone());
                }
                _ => assert!(r.is_err()),
            }
        }
        Op::Clone { new, from, snap } => {
            let (nn, fv) = (VOLS[*new], VOLS[*from]);
            let spec = match snap {
                Some(s) => format!("{fv}@{}", SNAPS[*s]),
                None => fv.to_string(),
            };
            let r = pool.clone_volume(nn, &spec);
            let source = match snap {
                Some(s) => model
                    .snaps
                    .get(&(fv.to_string(), SNAPS[*s].to_string()))
                    .cloned(),
                None => model.vols.get(fv).cloned(),
            };
            match source {
                Some(t) if !model.vols.contains_key(nn) => {
                    let row = r.unwrap();
                    if snap.is_none() {
                        let origin = row.origin.unwrap();
                        let sname = origin.split_once('@').unwrap().1.to_string();
                        model.snaps.insert((fv.to_string(), sname), t.clone());
                    }
                    model.vols.insert(nn.into(), t);
                }
                _ => assert!(r.is_err()),
            }
        }
        Op::Restore(v, s) => {
            let key = (VOLS[*v].to_string(), SNAPS[*s].to_string());
            let r = pool.restore_snapshot(&key.0, &key.1);
            match model.snaps.get(&key) {
                Some(t) => {
                    r.unwrap();
                    model.vols.insert(key.0, t.clone());
                }
                None => assert!(r.is_err()),
            }
        }
        Op::DeleteVolume(v) => {
            let name = VOLS[*v];
            let r = pool.delete_volume(name, false);
            assert_eq!(r.is_ok(), model.vols.remove(name).is_some());
            model.snaps.retain(|(vn, _), _| vn != name);
        }
        Op::DeleteSnapshot(v, s) => {
            let key = (VOLS[*v].to_string(), SNAPS[*s].to_string());
            let r = pool.delete_snapshot(&key.0, &key.1);
            assert_eq!(r.is_ok(), model.snaps.remove(&key).is_some());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 200, ..ProptestConfig::default() })]
    #[test]
    fn volumes_behave_like_the_model(ops in prop::collection::vec(op_strategy(), 1..14)) {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        let scratch = dir.path().join("scratch");
        fs::create_dir_all(&scratch).unwrap();
        let mut model = Model::default();
        for (step, op) in ops.iter().enumerate() {
            apply(&pool, &mut model, op, &scratch, step);
            check(&pool, &model, &scratch);
        }
    }
}
