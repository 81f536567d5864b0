//! Times what a cluster waits on, calling a running driver as the sidecars
//! and kubelet do: CreateSnapshot of volume VOLUME, CreateVolume from that
//! snapshot, NodeStageVolume + NodePublishVolume of the new volume, and the
//! first read of FILE in the published volume (from the CreateVolume call).
//! Cleans up after each round; prints one JSON line per round.
//!
//!     csi_bench SOCKET VOLUME FILE WORKDIR ROUNDS   (bench/csi.sh runs it)

use std::path::PathBuf;
use std::time::Instant;

use bpfman_csi::v1 as csi;
use csi::volume_capability::{access_mode::Mode, AccessMode, AccessType, MountVolume};
use tonic::transport::{Endpoint, Uri};

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, socket, volume, file, work, rounds] = &args[..] else {
        return Err("usage: csi_bench SOCKET VOLUME FILE WORKDIR ROUNDS".into());
    };
    let socket = PathBuf::from(socket);
    let channel = Endpoint::try_from("http://[::1]:50051")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            tokio::net::UnixStream::connect(socket.clone())
        }))
        .await?;
    let mut ctl = csi::controller_client::ControllerClient::new(channel.clone());
    let mut node = csi::node_client::NodeClient::new(channel);
    let cap = csi::VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume::default())),
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
    };
    for round in 0..rounds.parse::<u32>()? {
        let snap_name = format!("bench-snap-{round}");
        let t = Instant::now();
        let snap = ctl
            .create_snapshot(csi::CreateSnapshotRequest {
                source_volume_id: volume.clone(),
                name: snap_name,
                ..Default::default()
            })
            .await?
            .into_inner()
            .snapshot
            .ok_or("no snapshot")?;
        let snapshot_ms = ms(t);

        let t = Instant::now();
        let made = ctl
            .create_volume(csi::CreateVolumeRequest {
                name: format!("bench-clone-{round}"),
                volume_capabilities: vec![cap.clone()],
                volume_content_source: Some(csi::VolumeContentSource {
                    r#type: Some(csi::volume_content_source::Type::Snapshot(
                        csi::volume_content_source::SnapshotSource {
                            snapshot_id: snap.snapshot_id.clone(),
                        },
                    )),
                }),
                ..Default::default()
            })
            .await?
            .into_inner()
            .volume
            .ok_or("no volume")?;
        let create_ms = ms(t);

        let staging = format!("{work}/staging-{round}");
        let target = format!("{work}/pod-{round}");
        let p = Instant::now();
        node.node_stage_volume(csi::NodeStageVolumeRequest {
            volume_id: made.volume_id.clone(),
            staging_target_path: staging.clone(),
            volume_capability: Some(cap.clone()),
            ..Default::default()
        })
        .await?;
        node.node_publish_volume(csi::NodePublishVolumeRequest {
            volume_id: made.volume_id.clone(),
            staging_target_path: staging.clone(),
            target_path: target.clone(),
            volume_capability: Some(cap.clone()),
            ..Default::default()
        })
        .await?;
        let publish_ms = ms(p);
        let bytes = std::fs::read(format!("{target}/{file}"))?.len();
        let first_read_ms = ms(t);
        println!(
            "{{\"round\": {round}, \"create_snapshot_ms\": {snapshot_ms:.2}, \
             \"create_volume_from_snapshot_ms\": {create_ms:.2}, \"stage_and_publish_ms\": {publish_ms:.2}, \
             \"first_file_readable_ms\": {first_read_ms:.2}, \"first_file_bytes\": {bytes}}}"
        );

        node.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
            volume_id: made.volume_id.clone(),
            target_path: target,
        })
        .await?;
        node.node_unstage_volume(csi::NodeUnstageVolumeRequest {
            volume_id: made.volume_id.clone(),
            staging_target_path: staging,
        })
        .await?;
        ctl.delete_volume(csi::DeleteVolumeRequest {
            volume_id: made.volume_id,
            secrets: Default::default(),
        })
        .await?;
        ctl.delete_snapshot(csi::DeleteSnapshotRequest {
            snapshot_id: snap.snapshot_id,
            secrets: Default::default(),
        })
        .await?;
    }
    Ok(())
}
