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
fn located(cli: &Cli, arg: &std::ffi::OsStr) -> Result<Location> {
    let mut loc = Location::parse(arg)?;
    if let Location::Store(l) = &mut loc {
        l.endpoint = cli.endpoint.clone();
        l.region = cli.region.clone();
    }
    Ok(loc)
}

pub fn sync(cli: &Cli, args: &SyncArgs) -> Result<()> {
    let src = located(cli, &args.src)?;
    let dst = located(cli, &args.dst)?;
    let bwlimit = match &args.bwlimit {
        Some(r) => {
            Some(parse_size(r.trim_end_matches("/s")).with_context(|| format!("--bwlimit {r}"))?)
        }
        None => None,
    };
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let filter = args.filter.filter()?;
    let pool = pool_for(cli, &[&src, &dst])?;
    let (progress, bar) = Bar::start(cli.quiet || cli.json || args.dry_run, "syncing", None);
    let opts = SyncOptions {
        delete: args.delete,
        checksum: args.checksum,
        dry_run: args.dry_run,
        jobs: args.jobs,
        bwlimit,
        retries: args.retries,
        snapshot: args.snapshot.clone().map(|n| (!n.is_empty()).then_some(n)),
        progress,
        pool_options: cli.options.clone(),
        filter,
    };
    let report = shale_sync::sync(pool.as_ref(), &src, &dst, &opts);
    drop(bar);
    let report = report?;
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if cli.json {
        print_json(&serde_json::to_value(&report)?);
    } else {
        if args.dry_run {
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
            eprintln!("{}", summary(&report));
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
    if args.strict && !report.skipped.is_empty() {
        bail!(
            "{} entries skipped (listed in the report) and --strict was given",
            report.skipped.len()
        );
    }
    Ok(())
}

fn summary(r: &SyncReport) -> String {
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
