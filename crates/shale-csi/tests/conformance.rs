//! The CSI calls as `csi-sanity` (kubernetes-csi/csi-test) makes them, for
//! the capabilities Shale offers, over the driver's Unix socket with a real
//! gRPC client: identity, capabilities, create/delete idempotency and
//! errors, snapshots (create, list with filters and pages, delete, volumes
//! from snapshots), expansion, publish and unpublish idempotency, volume
//! stats. Cases written from the spec (v1.8).

mod common;

use bpfman_csi::v1 as csi;
use common::{assert_code, create_request, from_snapshot, rox, rwo, Driver};
use tonic::Code;

/// A driver on a fresh local pool named `main`.
fn driver(dir: &std::path::Path) -> Driver {
    let pool = format!("main={}", dir.join("pool").display());
    Driver::start(dir, "node-a", &[pool], &[])
}

#[tokio::test]
async fn identity_and_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    let (mut id, mut ctl, mut node) = d.clients().await;
    let info = id
        .get_plugin_info(csi::GetPluginInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, shale_csi::DRIVER_NAME);
    assert!(!info.vendor_version.is_empty());
    let caps = id
        .get_plugin_capabilities(csi::GetPluginCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(caps.capabilities.len(), 2, "{caps:?}");
    let probe = id.probe(csi::ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(probe.ready, Some(true));

    let c = ctl
        .controller_get_capabilities(csi::ControllerGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.capabilities.len(), 7);
    let n = node
        .node_get_capabilities(csi::NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.capabilities.len(), 5);
    let i = node
        .node_get_info(csi::NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(i.node_id, "node-a");
    // Attaching is not offered (no PUBLISH_UNPUBLISH_VOLUME).
    assert_code(
        ctl.controller_publish_volume(csi::ControllerPublishVolumeRequest::default())
            .await,
        Code::Unimplemented,
    );
}

#[tokio::test]
async fn create_and_delete_are_idempotent_and_check_their_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    let (_, mut ctl, _) = d.clients().await;
    let v = ctl
        .create_volume(create_request("pvc-1", 1 << 30))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(v.volume_id, "main/pvc-1");
    assert_eq!(v.capacity_bytes, 1 << 30);
    // Same name and parameters: the same volume.
    let again = ctl
        .create_volume(create_request("pvc-1", 1 << 30))
        .await
        .unwrap();
    assert_eq!(again.into_inner().volume.unwrap(), v);
    // Same name, other capacity: ALREADY_EXISTS.
    assert_code(
        ctl.create_volume(create_request("pvc-1", 2 << 30)).await,
        Code::AlreadyExists,
    );
    // Bad requests.
    assert_code(
        ctl.create_volume(create_request("", 0)).await,
        Code::InvalidArgument,
    );
    let mut no_caps = create_request("pvc-2", 0);
    no_caps.volume_capabilities.clear();
    assert_code(ctl.create_volume(no_caps).await, Code::InvalidArgument);
    for hostile in [
        "../etc",
        "a/b",
        "x@y",
        ".hidden",
        "a\u{0}b",
        &"n".repeat(300),
    ] {
        assert_code(
            ctl.create_volume(create_request(hostile, 0)).await,
            Code::InvalidArgument,
        );
    }
    let mut block = create_request("pvc-3", 0);
    block.volume_capabilities[0].access_type =
        Some(csi::volume_capability::AccessType::Block(Default::default()));
    assert_code(ctl.create_volume(block).await, Code::InvalidArgument);
    let mut rwx = create_request("pvc-4", 0);
    rwx.volume_capabilities = vec![common::capability(
        csi::volume_capability::access_mode::Mode::MultiNodeMultiWriter,
    )];
    let e = ctl.create_volume(rwx).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("ReadWriteMany"), "{}", e.message());
    let mut range = create_request("pvc-5", 0);
    range.capacity_range = Some(csi::CapacityRange {
        required_bytes: 10 << 20,
        limit_bytes: 5 << 20,
    });
    assert_code(ctl.create_volume(range).await, Code::OutOfRange);
    let mut param = create_request("pvc-6", 0);
    param.parameters.insert("colour".into(), "blue".into());
    assert_code(ctl.create_volume(param).await, Code::InvalidArgument);
    let mut pool = create_request("pvc-7", 0);
    pool.parameters.insert("pool".into(), "elsewhere".into());
    assert_code(ctl.create_volume(pool).await, Code::InvalidArgument);
    let mut sidecar = create_request("pvc-8", 0);
    sidecar
        .parameters
        .insert("csi.storage.k8s.io/pvc/name".into(), "data".into());
    ctl.create_volume(sidecar).await.unwrap();

    // Delete: idempotent, unknown ids are gone already.
    let del = |id: &str| csi::DeleteVolumeRequest {
        volume_id: id.into(),
        secrets: Default::default(),
    };
    ctl.delete_volume(del("main/pvc-1")).await.unwrap();
    ctl.delete_volume(del("main/pvc-1")).await.unwrap();
    ctl.delete_volume(del("main/never-made")).await.unwrap();
    assert_code(ctl.delete_volume(del("")).await, Code::InvalidArgument);
    assert_code(
        ctl.delete_volume(del("main/../x")).await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn snapshots_list_filter_page_and_outlive_their_volume() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    let (_, mut ctl, _) = d.clients().await;
    for v in ["pvc-a", "pvc-b"] {
        ctl.create_volume(create_request(v, 0)).await.unwrap();
    }
    let snap = |name: &str, source: &str| csi::CreateSnapshotRequest {
        source_volume_id: source.into(),
        name: name.into(),
        ..Default::default()
    };
    let s1 = ctl
        .create_snapshot(snap("snap-1", "main/pvc-a"))
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert_eq!(s1.snapshot_id, "main/pvc-a@snap-1");
    assert_eq!(s1.source_volume_id, "main/pvc-a");
    assert!(s1.ready_to_use && s1.creation_time.is_some());
    let again = ctl
        .create_snapshot(snap("snap-1", "main/pvc-a"))
        .await
        .unwrap();
    assert_eq!(again.into_inner().snapshot.unwrap(), s1);
    assert_code(
        ctl.create_snapshot(snap("snap-1", "main/pvc-b")).await,
        Code::AlreadyExists,
    );
    assert_code(
        ctl.create_snapshot(snap("", "main/pvc-a")).await,
        Code::InvalidArgument,
    );
    assert_code(
        ctl.create_snapshot(snap("snap-x", "")).await,
        Code::InvalidArgument,
    );
    assert_code(
        ctl.create_snapshot(snap("snap-x", "main/no-such")).await,
        Code::NotFound,
    );
    for (n, v) in [("snap-2", "main/pvc-a"), ("snap-3", "main/pvc-b")] {
        ctl.create_snapshot(snap(n, v)).await.unwrap();
    }

    let list = |max: i32, token: &str, source: &str, id: &str| csi::ListSnapshotsRequest {
        max_entries: max,
        starting_token: token.into(),
        source_volume_id: source.into(),
        snapshot_id: id.into(),
        ..Default::default()
    };
    let ids = |r: csi::ListSnapshotsResponse| -> Vec<String> {
        r.entries
            .into_iter()
            .map(|e| e.snapshot.unwrap().snapshot_id)
            .collect()
    };
    let all = ids(ctl
        .list_snapshots(list(0, "", "", ""))
        .await
        .unwrap()
        .into_inner());
    assert_eq!(all.len(), 3);
    let mine = ids(ctl
        .list_snapshots(list(0, "", "main/pvc-a", ""))
        .await
        .unwrap()
        .into_inner());
    assert_eq!(mine, ["main/pvc-a@snap-1", "main/pvc-a@snap-2"]);
    let one = ids(ctl
        .list_snapshots(list(0, "", "", "main/pvc-b@snap-3"))
        .await
        .unwrap()
        .into_inner());
    assert_eq!(one, ["main/pvc-b@snap-3"]);
    for none in ["main/pvc-b@nope", "garbage/../x", "other/pvc-a@snap-1"] {
        let got = ctl
            .list_snapshots(list(0, "", "", none))
            .await
            .unwrap()
            .into_inner();
        assert!(got.entries.is_empty(), "{none}");
    }
    // Pages of one, in order, covering everything once.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let r = ctl
            .list_snapshots(list(1, &token, "", ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.entries.len(), 1);
        token = r.next_token.clone();
        paged.extend(ids(r));
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, all);
    assert_code(
        ctl.list_snapshots(list(0, "bogus", "", "")).await,
        Code::Aborted,
    );
    assert_code(
        ctl.list_snapshots(list(-1, "", "", "")).await,
        Code::InvalidArgument,
    );

    // A snapshot outlives the volume it was taken of, and gives volumes.
    ctl.delete_volume(csi::DeleteVolumeRequest {
        volume_id: "main/pvc-a".into(),
        secrets: Default::default(),
    })
    .await
    .unwrap();
    let after = ids(ctl
        .list_snapshots(list(0, "", "", ""))
        .await
        .unwrap()
        .into_inner());
    assert_eq!(after, all);
    let v = ctl
        .create_volume(from_snapshot("pvc-c", "main/pvc-a@snap-1"))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(v.volume_id, "main/pvc-c");
    assert!(v.content_source.is_some());
    let again = ctl
        .create_volume(from_snapshot("pvc-c", "main/pvc-a@snap-1"))
        .await;
    assert_eq!(again.unwrap().into_inner().volume.unwrap(), v);
    assert_code(
        ctl.create_volume(from_snapshot("pvc-c", "main/pvc-b@snap-3"))
            .await,
        Code::AlreadyExists,
    );
    assert_code(
        ctl.create_volume(from_snapshot("pvc-d", "main/pvc-a@nope"))
            .await,
        Code::NotFound,
    );
    // A source that is not a snapshot id names no snapshot.
    for not_a_snapshot in ["main/pvc-a", "non-existing-snapshot-id", "x/../y"] {
        assert_code(
            ctl.create_volume(from_snapshot("pvc-d", not_a_snapshot))
                .await,
            Code::NotFound,
        );
    }

    // Delete: idempotent.
    for _ in 0..2 {
        ctl.delete_snapshot(csi::DeleteSnapshotRequest {
            snapshot_id: "main/pvc-a@snap-2".into(),
            secrets: Default::default(),
        })
        .await
        .unwrap();
    }
    assert_code(
        ctl.delete_snapshot(csi::DeleteSnapshotRequest::default())
            .await,
        Code::InvalidArgument,
    );
    // An id that cannot be one of ours names a snapshot that is gone.
    ctl.delete_snapshot(csi::DeleteSnapshotRequest {
        snapshot_id: "non-existing-snapshot-id".into(),
        secrets: Default::default(),
    })
    .await
    .unwrap();
    let left = ids(ctl
        .list_snapshots(list(0, "", "", ""))
        .await
        .unwrap()
        .into_inner());
    assert_eq!(left, ["main/pvc-a@snap-1", "main/pvc-b@snap-3"]);
}

#[tokio::test]
async fn volumes_clone_grow_list_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    let (_, mut ctl, _) = d.clients().await;
    ctl.create_volume(create_request("pvc-1", 1 << 20))
        .await
        .unwrap();
    // A clone of a PVC.
    let mut clone = create_request("pvc-2", 2 << 20);
    clone.volume_content_source = Some(csi::VolumeContentSource {
        r#type: Some(csi::volume_content_source::Type::Volume(
            csi::volume_content_source::VolumeSource {
                volume_id: "main/pvc-1".into(),
            },
        )),
    });
    let v = ctl
        .create_volume(clone.clone())
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(v.capacity_bytes, 2 << 20);
    assert_eq!(
        ctl.create_volume(clone)
            .await
            .unwrap()
            .into_inner()
            .volume
            .unwrap(),
        v
    );

    let grow = |id: &str, bytes: i64| csi::ControllerExpandVolumeRequest {
        volume_id: id.into(),
        capacity_range: Some(csi::CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        ..Default::default()
    };
    let r = ctl
        .controller_expand_volume(grow("main/pvc-1", 8 << 20))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.capacity_bytes, 8 << 20);
    assert!(!r.node_expansion_required);
    // Asking for less keeps what it has.
    let r = ctl
        .controller_expand_volume(grow("main/pvc-1", 4 << 20))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.capacity_bytes, 8 << 20);
    assert_code(
        ctl.controller_expand_volume(grow("main/nope", 1)).await,
        Code::NotFound,
    );
    let mut no_range = grow("main/pvc-1", 1);
    no_range.capacity_range = None;
    assert_code(
        ctl.controller_expand_volume(no_range).await,
        Code::InvalidArgument,
    );

    // Lists page through every volume once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let r = ctl
            .list_volumes(csi::ListVolumesRequest {
                max_entries: 1,
                starting_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(r.entries.into_iter().map(|e| e.volume.unwrap().volume_id));
        token = r.next_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, ["main/pvc-1", "main/pvc-2"]);

    let validate =
        |id: &str, caps: Vec<csi::VolumeCapability>| csi::ValidateVolumeCapabilitiesRequest {
            volume_id: id.into(),
            volume_capabilities: caps,
            ..Default::default()
        };
    let ok = ctl
        .validate_volume_capabilities(validate("main/pvc-1", vec![rwo(), rox()]))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.confirmed.is_some());
    let rwx = common::capability(csi::volume_capability::access_mode::Mode::MultiNodeMultiWriter);
    let no = ctl
        .validate_volume_capabilities(validate("main/pvc-1", vec![rwx]))
        .await
        .unwrap()
        .into_inner();
    assert!(no.confirmed.is_none() && !no.message.is_empty());
    assert_code(
        ctl.validate_volume_capabilities(validate("main/nope", vec![rwo()]))
            .await,
        Code::NotFound,
    );
    assert_code(
        ctl.validate_volume_capabilities(validate("main/pvc-1", vec![]))
            .await,
        Code::InvalidArgument,
    );
    let cap = ctl
        .get_capacity(csi::GetCapacityRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(cap.available_capacity > 0);
}

