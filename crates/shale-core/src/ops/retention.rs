//! Snapshot retention: series of timestamped snapshots, pruned to the
//! newest N or to those younger than an age, and the hourly, daily and
//! weekly policies that take and prune them (`shale snapshot create --keep`,
//! `shale snapshot policy`).
//!
//! A series is the snapshots of one volume named `PREFIX.YYYYMMDDhhmmss`
//! (UTC, with `.N` added when two fall in one second), as the DataOps
//! Toolkit prunes only its own timestamped snapshots. Pruning never touches
//! a snapshot outside the series (`run-N`, `clone.X`, hand-named ones), and
//! keeps, saying why, a series member that a clone was made from, that a
//! recorded run read or wrote, that a mirror of this pool last received,
//! or that is mounted.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::volumes::{rfc3339, SnapshotReport};
use crate::catalog::{self, SnapshotPolicy, SnapshotRow};
use crate::error::{Error, Result};
use crate::names::check_name;
use crate::pool::Pool;

/// How much of a series to keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// The newest this many (at least 1).
    pub keep: Option<usize>,
    /// Those younger than this.
    pub max_age: Option<Duration>,
}

/// A series member that was due to go but stays, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KeptSnapshot {
    /// Snapshot name.
    pub name: String,
    /// Why it was kept.
    pub reason: String,
}

/// What pruning a series did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PruneReport {
    /// The volume.
    pub volume: String,
    /// The series' name prefix.
    pub series: String,
    /// Snapshots deleted, oldest first.
    pub deleted: Vec<String>,
    /// Snapshots due to go that were kept, and why.
    pub kept: Vec<KeptSnapshot>,
}

/// A snapshot taken into a series, and the pruning after it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SeriesReport {
    /// The new snapshot.
    pub snapshot: SnapshotReport,
    /// The pruning.
    pub pruned: PruneReport,
}

impl Retention {
    /// Refuses a retention that would delete even the newest snapshot.
    pub fn check(&self) -> Result<()> {
        if self.keep == Some(0) {
            return Err(Error::InvalidArgument(
                "keep at least 1 snapshot (the one just taken)".into(),
            ));
        }
        if self.max_age == Some(Duration::ZERO) {
            return Err(Error::InvalidArgument(
                "a retention age must be more than 0".into(),
            ));
        }
        Ok(())
    }
}

/// Whether snapshot `name` belongs to series `prefix`:
/// `PREFIX.` then 14 digits, then optionally `.N`.
pub fn in_series(name: &str, prefix: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) else {
        return false;
    };
    let (stamp, extra) = rest.split_at(rest.len().min(14));
    stamp.len() == 14
        && stamp.bytes().all(|b| b.is_ascii_digit())
        && (extra.is_empty()
            || extra
                .strip_prefix('.')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

/// The series name for a snapshot taken at `now_ns`: `PREFIX.YYYYMMDDhhmmss`.
pub fn series_name(prefix: &str, now_ns: i64) -> String {
    let stamp: String = rfc3339(now_ns)
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    format!("{prefix}.{stamp}")
}

impl Pool {
    /// Takes snapshot `PREFIX.YYYYMMDDhhmmss` of `volume` as of `now_ns`
    /// (`prefix` defaults to `shale`, the default snapshot name's), then
    /// prunes the series as `retention` says.
    pub fn snapshot_series(
        &self,
        volume: &str,
        prefix: Option<&str>,
        retention: &Retention,
        now_ns: i64,
    ) -> Result<SeriesReport> {
        let prefix = prefix.unwrap_or("shale");
        check_name(prefix)?;
        retention.check()?;
        let base = series_name(prefix, now_ns);
        check_name(&base)?;
        let taken = self.catalog().read(|tx| {
            let mut name = base.clone();
            let mut n = 1;
            while catalog::snapshot_by_name(tx, volume, &name).is_ok() {
                n += 1;
                name = format!("{base}.{n}");
            }
            Ok(name)
        })?;
        let snapshot = self.create_snapshot(volume, Some(&taken))?;
        let pruned = self.prune_series(volume, prefix, retention, now_ns)?;
        Ok(SeriesReport { snapshot, pruned })
    }

    /// Deletes the members of series `prefix` of `volume` that `retention`
    /// no longer keeps as of `now_ns`, except those something depends on.
    pub fn prune_series(
        &self,
        volume: &str,
        prefix: &str,
        retention: &Retention,
        now_ns: i64,
    ) -> Result<PruneReport> {
        check_name(volume)?;
        retention.check()?;
        let mut members: Vec<SnapshotRow> = self
            .catalog()
            .snapshots(Some(volume))?
            .into_iter()
            .filter(|s| in_series(&s.name, prefix))
            .collect();
        // newest first: by time taken, then by name
        members.sort_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));
        let mut report = PruneReport {
            volume: volume.to_string(),
            series: prefix.to_string(),
            ..Default::default()
        };
        let depends = Dependents::of(self, volume)?;
        for (i, s) in members.iter().enumerate() {
            let too_many = retention.keep.is_some_and(|k| i >= k);
            let too_old = retention.max_age.is_some_and(|age| {
                i > 0 && now_ns.saturating_sub(s.created) > age.as_nanos() as i64
            });
            if !(too_many || too_old) {
                continue;
            }
            if let Some(reason) = depends.on(&s.name) {
                report.kept.push(KeptSnapshot {
                    name: s.name.clone(),
                    reason,
                });
                continue;
            }
            match self.delete_snapshot(volume, &s.name) {
                Ok(()) => report.deleted.push(s.name.clone()),
                Err(Error::Mounted { at, .. }) => report.kept.push(KeptSnapshot {
                    name: s.name.clone(),
                    reason: format!("mounted at {}", at.display()),
                }),
                Err(e) => return Err(e),
            }
        }
        report.deleted.reverse();
        Ok(report)
    }
}

