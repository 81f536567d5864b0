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

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A driver's controller and node services, and the capability asked for.
struct Driver {
    ctl: csi::controller_client::ControllerClient<tonic::transport::Channel>,
    node: csi::node_client::NodeClient<tonic::transport::Channel>,
    cap: csi::VolumeCapability,
}

impl Driver {
    async fn connect(socket: PathBuf) -> Result<Driver> {
        let channel = Endpoint::try_from("http://[::1]:50051")?
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                tokio::net::UnixStream::connect(socket.clone())
            }))
            .await?;
        Ok(Driver {
            ctl: csi::controller_client::ControllerClient::new(channel.clone()),
            node: csi::node_client::NodeClient::new(channel),
            cap: csi::VolumeCapability {
                access_type: Some(AccessType::Mount(MountVolume::default())),
                access_mode: Some(AccessMode {
                    mode: Mode::SingleNodeWriter as i32,
                }),
            },
        })
    }

    async fn snapshot(&mut self, volume: &str, name: String) -> Result<csi::Snapshot> {
        let request = csi::CreateSnapshotRequest {
            source_volume_id: volume.to_string(),
            name,
            ..Default::default()
        };
        let reply = self.ctl.create_snapshot(request).await?.into_inner();
        Ok(reply.snapshot.ok_or("no snapshot")?)
    }

    async fn volume_from(&mut self, snapshot_id: &str, name: String) -> Result<csi::Volume> {
        let source = csi::volume_content_source::SnapshotSource {
            snapshot_id: snapshot_id.to_string(),
        };
        let request = csi::CreateVolumeRequest {
            name,
            volume_capabilities: vec![self.cap.clone()],
            volume_content_source: Some(csi::VolumeContentSource {
                r#type: Some(csi::volume_content_source::Type::Snapshot(source)),
            }),
            ..Default::default()
        };
        let reply = self.ctl.create_volume(request).await?.into_inner();
        Ok(reply.volume.ok_or("no volume")?)
    }

    async fn publish(&mut self, volume_id: &str, staging: &str, target: &str) -> Result<()> {
        let stage = csi::NodeStageVolumeRequest {
            volume_id: volume_id.to_string(),
            staging_target_path: staging.to_string(),
            volume_capability: Some(self.cap.clone()),
            ..Default::default()
        };
        self.node.node_stage_volume(stage).await?;
        let publish = csi::NodePublishVolumeRequest {
            volume_id: volume_id.to_string(),
            staging_target_path: staging.to_string(),
            target_path: target.to_string(),
            volume_capability: Some(self.cap.clone()),
            ..Default::default()
        };
        self.node.node_publish_volume(publish).await?;
        Ok(())
    }

    /// Undoes a round: unpublish, unstage, delete the volume and snapshot.
    async fn clean_up(
        &mut self,
        volume_id: String,
        snapshot_id: String,
        staging: String,
        target: String,
    ) -> Result<()> {
        let unpublish = csi::NodeUnpublishVolumeRequest {
            volume_id: volume_id.clone(),
            target_path: target,
        };
        self.node.node_unpublish_volume(unpublish).await?;
        let unstage = csi::NodeUnstageVolumeRequest {
            volume_id: volume_id.clone(),
            staging_target_path: staging,
        };
        self.node.node_unstage_volume(unstage).await?;
        let delete = csi::DeleteVolumeRequest {
            volume_id,
            secrets: Default::default(),
        };
        self.ctl.delete_volume(delete).await?;
        let delete = csi::DeleteSnapshotRequest {
            snapshot_id,
            secrets: Default::default(),
        };
        self.ctl.delete_snapshot(delete).await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, socket, volume, file, work, rounds] = &args[..] else {
        return Err("usage: csi_bench SOCKET VOLUME FILE WORKDIR ROUNDS".into());
    };
    let mut driver = Driver::connect(PathBuf::from(socket)).await?;
    for round in 0..rounds.parse::<u32>()? {
        let t = Instant::now();
        let snap = driver
            .snapshot(volume, format!("bench-snap-{round}"))
            .await?;
        let snapshot_ms = ms(t);

        let t = Instant::now();
        let made = driver
            .volume_from(&snap.snapshot_id, format!("bench-clone-{round}"))
            .await?;
        let create_ms = ms(t);

        let staging = format!("{work}/staging-{round}");
        let target = format!("{work}/pod-{round}");
        let p = Instant::now();
        driver.publish(&made.volume_id, &staging, &target).await?;
        let publish_ms = ms(p);
        let bytes = std::fs::read(format!("{target}/{file}"))?.len();
        let first_read_ms = ms(t);
        println!(
            "{{\"round\": {round}, \"create_snapshot_ms\": {snapshot_ms:.2}, \
             \"create_volume_from_snapshot_ms\": {create_ms:.2}, \"stage_and_publish_ms\": {publish_ms:.2}, \
             \"first_file_readable_ms\": {first_read_ms:.2}, \"first_file_bytes\": {bytes}}}"
        );
        driver
            .clean_up(made.volume_id, snap.snapshot_id, staging, target)
            .await?;
    }
    Ok(())
}
