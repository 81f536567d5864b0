//! Lineage without code changes: with `podInfoOnMount`, each publish of a
//! volume into a pod is recorded as a run of the pool (`shale lineage`
//! shows it beside `shale run`'s): the pod (namespace/name), its service
//! account, the node, read-only or read-write, and when. A read-only
//! publish records what the pod reads: the snapshot, or the snapshot a
//! clone was made from while the clone still holds exactly it, or else
//! the volume's state then; a read-write publish records, when it is
//! unpublished, the state the pod left the volume in.
//!
//! Recording never fails a publish: a lost record is logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use shale_core::ops::lineage::RunData;
use shale_core::Pool;

use crate::ids::Id;
use crate::pools::Pools;

/// The snapshot name recorded for a volume's state at a moment, not a
/// snapshot of it.
pub const LIVE: &str = "(live)";

const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
const SERVICE_ACCOUNT: &str = "csi.storage.k8s.io/serviceAccount.name";

/// Where the run of a read-write publish at `target` is remembered until
/// it is unpublished: the pool's local directory on this node.
fn run_file(pool: &Pool, target: &Path) -> PathBuf {
    let key = blake3_hex(target.as_os_str().as_encoded_bytes());
    pool.root().join("csi-runs").join(key)
}

fn blake3_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex()[..32].to_string()
}

/// What a read-only publish of `id` reads.
fn read_data(pool: &Pool, id: &Id) -> shale_core::Result<RunData> {
    if let Some(snap) = &id.snapshot {
        let r = pool.resolve(&id.spec())?;
        return Ok(RunData {
            volume: id.volume.clone(),
            snapshot: snap.clone(),
            snapshot_id: r.root.to_hex(),
        });
    }
    let v = pool.volume_info(&id.volume)?;
    if let Some(origin) = &v.origin {
        if let Ok(r) = pool.resolve(origin) {
            if r.root.to_hex() == v.id {
                let (volume, snapshot) = origin.split_once('@').unwrap_or((origin, ""));
                return Ok(RunData {
                    volume: volume.into(),
                    snapshot: snapshot.into(),
                    snapshot_id: v.id,
                });
            }
        }
    }
    Ok(RunData {
        volume: v.name,
        snapshot: LIVE.into(),
        snapshot_id: v.id,
    })
}

/// Records the publish of `id` at `target` by the pod `context` names.
pub fn record_publish(
    pools: &Pools,
    id: &Id,
    node: &str,
    target: &Path,
    read_only: bool,
    context: &HashMap<String, String>,
) {
    let (Some(name), Some(namespace)) = (context.get(POD_NAME), context.get(POD_NAMESPACE)) else {
        return;
    };
    let command = vec![
        "kubernetes-pod".to_string(),
        format!("{namespace}/{name}"),
        format!(
            "serviceAccount={}",
            context.get(SERVICE_ACCOUNT).map_or("", String::as_str)
        ),
        format!("node={node}"),
        if read_only { "read-only" } else { "read-write" }.to_string(),
        id.to_string(),
    ];
    let recorded = pools
        .get(&id.pool)
        .map_err(|s| s.message().to_string())
        .and_then(|pool| {
            let run = pool
                .begin_run(&command, &Default::default())
                .map_err(|e| e.to_string())?;
            if read_only {
                let data = read_data(&pool, id).map_err(|e| e.to_string())?;
                pool.add_run_data(run, false, &data)
                    .map_err(|e| e.to_string())?;
                pool.end_run(run, 0).map_err(|e| e.to_string())
            } else {
                let file = run_file(&pool, target);
                let dir = file.parent().expect("a run file has a directory");
                shale_core::private::create_dir_all(dir)
                    .and_then(|()| shale_core::private::write(&file, run.to_string()))
                    .map_err(|e| e.to_string())
            }
        });
    if let Err(e) = recorded {
        tracing::warn!(volume = %id, error = %e, "the publish was not recorded in the lineage");
    }
}

/// Ends the run of a read-write publish at `target`, recording the state
/// the pod left the volume in.
pub fn record_unpublish(pools: &Pools, id: &Id, target: &Path) {
    let Ok(pool) = pools.get(&id.pool) else {
        return;
    };
    let file = run_file(&pool, target);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return;
    };
    let recorded = (|| -> shale_core::Result<()> {
        let run: i64 = text.trim().parse().map_err(|_| {
            shale_core::Error::InvalidArgument(format!("{}: not a run number", file.display()))
        })?;
        pool.sync_mounts(&id.volume)?;
        let v = pool.volume_info(&id.volume)?;
        let data = RunData {
            volume: v.name,
            snapshot: LIVE.into(),
            snapshot_id: v.id,
        };
        pool.add_run_data(run, true, &data)?;
        pool.end_run(run, 0)
    })();
    if let Err(e) = recorded {
        tracing::warn!(volume = %id, error = %e, "the unpublish was not recorded in the lineage");
    }
    let _ = std::fs::remove_file(&file);
}
