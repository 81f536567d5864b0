//! Faults a cluster brings: the node plugin killed while a volume is
//! published and written, the mount server killed under a pod, the object
//! store gone during CreateSnapshot. Needs /dev/fuse and root (and Garage
//! for the store).

mod common;

use std::path::Path;

use bpfman_csi::v1 as csi;
use common::{create_request, fuse_usable, rwo, Driver};
use tonic::Code;

fn write_synced(path: &Path, data: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

fn stage(dir: &Path) -> csi::NodeStageVolumeRequest {
    csi::NodeStageVolumeRequest {
        volume_id: "main/pvc-1".into(),
        staging_target_path: dir.join("staging").display().to_string(),
        volume_capability: Some(rwo()),
        ..Default::default()
    }
}

fn publish(dir: &Path) -> csi::NodePublishVolumeRequest {
    csi::NodePublishVolumeRequest {
        volume_id: "main/pvc-1".into(),
        staging_target_path: dir.join("staging").display().to_string(),
        target_path: dir.join("pod").display().to_string(),
        volume_capability: Some(rwo()),
        ..Default::default()
    }
}

/// The pid of the mount server serving `mountpoint` in the pool at `root`.
fn mount_server(root: &Path, mountpoint: &Path) -> u32 {
    for e in std::fs::read_dir(root.join("mounts")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = name.strip_suffix(".mountpoint") {
            if std::fs::read(e.path()).unwrap() == mountpoint.as_os_str().as_encoded_bytes() {
                return pid.parse().unwrap();
            }
        }
    }
    panic!("no mount server for {}", mountpoint.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_node_plugin_or_mount_server_loses_no_synced_data() {
    if !fuse_usable() {
        eprintln!("skipped: needs /dev/fuse and root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pool = d.join("pool");
    let mut driver = Driver::start(d, "node-a", &[format!("main={}", pool.display())], &[]);
    let (_, mut ctl, mut node) = driver.clients().await;
    ctl.create_volume(create_request("pvc-1", 0)).await.unwrap();
    node.node_stage_volume(stage(d)).await.unwrap();
    node.node_publish_volume(publish(d)).await.unwrap();
    let pod = d.join("pod");
    write_synced(&pod.join("before.bin"), b"written before the crash");

    // The plugin dies; the mount server, a process of its own, serves on.
    driver.kill();
    write_synced(
        &pod.join("during.bin"),
        b"written while the plugin was down",
    );
    driver.restart();
    let (_, _, mut node) = driver.clients().await;
    node.node_stage_volume(stage(d)).await.unwrap();
    node.node_publish_volume(publish(d)).await.unwrap();
    assert_eq!(
        std::fs::read(pod.join("before.bin")).unwrap(),
        b"written before the crash"
    );

    // The mount server dies: the mounts go stale; staging and publishing
    // again detach them and mount afresh, with what was synced.
    let server = mount_server(&pool, &d.join("staging"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The pod's mount goes stale (or away): either way it no longer serves.
    let live = || {
        shale_csi::mountinfo::at(&pod).unwrap().is_some() && !shale_csi::mountinfo::is_stale(&pod)
    };
    let start = std::time::Instant::now();
    while live() {
        assert!(start.elapsed().as_secs() < 10, "the mount still serves");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if shale_csi::mountinfo::is_stale(&pod) {
        let stats = node
            .node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
                volume_id: "main/pvc-1".into(),
                volume_path: pod.display().to_string(),
                staging_target_path: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(stats.volume_condition.unwrap().abnormal);
    }
    node.node_stage_volume(stage(d)).await.unwrap();
    node.node_publish_volume(publish(d)).await.unwrap();
    for (name, data) in [
        ("before.bin", &b"written before the crash"[..]),
        ("during.bin", &b"written while the plugin was down"[..]),
    ] {
        assert_eq!(std::fs::read(pod.join(name)).unwrap(), data, "{name}");
    }
    node.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
        volume_id: "main/pvc-1".into(),
        target_path: pod.display().to_string(),
    })
    .await
    .unwrap();
    node.node_unstage_volume(csi::NodeUnstageVolumeRequest {
        volume_id: "main/pvc-1".into(),
        staging_target_path: d.join("staging").display().to_string(),
    })
    .await
    .unwrap();
    let verify = std::process::Command::new(common::shale_bin())
        .arg("--pool")
        .arg(&pool)
        .args(["verify", "--read-data"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_snapshot_with_the_store_gone_fails_cleanly_and_retries() {
    let Some(mut garage) = common::garage::Garage::start() else {
        eprintln!("skipped: needs garage");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://{}/faults", common::garage::BUCKET);
    let mut env: Vec<(String, String)> = garage
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.push((
        "SHALE_CACHE_DIR".into(),
        dir.path().join("cache").display().to_string(),
    ));
    env.push(("SHALE_STORE_RETRY_SECS".into(), "0".into()));
    let shale = |args: &[&str]| {
        std::process::Command::new(common::shale_bin())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["--pool", &url])
            .args(args)
            .output()
            .unwrap()
    };
    assert!(shale(&["pool", "init"]).status.success());
    let driver = Driver::start(dir.path(), "node-a", &[format!("main={url}")], &env);
    let (_, mut ctl, _) = driver.clients().await;
    ctl.create_volume(create_request("pvc-1", 0)).await.unwrap();
    let request = csi::CreateSnapshotRequest {
        source_volume_id: "main/pvc-1".into(),
        name: "snapshot-1".into(),
        ..Default::default()
    };
    garage.stop();
    let failed = ctl.create_snapshot(request.clone()).await.unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "{}", failed.message());
    garage.resume();
    // The sidecar retries: the same snapshot, whole.
    let made = ctl.create_snapshot(request).await.unwrap().into_inner();
    assert_eq!(made.snapshot.unwrap().snapshot_id, "main/pvc-1@snapshot-1");
    let verify = shale(&["verify", "--read-data"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
