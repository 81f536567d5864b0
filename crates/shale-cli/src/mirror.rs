//! `shale mirror …`: the CLI side of `shale_core::ops::mirror`.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use shale_core::ops::mirror::{MirrorRow, Policy, UpdateOptions, UpdateReport};
use shale_core::progress::{self, Event};
use shale_core::size::{format_size, parse_size};
use shale_core::{Pool, PoolSpec};

use crate::output::print_json;
use crate::progress::Bar;
use crate::{Cli, MirrorCmd};

/// `POOL::VOLUME`.
fn split_source(s: &str) -> Result<(String, String)> {
    match s.rsplit_once("::") {
        Some((pool, volume)) if !pool.is_empty() && !volume.is_empty() => {
            Ok((pool.to_string(), volume.to_string()))
        }
        _ => bail!(
            "--source {s:?}: give the source as POOL::VOLUME (a pool path or URL, then the volume)"
        ),
    }
}

/// The source pool of a relationship (it must exist).
fn open_source(cli: &Cli, pool: &str) -> Result<Pool> {
    let mut spec = PoolSpec::parse(std::ffi::OsStr::new(pool))?;
    if let PoolSpec::Store(l) = &mut spec {
        l.endpoint = cli.endpoint.clone();
        l.region = cli.region.clone();
    }
    Pool::open_spec(&spec, &cli.options).with_context(|| format!("opening the source pool {pool}"))
}

pub(crate) fn seconds_of(s: &str) -> Result<std::time::Duration> {
    humantime::parse_duration(s)
        .or_else(|_| s.parse::<u64>().map(std::time::Duration::from_secs))
        .with_context(|| format!("{s:?} is not an interval (e.g. 30s, 5m)"))
}

/// `--bwlimit RATE`: bytes a second, more than none.
pub(crate) fn parse_bwlimit(rate: Option<&str>) -> Result<Option<u64>> {
    match rate.map(parse_size).transpose()? {
        Some(0) => bail!("--bwlimit 0 would never send a byte: give a rate, e.g. 10MiB"),
        limit => Ok(limit),
    }
}

pub(crate) fn say(cli: &Cli, r: &UpdateReport) {
    if cli.json {
        print_json(r);
    } else if !cli.quiet {
        if r.snapshots.is_empty() {
            println!("{}: up to date ({:.3} s)", r.volume, r.seconds);
        } else {
            println!(
                "{}: transferred {} ({} objects, {}) in {:.2} s",
                r.volume,
                r.snapshots.join(", "),
                r.objects,
                format_size(r.bytes),
                r.seconds
            );
        }
    }
}

fn update_one(
    cli: &Cli,
    pool: &Pool,
    volume: &str,
    force_baseline: bool,
    bwlimit: Option<u64>,
) -> Result<UpdateReport> {
    let row = pool.mirror(volume)?;
    let source = open_source(cli, &row.source_pool)?;
    let (progress, bar) = Bar::start(cli.quiet || cli.json, "mirroring", None);
    let limiter = bwlimit.map(shale_sync::Limiter::new);
    let on_bytes: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |n| {
        if let Some(l) = &limiter {
            l.take(n as usize);
        }
        progress::report(&progress, Event::File { bytes: n });
    });
    let r = pool.mirror_update(
        &source,
        volume,
        &UpdateOptions {
            force_baseline,
            on_bytes: Some(on_bytes),
        },
    );
    drop(bar);
    Ok(r?)
}

pub(crate) fn list(cli: &Cli, rows: &[MirrorRow]) {
    if cli.json {
        print_json(&rows);
        return;
    }
    let now = shale_core::catalog::now_ns();
    let ago = |t: Option<i64>| match t {
        Some(t) => humantime::format_duration(std::time::Duration::from_secs(
            ((now - t).max(0) / 1_000_000_000) as u64,
        ))
        .to_string(),
        None => "-".into(),
    };
    println!("VOLUME\tSOURCE\tSTATE\tLAST SNAPSHOT\tLAG\tLAST TRANSFER");
    for r in rows {
        let transfer = match (r.last_bytes, r.last_seconds) {
            (Some(b), Some(s)) => {
                format!("{} in {s:.2} s, {} ago", format_size(b), ago(r.last_update))
            }
            _ => "-".into(),
        };
        println!(
            "{}\t{}::{}\t{}\t{}\t{}\t{}",
            r.volume,
            r.source_pool,
            r.source_volume,
            r.state,
            r.last_snapshot.as_deref().unwrap_or("-"),
            ago(r.last_source_created),
            transfer
        );
    }
}

