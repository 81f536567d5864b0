//! The commands that run through `--server`: each asks the server and
//! prints what the same command prints on the pool. Commands that read or
//! write this machine's files (mount, import, export, sync of a local
//! directory, run, workspaces) need the pool and say so.

use anyhow::{anyhow, bail, Result};
use serde_json::json;
use shale_core::ops::gc::GcReport;
use shale_core::ops::mirror::UpdateReport;
use shale_core::ops::verify::VerifyReport;

use crate::commands::{print_diff, print_diff_stat, print_gc, print_pool_info, print_verify};
use crate::output::{self, print_json};
use crate::remote::Remote;
use crate::{Cli, Command, MirrorCmd, PoolCmd, TokenCmd};

/// Runs the command through the server.
pub fn run(cli: &Cli, server: &Remote) -> Result<()> {
    let quiet = cli.quiet || cli.json;
    match &cli.command {
        Command::Volume(cmd) => crate::volume::volume_remote(cli, server, cmd),
        Command::Snapshot(cmd) => crate::volume::snapshot_remote(cli, server, cmd),
        Command::Pool(PoolCmd::Info) => {
            print_pool_info(cli, &server.pool_report()?);
            Ok(())
        }
        Command::Diff(args) if args.stat => {
            print_diff_stat(cli, &server.diff_stat(&args.a, &args.b)?);
            Ok(())
        }
        Command::Diff(args) => {
            print_diff(cli, &server.diff(&args.a, &args.b)?);
            Ok(())
        }
        Command::Verify { read_data, volume } => {
            let body = json!({"kind": "verify", "read_data": read_data, "volume": volume});
            let (report, _): (VerifyReport, _) = server.run_job(body, quiet, "verifying")?;
            print_verify(cli, &report, *read_data)
        }
        Command::Gc { dry_run } => {
            let body = json!({"kind": "gc", "dry_run": dry_run});
            let (report, secs): (GcReport, _) = server.run_job(body, quiet, "collecting")?;
            print_gc(cli, &report, *dry_run, secs);
            Ok(())
        }
        Command::Lineage { spec, dot } => {
            let l = server.lineage(spec)?;
            if cli.json {
                print_json(&l);
            } else if *dot {
                print!("{}", output::lineage_dot(&l));
            } else if !cli.quiet {
                output::print_lineage(&l);
            }
            Ok(())
        }
        Command::Mirror(cmd) => mirror(cli, server, cmd),
        Command::Token(cmd) => token(cli, server, cmd),
        _ => Err(anyhow!(
            "this command works on the pool itself, not through --server (there: pool info, \
             volume, snapshot, diff, lineage, verify, gc, mirror, token)"
        )),
    }
}

/// `shale mirror …`: relationships through the API; transfers (update,
/// resync) as jobs on the server.
fn mirror(cli: &Cli, server: &Remote, cmd: &MirrorCmd) -> Result<()> {
    let loud = !cli.quiet && !cli.json;
    match cmd {
        MirrorCmd::List => crate::mirror::list(cli, &server.mirrors()?),
        MirrorCmd::Create {
            volume,
            source,
            policy,
            no_transfer,
        } => {
            let row = server.create_mirror(volume, source, policy)?;
            if loud {
                eprintln!(
                    "created mirror {volume} of {}::{}",
                    row.source_pool, row.source_volume
                );
            }
            if !no_transfer {
                let body = json!({"kind": "mirror_update", "volume": volume});
                crate::mirror::say(cli, &mirror_job(cli, server, body)?);
            }
        }
        MirrorCmd::Update {
            volume,
            all,
            watch,
            force_baseline,
            bwlimit,
        } => {
            let names: Vec<String> = match (volume, all) {
                (Some(v), false) => vec![v.clone()],
                (None, true) => server.mirrors()?.into_iter().map(|r| r.volume).collect(),
                _ => bail!("name one mirror, or --all"),
            };
            let bwlimit = crate::mirror::parse_bwlimit(bwlimit.as_deref())?;
            let interval = watch
                .as_deref()
                .map(crate::mirror::seconds_of)
                .transpose()?;
            loop {
                let mut failed = 0;
                for name in &names {
                    let body = json!({"kind": "mirror_update", "volume": name,
                                      "force_baseline": force_baseline, "bwlimit": bwlimit});
                    match mirror_job(cli, server, body) {
                        Ok(r) => crate::mirror::say(cli, &r),
                        Err(e) if interval.is_some() => {
                            failed += 1;
                            eprintln!("shale: error: mirror {name}: {}", crate::message(&e));
                        }
                        Err(e) => return Err(e),
                    }
                }
                match interval {
                    Some(every) => std::thread::sleep(every),
                    None if failed > 0 => bail!("{failed} of {} mirrors failed", names.len()),
                    None => break,
                }
            }
        }
        MirrorCmd::Break { volume } => {
            server.break_mirror(volume)?;
            if loud {
                eprintln!("mirror {volume} is broken: the volume is writable; `shale mirror resync {volume}` mirrors again");
            }
        }
        MirrorCmd::Resync { volume } => {
            let body = json!({"kind": "mirror_resync", "volume": volume});
            crate::mirror::say(cli, &mirror_job(cli, server, body)?);
        }
        MirrorCmd::Delete { volume } => {
            server.delete_mirror(volume)?;
            if loud {
                eprintln!("ended mirror {volume}; the volume stays, writable");
            }
        }
    }
    Ok(())
}

/// Runs a mirror transfer as a job on the server.
fn mirror_job(cli: &Cli, server: &Remote, body: serde_json::Value) -> Result<UpdateReport> {
    let (report, _) = server.run_job(body, cli.quiet || cli.json, "mirroring")?;
    Ok(report)
}

/// `token list/create/revoke` (admin tokens).
fn token(cli: &Cli, server: &Remote, cmd: &TokenCmd) -> Result<()> {
    match cmd {
        TokenCmd::Create {
            role,
            volume,
            expires_in,
            note,
        } => {
            // The API counts whole days: round up.
            let days = crate::server::expiry(expires_in)?.map(|at| {
                let left = (at - shale_core::catalog::now_ns()).max(1);
                (left as u64).div_ceil(86_400 * 1_000_000_000)
            });
            let body = json!({"role": role, "volume": volume, "note": note, "expires_days": days});
            crate::server::print_new_token(cli, &server.create_token(&body)?);
        }
        TokenCmd::List => crate::server::print_tokens(cli, &server.tokens()?),
        TokenCmd::Revoke { id } => {
            server.revoke_token(*id)?;
            crate::server::print_revoked(cli, *id);
        }
    }
    Ok(())
}
