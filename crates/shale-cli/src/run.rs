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
use shale_core::ops::lineage::RunData;

use crate::output::print_json;
use crate::{Cli, Command, MountArgs, RunArgs};

/// A `Cli` for the mounts a run makes: same pool and options, nothing printed.
fn quiet(cli: &Cli, pool_path: &Path) -> Cli {
    Cli {
        pool: Some(pool_path.to_path_buf()),
        endpoint: cli.endpoint.clone(),
        region: cli.region.clone(),
        json: false,
        quiet: true,
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
        foreground: false,
        show_snapshot_dir: false,
    };
    crate::mount::mount(&quiet(cli, pool_path), pool_path, &args)
        .with_context(|| format!("mounting {spec} for the run"))
}

/// The Python interpreter for the MLflow hook.
fn python() -> OsString {
    std::env::var_os("SHALE_PYTHON").unwrap_or_else(|| "python3".into())
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

/// `shale run`.
pub fn run(cli: &Cli, pool_path: &Path, args: &RunArgs) -> Result<i32> {
    let pool = crate::commands::open(cli)?;
    pool.volume_info(&args.dataset)?;
    if let Some(m) = &args.model {
        if m == &args.dataset {
            bail!("the model volume must not be the dataset volume");
        }
        if pool.volume_info(m).is_err() {
            pool.create_volume(m, None)?;
            if !cli.quiet {
                eprintln!("shale: created model volume {m}");
            }
        }
    }
    let id = pool.begin_run(&args.command)?;
    let snap = format!("run-{id}");
    let input = RunData::of(&pool.create_snapshot(&args.dataset, Some(&snap))?);
    pool.add_run_data(id, false, &input)?;

    let dir = std::env::temp_dir().join(format!("shale-run-{id}-{}", std::process::id()));
    let data_dir = dir.join("dataset");
    let model_dir = dir.join("model");
    let mut mounted: Vec<PathBuf> = Vec::new();
    let result = (|| -> Result<(i32, Option<RunData>, Option<String>)> {
        mount_on(cli, pool_path, &data_dir, &input.spec(), true)?;
        mounted.push(data_dir.clone());
        if let Some(m) = &args.model {
            mount_on(cli, pool_path, &model_dir, m, false)?;
            mounted.push(model_dir.clone());
        }
        let mlflow_run = if args.mlflow {
            let r = mlflow_hook(&[
                "start".into(),
                "--pool".into(),
                pool_path.display().to_string(),
                "--shale-run".into(),
                id.to_string(),
                "--volume".into(),
                input.volume.clone(),
                "--snapshot".into(),
                input.snapshot.clone(),
                "--snapshot-id".into(),
                input.snapshot_id.clone(),
            ])?;
            pool.set_run_mlflow(id, &r)?;
            Some(r)
        } else {
            None
        };
        let mut child = Process::new(&args.command[0]);
        child
            .args(&args.command[1..])
            .env("SHALE_POOL", pool_path)
            .env("SHALE_RUN_ID", id.to_string())
            .env("SHALE_DATASET", &input.volume)
            .env("SHALE_DATASET_SNAPSHOT", &input.snapshot)
            .env("SHALE_DATASET_SNAPSHOT_ID", &input.snapshot_id)
            .env("SHALE_DATASET_PATH", &data_dir);
        // The command reaches the store as this process does.
        if let Some(e) = &cli.endpoint {
            child.env("AWS_ENDPOINT_URL", e);
        }
        if let Some(r) = &cli.region {
            child.env("AWS_REGION", r);
        }
        if let Some(m) = &args.model {
            child
                .env("SHALE_MODEL", m)
                .env("SHALE_MODEL_PATH", &model_dir);
        }
        if let Some(r) = &mlflow_run {
            child.env("MLFLOW_RUN_ID", r);
        }
        let mut child = child
            .spawn()
            .with_context(|| format!("starting {}", args.command[0]))?;
        // Ctrl-C reaches the command (same process group); this process
        // stays to unmount, snapshot and record.
        // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
        let old = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
        let status = child.wait();
        // SAFETY: restores the disposition read above.
        unsafe { libc::signal(libc::SIGINT, old) };
        let code = exit_code(status.context("waiting for the command")?);
        // Unmounting commits the model volume's last writes.
        for m in mounted.drain(..).rev() {
            crate::mount::unmount(&quiet(cli, pool_path), &m, false)?;
        }
        let output = match &args.model {
            Some(m) if code == 0 => {
                let out = RunData::of(&pool.create_snapshot(m, Some(&snap))?);
                pool.add_run_data(id, true, &out)?;
                Some(out)
            }
            _ => None,
        };
        Ok((code, output, mlflow_run))
    })();
    for m in mounted.iter().rev() {
        let _ = crate::mount::unmount(&quiet(cli, pool_path), m, false);
    }
    let _ = std::fs::remove_dir(&data_dir);
    let _ = std::fs::remove_dir(&model_dir);
    let _ = std::fs::remove_dir(&dir);
    let (code, output, mlflow_run) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = pool.end_run(id, -1);
            return Err(e.context(format!("run {id}")));
        }
    };
    pool.end_run(id, code)?;
    if let Some(r) = &mlflow_run {
        let mut hook = vec![
            "end".to_string(),
            "--pool".into(),
            pool_path.display().to_string(),
            "--run-id".into(),
            r.clone(),
            "--exit-code".into(),
            code.to_string(),
        ];
        if let Some(o) = &output {
            hook.extend([
                "--model-volume".into(),
                o.volume.clone(),
                "--model-snapshot".into(),
                o.snapshot.clone(),
                "--model-snapshot-id".into(),
                o.snapshot_id.clone(),
            ]);
        }
        mlflow_hook(&hook)?;
    }
    let record = json!({
        "run": id, "exit_code": code, "input": input, "output": output, "mlflow_run": mlflow_run,
    });
    if let Some(path) = &args.summary {
        std::fs::write(path, record.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if cli.json {
        print_json(&record);
    } else if !cli.quiet {
        eprintln!(
            "shale: run {id} exited with {code}; read {} ({}){}",
            input.spec(),
            input.snapshot_id,
            match &output {
                Some(o) => format!(", wrote {} ({})", o.spec(), o.snapshot_id),
                None => String::new(),
            }
        );
    }
    Ok(code)
}
