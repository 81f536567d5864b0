//! `shale token` and `shale serve`.

use anyhow::{Context, Result};
use shale_core::ops::tokens::Role;
use shale_core::ops::volumes::rfc3339;

use crate::output::print_json;
use crate::{Cli, ServeArgs, TokenCmd};

/// `shale token …`.
pub fn token(cli: &Cli, cmd: &TokenCmd) -> Result<()> {
    let pool = crate::commands::open(cli)?;
    match cmd {
        TokenCmd::Create {
            role,
            volume,
            expires_in,
            note,
        } => {
            let role: Role = role.parse()?;
            let expires = match expires_in {
                Some(d) => {
                    let d = humantime::parse_duration(d).with_context(|| {
                        format!("--expires-in {d:?}: use a duration such as 30d")
                    })?;
                    Some(shale_core::catalog::now_ns() + d.as_nanos() as i64)
                }
                None => None,
            };
            let made = pool.create_token(role, volume.as_deref(), note, expires)?;
            if cli.json {
                print_json(&made);
            } else {
                // The secret alone on stdout, so that `$(shale token create …)` works.
                println!("{}", made.token);
                if !cli.quiet {
                    eprintln!(
                        "shale: token {} ({role}{}); it is shown only now",
                        made.record.id,
                        volume
                            .as_ref()
                            .map(|v| format!(" on {v}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        TokenCmd::List => {
            let tokens = pool.tokens()?;
            if cli.json {
                print_json(&tokens);
            } else {
                println!(
                    "ID  ROLE   VOLUME  CREATED               EXPIRES               STATE    NOTE"
                );
                for t in tokens {
                    let state = if t.revoked.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<3} {:<6} {:<7} {:<21} {:<21} {:<8} {}",
                        t.id,
                        t.role,
                        t.volume.as_deref().unwrap_or("*"),
                        rfc3339(t.created),
                        t.expires.map(rfc3339).unwrap_or_else(|| "-".into()),
                        state,
                        t.note
                    );
                }
            }
        }
        TokenCmd::Revoke { id } => {
            pool.revoke_token(*id)?;
            if cli.json {
                print_json(&serde_json::json!({ "revoked": id }));
            } else if !cli.quiet {
                eprintln!("shale: token {id} revoked");
            }
        }
    }
    Ok(())
}

/// `shale serve`.
pub fn serve(cli: &Cli, args: &ServeArgs) -> Result<()> {
    let pool = crate::commands::open(cli)?;
    let tls = args.tls_cert.clone().zip(args.tls_key.clone());
    shale_server::serve(
        pool,
        shale_server::ServeOptions {
            listen: args.listen,
            tls,
            places: shale_server::SyncPlaces {
                endpoint: cli.endpoint.clone(),
                region: cli.region.clone(),
            },
        },
    )
}
