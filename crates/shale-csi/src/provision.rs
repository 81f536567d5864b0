//! How CSI requests map to Shale volumes and snapshots: capacity ranges to
//! quotas, content sources to clones, CSI objects from Shale's reports, and
//! pages of lists. The Controller service (`controller.rs`) calls these on
//! its blocking threads.

use std::collections::HashMap;

use bpfman_csi::v1 as csi;
use csi::volume_content_source::{SnapshotSource, Type as Source, VolumeSource};
use shale_core::ops::volumes::{SnapshotReport, VolumeReport};
use shale_core::{Error, Pool};
use tonic::Status;

use crate::ids::Id;
use crate::status::status;

/// StorageClass parameters Shale reads; the sidecars add their own under
/// `csi.storage.k8s.io/`.
pub const POOL_PARAMETER: &str = "pool";

/// Bytes a volume asks for: its quota (`None`: no limit).
pub fn quota(range: Option<&csi::CapacityRange>) -> Result<Option<u64>, Status> {
    let Some(r) = range else { return Ok(None) };
    if r.required_bytes < 0 || r.limit_bytes < 0 {
        return Err(Status::invalid_argument("capacity may not be negative"));
    }
    if r.limit_bytes > 0 && r.limit_bytes < r.required_bytes {
        return Err(Status::out_of_range(format!(
            "capacity limit {} is below the required {}",
            r.limit_bytes, r.required_bytes
        )));
    }
    Ok(match (r.required_bytes, r.limit_bytes) {
        (0, 0) => None,
        (0, limit) => Some(limit as u64),
        (required, _) => Some(required as u64),
    })
}

/// Whether a volume with `quota` meets `range`.
pub fn meets(quota: Option<u64>, range: Option<&csi::CapacityRange>) -> bool {
    let Some(r) = range else { return true };
    let q = quota.unwrap_or(0) as i64;
    (r.required_bytes == 0 || quota.is_none() || q >= r.required_bytes)
        && (r.limit_bytes == 0 || (quota.is_some() && q <= r.limit_bytes))
}

/// The CSI form of a volume of pool `pool`.
pub fn volume(
    pool: &str,
    v: &VolumeReport,
    source: Option<csi::VolumeContentSource>,
) -> csi::Volume {
    csi::Volume {
        capacity_bytes: v.quota.unwrap_or(0) as i64,
        volume_id: Id::volume(pool, &v.name).to_string(),
        volume_context: HashMap::from([(POOL_PARAMETER.to_string(), pool.to_string())]),
        content_source: source,
        accessible_topology: Vec::new(),
    }
}

/// The CSI form of a snapshot of pool `pool`.
pub fn snapshot(pool: &str, s: &SnapshotReport) -> csi::Snapshot {
    let created = humantime::parse_rfc3339(&s.created)
        .ok()
        .map(prost_types::Timestamp::from);
    csi::Snapshot {
        size_bytes: s.logical_bytes as i64,
        snapshot_id: format!("{pool}/{}@{}", s.volume, s.name),
        source_volume_id: Id::volume(pool, &s.volume).to_string(),
        creation_time: created,
        ready_to_use: true,
        group_snapshot_id: String::new(),
    }
}

/// The source a volume is cloned from, as Shale names it, and its pool.
pub fn source_spec(source: &csi::VolumeContentSource, default_pool: &str) -> Result<Id, Status> {
    match &source.r#type {
        Some(Source::Snapshot(SnapshotSource { snapshot_id })) => {
            let id = Id::find(snapshot_id, default_pool, "snapshot id")?;
            if id.snapshot.is_none() {
                return Err(Status::not_found(format!(
                    "no snapshot {snapshot_id:?} (that is a volume id)"
                )));
            }
            Ok(id)
        }
        Some(Source::Volume(VolumeSource { volume_id })) => {
            let id = Id::find(volume_id, default_pool, "volume id")?;
            if id.snapshot.is_some() {
                return Err(Status::not_found(format!(
                    "no volume {volume_id:?} (that is a snapshot id)"
                )));
            }
            Ok(id)
        }
        None => Err(Status::invalid_argument(
            "a volume content source names a snapshot or a volume",
        )),
    }
}

