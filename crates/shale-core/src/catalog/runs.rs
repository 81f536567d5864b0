//! The records of runs: each run, and the snapshots it read and wrote.
//! Names are kept as text, not keys: the record outlives the volumes and
//! snapshots it names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{now_ns, Sql};
use crate::args;
use crate::error::Result;
use crate::id::ObjectId;

/// One volume snapshot a run read or wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunData {
    /// Volume name.
    pub volume: String,
    /// Snapshot name.
    pub snapshot: String,
    /// The snapshot's id (its root tree hash).
    pub snapshot_id: String,
}

/// A recorded run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Run {
    /// Run number, unique in the pool.
    pub id: i64,
    /// The command line.
    pub command: Vec<String>,
    /// Host it ran on.
    pub host: String,
    /// Start, ns since the Unix epoch.
    pub started: i64,
    /// End, once finished.
    pub ended: Option<i64>,
    /// Exit status, once finished (128 + signal number if killed).
    pub exit_code: Option<i32>,
    /// The MLflow run it was logged to.
    pub mlflow_run: Option<String>,
    /// Labels given to it (`--label KEY=VALUE`): a pipeline's run id, a task.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Snapshots read.
    pub inputs: Vec<RunData>,
    /// Snapshots written.
    pub outputs: Vec<RunData>,
}

/// Records the start of a run of `command` (JSON) on `host`, with `labels`
/// (a JSON object); returns its number.
pub fn insert_run(tx: &dyn Sql, command: &str, host: &str, labels: &str) -> Result<i64> {
    tx.query_one(
        "INSERT INTO runs (command, host, started, labels) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        args![command, host, now_ns(), labels],
        |r| r.int(0),
    )
}

/// Records that run `run` read (`output` false) or wrote snapshot `data`,
/// whose id is `id`.
pub fn insert_run_data(
    tx: &dyn Sql,
    run: i64,
    output: bool,
    data: &RunData,
    id: &ObjectId,
) -> Result<()> {
    tx.execute(
        "INSERT INTO run_data (run, output, volume, snapshot, snapshot_id) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        args![run, output, &data.volume, &data.snapshot, id],
    )?;
    Ok(())
}

/// Records the MLflow run that run `run` was logged to.
pub fn set_run_mlflow(tx: &dyn Sql, run: i64, mlflow_run: &str) -> Result<()> {
    tx.execute(
        "UPDATE runs SET mlflow_run = ?2 WHERE id = ?1",
        args![run, mlflow_run],
    )?;
    Ok(())
}

/// Records the end of run `run`.
pub fn end_run(tx: &dyn Sql, run: i64, exit_code: i32) -> Result<()> {
    tx.execute(
        "UPDATE runs SET ended = ?2, exit_code = ?3 WHERE id = ?1",
        args![run, now_ns(), exit_code],
    )?;
    Ok(())
}

/// Every recorded run with what it read and wrote, oldest first.
pub fn runs(db: &dyn Sql) -> Result<Vec<Run>> {
    let mut runs = db.query_all(
        "SELECT id, command, host, started, ended, exit_code, mlflow_run, labels \
         FROM runs ORDER BY id",
        &[],
        |r| {
            Ok(Run {
                id: r.int(0)?,
                command: serde_json::from_str(&r.text(1)?).unwrap_or_default(),
                host: r.text(2)?,
                started: r.int(3)?,
                ended: r.opt_int(4)?,
                exit_code: r.opt_int(5)?.map(|c| c as i32),
                mlflow_run: r.opt_text(6)?,
                labels: r
                    .opt_text(7)?
                    .and_then(|l| serde_json::from_str(&l).ok())
                    .unwrap_or_default(),
                inputs: Vec::new(),
                outputs: Vec::new(),
            })
        },
    )?;
    let data = db.query_all(
        "SELECT run, output, volume, snapshot, snapshot_id FROM run_data \
         ORDER BY run, volume",
        &[],
        |r| {
            Ok((
                r.int(0)?,
                r.int(1)? != 0,
                RunData {
                    volume: r.text(2)?,
                    snapshot: r.text(3)?,
                    snapshot_id: r.id(4)?.to_hex(),
                },
            ))
        },
    )?;
    for row in data {
        let (run, output, d) = row;
        if let Some(r) = runs.iter_mut().find(|r| r.id == run) {
            if output {
                r.outputs.push(d)
            } else {
                r.inputs.push(d)
            }
        }
    }
    Ok(runs)
}
