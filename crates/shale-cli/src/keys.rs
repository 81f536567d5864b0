//! `shale pool key …` and `pool init --encrypt`'s key: the keys that open
//! an encrypted pool, and asking for a passphrase at a terminal.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::json;
use shale_core::config::KeySource;
use shale_core::crypt::keyring::SlotKind;
use shale_core::Pool;

use crate::output::print_json;
use crate::Cli;

/// `shale pool key …`
#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Add a key that opens the pool (a key file, or a passphrase from
    /// SHALE_NEW_PASSPHRASE or asked for at a terminal), given a key that
    /// opens it already.
    Add {
        /// A name for it (a person, `ci`).
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The new key is this key file (at least 32 bytes; make one with
        /// `head -c 32 /dev/urandom > FILE; chmod 600 FILE`).
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
    /// The pool's keys: number, name and kind (never a secret).
    List,
    /// Replace a key (by number or name) with a new one under the same
    /// name (a key file, or a passphrase from SHALE_NEW_PASSPHRASE or asked
    /// for at a terminal): the old one stops opening the pool. The master
    /// key stays the same (see `remove`).
    Rotate {
        /// Its number or name (`pool key list`).
        key: String,
        /// The new key is this key file.
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
    /// Remove a key (by number or name). The master key stays the same:
    /// whoever held the removed key and kept a copy of the pool's key ring
    /// or its master key can still read what was stored until then.
    Remove {
        /// Its number or name (`pool key list`).
        key: String,
    },
}

/// Runs `shale pool key …`.
pub fn key(cli: &Cli, cmd: &KeyCmd) -> Result<()> {
    let pool = Pool::open_spec(&crate::commands::pool_spec(cli)?, &cli.options)?;
    let name = pool.name();
    let Some(ring) = pool.ring(&name) else {
        bail!("{name} is not encrypted: it has no keys");
    };
    let new_key = |file: &Option<PathBuf>| match file {
        Some(f) => Ok(KeySource::File(f.clone())),
        None => new_passphrase("SHALE_NEW_PASSPHRASE", "new passphrase"),
    };
    let say = |value: serde_json::Value, text: String| {
        if cli.json {
            print_json(&value);
        } else if !cli.quiet {
            println!("{text}");
        }
    };
    match cmd {
        KeyCmd::Add {
            name: slot,
            new_key_file,
        } => {
            let new = new_key(new_key_file)?;
            let id = ring.add(&cli.options, &new, slot)?;
            let text = format!("added key {id} ({slot}, {}) to {name}", new.describe());
            say(json!({"id": id, "name": slot}), text);
        }
        KeyCmd::List => list(cli, &ring.read()?),
        KeyCmd::Rotate { key, new_key_file } => {
            let new = new_key(new_key_file)?;
            let id = ring.replace(&cli.options, key, &new)?;
            let text = format!(
                "replaced key {key} of {name} with a new {} (now key {id}); the old one no \
                 longer opens the pool",
                new.describe()
            );
            say(json!({"id": id}), text);
        }
        KeyCmd::Remove { key } => {
            let slot = ring.remove(&cli.options, key)?;
            let text = format!(
                "removed key {} ({}) from {name}; the master key is unchanged, so a copy \
                 of it taken with that key still reads what is stored",
                slot.id, slot.name
            );
            say(json!({"id": slot.id, "name": slot.name}), text);
        }
    }
    Ok(())
}

fn list(cli: &Cli, ring: &shale_core::crypt::keyring::KeyRing) {
    let kind = |k: &SlotKind| match k {
        SlotKind::Passphrase { .. } => "passphrase",
        SlotKind::KeyFile => "key file",
    };
    if cli.json {
        let rows: Vec<_> = ring
            .slots
            .iter()
            .map(|s| json!({"id": s.id, "name": s.name, "kind": kind(&s.kind)}))
            .collect();
        print_json(&rows);
    } else if !cli.quiet {
        println!("{:>4}  {:<20}  KIND", "ID", "NAME");
        for s in &ring.slots {
            println!("{:>4}  {:<20}  {}", s.id, s.name, kind(&s.kind));
        }
    }
}

/// Runs `shale pool rekey`.
pub fn rekey(cli: &Cli) -> Result<()> {
    let pool = Pool::open_spec(&crate::commands::pool_spec(cli)?, &cli.options)?;
    let (progress, bar) = crate::progress::Bar::start(cli.quiet || cli.json, "rekeying", None);
    let r = pool.rekey(progress);
    drop(bar);
    let r = r?;
    if cli.json {
        print_json(&r);
    } else if !cli.quiet {
        println!(
            "sealed {} again under a new master key: {} blobs, {} packs read, {} written ({})",
            pool.name(),
            r.blobs,
            r.packs_read,
            r.packs_written,
            shale_core::size::format_size(r.bytes_written)
        );
        if !r.keys_dropped.is_empty() {
            println!(
                "only the key given opens it now; no longer: {} (add them again with `pool key add`)",
                r.keys_dropped.join(", ")
            );
        }
    }
    Ok(())
}

/// At a terminal, for a command on an encrypted pool given no key: its
/// passphrase, asked for once. It is put in `SHALE_PASSPHRASE` for the
/// processes this one starts (a mount's server). The pool is known to be
/// encrypted from its `pool.json` on this machine (a local pool, or an
/// object-store pool's cache); elsewhere the command says how to give it.
pub fn ask_if_encrypted(cli: &Cli) -> Result<Option<KeySource>> {
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !terminal
        || cli.server.is_some()
        || matches!(
            cli.command,
            crate::Command::Pool(crate::PoolCmd::Init { .. })
        )
    {
        return Ok(None);
    }
    let Ok(spec) = crate::commands::pool_spec(cli) else {
        return Ok(None);
    };
    let Ok(root) = spec.local_root(&cli.options) else {
        return Ok(None);
    };
    let encrypted = std::fs::read(root.join("pool.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("encryption").is_some());
    if !encrypted {
        return Ok(None);
    }
    let p = rpassword::prompt_password(format!("passphrase for {}: ", spec.name()))?;
    std::env::set_var("SHALE_PASSPHRASE", &p);
    Ok(Some(KeySource::Passphrase(p.into())))
}

/// The key for `pool init --encrypt`: the one given (--key-file,
/// SHALE_KEY_FILE, SHALE_PASSPHRASE), else a passphrase asked for twice at
/// a terminal.
pub fn init_key(cli: &Cli) -> Result<KeySource> {
    match &cli.options.key {
        Some(k) => Ok(k.clone()),
        None => new_passphrase("SHALE_PASSPHRASE", "passphrase"),
    }
}

/// A new passphrase: from `var`, else asked for twice at a terminal.
fn new_passphrase(var: &str, what: &str) -> Result<KeySource> {
    if let Some(p) = std::env::var(var).ok().filter(|p| !p.is_empty()) {
        return Ok(KeySource::Passphrase(p.into()));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no key given: use --key-file FILE (or --new-key-file for `key add`), or set {var}");
    }
    let first = rpassword::prompt_password(format!("{what}: "))?;
    let again = rpassword::prompt_password(format!("{what} again: "))?;
    if first != again {
        bail!("the two passphrases differ");
    }
    Ok(KeySource::Passphrase(first.into()))
}
