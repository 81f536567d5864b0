//! One function per command: open the pool, call the engine, print.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use shale_core::ops::diff::{DiffEntry, DiffStat};
use shale_core::ops::gc::{GcOptions, GcReport};
use shale_core::ops::info::PoolReport;
use shale_core::ops::verify::{VerifyOptions, VerifyReport};
use shale_core::pool::PoolSettings;
use shale_core::size::{format_size, parse_size};
use shale_core::store::chunker::ChunkParams;
use shale_core::{Pool, PoolSpec};

use crate::output::{self, print_json};
use crate::progress::Bar;
use crate::{CacheCmd, Cli, Command, DiffArgs, PoolCmd};

/// The pool as given: --pool, $SHALE_POOL (via clap), else the XDG data
/// directory. A path, or an `s3://` URL (see [`pool_spec`]).
pub fn pool_path(cli: &Cli) -> Result<PathBuf> {
    if let Some(p) = &cli.pool {
        return Ok(p.clone());
    }
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .context("no pool given: use --pool PATH or set SHALE_POOL (HOME is not set)")?;
            PathBuf::from(home).join(".local/share")
        }
    };
    Ok(data.join("shale/pool"))
}

/// Where the pool lives.
pub fn pool_spec(cli: &Cli) -> Result<PoolSpec> {
    with_endpoint(cli, PoolSpec::parse(pool_path(cli)?.as_os_str())?)
}

/// `spec` with the endpoint and region given on the command line.
fn with_endpoint(cli: &Cli, mut spec: PoolSpec) -> Result<PoolSpec> {
    if let PoolSpec::Store(location) = &mut spec {
        location.endpoint = cli.endpoint.clone();
        location.region = cli.region.clone();
    }
    Ok(spec)
}

/// The directory on this machine with the pool's local files (the pool
/// itself, or an object-store pool's cache).
pub fn local_root(cli: &Cli) -> Result<PathBuf> {
    Ok(pool_spec(cli)?.local_root(&cli.options)?)
}

/// Opens the pool, creating a local one on first use; warns once if others
/// may open its files.
pub fn open(cli: &Cli) -> Result<Pool> {
    let pool = Pool::open_or_init_spec(&pool_spec(cli)?, &cli.options)?;
    if let Some((path, mode)) = pool.open_to_others() {
        eprintln!(
            "shale: warning: {} is open to other users (mode {mode:04o}): \
             run `shale pool fix-permissions`",
            path.display()
        );
    }
    Ok(pool)
}

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Pool(PoolCmd::Init {
            path,
            chunk_size,
            catalog,
            group,
            encrypt,
            key_name,
            same_key_as,
        }) => {
            let encrypt = encrypt.then_some(key_name.as_str());
            let master = same_key_as
                .as_deref()
                .map(|p| master_of(cli, p))
                .transpose()?;
            pool_init(
                cli,
                path.as_deref(),
                chunk_size,
                catalog,
                group,
                encrypt,
                master,
            )
        }
        Command::Pool(PoolCmd::Attach) => {
            let PoolSpec::Store(location) = pool_spec(cli)? else {
                anyhow::bail!("`pool attach` is for object-store pools (--pool s3://BUCKET/PREFIX); a local pool is used where it is");
            };
            let pool = Pool::attach(&location, &cli.options)?;
            if cli.json {
                print_json(&json!({"path": pool.name(), "cache": pool.root()}));
            } else if !cli.quiet {
                println!("attached {} (cache {})", pool.name(), pool.root().display());
            }
            Ok(())
        }
        Command::Pool(PoolCmd::Info) => pool_info(cli),
        Command::Pool(PoolCmd::Key(cmd)) => crate::keys::key(cli, cmd),
        Command::Pool(PoolCmd::Rekey) => crate::keys::rekey(cli),
        Command::Pool(PoolCmd::FixPermissions) => fix_permissions(cli),
        Command::Pool(PoolCmd::Upgrade) => upgrade(cli),
        Command::Volume(cmd) => crate::volume::volume(cli, cmd),
        Command::Snapshot(cmd) => crate::volume::snapshot(cli, cmd),
        Command::Diff(args) => diff(cli, args),
        Command::Verify { read_data, volume } => verify(cli, *read_data, volume.clone()),
        Command::Gc { dry_run } => gc(cli, *dry_run),
        Command::Mount(args) => crate::mount::mount(cli, &pool_path(cli)?, args),
        Command::Unmount { mountpoint, force } => crate::mount::unmount(cli, mountpoint, *force),
        Command::Run(_) => unreachable!("`run` is dispatched by main"),
        Command::Lineage { spec, dot } => lineage(cli, spec, *dot),
        Command::Sync(args) => crate::sync::sync(cli, args),
        Command::Mirror(cmd) => crate::mirror::mirror(cli, cmd),
        Command::Scan(args) => crate::sync::scan(cli, args),
        Command::Cache(CacheCmd::Warm { spec, paths, jobs }) => warm(cli, spec, paths, *jobs),
        Command::Workspace(cmd) => crate::workspace::run(cli, cmd),
        Command::Token(cmd) => crate::server::token(cli, cmd),
        Command::Serve(args) => crate::server::serve(cli, args),
        Command::Mcp => shale_server::mcp::serve_stdio(open(cli)?),
    }
}

