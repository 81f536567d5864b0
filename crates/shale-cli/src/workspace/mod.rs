//! `shale workspace …`: a JupyterLab server whose root directory is a
//! volume, mounted through the FUSE mount; snapshot, clone and restore are
//! the volume's own. The catalog records each workspace (volume, owner,
//! origin, [`shale_core::ops::workspaces`]); this machine keeps how it runs
//! it ([`state`]), so every command works from any shell.

mod lab;
mod state;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use shale_core::catalog::RootMeta;
use shale_core::names::check_name;
use shale_core::size::{format_size, parse_size};
use shale_core::Pool;

use crate::output::{print_json, table};
use crate::{Cli, ListenArgs, WorkspaceCmd};
use lab::{Listen, Process};
use state::{DataMount, Local, Paths};

/// Runs `shale workspace …`.
pub fn run(cli: &Cli, cmd: &WorkspaceCmd) -> Result<()> {
    match cmd {
        WorkspaceCmd::Create {
            name,
            size,
            listen,
            data,
        } => create(cli, name, size.as_deref(), listen, data),
        WorkspaceCmd::Clone {
            name,
            from,
            listen,
            data,
        } => clone(cli, name, from, listen, data),
        WorkspaceCmd::Snapshot { name, snapshot } => {
            let pool = crate::commands::open(cli)?;
            let ws = pool.workspace(name)?;
            let s = pool.create_snapshot(&ws.volume, snapshot.as_deref())?;
            let line = format!("created snapshot {}@{} (id {})", name, s.name, s.id);
            crate::volume::print_snapshot(cli, &s, &line);
            Ok(())
        }
        WorkspaceCmd::Snapshots { name } => {
            let pool = crate::commands::open(cli)?;
            let ws = pool.workspace(name)?;
            crate::volume::list_snapshots(cli, &pool, &Some(ws.volume), false)
        }
        WorkspaceCmd::List => list(cli),
        WorkspaceCmd::Restore {
            name,
            snapshot,
            yes,
        } => restore(cli, name, snapshot, *yes),
        WorkspaceCmd::Start { name, listen } => start(cli, name, listen),
        WorkspaceCmd::Stop { name } => stop(cli, name),
        WorkspaceCmd::Delete {
            name,
            keep_volume,
            yes,
        } => delete(cli, name, *keep_volume, *yes),
    }
}

/// This machine's files for workspace `name`.
fn paths(cli: &Cli, name: &str) -> Result<Paths> {
    check_name(name)?;
    Ok(Paths::new(&crate::commands::local_root(cli)?, name))
}

/// The user this process runs as, by name (by number if it has none).
fn me() -> String {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

/// How a server will listen: the flags, over what it listened on before
/// (the same port and token if still free), over the defaults (loopback,
/// a free port, a new token). Refuses an address beyond loopback without
/// TLS, and an empty token.
fn listen_for(args: &ListenArgs, before: Option<&Listen>) -> Result<Listen> {
    let ip: IpAddr = args
        .ip
        .or(before.map(|b| b.ip))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let tls = match (&args.certfile, &args.keyfile) {
        (Some(c), Some(k)) => Some((std::path::absolute(c)?, std::path::absolute(k)?)),
        (None, None) => before.and_then(|b| b.tls.clone()),
        _ => bail!("--certfile and --keyfile go together"),
    };
    if !ip.is_loopback() && tls.is_none() {
        bail!(
            "--ip {ip} would let other machines reach the workspace: serve it over TLS \
             with --certfile and --keyfile, or leave --ip out (127.0.0.1)"
        );
    }
    if let Some((cert, key)) = &tls {
        for f in [cert, key] {
            std::fs::metadata(f).with_context(|| format!("TLS file {}", f.display()))?;
        }
    }
    let token = match (&args.token, before) {
        (Some(t), _) if t.is_empty() => {
            bail!("--token must not be empty: a workspace is never an open server")
        }
        (Some(t), _) => t.clone(),
        (None, Some(b)) => b.token.clone(),
        (None, None) => lab::new_token()?,
    };
    let port = match (args.port, before) {
        (Some(p), _) => lab::free_port(ip, Some(p))?,
        // The URL people saved keeps working when it can.
        (None, Some(b)) => {
            lab::free_port(ip, Some(b.port)).or_else(|_| lab::free_port(ip, None))?
        }
        (None, None) => lab::free_port(ip, None)?,
    };
    Ok(Listen {
        ip,
        port,
        token,
        tls,
    })
}

/// What a workspace is doing on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    /// Its server answers from its mounted volume.
    Running,
    /// Stopped (or never started on this machine).
    Stopped,
    /// Its server or its mount is gone without being stopped.
    Died,
}

