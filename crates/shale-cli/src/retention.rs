//! `shale snapshot create --keep` and `shale snapshot policy …`: series
//! of timestamped snapshots, pruned (`shale_core::ops::retention`).

use std::time::Duration;

use anyhow::Result;
use shale_core::catalog::now_ns;
use shale_core::ops::retention::{PruneReport, Retention};
use shale_core::Pool;

use crate::output::{print_json, table};
use crate::{Cli, PolicyCmd};

/// `shale snapshot create VOLUME [NAME] --keep N --keep-days D`.
pub fn create(
    cli: &Cli,
    pool: &Pool,
    volume: &str,
    prefix: Option<&str>,
    keep: Option<usize>,
    keep_days: Option<u64>,
) -> Result<()> {
    let retention = Retention {
        keep,
        max_age: keep_days.map(|d| Duration::from_secs(d.saturating_mul(86_400))),
    };
    let r = pool.snapshot_series(volume, prefix, &retention, now_ns())?;
    if cli.json {
        print_json(&r);
    } else if !cli.quiet {
        let s = &r.snapshot;
        println!("created snapshot {}@{} (id {})", s.volume, s.name, s.id);
        print_pruned(&r.pruned);
    }
    Ok(())
}

/// What pruning a series deleted and kept, one line each.
fn print_pruned(p: &PruneReport) {
    for d in &p.deleted {
        println!("deleted snapshot {}@{d} ({} series)", p.volume, p.series);
    }
    for k in &p.kept {
        println!("kept snapshot {}@{}: {}", p.volume, k.name, k.reason);
    }
}

/// `shale snapshot policy set|list|run`.
pub fn policy(cli: &Cli, pool: &Pool, cmd: &PolicyCmd) -> Result<()> {
    match cmd {
        PolicyCmd::Set {
            volume,
            hourly,
            daily,
            weekly,
        } => {
            let p = pool.set_snapshot_policy(volume, *hourly, *daily, *weekly)?;
            if cli.json {
                print_json(&p);
            } else if !cli.quiet {
                match p {
                    Some(_) => println!(
                        "{volume} keeps {hourly} hourly, {daily} daily and {weekly} weekly \
                         snapshots (taken by `shale snapshot policy run`)"
                    ),
                    None => println!("{volume} has no snapshot policy"),
                }
            }
        }
        PolicyCmd::List => {
            let all = pool.snapshot_policies()?;
            if cli.json {
                print_json(&all);
            } else if !cli.quiet {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|p| {
                        vec![
                            p.volume.clone(),
                            p.hourly.to_string(),
                            p.daily.to_string(),
                            p.weekly.to_string(),
                        ]
                    })
                    .collect();
                table(&["VOLUME", "HOURLY", "DAILY", "WEEKLY"], &rows);
            }
        }
        PolicyCmd::Run => {
            let runs = pool.run_snapshot_policies(now_ns())?;
            if cli.json {
                print_json(&runs);
            } else if !cli.quiet {
                for r in &runs {
                    for t in &r.taken {
                        println!("created snapshot {}@{t}", r.volume);
                    }
                    r.pruned.iter().for_each(print_pruned);
                }
            }
            let failed: Vec<String> = runs
                .iter()
                .filter_map(|r| Some(format!("{}: {}", r.volume, r.error.as_ref()?)))
                .collect();
            if !failed.is_empty() {
                anyhow::bail!("snapshot policies failed: {}", failed.join("; "));
            }
        }
    }
    Ok(())
}
