//! Lineage: which runs read which snapshots and wrote which, and where
//! volumes were cloned from.
//!
//! A *run* (`shale run`, or `shale.traced` in Python) records the snapshot
//! of each input volume it read and of each output volume it wrote. A
//! snapshot id is the hash of the snapshot's whole tree, so a recorded run
//! names exactly the bytes it saw. Runs are history: they outlive the
//! volumes and snapshots they name (the record keeps the names and ids).

use serde::Serialize;

use crate::args;
use crate::catalog::now_ns;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::names::{check_name, Spec};
use crate::ops::volumes::SnapshotReport;
use crate::pool::Pool;

/// One volume snapshot a run read or wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunData {
    /// Volume name.
    pub volume: String,
    /// Snapshot name.
    pub snapshot: String,
    /// The snapshot's id (its root tree hash).
    pub snapshot_id: String,
}

impl RunData {
    /// The snapshot `snap`.
    pub fn of(snap: &SnapshotReport) -> RunData {
        RunData {
            volume: snap.volume.clone(),
            snapshot: snap.name.clone(),
            snapshot_id: snap.id.clone(),
        }
    }

    /// `VOLUME@SNAPSHOT`.
    pub fn spec(&self) -> String {
        format!("{}@{}", self.volume, self.snapshot)
    }
}

/// A recorded run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
    /// Snapshots read.
    pub inputs: Vec<RunData>,
    /// Snapshots written.
    pub outputs: Vec<RunData>,
}

/// Where a volume or snapshot came from and what was made from it.
#[derive(Clone, Debug, Serialize)]
pub struct Lineage {
    /// `VOLUME` or `VOLUME@SNAPSHOT`, as asked.
    pub subject: String,
    /// Its id: the snapshot id, or the volume's current root.
    pub id: String,
    /// Clone origins, nearest first: `VOLUME@SNAPSHOT` each.
    pub origins: Vec<String>,
    /// Runs that wrote it (for a volume: any of its snapshots).
    pub produced_by: Vec<Run>,
    /// Runs that read it (for a volume: any of its snapshots).
    pub used_by: Vec<Run>,
    /// Volumes cloned from it (for a volume: from any of its snapshots).
    pub clones: Vec<String>,
}

impl Pool {
    /// Records the start of a run of `command`; returns its number.
    pub fn begin_run(&self, command: &[String]) -> Result<i64> {
        let command = serde_json::to_string(command).unwrap_or_default();
        self.catalog().write(|tx| {
            tx.query_one(
                "INSERT INTO runs (command, host, started) VALUES (?1, ?2, ?3) RETURNING id",
                args![&command, crate::coord::session::host_name(), now_ns()],
                |r| r.int(0),
            )
        })
    }

    /// Adds a snapshot a run read (`output` false) or wrote.
    pub fn add_run_data(&self, run: i64, output: bool, data: &RunData) -> Result<()> {
        let id = ObjectId::from_hex(&data.snapshot_id).ok_or_else(|| {
            Error::InvalidArgument(format!("not a snapshot id: {:?}", data.snapshot_id))
        })?;
        self.catalog().write(|tx| {
            tx.execute(
                "INSERT INTO run_data (run, output, volume, snapshot, snapshot_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                args![run, output, &data.volume, &data.snapshot, &id],
            )?;
            Ok(())
        })
    }

    /// Records the MLflow run a run was logged to.
    pub fn set_run_mlflow(&self, run: i64, mlflow_run: &str) -> Result<()> {
        self.catalog().write(|tx| {
            tx.execute(
                "UPDATE runs SET mlflow_run = ?2 WHERE id = ?1",
                args![run, mlflow_run],
            )?;
            Ok(())
        })
    }

    /// Records the end of a run.
    pub fn end_run(&self, run: i64, exit_code: i32) -> Result<()> {
        self.catalog().write(|tx| {
            tx.execute(
                "UPDATE runs SET ended = ?2, exit_code = ?3 WHERE id = ?1",
                args![run, now_ns(), exit_code],
            )?;
            Ok(())
        })
    }