/// `cache warm`.
fn warm(cli: &Cli, spec: &str, paths: &[String], jobs: usize) -> Result<()> {
    if jobs == 0 {
        anyhow::bail!("--jobs must be at least 1");
    }
    let pool = open(cli)?;
    let (progress, bar) = crate::progress::Bar::start(cli.quiet || cli.json, "warming", None);
    let r = pool.warm_cache(spec, paths, jobs, progress);
    drop(bar);
    let r = r?;
    if cli.json {
        print_json(&r);
    } else if !cli.quiet {
        use shale_core::size::format_size;
        println!(
            "warmed {}: {} files ({}), {} fetched, {} already cached; cache {} of {} ({} left) in {:.1} s",
            r.spec,
            r.files,
            format_size(r.logical_bytes),
            format_size(r.bytes_fetched),
            format_size(r.bytes_already_cached),
            format_size(r.cache_used),
            format_size(r.cache_limit),
            format_size(r.cache_limit.saturating_sub(r.cache_used)),
            r.seconds
        );
    }
    Ok(())
}

/// `pool init`.
fn pool_init(
    cli: &Cli,
    path: Option<&std::path::Path>,
    chunk_size: &str,
    catalog: &Option<String>,
    group: &Option<String>,
    encrypt: Option<&str>,
    master: Option<shale_core::crypt::Key>,
) -> Result<()> {
    let spec = match path {
        Some(p) => with_endpoint(cli, PoolSpec::parse(p.as_os_str())?)?,
        None => pool_spec(cli)?,
    };
    let chunking = ChunkParams::new(parse_size(chunk_size)?)?;
    let settings = PoolSettings {
        chunking,
        catalog: catalog.clone(),
        group: group.clone(),
        encrypt: match encrypt {
            Some(_) => Some(crate::keys::init_key(cli)?),
            None => None,
        },
        key_name: encrypt.map(str::to_string),
        master,
    };
    let pool = Pool::init_spec(&spec, &settings, &cli.options)?;
    pool.sync_catalog()?;
    if encrypt.is_none() && matches!(spec, PoolSpec::Store(_)) && !cli.quiet {
        eprintln!(
            "shale: note: {} is not encrypted: its store holds your files compressed, not              sealed (`pool init --encrypt` makes a pool whose store sees only ciphertext)",
            pool.name()
        );
    }
    if cli.json {
        print_json(
            &json!({"path": pool.name(), "id": pool.description().id, "version": pool.description().version}),
        );
    } else if !cli.quiet {
        let how = if encrypt.is_some() { "encrypted " } else { "" };
        println!("created {how}pool at {}", pool.name());
    }
    Ok(())
}