/// The classes of snapshots a policy takes: series prefix and period.
pub const CLASSES: [(&str, Duration); 3] = [
    ("hourly", Duration::from_secs(3600)),
    ("daily", Duration::from_secs(86_400)),
    ("weekly", Duration::from_secs(7 * 86_400)),
];

/// What running one volume's policy did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PolicyRun {
    /// The volume.
    pub volume: String,
    /// Snapshots taken.
    pub taken: Vec<String>,
    /// Each class's pruning (those that deleted or kept something).
    pub pruned: Vec<PruneReport>,
    /// Why the policy could not run, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Pool {
    /// Sets how many hourly, daily and weekly snapshots `volume` keeps
    /// (all 0: removes its policy). Snapshots are taken by
    /// [`Pool::run_snapshot_policies`].
    pub fn set_snapshot_policy(
        &self,
        volume: &str,
        hourly: u32,
        daily: u32,
        weekly: u32,
    ) -> Result<Option<SnapshotPolicy>> {
        check_name(volume)?;
        self.catalog()
            .read(|tx| catalog::volume_by_name(tx, volume).map(drop))?;
        self.check_not_mirror(volume, "take snapshots of")?;
        self.catalog().write(|tx| {
            if hourly == 0 && daily == 0 && weekly == 0 {
                catalog::delete_policy(tx, volume)?;
                return Ok(None);
            }
            catalog::set_policy(tx, volume, hourly, daily, weekly)?;
            Ok(catalog::policies(tx)?
                .into_iter()
                .find(|p| p.volume == volume))
        })
    }

    /// Every volume's snapshot policy.
    pub fn snapshot_policies(&self) -> Result<Vec<SnapshotPolicy>> {
        self.catalog().read(|tx| catalog::policies(tx))
    }

    /// Takes the snapshots each policy has due as of `now_ns` and prunes
    /// each class to its count. A class is due when its newest snapshot is
    /// at least nine tenths of its period old (a timer that fires every
    /// period, a little early or late, takes one each time). One volume's
    /// failure is reported and does not stop the others.
    pub fn run_snapshot_policies(&self, now_ns: i64) -> Result<Vec<PolicyRun>> {
        let mut runs = Vec::new();
        for p in self.snapshot_policies()? {
            let mut run = PolicyRun {
                volume: p.volume.clone(),
                ..Default::default()
            };
            if let Err(e) = self.run_policy(&p, now_ns, &mut run) {
                run.error = Some(e.to_string());
            }
            runs.push(run);
        }
        Ok(runs)
    }

    fn run_policy(&self, p: &SnapshotPolicy, now_ns: i64, run: &mut PolicyRun) -> Result<()> {
        let snapshots = self.catalog().snapshots(Some(&p.volume))?;
        for ((class, period), count) in CLASSES.into_iter().zip([p.hourly, p.daily, p.weekly]) {
            if count == 0 {
                continue;
            }
            let newest = snapshots
                .iter()
                .filter(|s| in_series(&s.name, class))
                .map(|s| s.created)
                .max();
            let due_after = (period.as_nanos() as i64) / 10 * 9;
            let retention = Retention {
                keep: Some(count as usize),
                max_age: None,
            };
            let pruned = match newest {
                Some(t) if now_ns.saturating_sub(t) < due_after => {
                    self.prune_series(&p.volume, class, &retention, now_ns)?
                }
                _ => {
                    let r = self.snapshot_series(&p.volume, Some(class), &retention, now_ns)?;
                    run.taken.push(r.snapshot.name);
                    r.pruned
                }
            };
            if !pruned.deleted.is_empty() || !pruned.kept.is_empty() {
                run.pruned.push(pruned);
            }
        }
        Ok(())
    }
}