    /// Every recorded run, oldest first.
    pub fn runs(&self) -> Result<Vec<Run>> {
        self.catalog().read(|db| {
            let mut runs = db.query_all(
                "SELECT id, command, host, started, ended, exit_code, mlflow_run \
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
        })
    }

    /// One run.
    pub fn run_record(&self, id: i64) -> Result<Run> {
        self.runs()?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::InvalidArgument(format!("no run {id} in this pool")))
    }

    /// The lineage of `VOLUME` or `VOLUME@SNAPSHOT`.
    pub fn lineage(&self, spec: &str) -> Result<Lineage> {
        let parsed = Spec::parse(spec)?;
        check_name(&parsed.volume)?;
        let volume = self.catalog().volume(&parsed.volume)?;
        let id = match &parsed.snapshot {
            Some(s) => self.catalog().snapshot(&parsed.volume, s)?.root,
            None => volume.root,
        };
        let matches = |d: &RunData| {
            d.volume == parsed.volume
                && (parsed.snapshot.is_none() || parsed.snapshot.as_ref() == Some(&d.snapshot))
        };
        let runs = self.runs()?;
        let produced_by = runs
            .iter()
            .filter(|r| r.outputs.iter().any(matches))
            .cloned()
            .collect();
        let used_by = runs
            .iter()
            .filter(|r| r.inputs.iter().any(matches))
            .cloned()
            .collect();
        let volumes = self.catalog().volumes()?;
        let clones = volumes
            .iter()
            .filter(|v| {
                v.origin
                    .as_deref()
                    .and_then(|o| Spec::parse(o).ok())
                    .is_some_and(|o| {
                        o.volume == parsed.volume
                            && (parsed.snapshot.is_none() || o.snapshot == parsed.snapshot)
                    })
            })
            .map(|v| v.name.clone())
            .collect();
        let mut origins = Vec::new();
        let mut at = volume.origin.clone();
        while let Some(o) = at.take() {
            if origins.contains(&o) || origins.len() > 1000 {
                break;
            }
            at = Spec::parse(&o)
                .ok()
                .and_then(|s| volumes.iter().find(|v| v.name == s.volume))
                .and_then(|v| v.origin.clone());
            origins.push(o);
        }
        Ok(Lineage {
            subject: spec.to_string(),
            id: id.to_hex(),
            origins,
            produced_by,
            used_by,
            clones,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_runs_and_traces_clones() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        pool.create_volume("data", None).unwrap();
        pool.create_volume("model", None).unwrap();
        let input = pool.create_snapshot("data", Some("v1")).unwrap();
        let run = pool.begin_run(&["train".into(), "--fast".into()]).unwrap();
        pool.add_run_data(run, false, &RunData::of(&input)).unwrap();
        let output = pool.create_snapshot("model", Some("m1")).unwrap();
        pool.add_run_data(run, true, &RunData::of(&output)).unwrap();
        pool.end_run(run, 0).unwrap();
        pool.clone_volume("data2", "data@v1").unwrap();
        pool.clone_volume("data3", "data2").unwrap();

        let r = pool.run_record(run).unwrap();
        assert_eq!(r.command, ["train", "--fast"]);
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.inputs, [RunData::of(&input)]);
        assert_eq!(r.outputs[0].snapshot_id, output.id);

        let m = pool.lineage("model@m1").unwrap();
        assert_eq!(m.id, output.id);
        assert_eq!(m.produced_by.len(), 1);
        assert_eq!(m.produced_by[0].inputs[0].spec(), "data@v1");
        assert!(m.used_by.is_empty());

        let d = pool.lineage("data@v1").unwrap();
        assert_eq!(d.used_by.len(), 1);
        assert_eq!(d.clones, ["data2"]);
        assert!(pool.lineage("data@other").is_err());

        let c = pool.lineage("data3").unwrap();
        assert_eq!(c.origins.len(), 2);
        assert!(c.origins[0].starts_with("data2@"));
        assert_eq!(c.origins[1], "data@v1");

        // the record outlives the volumes it names
        pool.delete_volume("model", false).unwrap();
        assert_eq!(pool.runs().unwrap().len(), 1);
        assert!(pool.run_record(99).is_err());
    }
}
