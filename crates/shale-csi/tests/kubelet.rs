//! The kubelet sequence end to end, as the sidecars and kubelet call the
//! driver: provision a PVC, publish it on node A, write files, snapshot,
//! create a volume from the snapshot, publish it read-only on node B, and
//! check the files; then unpublish and delete in reverse order, and `shale
//! gc` frees everything with `verify --read-data` passing. On a local pool
//! (one node) and on an object-store pool in Garage with a PostgreSQL
//! catalog (two node plugins, each with its own cache). Needs /dev/fuse and
//! root; the object-store run also Garage and PostgreSQL.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bpfman_csi::v1 as csi;
use common::{create_request, from_snapshot, fuse_usable, rox, rwo, Driver};
use csi::controller_client::ControllerClient;
use csi::node_client::NodeClient;
use tonic::transport::Channel;

/// A node's client and where it stages and publishes.
struct NodeSide {
    client: NodeClient<Channel>,
    dir: PathBuf,
}

impl NodeSide {
    fn staging(&self, volume: &str) -> String {
        self.dir.join("staging").join(volume).display().to_string()
    }

    fn target(&self, pod: &str) -> String {
        self.dir.join("pods").join(pod).display().to_string()
    }

    async fn stage(&mut self, id: &str, cap: csi::VolumeCapability) {
        let volume = id.rsplit('/').next().unwrap();
        let req = csi::NodeStageVolumeRequest {
            volume_id: id.into(),
            staging_target_path: self.staging(volume),
            volume_capability: Some(cap),
            ..Default::default()
        };
        self.client.node_stage_volume(req.clone()).await.unwrap();
        // Idempotent.
        self.client.node_stage_volume(req).await.unwrap();
    }

    async fn publish(&mut self, id: &str, pod: &str, cap: csi::VolumeCapability) -> PathBuf {
        let volume = id.rsplit('/').next().unwrap();
        let read_only = common::rox() == cap;
        let req = csi::NodePublishVolumeRequest {
            volume_id: id.into(),
            staging_target_path: self.staging(volume),
            target_path: self.target(pod),
            volume_capability: Some(cap),
            readonly: read_only,
            volume_context: HashMap::from([
                ("csi.storage.k8s.io/pod.name".to_string(), pod.to_string()),
                (
                    "csi.storage.k8s.io/pod.namespace".to_string(),
                    "ml".to_string(),
                ),
                (
                    "csi.storage.k8s.io/serviceAccount.name".to_string(),
                    "trainer".to_string(),
                ),
            ]),
            ..Default::default()
        };
        self.client.node_publish_volume(req.clone()).await.unwrap();
        self.client.node_publish_volume(req).await.unwrap();
        PathBuf::from(self.target(pod))
    }

    async fn unpublish(&mut self, id: &str, pod: &str) {
        for _ in 0..2 {
            self.client
                .node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
                    volume_id: id.into(),
                    target_path: self.target(pod),
                })
                .await
                .unwrap();
        }
        assert!(!Path::new(&self.target(pod)).exists());
    }

    async fn unstage(&mut self, id: &str) {
        let volume = id.rsplit('/').next().unwrap();
        for _ in 0..2 {
            self.client
                .node_unstage_volume(csi::NodeUnstageVolumeRequest {
                    volume_id: id.into(),
                    staging_target_path: self.staging(volume),
                })
                .await
                .unwrap();
        }
    }
}