fn status(paths: &Paths, local: Option<&Local>) -> Status {
    match local.and_then(|l| l.server) {
        None => Status::Stopped,
        Some(p) if p.alive() && crate::mount::is_live(&paths.root()) => Status::Running,
        Some(_) => Status::Died,
    }
}

fn create(
    cli: &Cli,
    name: &str,
    size: Option<&str>,
    listen: &ListenArgs,
    data: &[String],
) -> Result<()> {
    let paths = paths(cli, name)?;
    let pool = crate::commands::open(cli)?;
    let data = check_new(&pool, name, data)?;
    let quota = size.map(parse_size).transpose()?;
    let listen = listen_for(listen, None)?;
    let python = lab::python();
    let begun = Instant::now();
    pool.create_volume(name, quota)?;
    let made = pool
        .set_root_meta(name, &my_root())
        .and_then(|()| pool.record_workspace(name, name, &me(), None));
    if let Err(e) = made {
        let _ = pool.delete_volume(name, false);
        return Err(e.into());
    }
    drop(pool);
    launch_new(cli, name, &paths, &python, (listen, data), begun)
}

fn clone(cli: &Cli, name: &str, from: &str, listen: &ListenArgs, data: &[String]) -> Result<()> {
    let paths = paths(cli, name)?;
    let pool = crate::commands::open(cli)?;
    let data = check_new(&pool, name, data)?;
    // FROM is a workspace (its volume), or a volume: a template.
    let (source, snapshot) = match from.split_once('@') {
        Some((s, snap)) => (s, Some(snap)),
        None => (from, None),
    };
    let volume = match pool.workspace(source) {
        Ok(ws) => ws.volume,
        Err(shale_core::Error::WorkspaceNotFound(_)) => source.to_string(),
        Err(e) => return Err(e.into()),
    };
    let spec = match snapshot {
        Some(s) => format!("{volume}@{s}"),
        None => volume,
    };
    let listen = listen_for(listen, None)?;
    let python = lab::python();
    let begun = Instant::now();
    pool.clone_volume(name, &spec)?;
    if let Err(e) = pool.record_workspace(name, name, &me(), Some(from)) {
        let _ = pool.delete_volume(name, false);
        return Err(e.into());
    }
    drop(pool);
    launch_new(cli, name, &paths, &python, (listen, data), begun)
}

/// Checks that workspace `name` can be made with these extra volumes: no
/// workspace or volume holds the name, every extra volume exists.
fn check_new(pool: &Pool, name: &str, data: &[String]) -> Result<Vec<DataMount>> {
    check_name(name)?;
    if pool.workspace(name).is_ok() {
        bail!(shale_core::Error::WorkspaceExists(name.into()));
    }
    if pool.volume_info(name).is_ok() {
        bail!(
            "volume '{name}' already exists: a workspace's volume takes its name; choose another name"
        );
    }
    let data: Vec<DataMount> = data
        .iter()
        .map(|d| DataMount::parse(d))
        .collect::<Result<_>>()?;
    for d in &data {
        match d.spec.split_once('@') {
            Some((v, s)) => {
                pool.list_snapshots(Some(v))?
                    .iter()
                    .find(|x| x.name == s)
                    .ok_or_else(|| shale_core::Error::SnapshotNotFound {
                        volume: v.into(),
                        name: s.into(),
                    })?;
            }
            None => {
                pool.volume_info(&d.spec)?;
            }
        }
    }
    Ok(data)
}