#[tokio::test]
async fn node_calls_check_their_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let d = driver(dir.path());
    let (_, mut ctl, mut node) = d.clients().await;
    ctl.create_volume(create_request("pvc-1", 0)).await.unwrap();
    let staging = dir.path().join("staging").display().to_string();
    let stage =
        |id: &str, path: &str, cap: Option<csi::VolumeCapability>| csi::NodeStageVolumeRequest {
            volume_id: id.into(),
            staging_target_path: path.into(),
            volume_capability: cap,
            ..Default::default()
        };
    assert_code(
        node.node_stage_volume(stage("", &staging, Some(rwo())))
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        node.node_stage_volume(stage("main/pvc-1", "", Some(rwo())))
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        node.node_stage_volume(stage("main/pvc-1", &staging, None))
            .await,
        Code::InvalidArgument,
    );
    for traversal in ["relative/dir", "/var/lib/../../etc"] {
        assert_code(
            node.node_stage_volume(stage("main/pvc-1", traversal, Some(rwo())))
                .await,
            Code::InvalidArgument,
        );
    }
    assert_code(
        node.node_stage_volume(stage("main/no-such", &staging, Some(rwo())))
            .await,
        Code::NotFound,
    );
    // Publishing what was not staged.
    let target = dir.path().join("target").display().to_string();
    let publish = csi::NodePublishVolumeRequest {
        volume_id: "main/pvc-1".into(),
        staging_target_path: staging.clone(),
        target_path: target.clone(),
        volume_capability: Some(rwo()),
        ..Default::default()
    };
    assert_code(
        node.node_publish_volume(publish).await,
        Code::FailedPrecondition,
    );
    // Unpublishing and unstaging what is not there: done already.
    node.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
        volume_id: "main/pvc-1".into(),
        target_path: target.clone(),
    })
    .await
    .unwrap();
    node.node_unstage_volume(csi::NodeUnstageVolumeRequest {
        volume_id: "main/pvc-1".into(),
        staging_target_path: staging.clone(),
    })
    .await
    .unwrap();
    let stats = csi::NodeGetVolumeStatsRequest {
        volume_id: "main/pvc-1".into(),
        volume_path: dir.path().join("nowhere").display().to_string(),
        staging_target_path: String::new(),
    };
    assert_code(
        node.node_get_volume_stats(stats.clone()).await,
        Code::NotFound,
    );
    let relative = csi::NodeGetVolumeStatsRequest {
        volume_path: "some/path".into(),
        ..stats
    };
    assert_code(node.node_get_volume_stats(relative).await, Code::NotFound);
}
