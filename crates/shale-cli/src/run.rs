//! `shale run`: a command run against a snapshot of its dataset, its model
//! volume snapshotted after, and the whole recorded as lineage.
//!
//! The dataset is snapshotted as `run-N` and that snapshot is mounted
//! read-only for the command, so the bytes it reads are exactly the ones
//! the record names; the model volume is mounted read-write, and after a
//! successful exit it is unmounted (which commits) and snapshotted as
//! `run-N`. With `--mlflow`, an MLflow run is opened before the command
//! (by the `shale` Python package: `python3 -m shale.mlflow`) and handed
//! to it in `MLFLOW_RUN_ID`, so the command's own MLflow logging lands in
//! the same run.
#![allow(unsafe_code)] // signal dispositions around the child command: each block says why it is sound

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use anyhow::{bail, Context, Result};
use serde_json::json;
use shale_core::names::Spec;
use shale_core::ops::lineage::RunData;
use shale_core::Pool;

use crate::output::print_json;
use crate::{Cli, Command, MountArgs, RunArgs};

/// A `Cli` for the mounts a run makes: same pool and options, nothing printed.
fn quiet(cli: &Cli, pool_path: &Path) -> Cli {
    Cli {
        pool: Some(pool_path.to_path_buf()),
        endpoint: cli.endpoint.clone(),
        region: cli.region.clone(),
        no_instance_metadata: cli.no_instance_metadata,
        key_file: cli.key_file.clone(),
        json: false,
        quiet: true,
        server: None,
        token: None,
        command: Command::Gc { dry_run: true },
        options: cli.options.clone(),
    }
}

/// Mounts `spec` on a new directory `dir`.
fn mount_on(cli: &Cli, pool_path: &Path, dir: &Path, spec: &str, read_only: bool) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let args = MountArgs {
        mountpoint: dir.to_path_buf(),
        volume: Some(spec.to_string()),
        read_only,
        commit_interval: 5,
        busy_poll_us: shale_fuse::DEFAULT_BUSY_POLL.as_micros() as u64,
        threads: None,
        foreground: false,
        show_snapshot_dir: false,
    };
    crate::mount::mount(&quiet(cli, pool_path), pool_path, &args)
        .with_context(|| format!("mounting {spec} for the run"))
}

/// The Python interpreter for the MLflow hook: `SHALE_PYTHON`, else the
/// Python running this command (`python -m shale`), else `python3`.
fn python() -> OsString {
    std::env::var_os("SHALE_PYTHON")
        .or_else(|| crate::embedding_python().map(Into::into))
        .unwrap_or_else(|| "python3".into())
}

/// Runs `python3 -m shale.mlflow ARGS`; returns its stdout's last line.
fn mlflow_hook(args: &[String]) -> Result<String> {
    let out = Process::new(python())
        .args(["-m", "shale.mlflow"])
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context(
            "--mlflow runs `python3 -m shale.mlflow` (set SHALE_PYTHON to choose the interpreter)",
        )?;
    if !out.status.success() {
        bail!(
            "logging to MLflow failed ({}); --mlflow needs the shale Python package and mlflow \
             installed for {} and MLFLOW_TRACKING_URI set",
            out.status,
            python().to_string_lossy()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// Exit status of a finished child: its code, or 128 + the signal number.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// One run in progress: its pool, number, snapshot name and input.
struct Running<'a> {
    cli: &'a Cli,
    pool_path: &'a Path,
    args: &'a RunArgs,
    pool: Pool,
    id: i64,
    /// `run-N`: the name of both snapshots.
    snap: String,
    input: RunData,
    /// The temporary directory holding the mount points.
    dir: PathBuf,
}

/// What a run ended with.
struct Outcome {
    code: i32,
    output: Option<RunData>,
    mlflow_run: Option<String>,
}

/// `shale run`.
pub fn run(cli: &Cli, pool_path: &Path, args: &RunArgs) -> Result<i32> {
    let pool = prepare(cli, args)?;
    let labels = args.labels.iter().cloned().collect();
    let id = pool.begin_run(&args.command, &labels)?;
    let snap = format!("run-{id}");
    let input = dataset_snapshot(&pool, &args.dataset, &snap)?;
    pool.add_run_data(id, false, &input)?;
    let dir = std::env::temp_dir().join(format!("shale-run-{id}-{}", std::process::id()));
    let run = Running {
        cli,
        pool_path,
        args,
        pool,
        id,
        snap,
        input,
        dir,
    };
    let mut mounted: Vec<PathBuf> = Vec::new();
    let result = run.execute(&mut mounted);
    for m in mounted.iter().rev() {
        let _ = crate::mount::unmount(&quiet(cli, pool_path), m, false);
    }
    for d in [run.data_dir(), run.model_dir(), run.dir.clone()] {
        let _ = std::fs::remove_dir(d);
    }
    let outcome = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = run.pool.end_run(id, -1);
            return Err(e.context(format!("run {id}")));
        }
    };
    run.pool.end_run(id, outcome.code)?;
    run.end_mlflow(&outcome)?;
    run.report(&outcome)?;
    Ok(outcome.code)
}