/// The top directory of a new workspace: its creator's, 0755.
fn my_root() -> RootMeta {
    RootMeta {
        mode: 0o755,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        xattrs: Vec::new(),
    }
}

/// Brings a workspace just recorded up; if that fails, removes everything
/// it made (mounts, server, state, record and volume) and says why.
fn launch_new(
    cli: &Cli,
    name: &str,
    paths: &Paths,
    python: &Path,
    (listen, data): (Listen, Vec<DataMount>),
    begun: Instant,
) -> Result<()> {
    let local = Local {
        listen,
        data,
        server: None,
    };
    match bring_up(cli, name, paths, python, local, begun) {
        Ok((local, timings)) => {
            report_running(cli, name, paths, &local, timings);
            Ok(())
        }
        Err(e) => {
            let pool = crate::commands::open(cli)?;
            let _ = pool.forget_workspace(name);
            let _ = pool.delete_volume(name, false);
            let _ = paths.remove();
            Err(e)
        }
    }
}

fn report_running(cli: &Cli, name: &str, paths: &Paths, local: &Local, timings: Timings) {
    if cli.json {
        print_json(&serde_json::json!({
            "name": name,
            "state": "running",
            "url": local.listen.url(),
            "token": local.listen.token,
            "mountpoint": paths.root(),
            "pid": local.server.map(|p| p.pid),
            "seconds": timings,
        }));
    } else if !cli.quiet {
        println!("workspace {name} is running at {}", local.listen.url());
    }
}

/// Seconds a command spent in Shale (volume, mounts) and waiting for
/// JupyterLab to answer; `--json` reports them.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Timings {
    shale: f64,
    jupyterlab: f64,
}

/// Mounts the workspace's volume and extra volumes (those not mounted
/// yet) and starts its server; saves the state. On failure, undoes what
/// it did. `begun`: when the command started, for [`Timings`].
fn bring_up(
    cli: &Cli,
    name: &str,
    paths: &Paths,
    python: &Path,
    mut local: Local,
    begun: Instant,
) -> Result<(Local, Timings)> {
    paths.save(&local)?;
    let mut timings = Timings::default();
    let result = (|| {
        mount_at(cli, &paths.root(), name, false)?;
        for d in &local.data {
            let at = paths.root().join(&d.path);
            std::fs::create_dir_all(&at)
                .with_context(|| format!("making {} in the workspace", d.path.display()))?;
            mount_at(cli, &at, &d.spec, d.read_only)?;
        }
        timings.shale = begun.elapsed().as_secs_f64();
        let process = lab::start(python, &paths.root(), &local.listen, &paths.log());
        timings.jupyterlab = begun.elapsed().as_secs_f64() - timings.shale;
        process
    })();
    match result {
        Ok(process) => {
            local.server = Some(process);
            paths.save(&local)?;
            Ok((local, timings))
        }
        Err(e) => {
            let _ = tear_down(cli, paths, &local);
            Err(e)
        }
    }
}

/// Mounts `spec` at `at` unless it is mounted there and answering; a
/// mount whose server died is unmounted first.
fn mount_at(cli: &Cli, at: &Path, spec: &str, read_only: bool) -> Result<()> {
    if crate::mount::is_mounted(at) {
        if crate::mount::is_live(at) {
            return Ok(());
        }
        crate::mount::stop(cli, at, true)?;
    }
    shale_core::private::create_dir_all(at)?;
    let args = crate::MountArgs {
        mountpoint: at.to_path_buf(),
        volume: Some(spec.to_string()),
        read_only,
        commit_interval: 5,
        busy_poll_us: shale_fuse::DEFAULT_BUSY_POLL.as_micros() as u64,
        threads: None,
        foreground: false,
        show_snapshot_dir: false,
    };
    crate::mount::start(cli, &crate::commands::pool_path(cli)?, &args)?;
    Ok(())
}