/// What depends on the snapshots of one volume.
struct Dependents {
    /// (snapshot, why)
    reasons: Vec<(String, String)>,
}

impl Dependents {
    fn of(pool: &Pool, volume: &str) -> Result<Dependents> {
        let mut reasons = Vec::new();
        for v in pool.list_volumes()? {
            if let Some((vol, snap)) = v.origin.as_deref().and_then(|o| o.split_once('@')) {
                if vol == volume {
                    reasons.push((
                        snap.to_string(),
                        format!("volume {} was cloned from it", v.name),
                    ));
                }
            }
        }
        for run in pool.runs()? {
            for (d, how) in run
                .inputs
                .iter()
                .map(|d| (d, "read"))
                .chain(run.outputs.iter().map(|d| (d, "wrote")))
            {
                if d.volume == volume {
                    reasons.push((d.snapshot.clone(), format!("run {} {how} it", run.id)));
                }
            }
        }
        let here = pool.root().to_path_buf();
        for m in pool.mirrors()? {
            let same_pool = std::path::Path::new(&m.source_pool) == here;
            if same_pool && m.source_volume == volume {
                if let Some(last) = m.last_snapshot {
                    reasons.push((last, format!("mirror {} last received it", m.volume)));
                }
            }
        }
        Ok(Dependents { reasons })
    }