/// Opens the pool and checks the volumes, creating the model volume if
/// it is missing.
fn prepare(cli: &Cli, args: &RunArgs) -> Result<Pool> {
    let pool = crate::commands::open(cli)?;
    let dataset = Spec::parse(&args.dataset)?;
    pool.volume_info(&dataset.volume)?;
    pool.resolve(&args.dataset)?; // a named snapshot exists, before the run is recorded
    if let Some(m) = &args.model {
        if m == &dataset.volume {
            bail!("the model volume must not be the dataset volume");
        }
        if pool.volume_info(m).is_err() {
            pool.create_volume(m, None)?;
            if !cli.quiet {
                eprintln!("shale: created model volume {m}");
            }
        }
    }
    Ok(pool)
}

/// The dataset snapshot a run reads: the one `VOLUME@SNAPSHOT` names, or
/// a new one of `VOLUME` named `snap`.
fn dataset_snapshot(pool: &Pool, dataset: &str, snap: &str) -> Result<RunData> {
    let spec = Spec::parse(dataset)?;
    let Some(name) = &spec.snapshot else {
        return Ok(RunData::of(
            &pool.create_snapshot(&spec.volume, Some(snap))?,
        ));
    };
    let found = pool
        .list_snapshots(Some(&spec.volume))?
        .into_iter()
        .find(|s| &s.name == name);
    match found {
        Some(s) => Ok(RunData::of(&s)),
        None => Err(shale_core::Error::SnapshotNotFound {
            volume: spec.volume,
            name: name.clone(),
        }
        .into()),
    }
}

/// Waits for `child` while Ctrl-C reaches it alone (same process group):
/// this process stays to unmount, snapshot and record.
fn wait_through_sigint(mut child: std::process::Child) -> Result<i32> {
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    let old = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let status = child.wait();
    // SAFETY: restores the disposition read above.
    unsafe { libc::signal(libc::SIGINT, old) };
    Ok(exit_code(status.context("waiting for the command")?))
}