/// The master key of the encrypted pool `pool`, opened with the key given.
fn master_of(cli: &Cli, pool: &std::ffi::OsStr) -> Result<shale_core::crypt::Key> {
    let spec = with_endpoint(cli, PoolSpec::parse(pool)?)?;
    let other = Pool::open_spec(&spec, &cli.options)?;
    let name = other.name();
    let Some(ring) = other.ring(&name) else {
        anyhow::bail!("{name} is not encrypted: it has no master key to share");
    };
    Ok(ring.master(&cli.options)?)
}

/// `pool fix-permissions`.
fn fix_permissions(cli: &Cli) -> Result<()> {
    let pool = Pool::open_spec(&pool_spec(cli)?, &cli.options)?;
    let fixed = pool.fix_permissions()?;
    if cli.json {
        print_json(
            &json!({"path": pool.root(), "changed": fixed.changed, "not_owned": fixed.not_owned}),
        );
    } else if !cli.quiet {
        let whose = match &pool.description().group {
            Some(g) => format!("its owner and group {g}"),
            None => "owner-only".into(),
        };
        println!(
            "{} entries made {whose} under {}",
            fixed.changed,
            pool.root().display()
        );
    }
    if fixed.not_owned > 0 {
        eprintln!(
            "shale: warning: {} entries belong to other users and were left as they are: \
             they (or root) can run `shale pool fix-permissions`",
            fixed.not_owned
        );
    }
    Ok(())
}

fn upgrade(cli: &Cli) -> Result<()> {
    let pool = Pool::open_spec(&pool_spec(cli)?, &cli.options)?;
    let from = pool.upgrade_format()?;
    let to = shale_core::pool::POOL_VERSION;
    if cli.json {
        print_json(&json!({"path": pool.name(), "from": from, "to": to}));
    } else if !cli.quiet && from == to {
        println!("{} is at format version {to} already", pool.name());
    } else if !cli.quiet {
        println!(
            "{}: format version {from} -> {to}; in-place edits are stored as deltas from now on, \
             and releases before format {to} cannot open it",
            pool.name()
        );
    }
    Ok(())
}

fn pool_info(cli: &Cli) -> Result<()> {
    print_pool_info(cli, &open(cli)?.report(true)?);
    Ok(())
}

/// Prints `pool info`'s report.
pub(crate) fn print_pool_info(cli: &Cli, r: &PoolReport) {
    if cli.json {
        print_json(r);
        return;
    }
    if cli.quiet {
        return;
    }
    println!("pool:              {}", r.path);
    println!(
        "encryption:        {}",
        r.encryption.as_deref().unwrap_or("none")
    );
    println!(
        "format:            version {}{}",
        r.format_version,
        if r.format_version >= shale_core::pool::POOL_VERSION {
            " (in-place edits stored as deltas)"
        } else {
            " (made by an older release: in-place edits stored as whole chunks until `shale pool upgrade`)"
        }
    );
    println!(
        "chunk size:        {} average",
        format_size(r.chunk_size as u64)
    );
    println!("volumes:           {}", r.volumes);
    println!("snapshots:         {}", r.snapshots);
    println!(
        "logical size:      {} (volumes and snapshots as plain copies)",
        format_size(r.logical_bytes)
    );
    println!("unique data:       {}", format_size(r.unique_bytes));
    println!(
        "stored:            {} in {} packs",
        format_size(r.stored_bytes),
        r.packs
    );
    println!("dedup ratio:       {:.2}x", r.dedup_ratio);
    println!("compression ratio: {:.2}x", r.compression_ratio);
    println!("space saved:       {}", format_size(r.saved_bytes));
    match (r.reclaimable_bytes, r.unused_bytes, &r.space_error) {
        (Some(reclaimable), Some(unused), _) => println!(
            "reclaimable:       {} (freed by `shale gc`; {} unused in all)",
            format_size(reclaimable),
            format_size(unused)
        ),
        (_, _, Some(e)) => println!("reclaimable:       unknown ({e}; run `shale verify`)"),
        _ => {}
    }
}

fn diff(cli: &Cli, args: &DiffArgs) -> Result<()> {
    let pool = open(cli)?;
    let changes = pool.diff(&args.a, &args.b)?;
    if args.stat {
        print_diff_stat(cli, &DiffStat::of(&changes));
    } else {
        print_diff(cli, &changes);
    }
    Ok(())
}