    fn on(&self, snapshot: &str) -> Option<String> {
        self.reasons
            .iter()
            .find(|(s, _)| s == snapshot)
            .map(|(_, why)| why.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_names_are_prefix_dot_fourteen_digits() {
        assert!(in_series("shale.20261206032649", "shale"));
        assert!(in_series("hourly.20261206032649.2", "hourly"));
        assert!(!in_series("hourly.20261206032649.", "hourly"));
        assert!(!in_series("hourly.2026120603264", "hourly"));
        assert!(!in_series("hourly.20261206032649x", "hourly"));
        assert!(!in_series("hourlyx.20261206032649", "hourly"));
        assert!(!in_series("run-7", "run"));
        assert!(!in_series("clone.x", "clone"));
        assert_eq!(series_name("daily", 0), "daily.19700101000000");
    }

    const HOUR: i64 = 3_600_000_000_000;

    fn pool() -> (tempfile::TempDir, Pool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        pool.create_volume("v", None).unwrap();
        (dir, pool)
    }

    fn names(pool: &Pool) -> Vec<String> {
        let mut v: Vec<String> = pool
            .list_snapshots(Some("v"))
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keep_n_prunes_only_the_series_and_keeps_what_clones_and_runs_need() {
        let (_dir, pool) = pool();
        pool.create_snapshot("v", Some("hand-named")).unwrap();
        pool.create_snapshot("v", Some("run-1")).unwrap();
        let keep = Retention {
            keep: Some(2),
            max_age: None,
        };
        let t0 = catalog::now_ns();
        let mut taken = Vec::new();
        for h in 0..5 {
            let r = pool
                .snapshot_series("v", Some("nightly"), &keep, t0 + h * HOUR)
                .unwrap();
            taken.push(r.snapshot.name.clone());
            if h == 0 {
                // a clone of the first and a run that read the second
                pool.clone_volume("c", &format!("v@{}", r.snapshot.name))
                    .unwrap();
            }
            if h == 1 {
                let run = pool
                    .begin_run(&["train".into()], &Default::default())
                    .unwrap();
                let data = catalog::RunData {
                    volume: "v".into(),
                    snapshot: r.snapshot.name.clone(),
                    snapshot_id: r.snapshot.id.clone(),
                };
                pool.add_run_data(run, false, &data).unwrap();
            }
            if h == 4 {
                assert_eq!(r.pruned.deleted, vec![taken[2].clone()]);
                let reasons: Vec<&str> = r.pruned.kept.iter().map(|k| k.reason.as_str()).collect();
                assert_eq!(reasons, ["run 1 read it", "volume c was cloned from it"]);
            }
        }
        let mut want = vec![
            "hand-named".to_string(),
            "run-1".to_string(),
            taken[0].clone(),
            taken[1].clone(),
            taken[3].clone(),
            taken[4].clone(),
        ];
        want.sort();
        assert_eq!(names(&pool), want);
        assert!(Retention {
            keep: Some(0),
            max_age: None
        }
        .check()
        .is_err());
    }

    #[test]
    fn max_age_prunes_by_the_clock_passed_in() {
        let (_dir, pool) = pool();
        let days = |d: u64| Retention {
            keep: None,
            max_age: Some(Duration::from_secs(d * 86_400)),
        };
        let t0 = catalog::now_ns();
        let first = pool.snapshot_series("v", None, &days(7), t0).unwrap();
        assert!(first.snapshot.name.starts_with("shale."));
        // six days on nothing is old enough; eight days on the first goes
        let r = pool
            .prune_series("v", "shale", &days(7), t0 + 6 * 24 * HOUR)
            .unwrap();
        assert!(r.deleted.is_empty());
        let second = pool
            .snapshot_series("v", None, &days(7), t0 + 8 * 24 * HOUR)
            .unwrap();
        assert_eq!(second.pruned.deleted, vec![first.snapshot.name]);
        // the newest is never pruned by age
        let r = pool
            .prune_series("v", "shale", &days(1), t0 + 100 * 24 * HOUR)
            .unwrap();
        assert!(r.deleted.is_empty());
        assert_eq!(names(&pool), vec![second.snapshot.name]);
    }

    #[test]
    fn policies_take_what_is_due_and_keep_counts() {
        let (_dir, pool) = pool();
        assert!(pool.set_snapshot_policy("nope", 1, 0, 0).is_err());
        pool.set_snapshot_policy("v", 3, 2, 1).unwrap();
        let t0 = catalog::now_ns();
        let run = |at: i64| pool.run_snapshot_policies(at).unwrap().remove(0);
        let taken = |r: &PolicyRun| -> Vec<String> {
            r.taken
                .iter()
                .map(|n| n.split('.').next().unwrap().to_string())
                .collect()
        };
        assert_eq!(taken(&run(t0)), ["hourly", "daily", "weekly"]);
        assert!(
            run(t0 + HOUR / 6).taken.is_empty(),
            "ten minutes on: nothing due"
        );
        assert_eq!(taken(&run(t0 + HOUR)), ["hourly"]);
        assert_eq!(taken(&run(t0 + 2 * HOUR)), ["hourly"]);
        let r = run(t0 + 3 * HOUR);
        assert_eq!(taken(&r), ["hourly"]);
        assert_eq!(r.pruned[0].series, "hourly");
        assert_eq!(r.pruned[0].deleted.len(), 1, "three hourly kept");
        assert_eq!(taken(&run(t0 + 24 * HOUR)), ["hourly", "daily"]);
        let count = |class: &str| names(&pool).iter().filter(|n| in_series(n, class)).count();
        assert_eq!(
            (count("hourly"), count("daily"), count("weekly")),
            (3, 2, 1)
        );
        // all zero removes the policy
        assert!(pool.set_snapshot_policy("v", 0, 0, 0).unwrap().is_none());
        assert!(pool.snapshot_policies().unwrap().is_empty());
    }
}
