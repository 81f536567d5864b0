//! `shale volume …` and `shale snapshot …`: one function per subcommand,
//! each calling one operation and printing its report (the one JSON shape
//! of `shale_core::ops::volumes` with `--json`).

use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use shale_core::ops::export::ExportOptions;
use shale_core::ops::import::{ImportOptions, ImportReport};
use shale_core::ops::volumes::{SnapshotReport, VolumeReport};
use shale_core::size::{format_size, parse_size};
use shale_core::Pool;

use crate::commands::{open, print_json_timed};
use crate::output::{print_json, table};
use crate::progress::Bar;
use crate::remote::{needs_pool, Remote};
use crate::{Cli, ExportArgs, SnapshotCmd, VolumeCmd};

/// Runs `shale volume …`.
pub fn volume(cli: &Cli, cmd: &VolumeCmd) -> Result<()> {
    let pool = open(cli)?;
    match cmd {
        VolumeCmd::Create {
            name,
            from,
            size,
            filter,
        } => {
            let quota = size.as_deref().map(parse_size).transpose()?;
            let filter = filter.filter()?;
            match from {
                Some(dir) => {
                    let start = Instant::now();
                    let (progress, bar) = Bar::start(cli.quiet || cli.json, "importing", None);
                    let r = pool.create_volume_from(name, dir, quota, progress, filter);
                    drop(bar);
                    print_import(cli, "created volume", name, &r?, start);
                }
                None => {
                    let v = pool.create_volume(name, quota)?;
                    print_volume(cli, &v, &format!("created volume {name}"));
                }
            }
        }
        VolumeCmd::List => list(cli, &pool)?,
        VolumeCmd::Info { name, space } => info(cli, &pool, name, *space)?,
        VolumeCmd::Delete {
            name,
            keep_snapshots,
        } => {
            pool.delete_volume(name, *keep_snapshots)?;
            if cli.json {
                print_json(&json!({"deleted": name}));
            } else if !cli.quiet {
                println!("deleted volume {name}");
            }
        }
        VolumeCmd::Clone { new, from } => {
            let v = pool.clone_volume(new, from)?;
            let origin = v.origin.as_deref().unwrap_or(from);
            print_volume(cli, &v, &format!("created volume {new} from {origin}"));
        }
        VolumeCmd::Resize { name, size } => {
            print_resized(cli, &pool.resize_volume(name, quota_of(size)?)?);
        }
        VolumeCmd::Import {
            name,
            dir,
            to,
            delete,
            checksum,
            filter,
        } => {
            let filter = filter.filter()?;
            let (progress, bar) = Bar::start(cli.quiet || cli.json, "importing", None);
            let opts = ImportOptions {
                to: to.clone(),
                delete: *delete,
                checksum: *checksum,
                progress,
                filter,
            };
            let start = Instant::now();
            let r = pool.import(name, dir, &opts);
            drop(bar);
            print_import(cli, "imported into", name, &r?, start);
        }
        VolumeCmd::Export(args) => export(cli, &pool, args)?,
    }
    Ok(())
}

/// Prints a volume's report with `--json`, else `line`.
fn print_volume(cli: &Cli, v: &VolumeReport, line: &str) {
    if cli.json {
        print_json(v);
    } else if !cli.quiet {
        println!("{line}");
    }
}

fn list(cli: &Cli, pool: &Pool) -> Result<()> {
    print_volumes(cli, &pool.list_volumes()?);
    Ok(())
}

/// Prints volumes: JSON, or a table.
fn print_volumes(cli: &Cli, vols: &[VolumeReport]) {
    if cli.json {
        print_json(&vols);
    } else if !cli.quiet {
        let rows: Vec<Vec<String>> = vols
            .iter()
            .map(|v| {
                vec![
                    v.name.clone(),
                    format_size(v.logical_bytes),
                    v.files.to_string(),
                    v.snapshots.to_string(),
                    v.origin.clone().unwrap_or_else(|| "-".into()),
                    v.id[..12].to_string(),
                ]
            })
            .collect();
        table(
            &["NAME", "SIZE", "FILES", "SNAPSHOTS", "ORIGIN", "ID"],
            &rows,
        );
    }
}

fn info(cli: &Cli, pool: &Pool, name: &str, space: bool) -> Result<()> {
    let mut v = pool.volume_info(name)?;
    if space {
        v.used_bytes = Some(pool.exclusive_bytes(name, None)?);
    }
    print_info(cli, &v);
    Ok(())
}

