//! `shale token` and `shale serve`.

use anyhow::{Context, Result};
use shale_core::catalog::TokenRow;
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
            let expires = expiry(expires_in)?;
            let made = pool.create_token(role, volume.as_deref(), note, expires)?;
            print_new_token(cli, &serde_json::to_value(&made)?);
        }
        TokenCmd::List => {
            print_tokens(cli, &pool.tokens()?);
        }
        TokenCmd::Revoke { id } => {
            pool.revoke_token(*id)?;
            print_revoked(cli, *id);
        }
    }
    Ok(())
}

/// The expiry `--expires-in` asks for, in nanoseconds since the epoch.
pub(crate) fn expiry(expires_in: &Option<String>) -> Result<Option<i64>> {
    let Some(d) = expires_in else { return Ok(None) };
    let d = humantime::parse_duration(d)
        .with_context(|| format!("--expires-in {d:?}: use a duration such as 30d"))?;
    Ok(Some(shale_core::catalog::now_ns() + d.as_nanos() as i64))
}

/// Prints a new token (`{"token": …, "id": …, …}`): the secret alone on
/// stdout, so that `$(shale token create …)` works.
pub(crate) fn print_new_token(cli: &Cli, made: &serde_json::Value) {
    if cli.json {
        print_json(made);
        return;
    }
    println!("{}", made["token"].as_str().unwrap_or_default());
    if !cli.quiet {
        eprintln!(
            "shale: token {} ({}{}); it is shown only now",
            made["id"],
            made["role"].as_str().unwrap_or_default(),
            made["volume"]
                .as_str()
                .map(|v| format!(" on {v}"))
                .unwrap_or_default()
        );
    }
}

/// Prints `token list`.
pub(crate) fn print_tokens(cli: &Cli, tokens: &[TokenRow]) {
    if cli.json {
        print_json(&tokens);
        return;
    }
    println!("ID  ROLE   VOLUME  CREATED               EXPIRES               STATE    NOTE");
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

/// Prints `token revoke`.
pub(crate) fn print_revoked(cli: &Cli, id: i64) {
    if cli.json {
        print_json(&serde_json::json!({ "revoked": id }));
    } else if !cli.quiet {
        eprintln!("shale: token {id} revoked");
    }
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
            sample_every: interval("--sample-every", &args.sample_every)?,
            run_schedules: args
                .run_schedules
                .as_deref()
                .map(|e| interval("--run-schedules", e))
                .transpose()?,
            pool_options: cli.options.clone(),
        },
    )
}

/// A flag's interval (`10m`), more than zero.
fn interval(flag: &str, text: &str) -> Result<std::time::Duration> {
    humantime::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} {text:?} is not an interval (e.g. 10m)"))
}
