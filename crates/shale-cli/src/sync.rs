//! `shale sync` and `shale scan`: the CLI side of `shale-sync`.

use anyhow::{bail, Context, Result};
use shale_core::size::{format_size, parse_size};
use shale_sync::{Location, SyncOptions, SyncReport};

use crate::output::print_json;
use crate::progress::Bar;
use crate::{Cli, ScanArgs, SyncArgs};

/// The pool, opened only if one of the places is a volume.
fn pool_for(cli: &Cli, places: &[&Location]) -> Result<Option<shale_core::Pool>> {
    if places.iter().any(|l| matches!(l, Location::Volume { .. })) {
        Ok(Some(crate::commands::open(cli)?))
    } else {
        Ok(None)
    }
}

/// With the endpoint and region of the command line.
pub(crate) fn located(cli: &Cli, arg: &std::ffi::OsStr) -> Result<Location> {
    let mut loc = Location::parse(arg)?;
    if let Location::Store(l) = &mut loc {
        l.endpoint = cli.endpoint.clone();
        l.region = cli.region.clone();
    }
    Ok(loc)
}

pub fn sync(cli: &Cli, args: &SyncArgs) -> Result<()> {
    if let Some(cmd) = &args.saved {
        return crate::saved_sync::saved(cli, cmd);
    }
    let (Some(src), Some(dst)) = (&args.src, &args.dst) else {
        bail!("shale sync SRC DST: name both places");
    };
    let src = located(cli, src)?;
    let dst = located(cli, dst)?;
    let how = &args.how;
    let filter = how.filter.filter()?;
    let bwlimit = bwlimit(how)?;
    let pool = pool_for(cli, &[&src, &dst])?;
    let (progress, bar) = Bar::start(cli.quiet || cli.json || args.dry_run, "syncing", None);
    let opts = SyncOptions {
        delete: how.delete,
        checksum: how.checksum,
        dry_run: args.dry_run,
        jobs: how.jobs,
        bwlimit,
        retries: how.retries,
        snapshot: how.snapshot.clone().map(|n| (!n.is_empty()).then_some(n)),
        progress,
        pool_options: cli.options.clone(),
        filter,
    };
    let report = shale_sync::sync(pool.as_ref(), &src, &dst, &opts);
    drop(bar);
    print_report(
        cli,
        &report?,
        args.dry_run,
        args.strict,
        args.report.as_deref(),
    )
}

/// `--bwlimit RATE` in bytes per second; checks `--jobs` too.
pub(crate) fn bwlimit(how: &crate::SyncFlags) -> Result<Option<u64>> {
    if how.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    match &how.bwlimit {
        Some(r) => Ok(Some(
            parse_size(r.trim_end_matches("/s")).with_context(|| format!("--bwlimit {r}"))?,
        )),
        None => Ok(None),
    }
}

/// Prints a sync's report (and writes it to `file`); fails if paths
/// failed, or anything was skipped and `strict`.
pub(crate) fn print_report(
    cli: &Cli,
    report: &SyncReport,
    dry_run: bool,
    strict: bool,
    file: Option<&std::path::Path>,
) -> Result<()> {
    if let Some(path) = file {
        let json = serde_json::to_vec_pretty(report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if cli.json {
        print_json(&serde_json::to_value(report)?);
    } else {
        if dry_run {
            for p in &report.planned {
                match p.reason {
                    Some(r) => {
                        println!("{:<6} {} ({r}, {})", p.action, p.path, format_size(p.bytes))
                    }
                    None => println!("{:<6} {}", p.action, p.path),
                }
            }
        }
        if !cli.quiet {
            eprintln!("{}", summary(report));
            for s in &report.skipped {
                eprintln!("skipped {}: {}", s.path, s.reason);
            }
        }
    }
    for e in &report.errors {
        eprintln!("shale: error: {}: {}", e.path, e.error);
    }
    if !report.errors.is_empty() {
        bail!(
            "{} of {} paths failed (listed above); re-run to retry them",
            report.errors.len(),
            report.copied as usize + report.errors.len()
        );
    }
    if strict && !report.skipped.is_empty() {
        bail!(
            "{} entries skipped (listed in the report) and --strict was given",
            report.skipped.len()
        );
    }
    Ok(())
}

pub(crate) fn summary(r: &SyncReport) -> String {
    let verb = if r.dry_run { "would sync" } else { "synced" };
    let copied = if r.dry_run {
        r.planned.iter().filter(|p| p.action == "copy").count() as u64
    } else {
        r.copied
    };
    let bytes = if r.dry_run {
        r.planned.iter().map(|p| p.bytes).sum()
    } else {
        r.bytes
    };
    let deleted = if r.dry_run {
        r.planned.iter().filter(|p| p.action == "delete").count() as u64
    } else {
        r.deleted
    };
    let mut s = format!(
        "{verb} {} -> {}: {} scanned, {copied} copied ({}), {} unchanged, {deleted} deleted, \
         {} skipped, {} errors in {:.1} s ({}/s)",
        r.source,
        r.destination,
        r.scanned,
        format_size(bytes),
        r.unchanged,
        r.skipped.len(),
        r.errors.len(),
        r.seconds,
        format_size(r.bytes_per_second as u64),
    );
    if let Some(snap) = &r.snapshot {
        s.push_str(&format!("; snapshot {} (id {})", snap.name, snap.id));
    }
    s
}

pub fn scan(cli: &Cli, args: &ScanArgs) -> Result<()> {
    let place = located(cli, &args.place)?;
    let pool = pool_for(cli, &[&place])?;
    let side = shale_sync::open_side(&place, pool.as_ref(), &cli.options)?;
    let report = shale_sync::scan::scan(&*side, args.dedup)?;
    if let Some(path) = &args.html {
        std::fs::write(path, shale_sync::scan::to_html(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if cli.json {
        print_json(&serde_json::to_value(&report)?);
    } else if !cli.quiet {
        print!("{}", shale_sync::scan::to_table(&report));
    }
    Ok(())
}