/// Whether an existing volume's origin is `source` (as CreateVolume would
/// have made it).
pub fn same_origin(v: &VolumeReport, name: &str, source: Option<&Id>) -> bool {
    match (source, v.origin.as_deref()) {
        (None, origin) => origin.is_none(),
        (Some(s), Some(origin)) if s.snapshot.is_some() => origin == s.spec(),
        (Some(s), Some(origin)) => origin == format!("{}@clone.{name}", s.volume),
        (Some(_), None) => false,
    }
}

/// Makes volume `name` in `pool` as asked, or finds the one an earlier
/// identical request made.
pub fn create(
    pool: &Pool,
    name: &str,
    source: Option<&Id>,
    range: Option<&csi::CapacityRange>,
) -> Result<VolumeReport, Status> {
    let quota = quota(range)?;
    match pool.volume_info(name) {
        Ok(v) if same_origin(&v, name, source) && meets(v.quota, range) => return Ok(v),
        Ok(_) => {
            return Err(Status::already_exists(format!(
                "volume {name} exists with another source or capacity"
            )))
        }
        Err(Error::VolumeNotFound(_)) => {}
        Err(e) => return Err(status(e)),
    }
    let Some(source) = source else {
        return pool.create_volume(name, quota).map_err(status);
    };
    let made = pool.clone_volume(name, &source.spec()).map_err(status)?;
    if quota.is_none() || quota == made.quota {
        return Ok(made);
    }
    pool.resize_volume(name, quota).map_err(|e| {
        // Too small for what it holds: undo the clone.
        let _ = delete(pool, name);
        status(e)
    })
}

/// Deletes volume `name`, keeping its snapshots, and the snapshot its
/// clone was made from if it was made for it alone (a clone of a PVC).
pub fn delete(pool: &Pool, name: &str) -> Result<(), Status> {
    let v = match pool.volume_info(name) {
        Ok(v) => v,
        Err(Error::VolumeNotFound(_)) => return Ok(()),
        Err(e) => return Err(status(e)),
    };
    pool.delete_volume(name, true).map_err(status)?;
    if let Some((source, snap)) = v.origin.as_deref().and_then(|o| o.split_once('@')) {
        if snap == format!("clone.{name}") {
            match pool.delete_snapshot(source, snap) {
                Ok(()) | Err(Error::SnapshotNotFound { .. } | Error::VolumeNotFound(_)) => {}
                Err(e) => return Err(status(e)),
            }
        }
    }
    Ok(())
}

/// One page of `items` from `token`, at most `max` (0: all), and the token
/// of the next page.
pub fn page<T>(items: Vec<T>, token: &str, max: i32) -> Result<(Vec<T>, String), Status> {
    if max < 0 {
        return Err(Status::invalid_argument("max_entries may not be negative"));
    }
    let start = match token {
        "" => 0,
        t => t
            .parse::<usize>()
            .ok()
            .filter(|s| *s <= items.len())
            .ok_or_else(|| Status::aborted(format!("starting_token {t:?} is not one of ours")))?,
    };
    let end = match max {
        0 => items.len(),
        m => (start + m as usize).min(items.len()),
    };
    let next = if end < items.len() {
        end.to_string()
    } else {
        String::new()
    };
    Ok((
        items.into_iter().skip(start).take(end - start).collect(),
        next,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_everything_once() {
        let items: Vec<u32> = (0..7).collect();
        let (a, t) = page(items.clone(), "", 3).unwrap();
        let (b, t) = page(items.clone(), &t, 3).unwrap();
        let (c, t) = page(items.clone(), &t, 3).unwrap();
        assert_eq!([a, b, c].concat(), items);
        assert!(t.is_empty());
        assert_eq!(
            page(items.clone(), "x", 1).unwrap_err().code(),
            tonic::Code::Aborted
        );
        assert_eq!(
            page(items, "", -1).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn capacity_ranges_become_quotas() {
        let r = |required, limit| csi::CapacityRange {
            required_bytes: required,
            limit_bytes: limit,
        };
        assert_eq!(quota(None).unwrap(), None);
        assert_eq!(quota(Some(&r(10, 0))).unwrap(), Some(10));
        assert_eq!(quota(Some(&r(0, 20))).unwrap(), Some(20));
        assert_eq!(
            quota(Some(&r(30, 20))).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
        assert!(meets(Some(10), Some(&r(10, 0))));
        assert!(!meets(Some(10), Some(&r(11, 0))));
    }
}