/// Writes `name` under `dir` and fsyncs it.
fn write_synced(dir: &Path, name: &str, data: &[u8]) {
    use std::io::Write;
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

fn content(i: usize) -> Vec<u8> {
    (0..20_000 + i * 997).map(|j| (j * 31 + i) as u8).collect()
}

/// `shale` on the pool, with `envs`; its stdout.
fn shale(pool: &str, envs: &[(String, String)], args: &[&str]) -> String {
    let out = std::process::Command::new(common::shale_bin())
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .args(["--pool", pool])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shale {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn sequence(
    mut ctl: ControllerClient<Channel>,
    mut a: NodeSide,
    mut b: NodeSide,
    pool: &str,
    envs: &[(String, String)],
) {
    let v = ctl
        .create_volume(create_request("pvc-data", 64 << 20))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let id = v.volume_id.clone();
    a.stage(&id, rwo()).await;
    let pod1 = a.publish(&id, "writer", rwo()).await;
    for i in 0..20 {
        write_synced(&pod1, &format!("d{}/f{i}.bin", i % 3), &content(i));
    }
    // A second pod on the node sees the same volume (one staging mount).
    let pod2 = a.publish(&id, "reader", rwo()).await;
    assert_eq!(std::fs::read(pod2.join("d0/f0.bin")).unwrap(), content(0));
    let stats = a
        .client
        .node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
            volume_id: id.clone(),
            volume_path: pod1.display().to_string(),
            staging_target_path: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let bytes = &stats.usage[0];
    assert_eq!(bytes.total, 64 << 20);
    assert!(bytes.used > 0 && bytes.available < bytes.total, "{stats:?}");
    assert!(stats.usage[1].used >= 20, "{stats:?}");
    assert!(!stats.volume_condition.unwrap().abnormal);

    let snap = ctl
        .create_snapshot(csi::CreateSnapshotRequest {
            source_volume_id: id.clone(),
            name: "snapshot-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    let clone = ctl
        .create_volume(csi::CreateVolumeRequest {
            volume_capabilities: vec![rox()],
            ..from_snapshot("pvc-exp", &snap.snapshot_id)
        })
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    b.stage(&clone.volume_id, rox()).await;
    let seen = b.publish(&clone.volume_id, "trainer", rox()).await;
    for i in 0..20 {
        let got = std::fs::read(seen.join(format!("d{}/f{i}.bin", i % 3))).unwrap();
        assert_eq!(got, content(i), "file {i}");
    }
    let refused = std::fs::write(seen.join("new"), b"x").unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(libc::EROFS));

    // The read-only pod is in the lineage of the snapshot it read.
    let lineage = shale(pool, envs, &["--json", "lineage", "pvc-data@snapshot-1"]);
    assert!(
        lineage.contains("kubernetes-pod") && lineage.contains("ml/trainer"),
        "{lineage}"
    );

    b.unpublish(&clone.volume_id, "trainer").await;
    b.unstage(&clone.volume_id).await;
    a.unpublish(&id, "reader").await;
    a.unpublish(&id, "writer").await;
    a.unstage(&id).await;
    // The writer pod's run ends with what it left in the volume.
    let runs = shale(pool, envs, &["--json", "lineage", "pvc-data"]);
    assert!(runs.contains("ml/writer"), "{runs}");

    ctl.delete_volume(csi::DeleteVolumeRequest {
        volume_id: clone.volume_id.clone(),
        secrets: Default::default(),
    })
    .await
    .unwrap();
    ctl.delete_snapshot(csi::DeleteSnapshotRequest {
        snapshot_id: snap.snapshot_id.clone(),
        secrets: Default::default(),
    })
    .await
    .unwrap();
    ctl.delete_volume(csi::DeleteVolumeRequest {
        volume_id: id.clone(),
        secrets: Default::default(),
    })
    .await
    .unwrap();
    shale(pool, envs, &["gc"]);
    let info: serde_json::Value =
        serde_json::from_str(&shale(pool, envs, &["--json", "pool", "info"])).unwrap();
    assert_eq!(info["stored_bytes"], 0, "{info}");
    shale(pool, envs, &["verify", "--read-data"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kubelet_sequence_on_a_local_pool() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let d = Driver::start(
        dir.path(),
        "node-a",
        &[format!("main={}", pool.display())],
        &[],
    );
    let (_, ctl, node) = d.clients().await;
    let side = |name: &str| NodeSide {
        client: node.clone(),
        dir: dir.path().join(name),
    };
    let (a, b) = (side("a"), side("b"));
    sequence(ctl, a, b, &pool.display().to_string(), &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kubelet_sequence_across_two_nodes_on_an_object_store() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let Some(garage) = common::garage::Garage::start() else {
        eprintln!("skipped: needs garage");
        return;
    };
    let Some(pg) = common::postgres::Postgres::start() else {
        eprintln!("skipped: needs PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://{}/csi", common::garage::BUCKET);
    let store: Vec<(String, String)> = garage
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let cache = |node: &str| {
        let mut env = store.clone();
        env.push((
            "SHALE_CACHE_DIR".into(),
            dir.path().join(node).join("cache").display().to_string(),
        ));
        env
    };
    // The first driver creates the pool (the chart's `catalog` value).
    let pools = [format!("main={url}")];
    let mut env_a = cache("node-a");
    env_a.push(("SHALE_CSI_CATALOG".into(), pg.url.clone()));
    let a = Driver::start(dir.path(), "node-a", &pools, &env_a);
    let b = Driver::start(dir.path(), "node-b", &pools, &cache("node-b"));
    let (_, ctl, node_a) = a.clients().await;
    let (_, _, node_b) = b.clients().await;
    sequence(
        ctl,
        NodeSide {
            client: node_a,
            dir: dir.path().join("node-a"),
        },
        NodeSide {
            client: node_b,
            dir: dir.path().join("node-b"),
        },
        &url,
        &cache("admin"),
    )
    .await;
}
