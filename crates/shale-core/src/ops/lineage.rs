//! Lineage: which runs read which snapshots and wrote which, and where
//! volumes were cloned from.
//!
//! A *run* (`shale run`, or `shale.traced` in Python) records the snapshot
//! of each input volume it read and of each output volume it wrote. A
//! snapshot id is the hash of the snapshot's whole tree, so a recorded run
//! names exactly the bytes it saw. Runs are history: they outlive the
//! volumes and snapshots they name (the record keeps the names and ids).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog;
pub use crate::catalog::{Run, RunData};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::names::{check_name, Spec};
use crate::ops::volumes::SnapshotReport;
use crate::pool::Pool;

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

/// Where a volume or snapshot came from and what was made from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// Records the start of a run of `command`, with `labels` (a
    /// pipeline's run id, its task…); returns its number.
    pub fn begin_run(&self, command: &[String], labels: &BTreeMap<String, String>) -> Result<i64> {
        let command = serde_json::to_string(command).unwrap_or_default();
        let labels = serde_json::to_string(labels).unwrap_or_default();
        let host = crate::coord::session::host_name();
        self.catalog()
            .write(|tx| catalog::insert_run(tx, &command, &host, &labels))
    }

    /// Adds a snapshot a run read (`output` false) or wrote.
    pub fn add_run_data(&self, run: i64, output: bool, data: &RunData) -> Result<()> {
        let id = ObjectId::from_hex(&data.snapshot_id).ok_or_else(|| {
            Error::InvalidArgument(format!("not a snapshot id: {:?}", data.snapshot_id))
        })?;
        self.catalog()
            .write(|tx| catalog::insert_run_data(tx, run, output, data, &id))
    }

    /// Records the MLflow run a run was logged to.
    pub fn set_run_mlflow(&self, run: i64, mlflow_run: &str) -> Result<()> {
        self.catalog()
            .write(|tx| catalog::set_run_mlflow(tx, run, mlflow_run))
    }

    /// Records the end of a run.
    pub fn end_run(&self, run: i64, exit_code: i32) -> Result<()> {
        self.catalog()
            .write(|tx| catalog::end_run(tx, run, exit_code))
    }

    /// Every recorded run, oldest first.
    pub fn runs(&self) -> Result<Vec<Run>> {
        self.catalog().read(catalog::runs)
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
        let labels = BTreeMap::from([("airflow.run_id".to_string(), "manual__1".to_string())]);
        let run = pool
            .begin_run(&["train".into(), "--fast".into()], &labels)
            .unwrap();
        pool.add_run_data(run, false, &RunData::of(&input)).unwrap();
        let output = pool.create_snapshot("model", Some("m1")).unwrap();
        pool.add_run_data(run, true, &RunData::of(&output)).unwrap();
        pool.end_run(run, 0).unwrap();
        pool.clone_volume("data2", "data@v1").unwrap();
        pool.clone_volume("data3", "data2").unwrap();

        let r = pool.run_record(run).unwrap();
        assert_eq!(r.command, ["train", "--fast"]);
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.labels, labels);
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
