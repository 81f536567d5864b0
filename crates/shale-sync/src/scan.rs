//! `shale scan`: what a tree of files holds, as a migration tool reports it
//! before a move — counts, sizes, ages, the largest files and directories,
//! extensions, empty files and (with `--dedup`) duplicate content.

use std::collections::HashMap;
use std::fmt::Write as _;

use rayon::prelude::*;
use serde::Serialize;
use shale_core::Result;

use crate::entry::{Entry, Kind, StoredHash};
use crate::side::Side;

/// Rows kept in the "largest" and "by extension" tables.
const TOP: usize = 20;

/// One bar of a histogram.
#[derive(Clone, Debug, Serialize)]
pub struct Bucket {
    /// What it counts (`< 64 KiB`, `1 week – 1 month` …).
    pub label: String,
    /// Files in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A file or directory and its size.
#[derive(Clone, Debug, Serialize)]
pub struct Sized {
    /// Relative path (`.` for the top).
    pub path: String,
    /// Bytes (of a directory: of every file under it).
    pub bytes: u64,
    /// Files (under a directory; 1 for a file).
    pub files: u64,
}

/// Files of one extension.
#[derive(Clone, Debug, Serialize)]
pub struct Extension {
    /// Lower-cased, without the dot (`""`: none).
    pub extension: String,
    /// Files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Files with the same content.
#[derive(Clone, Debug, Serialize)]
pub struct DuplicateSet {
    /// Size of each copy.
    pub bytes: u64,
    /// Their paths.
    pub paths: Vec<String>,
}

/// Duplicate content found with `--dedup`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Duplicates {
    /// Sets of files with identical content.
    pub sets: u64,
    /// Files that are a copy of another (all but one per set).
    pub redundant_files: u64,
    /// Bytes those copies take.
    pub redundant_bytes: u64,
    /// The sets wasting the most space.
    pub largest: Vec<DuplicateSet>,
}

/// What a scan found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScanReport {
    /// What was scanned.
    pub place: String,
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Bytes of all files.
    pub bytes: u64,
    /// Files of zero bytes.
    pub empty_files: u64,
    /// Files by size.
    pub sizes: Vec<Bucket>,
    /// Files by time since last modification.
    pub ages: Vec<Bucket>,
    /// The largest files.
    pub largest_files: Vec<Sized>,
    /// The directories holding the most bytes (all files under them).
    pub largest_dirs: Vec<Sized>,
    /// Files and bytes by extension, most bytes first.
    pub extensions: Vec<Extension>,
    /// Duplicate content, with `--dedup`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<Duplicates>,
    /// Seconds the scan took.
    pub seconds: f64,
}

const SIZE_LIMITS: [(u64, &str); 8] = [
    (1, "empty"),
    (4 << 10, "< 4 KiB"),
    (64 << 10, "4–64 KiB"),
    (1 << 20, "64 KiB–1 MiB"),
    (16 << 20, "1–16 MiB"),
    (256 << 20, "16–256 MiB"),
    (1 << 30, "256 MiB–1 GiB"),
    (u64::MAX, "≥ 1 GiB"),
];

const DAY: i64 = 86_400;
const AGE_LIMITS: [(i64, &str); 7] = [
    (DAY, "< 1 day"),
    (7 * DAY, "1 day–1 week"),
    (30 * DAY, "1 week–1 month"),
    (182 * DAY, "1–6 months"),
    (365 * DAY, "6–12 months"),
    (3 * 365 * DAY, "1–3 years"),
    (i64::MAX, "≥ 3 years"),
];

fn top<T>(mut v: Vec<T>, key: impl Fn(&T) -> u64) -> Vec<T> {
    if v.len() > TOP {
        v.select_nth_unstable_by_key(TOP, |x| std::cmp::Reverse(key(x)));
        v.truncate(TOP);
    }
    v.sort_by_key(|x| std::cmp::Reverse(key(x)));
    v
}

/// The extension of a path's last component, as bytes ("" if none).
fn extension_of(path: &[u8]) -> &[u8] {
    let name = path.rsplit(|b| *b == b'/').next().unwrap_or_default();
    match name.iter().rposition(|b| *b == b'.') {
        Some(0) | None => &[],
        Some(i) => &name[i + 1..],
    }
}

