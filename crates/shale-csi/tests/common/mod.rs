//! A driver process started for a test, and CSI clients talking to it
//! over its Unix socket, as kubelet and the sidecars do. The Garage and
//! PostgreSQL fixtures are the CLI tests' own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bpfman_csi::v1 as csi;
use csi::controller_client::ControllerClient;
use csi::identity_client::IdentityClient;
use csi::node_client::NodeClient;
use tonic::transport::{Channel, Endpoint, Uri};

#[path = "../../../shale-cli/tests/common/garage.rs"]
pub mod garage;
#[path = "../../../shale-cli/tests/common/postgres.rs"]
pub mod postgres;

/// The `shale` binary (built with the workspace).
pub fn shale_bin() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_shale-csi")).with_file_name("shale")
}

/// A `shale-csi` process.
pub struct Driver {
    child: Child,
    /// Its socket.
    pub socket: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

impl Driver {
    /// Starts a driver for node `node` serving `pools` (`NAME=SPEC`), with
    /// its socket under `dir` and `envs` added to its environment.
    pub fn start(dir: &Path, node: &str, pools: &[String], envs: &[(String, String)]) -> Driver {
        let socket = dir.join(format!("{node}.sock"));
        let mut args = vec![
            "--endpoint".to_string(),
            format!("unix://{}", socket.display()),
            "--node-id".into(),
            node.into(),
            "--shale".into(),
            shale_bin().display().to_string(),
        ];
        for p in pools {
            args.extend(["--pool".to_string(), p.clone()]);
        }
        let child = spawn(&args, envs);
        let driver = Driver {
            child,
            socket,
            args,
            envs: envs.to_vec(),
        };
        driver.wait_for_socket();
        driver
    }

    fn wait_for_socket(&self) {
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the driver did not listen on {}",
                self.socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (`kill -9`), as a crash of the node plugin.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again, as Kubernetes restarts a crashed plugin.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.args, &self.envs);
        self.wait_for_socket();
    }

    /// A channel to the driver.
    pub async fn channel(&self) -> Channel {
        let path = self.socket.clone();
        Endpoint::try_from("http://[::1]:50051")
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                tokio::net::UnixStream::connect(path.clone())
            }))
            .await
            .unwrap()
    }

    /// Identity, Controller and Node clients.
    pub async fn clients(
        &self,
    ) -> (
        IdentityClient<Channel>,
        ControllerClient<Channel>,
        NodeClient<Channel>,
    ) {
        let ch = self.channel().await;
        (
            IdentityClient::new(ch.clone()),
            ControllerClient::new(ch.clone()),
            NodeClient::new(ch),
        )
    }
}

fn spawn(args: &[String], envs: &[(String, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_shale-csi"))
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .env("SHALE_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether FUSE mounts can be made here (root and /dev/fuse).
pub fn fuse_usable() -> bool {
    Path::new("/dev/fuse").exists() && unsafe { libc::geteuid() } == 0
}

/// A mount-type capability with `mode`.
pub fn capability(mode: csi::volume_capability::access_mode::Mode) -> csi::VolumeCapability {
    use csi::volume_capability::{AccessMode, AccessType, MountVolume};
    csi::VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume::default())),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

/// ReadWriteOnce.
pub fn rwo() -> csi::VolumeCapability {
    capability(csi::volume_capability::access_mode::Mode::SingleNodeWriter)
}

/// ReadOnlyMany.
pub fn rox() -> csi::VolumeCapability {
    capability(csi::volume_capability::access_mode::Mode::MultiNodeReaderOnly)
}

/// A CreateVolume request for `name` of `bytes` (0: no capacity asked).
pub fn create_request(name: &str, bytes: i64) -> csi::CreateVolumeRequest {
    csi::CreateVolumeRequest {
        name: name.into(),
        capacity_range: (bytes > 0).then_some(csi::CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![rwo()],
        ..Default::default()
    }
}

/// A CreateVolume request for `name` from snapshot `snapshot_id`.
pub fn from_snapshot(name: &str, snapshot_id: &str) -> csi::CreateVolumeRequest {
    use csi::volume_content_source::{SnapshotSource, Type};
    csi::CreateVolumeRequest {
        volume_content_source: Some(csi::VolumeContentSource {
            r#type: Some(Type::Snapshot(SnapshotSource {
                snapshot_id: snapshot_id.into(),
            })),
        }),
        ..create_request(name, 0)
    }
}

/// Asserts `r` failed with `code`.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: tonic::Code) {
    match r {
        Ok(v) => panic!("expected {code:?}, got {v:?}"),
        Err(s) => assert_eq!(s.code(), code, "{}", s.message()),
    }
}