/// Prints one volume: JSON, or a field per line.
fn print_info(cli: &Cli, v: &VolumeReport) {
    if cli.json {
        print_json(v);
        return;
    }
    if cli.quiet {
        return;
    }
    println!("name:      {}", v.name);
    println!("id:        {}", v.id);
    println!(
        "size:      {} ({} bytes)",
        format_size(v.logical_bytes),
        v.logical_bytes
    );
    println!("files:     {}", v.files);
    println!("snapshots: {}", v.snapshots);
    println!("origin:    {}", v.origin.as_deref().unwrap_or("-"));
    let quota = v.quota.map(format_size).unwrap_or_else(|| "none".into());
    println!("quota:     {quota}");
    println!("created:   {}", v.created);
    println!("updated:   {}", v.updated);
    if let Some(u) = v.used_bytes {
        println!(
            "used:      {} (freed by deleting it and its snapshots, then gc)",
            format_size(u)
        );
    }
}

fn print_import(cli: &Cli, verb: &str, name: &str, r: &ImportReport, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    if cli.json {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        v["volume"] = json!(name);
        print_json_timed(&v, secs);
        return;
    }
    for s in &r.skipped {
        eprintln!("shale: skipped {}: {}", s.path, s.reason);
    }
    if !cli.quiet {
        println!(
            "{verb} {name}: {} files ({} read, {} unchanged), {} dirs, {} symlinks; {} read, {} new data stored; volume now {} in {} files ({secs:.2}s)",
            r.files,
            r.files_read,
            r.files_unchanged,
            r.dirs,
            r.symlinks,
            format_size(r.bytes_read),
            format_size(r.written_bytes),
            format_size(r.volume_bytes),
            r.volume_files,
        );
    }
}

fn export(cli: &Cli, pool: &Pool, args: &ExportArgs) -> Result<()> {
    let total = match args.path {
        None => Some(pool.resolve(&args.spec)?.bytes),
        Some(_) => None,
    };
    let (progress, bar) = Bar::start(cli.quiet || cli.json, "exporting", total);
    let opts = ExportOptions {
        path: args.path.clone(),
        force: args.force,
        progress,
    };
    let start = Instant::now();
    let r = pool.export(&args.spec, &args.dir, &opts);
    drop(bar);
    let r = r?;
    let secs = start.elapsed().as_secs_f64();
    if cli.json {
        print_json_timed(&r, secs);
    } else if !cli.quiet {
        println!(
            "exported {} to {}: {} files, {} dirs, {} symlinks, {} ({secs:.2}s)",
            args.spec,
            args.dir.display(),
            r.files,
            r.dirs,
            r.symlinks,
            format_size(r.bytes)
        );
    }
    Ok(())
}

/// Runs `shale snapshot …`.
pub fn snapshot(cli: &Cli, cmd: &SnapshotCmd) -> Result<()> {
    let pool = open(cli)?;
    match cmd {
        SnapshotCmd::Create {
            volume,
            name,
            keep: None,
            keep_days: None,
        } => {
            let s = pool.create_snapshot(volume, name.as_deref())?;
            let line = format!("created snapshot {}@{} (id {})", s.volume, s.name, s.id);
            print_snapshot(cli, &s, &line);
        }
        SnapshotCmd::Create {
            volume,
            name,
            keep,
            keep_days,
        } => crate::retention::create(cli, &pool, volume, name.as_deref(), *keep, *keep_days)?,
        SnapshotCmd::Policy(cmd) => crate::retention::policy(cli, &pool, cmd)?,
        SnapshotCmd::List { volume, space } => list_snapshots(cli, &pool, volume, *space)?,
        SnapshotCmd::Delete { volume, name } => {
            pool.delete_snapshot(volume, name)?;
            if cli.json {
                print_json(&json!({"deleted": format!("{volume}@{name}")}));
            } else if !cli.quiet {
                println!("deleted snapshot {volume}@{name}");
            }
        }
        SnapshotCmd::Restore { volume, name } => {
            let s = pool.restore_snapshot(volume, name)?;
            let line = format!("restored {volume} to snapshot {name} (id {})", s.id);
            print_snapshot(cli, &s, &line);
        }
    }
    Ok(())
}

/// Prints a snapshot's report with `--json`, else `line`.
pub(crate) fn print_snapshot(cli: &Cli, s: &SnapshotReport, line: &str) {
    if cli.json {
        print_json(s);
    } else if !cli.quiet {
        println!("{line}");
    }
}

pub(crate) fn list_snapshots(
    cli: &Cli,
    pool: &Pool,
    volume: &Option<String>,
    space: bool,
) -> Result<()> {
    let mut snaps = pool.list_snapshots(volume.as_deref())?;
    if space {
        for s in &mut snaps {
            s.used_bytes = Some(pool.exclusive_bytes(&s.volume, Some(&s.name))?);
        }
    }
    print_snapshots(cli, &snaps, space);
    Ok(())
}