/// `mirror create`: records the relationship, then (unless told not to)
/// makes the first transfer.
fn create(
    cli: &Cli,
    pool: &Pool,
    volume: &str,
    source: &str,
    policy: &str,
    no_transfer: bool,
) -> Result<()> {
    let (src_pool, src_volume) = split_source(source)?;
    let policy = Policy::parse(policy)?;
    let src = open_source(cli, &src_pool)?;
    src.catalog()
        .volume(&src_volume)
        .with_context(|| format!("the source {src_pool}::{src_volume}"))?;
    drop(src);
    pool.mirror_create(volume, &src_pool, &src_volume, policy)?;
    if !cli.quiet && !cli.json {
        eprintln!("created mirror {volume} of {src_pool}::{src_volume}");
    }
    if !no_transfer {
        let r = update_one(cli, pool, volume, false, None)?;
        say(cli, &r);
    }
    Ok(())
}

/// Updates each mirror of `names`, saying how each went; with `fail`, an
/// error if any failed (a watch goes on instead).
fn update_all(
    cli: &Cli,
    pool: &Pool,
    names: &[String],
    force_baseline: bool,
    bwlimit: Option<u64>,
    fail: bool,
) -> Result<()> {
    let mut failed = 0;
    for v in names {
        match update_one(cli, pool, v, force_baseline, bwlimit) {
            Ok(r) => say(cli, &r),
            Err(e) => {
                failed += 1;
                eprintln!("shale: error: mirror {v}: {}", crate::message(&e));
            }
        }
    }
    if fail && failed > 0 {
        bail!("{failed} of {} mirrors failed to update", names.len());
    }
    Ok(())
}

pub fn mirror(cli: &Cli, cmd: &MirrorCmd) -> Result<()> {
    let pool = crate::commands::open(cli)?;
    match cmd {
        MirrorCmd::Create {
            volume,
            source,
            policy,
            no_transfer,
        } => create(cli, &pool, volume, source, policy, *no_transfer),
        MirrorCmd::Update {
            volume,
            all,
            watch,
            force_baseline,
            bwlimit,
        } => {
            let bwlimit = parse_bwlimit(bwlimit.as_deref())?;
            let names: Vec<String> = match (volume, all) {
                (Some(v), false) => vec![v.clone()],
                (None, true) => pool.mirrors()?.into_iter().map(|r| r.volume).collect(),
                _ => bail!("name one mirror, or --all"),
            };
            let interval = watch.as_deref().map(seconds_of).transpose()?;
            loop {
                update_all(
                    cli,
                    &pool,
                    &names,
                    *force_baseline,
                    bwlimit,
                    interval.is_none(),
                )?;
                match interval {
                    Some(every) => std::thread::sleep(every),
                    None => return Ok(()),
                }
            }
        }
        MirrorCmd::List => {
            list(cli, &pool.mirrors()?);
            Ok(())
        }
        MirrorCmd::Break { volume } => {
            pool.mirror_break(volume)?;
            if !cli.quiet && !cli.json {
                eprintln!("mirror {volume} is broken: the volume is writable; `shale mirror resync {volume}` mirrors again");
            }
            Ok(())
        }
        MirrorCmd::Resync { volume } => {
            let row = pool.mirror(volume)?;
            let source = open_source(cli, &row.source_pool)?;
            let r = pool.mirror_resync(&source, volume, &UpdateOptions::default())?;
            say(cli, &r);
            Ok(())
        }
        MirrorCmd::Delete { volume } => {
            pool.mirror_delete(volume)?;
            if !cli.quiet && !cli.json {
                eprintln!("ended mirror {volume}; the volume stays, writable");
            }
            Ok(())
        }
    }
}
