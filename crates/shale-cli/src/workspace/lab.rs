//! The JupyterLab server of a workspace: which Python runs it, starting it
//! detached, knowing whether it still runs, stopping it.
#![allow(unsafe_code)] // setsid in the child before exec: see `spawn`

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// How long JupyterLab may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Where and how a server listens.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Listen {
    /// The address it binds.
    pub ip: IpAddr,
    /// Its port.
    pub port: u16,
    /// The token every request must carry.
    pub token: String,
    /// TLS certificate and key (PEM), when it serves HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Listen {
    /// The lab's address with its token, as a browser opens it.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let host = match self.ip {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        format!("{scheme}://{host}:{}/lab?token={}", self.port, self.token)
    }
}

/// A running server: its process (leader of its own process group) and
/// the time the kernel started it, so a reused process id is not taken
/// for it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat`, field 22).
    pub started: u64,
}

impl Process {
    /// Whether this very process still runs.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.started)
    }
}

/// The start time of a live (not zombie) process, from `/proc/PID/stat`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from its ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// A random token: 128 bits from the kernel, in hex.
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A port free on `ip` now: `wanted` if it is, or any when none is wanted.
pub fn free_port(ip: IpAddr, wanted: Option<u16>) -> Result<u16> {
    let port = wanted.unwrap_or(0);
    match TcpListener::bind(SocketAddr::new(ip, port)) {
        Ok(l) => Ok(l.local_addr()?.port()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            bail!("port {port} on {ip} is in use: choose another with --port, or leave it out")
        }
        Err(e) => bail!("cannot listen on {ip} port {port}: {e}"),
    }
}

/// The Python that runs JupyterLab: `$SHALE_PYTHON`, else the one this
/// program runs in (the Python package), else `python3`. Whether it has
/// the `jupyterlab` package is learnt when it starts ([`start`]), not by
/// running Python once more.
pub fn python() -> PathBuf {
    std::env::var_os("SHALE_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(crate::embedding_python)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// The error for a Python that cannot run JupyterLab, naming the package.
fn not_installed(python: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "JupyterLab is not installed for {0}: install it with `{0} -m pip install jupyterlab` \
         (or set SHALE_PYTHON to a Python that has it)",
        python.display()
    )
}

/// Starts JupyterLab serving `root` as `listen` says, detached in a session
/// of its own, its output appended to `log`; returns once it answers.
pub fn start(python: &Path, root: &Path, listen: &Listen, log: &Path) -> Result<Process> {
    let out = shale_core::private::open(log, std::fs::OpenOptions::new().create(true).append(true))
        .with_context(|| format!("opening {}", log.display()))?;
    // Where this start's output begins, to read only its own.
    let logged = out.metadata().map(|m| m.len()).unwrap_or(0) as usize;
    let mut cmd = Command::new(python);
    cmd.args(["-m", "jupyterlab", "--no-browser"])
        .arg(format!("--ServerApp.ip={}", listen.ip))
        .arg(format!("--ServerApp.port={}", listen.port))
        .arg("--ServerApp.port_retries=0")
        .arg(format!("--ServerApp.root_dir={}", root.display()))
        .arg("--ServerApp.open_browser=False");
    if let Some((cert, key)) = &listen.tls {
        cmd.arg(format!("--ServerApp.certfile={}", cert.display()))
            .arg(format!("--ServerApp.keyfile={}", key.display()));
    }
    if nix::unistd::geteuid().is_root() {
        cmd.arg("--allow-root");
    }
    // The token goes by the environment, not the command line, which every
    // user of the machine can read in /proc.
    cmd.env("JUPYTER_TOKEN", &listen.token)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // SAFETY: setsid is async-signal-safe; the server leads its own process
    // group, so stopping it reaches its kernels too, and it outlives us.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| {
        format!(
            "cannot run {}: workspaces need Python with the jupyterlab package; \
             set SHALE_PYTHON to its interpreter",
            python.display()
        )
    })?;
    let pid = child.id();
    let process = Process {
        pid,
        started: start_time(pid).unwrap_or_default(),
    };
    wait_until_answering(child, listen, log).map_err(|e| {
        let text = std::fs::read(log).unwrap_or_default();
        let ours = String::from_utf8_lossy(text.get(logged..).unwrap_or_default());
        match ours.contains("No module named jupyterlab") {
            true => not_installed(python),
            false => e,
        }
    })?;
    Ok(process)
}

/// Waits until the server accepts connections; if it exits first, or does
/// not answer in time, the error quotes its log.
fn wait_until_answering(mut child: std::process::Child, listen: &Listen, log: &Path) -> Result<()> {
    let at = SocketAddr::new(listen.ip, listen.port);
    let begun = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "JupyterLab exited ({status}) before it answered: {}",
                last_lines(log, 3)
            );
        }
        if TcpStream::connect_timeout(&at, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if begun.elapsed() > START_TIMEOUT {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            bail!(
                "JupyterLab did not answer on {at} within {} s (stopped it): {}",
                START_TIMEOUT.as_secs(),
                last_lines(log, 3)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `n` non-empty lines of a log, on one line.
fn last_lines(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(n)..].join(" | ");
    if tail.is_empty() {
        format!("nothing in {}", log.display())
    } else {
        format!("{tail} (log: {})", log.display())
    }
}

/// Stops the server and its kernels: SIGTERM to its process group, then
/// SIGKILL if it still runs after 10 s. A server already gone is fine.
pub fn stop(process: &Process) -> Result<()> {
    if !process.alive() {
        return Ok(());
    }
    let group = Pid::from_raw(process.pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let begun = Instant::now();
    while process.alive() {
        if begun.elapsed() > Duration::from_secs(10) {
            let _ = killpg(group, Signal::SIGKILL);
        }
        if begun.elapsed() > Duration::from_secs(20) {
            bail!("JupyterLab (pid {}) did not stop", process.pid);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its kernels, in the same group, may take a moment longer.
    while killpg(group, None).is_ok() && begun.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = killpg(group, Signal::SIGKILL);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_scheme_host_and_token() {
        let mut l = Listen {
            ip: "127.0.0.1".parse().unwrap(),
            port: 8888,
            token: "abc".into(),
            tls: None,
        };
        assert_eq!(l.url(), "http://127.0.0.1:8888/lab?token=abc");
        l.ip = "::1".parse().unwrap();
        l.tls = Some(("c.pem".into(), "k.pem".into()));
        assert_eq!(l.url(), "https://[::1]:8888/lab?token=abc");
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id();
        let started = start_time(me).unwrap();
        assert!(Process { pid: me, started }.alive());
        assert!(!Process {
            pid: me,
            started: started + 1
        }
        .alive());
    }

    #[test]
    fn a_port_in_use_is_refused_by_number() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let held = TcpListener::bind((ip, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let err = free_port(ip, Some(port)).unwrap_err().to_string();
        assert!(err.contains(&format!("port {port}")), "{err}");
        assert_ne!(free_port(ip, None).unwrap(), 0);
    }
}
