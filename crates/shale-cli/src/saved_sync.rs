//! `shale sync create|list|run|delete`: saved syncs
//! (`shale_sync::saved`).

use anyhow::{Context, Result};
use serde_json::json;
use shale_core::catalog::now_ns;
use shale_core::ops::volumes::rfc3339;
use shale_sync::saved::{self, SavedOptions};

use crate::commands::open;
use crate::output::{print_json, table};
use crate::progress::Bar;
use crate::sync::{bwlimit, print_report, summary};
use crate::{Cli, SavedSyncCmd, SyncFlags};

/// Runs `shale sync create|list|run|delete`.
pub fn saved(cli: &Cli, cmd: &SavedSyncCmd) -> Result<()> {
    let pool = open(cli)?;
    match cmd {
        SavedSyncCmd::Create {
            name,
            src,
            dst,
            how,
            every,
        } => {
            let every = every
                .as_deref()
                .map(|e| humantime::parse_duration(e).with_context(|| format!("--every {e}")))
                .transpose()?;
            let options = saved_options(cli, how)?;
            let text = |p: &std::ffi::OsString| {
                p.to_str().map(str::to_string).with_context(|| {
                    format!("{}: a saved place must be UTF-8", p.to_string_lossy())
                })
            };
            let row = saved::save(&pool, name, &text(src)?, &text(dst)?, &options, every)?;
            if cli.json {
                print_json(&row);
            } else if !cli.quiet {
                println!(
                    "saved sync {name}: {} -> {}{}",
                    row.source,
                    row.destination,
                    every.map_or(String::new(), |e| format!(
                        ", every {}",
                        humantime::format_duration(e)
                    ))
                );
            }
        }
        SavedSyncCmd::List => list(cli, &pool)?,
        SavedSyncCmd::Run {
            name: Some(name), ..
        } => {
            let (progress, bar) = Bar::start(cli.quiet || cli.json, "syncing", None);
            let r = saved::run_saved(&pool, name, &cli.options, progress);
            drop(bar);
            print_report(cli, &r?, false, false, None)?;
        }
        SavedSyncCmd::Run { name: None, .. } => run_due(cli, &pool)?,
        SavedSyncCmd::Delete { name } => {
            pool.delete_saved_sync(name)?;
            if cli.json {
                print_json(&json!({ "deleted": name }));
            } else if !cli.quiet {
                println!("deleted saved sync {name}");
            }
        }
    }
    Ok(())
}

/// The flags of `sync create` as saved: the lines of `--exclude-from`
/// files are read now and kept as excludes.
fn saved_options(cli: &Cli, how: &SyncFlags) -> Result<SavedOptions> {
    let mut exclude = how.filter.exclude.clone();
    for file in &how.filter.exclude_from {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--exclude-from {}", file.display()))?;
        exclude.extend(text.lines().map(str::to_string));
    }
    Ok(SavedOptions {
        delete: how.delete,
        checksum: how.checksum,
        jobs: how.jobs,
        bwlimit: bwlimit(how)?,
        retries: how.retries,
        snapshot: how.snapshot.clone(),
        exclude,
        include: how.filter.include.clone(),
        endpoint: cli.endpoint.clone(),
        region: cli.region.clone(),
    })
}

fn list(cli: &Cli, pool: &shale_core::Pool) -> Result<()> {
    let rows = pool.saved_syncs()?;
    if cli.json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["next_due"] = json!(saved::next_due(r));
                v
            })
            .collect();
        print_json(&out);
        return Ok(());
    }
    if cli.quiet {
        return Ok(());
    }
    let when = |t: Option<i64>| t.map_or("-".to_string(), rfc3339);
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.source.clone(),
                r.destination.clone(),
                r.every_secs.map_or("-".into(), |s| {
                    humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
                }),
                when(r.last_run),
                match r.last_ok {
                    Some(true) => "ok".into(),
                    Some(false) => "failed".into(),
                    None => "never run".into(),
                },
                match saved::next_due(r) {
                    Some(t) if t <= now_ns() => "now".into(),
                    t => when(t),
                },
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "SOURCE",
            "DESTINATION",
            "EVERY",
            "LAST RUN",
            "RESULT",
            "NEXT DUE",
        ],
        &table_rows,
    );
    Ok(())
}

/// `shale sync run --due`: every scheduled sync that is due.
fn run_due(cli: &Cli, pool: &shale_core::Pool) -> Result<()> {
    let ran = saved::run_due(pool, now_ns(), &cli.options)?;
    let mut failed = Vec::new();
    let mut out = Vec::new();
    for (name, r) in &ran {
        match r {
            Ok(report) => {
                if !report.errors.is_empty() {
                    failed.push(name.clone());
                }
                if !cli.quiet && !cli.json {
                    eprintln!("{name}: {}", summary(report));
                }
                out.push(json!({ "name": name, "report": report }));
            }
            Err(e) => {
                failed.push(name.clone());
                if !cli.json {
                    eprintln!("shale: error: {name}: {e}");
                }
                out.push(json!({ "name": name, "error": e.to_string() }));
            }
        }
    }
    if cli.json {
        print_json(&out);
    } else if ran.is_empty() && !cli.quiet {
        eprintln!("no saved sync is due");
    }
    if !failed.is_empty() {
        anyhow::bail!("saved syncs failed: {}", failed.join(", "));
    }
    Ok(())
}
