//! `--server URL --token T`: the volume and snapshot commands through a
//! `shale serve` server instead of the pool. The server answers with the
//! same reports (`docs/JSON.md`) and the same error messages, so the
//! output is the same either way.

use anyhow::{anyhow, bail, Context, Result};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use shale_core::catalog::TokenRow;
use shale_core::ops::diff::{DiffEntry, DiffStat};
use shale_core::ops::info::PoolReport;
use shale_core::ops::lineage::Lineage;
use shale_core::ops::mirror::MirrorRow;
use shale_core::ops::volumes::{SnapshotReport, VolumeReport};
use shale_core::progress::Event;
use shale_core::size::parse_size;

use crate::progress::Bar;
use crate::Cli;

/// A server and the token to use it with.
pub struct Remote {
    base: String,
    token: String,
    client: Client,
}

/// The remote named by `--server`, if one is.
pub fn from_cli(cli: &Cli) -> Result<Option<Remote>> {
    let Some(server) = &cli.server else {
        return Ok(None);
    };
    let Some(token) = cli.token.clone() else {
        bail!("--server needs a token: --token TOKEN or SHALE_TOKEN (shale token create, on the server)");
    };
    let mut builder = Client::builder().timeout(std::time::Duration::from_secs(3600));
    // A private CA (a self-signed server): SHALE_CA_CERT names its PEM file.
    if let Some(ca) = std::env::var_os("SHALE_CA_CERT") {
        let pem = std::fs::read(&ca).with_context(|| format!("reading SHALE_CA_CERT {ca:?}"))?;
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(&pem)
                .context("SHALE_CA_CERT is not a PEM certificate")?,
        );
    }
    Ok(Some(Remote {
        base: server.trim_end_matches('/').to_string(),
        token,
        client: builder.build().context("making the HTTP client")?,
    }))
}

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Remote {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends; a failure becomes the server's message.
    fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let response: Response = request
            .send()
            .map_err(|e| anyhow!("cannot reach the server {}: {e}", self.base))?;
        let status = response.status();
        let body: Value = response.json().unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["error"].as_str().unwrap_or("no message").to_string();
            // The engine's own message, as the pool would have given it.
            let _ = status;
            bail!("{message}");
        }
        serde_json::from_value(body)
            .with_context(|| format!("an answer of {} this shale cannot read", self.base))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.request(Method::GET, path))
    }

    /// Every volume the token sees.
    pub fn list_volumes(&self) -> Result<Vec<VolumeReport>> {
        self.get("/volumes")
    }

    /// One volume; with `space`, the bytes only it holds (`used_bytes`).
    pub fn volume_info(&self, name: &str, space: bool) -> Result<VolumeReport> {
        self.get(&format!("/volumes/{}?space={space}", seg(name)))
    }

    /// Creates a volume.
    pub fn create_volume(&self, name: &str, size: Option<&str>) -> Result<VolumeReport> {
        let quota = size.map(parse_size).transpose()?;
        self.send(
            self.request(Method::POST, "/volumes")
                .json(&json!({"name": name, "quota": quota})),
        )
    }

    /// Deletes a volume (and its snapshots, unless `keep_snapshots`).
    pub fn delete_volume(&self, name: &str, keep_snapshots: bool) -> Result<()> {
        let path = format!("/volumes/{}?keep_snapshots={keep_snapshots}", seg(name));
        self.send::<Value>(self.request(Method::DELETE, &path))
            .map(drop)
    }

    /// Sets (or, with `None`, removes) a volume's quota.
    pub fn resize_volume(&self, name: &str, quota: Option<u64>) -> Result<VolumeReport> {
        self.send(
            self.request(Method::PATCH, &format!("/volumes/{}", seg(name)))
                .json(&json!({ "quota": quota })),
        )
    }

    /// Clones `from` (`VOLUME[@SNAPSHOT]`) into `new`.
    pub fn clone_volume(&self, new: &str, from: &str) -> Result<VolumeReport> {
        let (volume, snapshot) = match from.split_once('@') {
            Some((v, s)) => (v, Some(s)),
            None => (from, None),
        };
        let path = format!("/volumes/{}/clone", seg(volume));
        self.send(
            self.request(Method::POST, &path)
                .json(&json!({"name": new, "snapshot": snapshot})),
        )
    }

    /// Snapshots a volume.
    pub fn create_snapshot(&self, volume: &str, name: Option<&str>) -> Result<SnapshotReport> {
        let path = format!("/volumes/{}/snapshots", seg(volume));
        self.send(
            self.request(Method::POST, &path)
                .json(&json!({ "name": name })),
        )
    }

    /// One volume's snapshots, or every visible volume's (ordered as the
    /// pool lists them: by volume, then age); with `space`, the bytes only
    /// each holds.
    pub fn list_snapshots(&self, volume: Option<&str>, space: bool) -> Result<Vec<SnapshotReport>> {
        match volume {
            Some(v) => self.get(&format!("/volumes/{}/snapshots?space={space}", seg(v))),
            None => {
                let mut all: Vec<SnapshotReport> =
                    self.get(&format!("/snapshots?space={space}"))?;
                all.sort_by(|a, b| {
                    (&a.volume, &a.created, &a.name).cmp(&(&b.volume, &b.created, &b.name))
                });
                Ok(all)
            }
        }
    }

    /// Deletes a snapshot.
    pub fn delete_snapshot(&self, volume: &str, name: &str) -> Result<()> {
        let path = format!("/volumes/{}/snapshots/{}", seg(volume), seg(name));
        self.send::<Value>(self.request(Method::DELETE, &path))
            .map(drop)
    }

    /// Puts a volume back to a snapshot.
    pub fn restore_snapshot(&self, volume: &str, name: &str) -> Result<SnapshotReport> {
        let path = format!("/volumes/{}/snapshots/{}/restore", seg(volume), seg(name));
        self.send(self.request(Method::POST, &path))
    }

    /// The lineage of `VOLUME` or `VOLUME@SNAPSHOT`.
    pub fn lineage(&self, spec: &str) -> Result<Lineage> {
        match spec.split_once('@') {
            Some((v, s)) => self.get(&format!("/volumes/{}/snapshots/{}/lineage", seg(v), seg(s))),
            None => self.get(&format!("/volumes/{}/lineage", seg(spec))),
        }
    }

    /// `pool info`'s report, with what gc would free.
    pub fn pool_report(&self) -> Result<PoolReport> {
        self.get("/pool?space=true")
    }

    fn diff_query(a: &str, b: &str, stat: bool) -> String {
        format!("/diff?a={}&b={}&stat={stat}", seg(a), seg(b))
    }

    /// The changes from `a` to `b`.
    pub fn diff(&self, a: &str, b: &str) -> Result<Vec<DiffEntry>> {
        self.get(&Self::diff_query(a, b, false))
    }

    /// Their counts.
    pub fn diff_stat(&self, a: &str, b: &str) -> Result<DiffStat> {
        self.get(&Self::diff_query(a, b, true))
    }

    /// Every mirror the token sees.
    pub fn mirrors(&self) -> Result<Vec<MirrorRow>> {
        self.get("/mirrors")
    }

    /// Makes `volume` (new) a mirror of `source` (`POOL::VOLUME`, a pool
    /// the server opens); transfers nothing.
    pub fn create_mirror(&self, volume: &str, source: &str, policy: &str) -> Result<MirrorRow> {
        let body = json!({"volume": volume, "source": source, "policy": policy});
        self.send(self.request(Method::POST, "/mirrors").json(&body))
    }

    /// Makes a mirror writable.
    pub fn break_mirror(&self, volume: &str) -> Result<MirrorRow> {
        let path = format!("/mirrors/{}/break", seg(volume));
        self.send(self.request(Method::POST, &path))
    }

    /// Ends a mirror relationship.
    pub fn delete_mirror(&self, volume: &str) -> Result<()> {
        let path = format!("/mirrors/{}", seg(volume));
        self.send::<Value>(self.request(Method::DELETE, &path))
            .map(drop)
    }

    /// Every token (admins).
    pub fn tokens(&self) -> Result<Vec<TokenRow>> {
        self.get("/tokens")
    }

    /// A new token, its secret shown once.
    pub fn create_token(&self, body: &Value) -> Result<Value> {
        self.send(self.request(Method::POST, "/tokens").json(body))
    }

    /// Revokes a token.
    pub fn revoke_token(&self, id: i64) -> Result<()> {
        self.send::<Value>(self.request(Method::DELETE, &format!("/tokens/{id}")))
            .map(drop)
    }

    /// Starts a job (`{"kind": …}`), shows its progress until it ends,
    /// and returns its result and the seconds it took; a failed or
    /// cancelled job is the error it ended with.
    pub fn run_job<T: DeserializeOwned>(
        &self,
        body: Value,
        quiet: bool,
        verb: &'static str,
    ) -> Result<(T, f64)> {
        let mut job: Value = self.send(self.request(Method::POST, "/jobs").json(&body))?;
        let id = job["id"].as_u64().context("the server's job has no id")?;
        let (progress, bar) = Bar::start(quiet, verb, None);
        let (mut files, mut bytes) = (0, 0);
        while job["state"] == "running" {
            std::thread::sleep(std::time::Duration::from_millis(200));
            job = self.get(&format!("/jobs/{id}"))?;
            let (f, b) = (
                job["files"].as_u64().unwrap_or(0),
                job["bytes"].as_u64().unwrap_or(0),
            );
            if let Some(p) = &progress {
                for n in files..f {
                    let add = if n == files {
                        b.saturating_sub(bytes)
                    } else {
                        0
                    };
                    p.event(Event::File { bytes: add });
                }
            }
            (files, bytes) = (f, b);
        }
        drop(bar);
        let secs = job["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
        match job["state"].as_str() {
            Some("succeeded") => Ok((
                serde_json::from_value(job["result"].take()).with_context(|| {
                    format!("a job result of {} this shale cannot read", self.base)
                })?,
                secs,
            )),
            _ => bail!("{}", job["error"].as_str().unwrap_or("the job failed")),
        }
    }
}

/// The plain answer for a command `--server` cannot run.
pub fn needs_pool(what: &str) -> anyhow::Error {
    anyhow!("`{what}` works on the pool itself, not through --server (run it where the pool is)")
}