/// Stops the server (and its kernels), then unmounts the extra volumes
/// and the workspace's volume, committing what was written; marks the
/// state stopped.
fn tear_down(cli: &Cli, paths: &Paths, local: &Local) -> Result<()> {
    if let Some(p) = &local.server {
        lab::stop(p)?;
    }
    let root = paths.root();
    for d in local.data.iter().rev() {
        let at = root.join(&d.path);
        if crate::mount::is_mounted(&at) {
            crate::mount::stop(cli, &at, false)?;
        }
    }
    if crate::mount::is_mounted(&root) {
        // A dead server's mount has nothing left to commit.
        let force = !crate::mount::is_live(&root);
        crate::mount::stop(cli, &root, force)?;
    }
    let stopped = Local {
        server: None,
        ..local.clone()
    };
    paths.save(&stopped)
}

fn start(cli: &Cli, name: &str, listen: &ListenArgs) -> Result<()> {
    let paths = paths(cli, name)?;
    let pool = crate::commands::open(cli)?;
    let ws = pool.workspace(name)?;
    drop(pool);
    let before = paths.load()?;
    if status(&paths, before.as_ref()) == Status::Running {
        let url = before.map(|l| l.listen.url()).unwrap_or_default();
        bail!("workspace {name} is already running at {url}");
    }
    let python = lab::python();
    // A server that died leaves its kernels, maybe a dead mount: clear them.
    let (data, old_listen) = match &before {
        Some(local) => {
            tear_down(cli, &paths, local)?;
            (local.data.clone(), Some(&local.listen))
        }
        None => (Vec::new(), None),
    };
    let local = Local {
        listen: listen_for(listen, old_listen)?,
        data,
        server: None,
    };
    debug_assert_eq!(ws.volume, name);
    let (local, timings) = bring_up(cli, name, &paths, &python, local, Instant::now())?;
    report_running(cli, name, &paths, &local, timings);
    Ok(())
}

fn stop(cli: &Cli, name: &str) -> Result<()> {
    let paths = paths(cli, name)?;
    crate::commands::open(cli)?.workspace(name)?;
    if let Some(local) = paths.load()? {
        tear_down(cli, &paths, &local)?;
    }
    if !cli.quiet && !cli.json {
        println!("workspace {name} is stopped");
    }
    Ok(())
}

fn restore(cli: &Cli, name: &str, snapshot: &str, yes: bool) -> Result<()> {
    let paths = paths(cli, name)?;
    let pool = crate::commands::open(cli)?;
    let ws = pool.workspace(name)?;
    let at = format!("{}@{snapshot}", ws.volume);
    let changes = pool.diff(&at, &ws.volume)?;
    if !changes.is_empty() && !yes {
        confirm(&format!(
            "restoring {name} to {snapshot} discards {} change(s) made since",
            changes.len()
        ))?;
    }
    let local = paths.load()?;
    let was_running = status(&paths, local.as_ref()) == Status::Running;
    let python = if was_running {
        Some(lab::python())
    } else {
        None
    };
    if let Some(local) = &local {
        tear_down(cli, &paths, local)?;
    }
    let s = pool.restore_snapshot(&ws.volume, snapshot)?;
    drop(pool);
    let line = format!(
        "restored workspace {name} to snapshot {snapshot} (id {})",
        s.id
    );
    if let (Some(python), Some(local)) = (python, local) {
        let local = Local {
            server: None,
            ..local
        };
        let (local, _) = bring_up(cli, name, &paths, &python, local, Instant::now())?;
        if !cli.json && !cli.quiet {
            println!("{line}; running again at {}", local.listen.url());
        }
    } else if !cli.json && !cli.quiet {
        println!("{line}");
    }
    if cli.json {
        print_json(&s);
    }
    Ok(())
}

