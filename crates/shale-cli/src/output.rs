//! Printing results: aligned tables for people, JSON for programs.

use serde::Serialize;
use serde_json::{json, Value};
use shale_core::catalog::SnapshotRow;
use shale_core::size::format_size;
use shale_core::volumes::{rfc3339, VolumeInfo};

/// Prints rows as left-aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  ", w = w));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints a JSON value on stdout.
pub fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("shale: error: cannot encode JSON: {e}"),
    }
}

/// The JSON form of a volume.
pub fn volume_json(v: &VolumeInfo) -> Value {
    json!({
        "name": v.row.name,
        "id": v.row.root.to_hex(),
        "origin": v.row.origin,
        "logical_bytes": v.row.bytes,
        "files": v.row.files,
        "snapshots": v.snapshots,
        "quota": v.row.quota,
        "created": rfc3339(v.row.created),
        "updated": rfc3339(v.row.updated),
    })
}

/// The JSON form of a snapshot.
pub fn snapshot_json(s: &SnapshotRow) -> Value {
    json!({
        "volume": s.volume,
        "name": s.name,
        "id": s.root.to_hex(),
        "created": rfc3339(s.created),
        "logical_bytes": s.bytes,
        "files": s.files,
    })
}

/// A table row for a snapshot.
pub fn snapshot_row(s: &SnapshotRow) -> Vec<String> {
    vec![
        s.volume.clone(),
        s.name.clone(),
        s.root.short(),
        rfc3339(s.created),
        format_size(s.bytes),
        s.files.to_string(),
    ]
}

/// Header matching [`snapshot_row`].
pub const SNAPSHOT_HEADER: [&str; 6] = ["VOLUME", "NAME", "ID", "CREATED", "SIZE", "FILES"];
