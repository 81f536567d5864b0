//! Replays every input kept under `fuzz/regressions/TARGET/` through the
//! decoder that target fuzzes: none may panic, and what decodes must
//! re-encode to something that decodes the same.

use std::path::Path;

use shale_core::names::Spec;
use shale_core::size::parse_size;
use shale_core::store::pack::parse;
use shale_core::tree::{decode, encode, split_path};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no regression inputs in {}", dir.display());
    out
}

#[test]
fn tree_node_inputs() {
    for (name, data) in inputs("tree_node") {
        if let Ok(node) = decode(&data) {
            assert_eq!(decode(&encode(&node)).ok(), Some(node), "{name}");
        }
    }
}

#[test]
fn pack_inputs() {
    for (name, data) in inputs("pack") {
        if let Ok(entries) = parse(&data) {
            for e in entries {
                assert!(
                    e.offset as usize + e.stored_len as usize <= data.len(),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn names_and_sizes_inputs() {
    for (_, data) in inputs("names_and_sizes") {
        if let Ok(s) = std::str::from_utf8(&data) {
            if let Ok(spec) = Spec::parse(s) {
                assert_eq!(Spec::parse(&spec.to_string()).ok(), Some(spec));
            }
            let _ = parse_size(s);
            let _ = split_path(s);
        }
    }
}