impl Running<'_> {
    fn data_dir(&self) -> PathBuf {
        self.dir.join("dataset")
    }

    fn model_dir(&self) -> PathBuf {
        self.dir.join("model")
    }

    /// Mounts, runs the command, unmounts (which commits the model's last
    /// writes) and snapshots the model after a successful exit.
    fn execute(&self, mounted: &mut Vec<PathBuf>) -> Result<Outcome> {
        let (cli, pool_path) = (self.cli, self.pool_path);
        mount_on(cli, pool_path, &self.data_dir(), &self.input.spec(), true)?;
        mounted.push(self.data_dir());
        if let Some(m) = &self.args.model {
            mount_on(cli, pool_path, &self.model_dir(), m, false)?;
            mounted.push(self.model_dir());
        }
        let mlflow_run = self.start_mlflow()?;
        let child = self
            .command(mlflow_run.as_deref())
            .spawn()
            .with_context(|| format!("starting {}", self.args.command[0]))?;
        let code = wait_through_sigint(child)?;
        for m in mounted.drain(..).rev() {
            crate::mount::unmount(&quiet(cli, pool_path), &m, false)?;
        }
        let output = match &self.args.model {
            Some(m) if code == 0 => {
                let out = RunData::of(&self.pool.create_snapshot(m, Some(&self.snap))?);
                self.pool.add_run_data(self.id, true, &out)?;
                Some(out)
            }
            _ => None,
        };
        Ok(Outcome {
            code,
            output,
            mlflow_run,
        })
    }

    /// The command, with the run's places in its environment.
    fn command(&self, mlflow_run: Option<&str>) -> Process {
        let input = &self.input;
        let mut child = Process::new(&self.args.command[0]);
        child
            .args(&self.args.command[1..])
            .env("SHALE_POOL", self.pool_path)
            .env("SHALE_RUN_ID", self.id.to_string())
            .env("SHALE_DATASET", &input.volume)
            .env("SHALE_DATASET_SNAPSHOT", &input.snapshot)
            .env("SHALE_DATASET_SNAPSHOT_ID", &input.snapshot_id)
            .env("SHALE_DATASET_PATH", self.data_dir());
        // The command reaches the store as this process does.
        if let Some(e) = &self.cli.endpoint {
            child.env("AWS_ENDPOINT_URL", e);
        }
        if let Some(r) = &self.cli.region {
            child.env("AWS_REGION", r);
        }
        if let Some(m) = &self.args.model {
            child
                .env("SHALE_MODEL", m)
                .env("SHALE_MODEL_PATH", self.model_dir());
        }
        if let Some(r) = mlflow_run {
            child.env("MLFLOW_RUN_ID", r);
        }
        child
    }

    /// With `--mlflow`: opens the MLflow run; returns its id.
    fn start_mlflow(&self) -> Result<Option<String>> {
        if !self.args.mlflow {
            return Ok(None);
        }
        let r = mlflow_hook(&[
            "start".into(),
            "--pool".into(),
            self.pool_path.display().to_string(),
            "--shale-run".into(),
            self.id.to_string(),
            "--volume".into(),
            self.input.volume.clone(),
            "--snapshot".into(),
            self.input.snapshot.clone(),
            "--snapshot-id".into(),
            self.input.snapshot_id.clone(),
        ])?;
        self.pool.set_run_mlflow(self.id, &r)?;
        Ok(Some(r))
    }

    /// Closes the MLflow run, if there is one, with the model snapshot.
    fn end_mlflow(&self, outcome: &Outcome) -> Result<()> {
        let Some(r) = &outcome.mlflow_run else {
            return Ok(());
        };
        let mut hook = vec![
            "end".to_string(),
            "--pool".into(),
            self.pool_path.display().to_string(),
            "--run-id".into(),
            r.clone(),
            "--exit-code".into(),
            outcome.code.to_string(),
        ];
        if let Some(o) = &outcome.output {
            hook.extend([
                "--model-volume".into(),
                o.volume.clone(),
                "--model-snapshot".into(),
                o.snapshot.clone(),
                "--model-snapshot-id".into(),
                o.snapshot_id.clone(),
            ]);
        }
        mlflow_hook(&hook).map(drop)
    }

    /// Writes the summary file and says what the run read and wrote.
    fn report(&self, outcome: &Outcome) -> Result<()> {
        let (id, code, input, output) = (self.id, outcome.code, &self.input, &outcome.output);
        let record = json!({
            "run": id, "exit_code": code, "input": input, "output": output,
            "mlflow_run": outcome.mlflow_run,
            "labels": self.args.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        });
        if let Some(path) = &self.args.summary {
            std::fs::write(path, record.to_string())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if self.cli.json {
            print_json(&record);
        } else if !self.cli.quiet {
            let wrote = match output {
                Some(o) => format!(", wrote {} ({})", o.spec(), o.snapshot_id),
                None => String::new(),
            };
            eprintln!(
                "shale: run {id} exited with {code}; read {} ({}){wrote}",
                input.spec(),
                input.snapshot_id,
            );
        }
        Ok(())
    }
}