/// Prints snapshots: JSON, or a table (with USED if `space`).
fn print_snapshots(cli: &Cli, snaps: &[SnapshotReport], space: bool) {
    if cli.json {
        print_json(&snaps);
        return;
    }
    if cli.quiet {
        return;
    }
    let mut header = vec!["VOLUME", "NAME", "ID", "CREATED", "SIZE", "FILES"];
    if space {
        header.push("USED");
    }
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|s| {
            let mut row = vec![
                s.volume.clone(),
                s.name.clone(),
                s.id[..12].to_string(),
                s.created.clone(),
                format_size(s.logical_bytes),
                s.files.to_string(),
            ];
            row.extend(s.used_bytes.map(format_size));
            row
        })
        .collect();
    table(&header, &rows);
}

/// `shale volume …` through `--server`: the subcommands that need no
/// local files.
pub fn volume_remote(cli: &Cli, remote: &Remote, cmd: &VolumeCmd) -> Result<()> {
    match cmd {
        VolumeCmd::Create {
            name,
            from: None,
            size,
            ..
        } => {
            let v = remote.create_volume(name, size.as_deref())?;
            print_volume(cli, &v, &format!("created volume {name}"));
        }
        VolumeCmd::List => print_volumes(cli, &remote.list_volumes()?),
        VolumeCmd::Info { name, space } => {
            let v = remote.volume_info(name, *space)?;
            print_info(cli, &v);
        }
        VolumeCmd::Delete {
            name,
            keep_snapshots,
        } => {
            remote.delete_volume(name, *keep_snapshots)?;
            if cli.json {
                print_json(&json!({"deleted": name}));
            } else if !cli.quiet {
                println!("deleted volume {name}");
            }
        }
        VolumeCmd::Clone { new, from } => {
            let v = remote.clone_volume(new, from)?;
            let origin = v.origin.as_deref().unwrap_or(from);
            print_volume(cli, &v, &format!("created volume {new} from {origin}"));
        }
        VolumeCmd::Create { from: Some(_), .. } => return Err(needs_pool("volume create --from")),
        VolumeCmd::Resize { name, size } => {
            let v = remote.resize_volume(name, quota_of(size)?)?;
            print_resized(cli, &v);
        }
        VolumeCmd::Import { .. } => return Err(needs_pool("volume import")),
        VolumeCmd::Export(_) => return Err(needs_pool("volume export")),
    }
    Ok(())
}

/// The quota `--size` asks for: a size, or `none`.
fn quota_of(size: &str) -> Result<Option<u64>> {
    match size {
        "none" => Ok(None),
        size => Ok(Some(parse_size(size)?)),
    }
}

/// Prints `volume resize`.
fn print_resized(cli: &Cli, v: &VolumeReport) {
    let shown = v
        .quota
        .map(format_size)
        .unwrap_or_else(|| "no quota".into());
    print_volume(cli, v, &format!("resized volume {} to {shown}", v.name));
}

/// `shale snapshot …` through `--server`.
pub fn snapshot_remote(cli: &Cli, remote: &Remote, cmd: &SnapshotCmd) -> Result<()> {
    match cmd {
        SnapshotCmd::Create { keep: Some(_), .. }
        | SnapshotCmd::Create {
            keep_days: Some(_), ..
        } => return Err(needs_pool("snapshot create --keep")),
        SnapshotCmd::Policy(_) => return Err(needs_pool("snapshot policy")),
        SnapshotCmd::Create { volume, name, .. } => {
            let s = remote.create_snapshot(volume, name.as_deref())?;
            let line = format!("created snapshot {}@{} (id {})", s.volume, s.name, s.id);
            print_snapshot(cli, &s, &line);
        }
        SnapshotCmd::List { volume, space } => print_snapshots(
            cli,
            &remote.list_snapshots(volume.as_deref(), *space)?,
            *space,
        ),
        SnapshotCmd::Delete { volume, name } => {
            remote.delete_snapshot(volume, name)?;
            if cli.json {
                print_json(&json!({"deleted": format!("{volume}@{name}")}));
            } else if !cli.quiet {
                println!("deleted snapshot {volume}@{name}");
            }
        }
        SnapshotCmd::Restore { volume, name } => {
            let s = remote.restore_snapshot(volume, name)?;
            let line = format!("restored {volume} to snapshot {name} (id {})", s.id);
            print_snapshot(cli, &s, &line);
        }
    }
    Ok(())
}
