//! Printing results: aligned tables for people, JSON for programs.

use serde::Serialize;
use shale_core::ops::volumes::rfc3339;

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

fn run_line(r: &shale_core::ops::lineage::Run) -> String {
    let status = match r.exit_code {
        Some(c) => format!("exit {c}"),
        None => "not finished".to_string(),
    };
    let mlflow = r
        .mlflow_run
        .as_ref()
        .map(|m| format!(", MLflow run {m}"))
        .unwrap_or_default();
    let labels: String = r.labels.iter().map(|(k, v)| format!(", {k}={v}")).collect();
    format!(
        "run {} ({}, {status}{mlflow}{labels}): {}",
        r.id,
        rfc3339(r.started),
        r.command.join(" ")
    )
}

/// Prints a lineage for people.
pub fn print_lineage(l: &shale_core::ops::lineage::Lineage) {
    println!("{}  id {}", l.subject, l.id);
    if !l.origins.is_empty() {
        println!("  cloned from: {}", l.origins.join(" <- "));
    }
    for r in &l.produced_by {
        println!("  produced by {}", run_line(r));
        for i in &r.inputs {
            println!("      read {} (id {})", i.spec(), i.snapshot_id);
        }
    }
    for r in &l.used_by {
        println!("  read by {}", run_line(r));
        for o in &r.outputs {
            println!("      wrote {} (id {})", o.spec(), o.snapshot_id);
        }
    }
    if !l.clones.is_empty() {
        println!("  cloned to: {}", l.clones.join(", "));
    }
    if l.origins.is_empty()
        && l.produced_by.is_empty()
        && l.used_by.is_empty()
        && l.clones.is_empty()
    {
        println!("  no recorded origin, runs or clones");
    }
}

/// A lineage as a Graphviz graph: volumes and snapshots as boxes, runs as
/// ellipses, clones as dashed edges.
pub fn lineage_dot(l: &shale_core::ops::lineage::Lineage) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let q = |s: &str| format!("\"{}\"", esc(s));
    let mut out = String::from("digraph lineage {\n  rankdir=LR;\n  node [shape=box];\n");
    out.push_str(&format!("  {} [style=bold];\n", q(&l.subject)));
    let mut at = l.subject.clone();
    for o in &l.origins {
        out.push_str(&format!(
            "  {} -> {} [style=dashed, label=\"clone\"];\n",
            q(o),
            q(&at)
        ));
        at = o.split('@').next().unwrap_or(o).to_string();
    }
    for c in &l.clones {
        out.push_str(&format!(
            "  {} -> {} [style=dashed, label=\"clone\"];\n",
            q(&l.subject),
            q(c)
        ));
    }
    let mut runs: Vec<&shale_core::ops::lineage::Run> =
        l.produced_by.iter().chain(&l.used_by).collect();
    runs.sort_by_key(|r| r.id);
    runs.dedup_by_key(|r| r.id);
    for r in runs {
        let node = format!("run {}", r.id);
        let label = format!("\"run {}\\n{}\"", r.id, esc(&r.command.join(" ")));
        out.push_str(&format!("  {} [shape=ellipse, label={label}];\n", q(&node)));
        for i in &r.inputs {
            out.push_str(&format!("  {} -> {};\n", q(&i.spec()), q(&node)));
        }
        for o in &r.outputs {
            out.push_str(&format!("  {} -> {};\n", q(&node), q(&o.spec())));
        }
        // A volume asked about is tied to its snapshots the runs name.
        for d in r.inputs.iter().chain(&r.outputs) {
            if d.volume == l.subject {
                out.push_str(&format!(
                    "  {} -> {} [style=dotted, label=\"snapshot\"];\n",
                    q(&l.subject),
                    q(&d.spec())
                ));
            }
        }
    }
    out.push_str("}\n");
    out
}