/// Prints `diff --stat`.
pub(crate) fn print_diff_stat(cli: &Cli, s: &DiffStat) {
    if cli.json {
        print_json(s);
    } else if !cli.quiet {
        println!(
            "{} added, {} removed, {} modified; +{} -{}",
            s.added,
            s.removed,
            s.modified,
            format_size(s.bytes_added),
            format_size(s.bytes_removed)
        );
    }
}

/// Prints `diff`: one line per changed path.
pub(crate) fn print_diff(cli: &Cli, changes: &[DiffEntry]) {
    if cli.json {
        print_json(&changes);
    } else if !cli.quiet {
        for c in changes {
            let suffix = if c.kind == "dir" { "/" } else { "" };
            println!("{} {}{suffix}", c.change.letter(), c.path);
        }
    }
}

fn verify(cli: &Cli, read_data: bool, volume: Option<String>) -> Result<()> {
    let pool = open(cli)?;
    let (progress, bar) = Bar::start(cli.quiet || cli.json, "verifying", None);
    let opts = VerifyOptions {
        read_data,
        volume,
        progress,
    };
    let report = pool.verify(&opts);
    drop(bar);
    print_verify(cli, &report?, read_data)
}

/// Prints `verify`'s report; an error if it found damage.
pub(crate) fn print_verify(cli: &Cli, report: &VerifyReport, read_data: bool) -> Result<()> {
    if cli.json {
        print_json(report);
    } else if !cli.quiet {
        for p in &report.problems {
            println!("damaged {} object {}: {}", p.kind, p.object, p.error);
            for a in &p.affected {
                println!(
                    "  affects {}:{}",
                    a.spec,
                    if a.path.is_empty() { "/" } else { &a.path }
                );
            }
        }
        println!(
            "checked {} volumes and snapshots: {} tree nodes, {} chunks{}; {} problems",
            report.roots,
            report.tree_nodes,
            report.chunks,
            if read_data {
                format!(
                    ", {} packs ({}) re-read",
                    report.packs_read,
                    format_size(report.bytes_read)
                )
            } else {
                String::new()
            },
            report.problems.len()
        );
    }
    if report.problems.is_empty() {
        Ok(())
    } else {
        let paths: usize = report.problems.iter().map(|p| p.affected.len()).sum();
        anyhow::bail!(
            "verify found {} damaged objects affecting {paths} paths",
            report.problems.len()
        )
    }
}

fn gc(cli: &Cli, dry_run: bool) -> Result<()> {
    let pool = open(cli)?;
    let start = Instant::now();
    let r = pool.gc(&GcOptions {
        dry_run,
        progress: None,
    })?;
    print_gc(cli, &r, dry_run, start.elapsed().as_secs_f64());
    Ok(())
}

/// Prints `gc`'s report.
pub(crate) fn print_gc(cli: &Cli, r: &GcReport, dry_run: bool, secs: f64) {
    if cli.json {
        print_json_timed(r, secs);
    } else if !cli.quiet {
        let verb = if dry_run { "would free" } else { "freed" };
        println!(
            "{verb} {} in {} unreachable objects: {} packs deleted, {} repacked ({} rewritten); {} orphaned files removed ({secs:.2}s)",
            format_size(r.freed_bytes.saturating_sub(r.written_bytes)),
            r.freed_blobs,
            r.deleted_packs,
            r.repacked_packs,
            format_size(r.written_bytes),
            r.orphans_removed,
        );
    }
}

/// Prints a report as JSON with the seconds the operation took added.
pub(crate) fn print_json_timed<T: serde::Serialize>(report: &T, secs: f64) {
    let mut v = serde_json::to_value(report).unwrap_or_default();
    v["seconds"] = json!(secs);
    print_json(&v);
}

fn lineage(cli: &Cli, spec: &str, dot: bool) -> Result<()> {
    let pool = open(cli)?;
    let l = pool.lineage(spec)?;
    if cli.json {
        print_json(&l);
    } else if dot {
        print!("{}", output::lineage_dot(&l));
    } else if !cli.quiet {
        output::print_lineage(&l);
    }
    Ok(())
}
