//! A pool whose trees were crafted (or damaged) to escape the export
//! directory: the decoder refuses them, and nothing lands outside.

use shale_core::catalog::Value;
use shale_core::ops::export::ExportOptions;
use shale_core::store::pack::BlobKind;
use shale_core::tree::{encode, ChunkRef, Content, Entry, Node};
use shale_core::{ObjectId, Pool};

fn entry(name: &[u8], content: Content) -> Entry {
    Entry {
        name: name.to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime_ns: 0,
        content,
        xattrs: Vec::new(),
    }
}

#[test]
fn crafted_names_cannot_escape_an_export() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::init(&dir.path().join("pool")).unwrap();
    let writer = pool.blobs().writer("test").unwrap();
    let data = writer.put(BlobKind::Data, b"evil").unwrap();
    let file = Content::File {
        size: 4,
        chunks: vec![ChunkRef { id: data, len: 4 }],
    };
    let target = dir.path().join("export");
    let mut roots: Vec<(String, ObjectId)> = Vec::new();
    for (i, name) in [
        &b"../escape"[..],
        b"..",
        b"/tmp/abs",
        b"a/../../b",
        b"nul\0byte",
        b"",
    ]
    .iter()
    .enumerate()
    {
        let node = Node::Leaf(vec![entry(name, file.clone())]);
        roots.push((
            format!("crafted{i}"),
            writer.put(BlobKind::Tree, &encode(&node)).unwrap(),
        ));
    }
    // a valid-looking directory whose subtree is the crafted one
    let inner = roots[0].1;
    let outer = Node::Leaf(vec![entry(
        b"sub",
        Content::Dir(shale_core::tree::DirRef {
            tree: inner,
            bytes: 4,
            files: 1,
            entries: 1,
        }),
    )]);
    roots.push((
        "nested".into(),
        writer.put(BlobKind::Tree, &encode(&outer)).unwrap(),
    ));
    writer.finish().unwrap();
    pool.catalog()
        .write(|tx| {
            for (name, root) in &roots {
                // Straight into the catalog: no operation makes such a tree.
                tx.execute(
                    "INSERT INTO volumes (name, root, bytes, files, created, updated) \
                     VALUES (?1, ?2, 4, 1, 0, 0)",
                    &[Value::from(name.as_str()), Value::from(root)],
                )?;
            }
            Ok(())
        })
        .unwrap();
    drop(writer);
    for (name, _) in &roots {
        let err = pool
            .export(
                name,
                &target,
                &ExportOptions {
                    force: true,
                    ..Default::default()
                },
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is corrupt") && err.contains("invalid entry name"),
            "{name}: {err}"
        );
    }
    assert!(!dir.path().join("escape").exists());
    assert!(!std::path::Path::new("/tmp/abs").exists());
    assert!(!dir.path().join("b").exists());
    // verify reports every crafted volume
    let report = pool.verify(&Default::default()).unwrap();
    let affected: Vec<&str> = report
        .problems
        .iter()
        .flat_map(|p| p.affected.iter().map(|a| a.spec.as_str()))
        .collect();
    for (name, _) in &roots {
        assert!(
            affected.contains(&name.as_str()),
            "{name} not reported: {affected:?}"
        );
    }
}