fn delete(cli: &Cli, name: &str, keep_volume: bool, yes: bool) -> Result<()> {
    let paths = paths(cli, name)?;
    let pool = crate::commands::open(cli)?;
    let ws = pool.workspace(name)?;
    if !keep_volume && !yes {
        let snaps = pool.list_snapshots(Some(&ws.volume))?.len();
        confirm(&format!(
            "deleting workspace {name} deletes its volume {} and its {snaps} snapshot(s) \
             (--keep-volume keeps them)",
            ws.volume
        ))?;
    }
    if let Some(local) = paths.load()? {
        tear_down(cli, &paths, &local)?;
    }
    pool.forget_workspace(name)?;
    if !keep_volume {
        pool.delete_volume(&ws.volume, false)?;
    }
    paths.remove()?;
    if !cli.quiet && !cli.json {
        match keep_volume {
            true => println!(
                "deleted workspace {name} (its volume {} is kept)",
                ws.volume
            ),
            false => println!("deleted workspace {name} and its volume"),
        }
    }
    Ok(())
}

/// Asks on the terminal; without one, refuses and names `--yes`.
fn confirm(what: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        bail!("{what}: pass --yes to go ahead");
    }
    eprint!("{what}. Go ahead? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("nothing was changed");
    }
    Ok(())
}

/// One workspace as `list` shows it.
#[derive(Serialize)]
struct Row {
    name: String,
    state: Status,
    url: Option<String>,
    /// The owner's own workspaces only.
    token: Option<String>,
    volume: String,
    size: u64,
    quota: Option<u64>,
    snapshots: u64,
    origin: Option<String>,
    owner: String,
    created: String,
    mountpoint: Option<PathBuf>,
    pid: Option<u32>,
    data: Vec<DataMount>,
}

fn list(cli: &Cli) -> Result<()> {
    let pool = crate::commands::open(cli)?;
    let volumes = pool.list_volumes()?;
    let me = me();
    let mut rows = Vec::new();
    for ws in pool.workspaces()? {
        let paths = paths(cli, &ws.name)?;
        let local = paths.load()?;
        let state = status(&paths, local.as_ref());
        let vol = volumes.iter().find(|v| v.name == ws.volume);
        rows.push(Row {
            state,
            url: local.as_ref().map(|l| l.listen.url()),
            token: local
                .as_ref()
                .filter(|_| ws.owner == me)
                .map(|l| l.listen.token.clone()),
            size: vol.map_or(0, |v| v.logical_bytes),
            quota: vol.and_then(|v| v.quota),
            snapshots: vol.map_or(0, |v| v.snapshots),
            created: shale_core::ops::volumes::rfc3339(ws.created),
            mountpoint: (state != Status::Stopped).then(|| paths.root()),
            pid: local
                .as_ref()
                .and_then(|l| l.server)
                .map(|p: Process| p.pid),
            data: local.map(|l| l.data).unwrap_or_default(),
            name: ws.name,
            volume: ws.volume,
            origin: ws.origin,
            owner: ws.owner,
        });
    }
    if cli.json {
        print_json(&rows);
    } else if !cli.quiet {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    format!("{:?}", r.state).to_lowercase(),
                    match (r.state, &r.url) {
                        (Status::Running, Some(u)) if r.token.is_some() => u.clone(),
                        (Status::Running, Some(u)) => u.split("?token=").next().unwrap_or(u).into(),
                        _ => "-".into(),
                    },
                    r.volume.clone(),
                    format_size(r.size),
                    r.snapshots.to_string(),
                    r.origin.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        table(
            &[
                "NAME",
                "STATE",
                "URL",
                "VOLUME",
                "SIZE",
                "SNAPSHOTS",
                "ORIGIN",
            ],
            &cells,
        );
    }
    Ok(())
}