/// Scans `side`; with `dedup`, finds files with the same content (using
/// stored digests where the side has them, else reading files whose size
/// another file shares).
pub fn scan(side: &dyn Side, dedup: bool) -> Result<ScanReport> {
    let started = std::time::Instant::now();
    let entries = side.list_any_order()?;
    let mut tally = Tally::new(side.name());
    for e in &entries {
        tally.add(e);
    }
    let Tally {
        mut report,
        dirs,
        extensions,
        files,
        ..
    } = tally;
    report.largest_files = top(files.clone(), |e| e.size)
        .into_iter()
        .map(|e| Sized {
            path: e.display(),
            bytes: e.size,
            files: 1,
        })
        .collect();
    report.largest_dirs = largest_dirs(&dirs);
    report.extensions = top_extensions(extensions);
    if dedup {
        report.duplicates = Some(duplicates(side, &files)?);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Counts made in one pass over a listing.
struct Tally<'a> {
    report: ScanReport,
    /// Bytes and files under each directory (every level above a file).
    dirs: HashMap<&'a [u8], (u64, u64)>,
    /// Files and bytes by extension, as spelled.
    extensions: HashMap<&'a [u8], (u64, u64)>,
    files: Vec<&'a Entry>,
    now_s: i64,
}

impl<'a> Tally<'a> {
    fn new(place: String) -> Self {
        let buckets = |labels: &[&str]| -> Vec<Bucket> {
            labels
                .iter()
                .map(|l| Bucket {
                    label: l.to_string(),
                    files: 0,
                    bytes: 0,
                })
                .collect()
        };
        let sizes: Vec<&str> = SIZE_LIMITS.iter().map(|(_, l)| *l).collect();
        let ages: Vec<&str> = AGE_LIMITS.iter().map(|(_, l)| *l).collect();
        Tally {
            report: ScanReport {
                place,
                sizes: buckets(&sizes),
                ages: buckets(&ages),
                ..Default::default()
            },
            dirs: HashMap::new(),
            extensions: HashMap::new(),
            files: Vec::new(),
            now_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        }
    }

    fn add(&mut self, e: &'a Entry) {
        let r = &mut self.report;
        match e.kind {
            Kind::Dir => r.dirs += 1,
            Kind::Symlink(_) => r.symlinks += 1,
            Kind::File => {}
        }
        if e.kind != Kind::File {
            return;
        }
        r.files += 1;
        r.bytes += e.size;
        if e.size == 0 {
            r.empty_files += 1;
        }
        let s = SIZE_LIMITS
            .iter()
            .position(|(lim, _)| e.size < *lim)
            .unwrap_or(7);
        r.sizes[s].files += 1;
        r.sizes[s].bytes += e.size;
        let age = self.now_s - e.mtime_ns.div_euclid(1_000_000_000);
        let a = AGE_LIMITS
            .iter()
            .position(|(lim, _)| age < *lim)
            .unwrap_or(6);
        r.ages[a].files += 1;
        r.ages[a].bytes += e.size;
        let x = self.extensions.entry(extension_of(&e.path)).or_default();
        x.0 += 1;
        x.1 += e.size;
        // every directory above the file
        let mut p = e.parent();
        loop {
            let d = self.dirs.entry(p).or_default();
            d.0 += e.size;
            d.1 += 1;
            match p.iter().rposition(|b| *b == b'/') {
                Some(i) => p = &p[..i],
                None if !p.is_empty() => p = &[],
                None => break,
            }
        }
        self.files.push(e);
    }
}

/// The directories holding the most bytes (the top itself left out).
fn largest_dirs(dirs: &HashMap<&[u8], (u64, u64)>) -> Vec<Sized> {
    top(
        dirs.iter().filter(|(p, _)| !p.is_empty()).collect(),
        |(_, (bytes, _))| *bytes,
    )
    .into_iter()
    .map(|(p, (bytes, n))| Sized {
        path: String::from_utf8_lossy(p).into_owned(),
        bytes: *bytes,
        files: *n,
    })
    .collect()
}

/// The extensions holding the most bytes; those differing only in case
/// count together.
fn top_extensions(raw: HashMap<&[u8], (u64, u64)>) -> Vec<Extension> {
    let mut exts: HashMap<String, (u64, u64)> = HashMap::new();
    for (ext, (n, bytes)) in raw {
        let x = exts
            .entry(String::from_utf8_lossy(ext).to_lowercase())
            .or_default();
        x.0 += n;
        x.1 += bytes;
    }
    top(
        exts.into_iter()
            .map(|(extension, (files, bytes))| Extension {
                extension,
                files,
                bytes,
            })
            .collect(),
        |x| x.bytes,
    )
}

fn duplicates(side: &dyn Side, files: &[&Entry]) -> Result<Duplicates> {
    let mut by_size: HashMap<u64, Vec<&Entry>> = HashMap::new();
    for f in files.iter().filter(|f| f.size > 0) {
        by_size.entry(f.size).or_default().push(f);
    }
    let candidates: Vec<&Entry> = by_size
        .into_values()
        .filter(|v| v.len() > 1)
        .flatten()
        .collect();
    let digests: Vec<Result<(String, &Entry)>> = candidates
        .par_iter()
        .map(|e| {
            let d = match &e.stored_hash {
                Some(StoredHash::Chunks(h)) => format!("c{h}"),
                Some(StoredHash::ETag(t)) => format!("e{t}"),
                None => {
                    let mut h = blake3::Hasher::new();
                    side.read(e, &mut |piece| {
                        h.update(piece);
                        Ok(())
                    })?;
                    format!("b{}", h.finalize())
                }
            };
            Ok((format!("{}:{d}", e.size), *e))
        })
        .collect();
    let mut sets: HashMap<String, Vec<&Entry>> = HashMap::new();
    for d in digests {
        let (key, e) = d?;
        sets.entry(key).or_default().push(e);
    }
    let mut out = Duplicates::default();
    let mut all = Vec::new();
    for set in sets.into_values().filter(|s| s.len() > 1) {
        out.sets += 1;
        out.redundant_files += set.len() as u64 - 1;
        out.redundant_bytes += (set.len() as u64 - 1) * set[0].size;
        let mut paths: Vec<String> = set.iter().map(|e| e.display()).collect();
        paths.sort();
        all.push(DuplicateSet {
            bytes: set[0].size,
            paths,
        });
    }
    out.largest = top(all, |s| s.bytes * (s.paths.len() as u64 - 1));
    Ok(out)
}

/// Bytes for people: `1.5 GiB`.
fn human(bytes: u64) -> String {
    shale_core::size::format_size(bytes)
}

/// The report as text tables.
pub fn to_table(r: &ScanReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} files, {} directories, {} symlinks, {} ({} empty files), scanned in {:.2} s",
        r.place,
        r.files,
        r.dirs,
        r.symlinks,
        human(r.bytes),
        r.empty_files,
        r.seconds
    );
    let hist = |s: &mut String, title: &str, b: &[Bucket]| {
        let _ = writeln!(s, "\n{title:<16} {:>10} {:>12}", "FILES", "BYTES");
        for x in b {
            let _ = writeln!(s, "{:<16} {:>10} {:>12}", x.label, x.files, human(x.bytes));
        }
    };
    hist(&mut s, "SIZE", &r.sizes);
    hist(&mut s, "MODIFIED", &r.ages);
    let _ = writeln!(s, "\n{:<12} {:>10} {:>12}", "EXTENSION", "FILES", "BYTES");
    for x in &r.extensions {
        let name = if x.extension.is_empty() {
            "(none)"
        } else {
            &x.extension
        };
        let _ = writeln!(s, "{name:<12} {:>10} {:>12}", x.files, human(x.bytes));
    }
    let _ = writeln!(s, "\n{:>12}  LARGEST FILES", "BYTES");
    for f in &r.largest_files {
        let _ = writeln!(s, "{:>12}  {}", human(f.bytes), f.path);
    }
    let _ = writeln!(s, "\n{:>12} {:>10}  LARGEST DIRECTORIES", "BYTES", "FILES");
    for d in &r.largest_dirs {
        let _ = writeln!(s, "{:>12} {:>10}  {}", human(d.bytes), d.files, d.path);
    }
    if let Some(d) = &r.duplicates {
        let _ = writeln!(
            s,
            "\nDUPLICATES: {} sets, {} redundant files, {} redundant",
            d.sets,
            d.redundant_files,
            human(d.redundant_bytes)
        );
        for set in d.largest.iter().take(10) {
            let _ = writeln!(
                s,
                "{:>12} x{}  {}",
                human(set.bytes),
                set.paths.len(),
                set.paths.join("  ")
            );
        }
    }
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart as inline SVG: one row per (label, value, note).
fn bars(rows: &[(String, u64, String)]) -> String {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let h = 22;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"{}\" role=\"img\">",
        rows.len() * h + 4
    );
    for (i, (label, value, note)) in rows.iter().enumerate() {
        let y = i * h + 2;
        let w = (*value as f64 / max as f64 * 380.0).round() as u64;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>\
             <rect x=\"150\" y=\"{y}\" width=\"{w}\" height=\"{}\" fill=\"#3b7dd8\"><title>{}</title></rect>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 15,
            escape(label),
            h - 6,
            escape(note),
            150 + w + 6,
            y + 15,
            escape(note)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The report as one self-contained HTML page (no scripts, no external
/// files): a summary, bar charts of sizes, ages and extensions, and tables.
pub fn to_html(r: &ScanReport) -> String {
    let mut h = String::new();
    let _ = write!(h, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
        <title>shale scan: {place}</title><style>\
        body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}}\
        table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{padding:.2em .8em;text-align:left}}\
        td.n{{text-align:right;font-variant-numeric:tabular-nums}}tr:nth-child(even){{background:#f3f5f8}}\
        .cards div{{display:inline-block;margin:0 1em 1em 0;padding:.6em 1em;background:#eef3fb;border-radius:6px}}\
        .cards b{{display:block;font-size:1.4em}}</style></head><body>\
        <h1>shale scan</h1><p>{place}, scanned in {secs:.2} s</p>",
        place = escape(&r.place), secs = r.seconds);
    h.push_str(&html_cards(r));
    h.push_str(&html_chart("Files by size", &r.sizes));
    h.push_str(&html_chart("Files by last modification", &r.ages));
    h.push_str(&html_extensions(&r.extensions));
    h.push_str(&html_table("Largest files", &r.largest_files));
    h.push_str(&html_table("Largest directories", &r.largest_dirs));
    if let Some(d) = &r.duplicates {
        h.push_str(&html_duplicates(d));
    }
    h.push_str("</body></html>\n");
    h
}

/// The headline figures, as cards.
fn html_cards(r: &ScanReport) -> String {
    let mut h = String::from("<div class=\"cards\">");
    for (label, value) in [
        ("files", r.files.to_string()),
        ("directories", r.dirs.to_string()),
        ("symlinks", r.symlinks.to_string()),
        ("total size", human(r.bytes)),
        ("empty files", r.empty_files.to_string()),
    ] {
        let _ = write!(
            h,
            "<div><b id=\"{}\">{}</b>{label}</div>",
            label.replace(' ', "-"),
            escape(&value)
        );
    }
    h.push_str("</div>");
    h
}

/// A histogram of files, as bars.
fn html_chart(title: &str, buckets: &[Bucket]) -> String {
    let rows: Vec<_> = buckets
        .iter()
        .map(|x| {
            let label = format!("{} files, {}", x.files, human(x.bytes));
            (x.label.clone(), x.files, label)
        })
        .collect();
    format!("<h2>{title}</h2>{}", bars(&rows))
}

/// Bytes by extension, as bars.
fn html_extensions(extensions: &[Extension]) -> String {
    let rows: Vec<_> = extensions
        .iter()
        .map(|x| {
            let name = if x.extension.is_empty() {
                "(none)".to_string()
            } else {
                format!(".{}", x.extension)
            };
            let label = format!("{}, {} files", human(x.bytes), x.files);
            (name, x.bytes, label)
        })
        .collect();
    format!("<h2>Bytes by extension</h2>{}", bars(&rows))
}

/// Paths with their sizes and file counts, as a table.
fn html_table(title: &str, rows: &[Sized]) -> String {
    let mut t = format!("<h2>{title}</h2><table><tr><th>size</th><th>files</th><th>path</th></tr>");
    for x in rows {
        let _ = write!(
            t,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            human(x.bytes),
            x.files,
            escape(&x.path)
        );
    }
    t.push_str("</table>");
    t
}

/// The sets of identical files, largest first.
fn html_duplicates(d: &Duplicates) -> String {
    let mut h = String::new();
    let _ = write!(h, "<h2>Duplicate content</h2><p>{} sets of identical files; {} redundant copies take {}.</p><table>\
        <tr><th>size</th><th>copies</th><th>paths</th></tr>", d.sets, d.redundant_files, human(d.redundant_bytes));
    for set in &d.largest {
        let paths: Vec<String> = set.paths.iter().map(|p| escape(p)).collect();
        let _ = write!(
            h,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            human(set.bytes),
            set.paths.len(),
            paths.join("<br>")
        );
    }
    h.push_str("</table>");
    h
}
