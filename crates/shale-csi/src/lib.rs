//! A Kubernetes CSI driver serving Shale volumes: the Identity,
//! Controller and Node services of the CSI spec (v1.8, from the
//! `bpfman-csi` crate's generated types) over a Unix socket.
//!
//! PVCs are Shale volumes, VolumeSnapshots Shale snapshots, and a PVC from
//! a snapshot or another PVC a Shale clone: constant time whatever the
//! size. See `docs/KUBERNETES.md`.

#![deny(unsafe_code)]
// Every handler answers a `tonic::Status`, as the generated services
// require; boxing it in helpers would only move the size around.
#![allow(clippy::result_large_err)]

pub mod caps;
pub mod controller;
pub mod identity;
pub mod ids;
pub mod lineage;
pub mod mountinfo;
pub mod node;
pub mod pools;
pub mod provision;
pub mod space;
pub mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bpfman_csi::v1 as csi;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

pub use identity::DRIVER_NAME;
use pools::Pools;

/// Which services a process serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Identity and Controller (the provisioner's side).
    Controller,
    /// Identity and Node (a DaemonSet pod on each node).
    Node,
    /// All three (a one-node cluster, tests).
    All,
}

/// What a driver process serves.
pub struct Driver {
    /// The Unix socket to listen on.
    pub socket: PathBuf,
    /// This node's id.
    pub node_id: String,
    /// Which services.
    pub mode: Mode,
    /// The pools.
    pub pools: Arc<Pools>,
    /// The `shale` binary for mounts.
    pub shale: PathBuf,
}

/// The socket path of `unix:///path` (or a bare path).
pub fn socket_path(endpoint: &str) -> Result<PathBuf, String> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if !Path::new(path).is_absolute() {
        return Err(format!(
            "{endpoint}: the endpoint is a Unix socket, unix:///ABSOLUTE/PATH"
        ));
    }
    Ok(PathBuf::from(path))
}

impl Driver {
    /// Serves until SIGINT or SIGTERM.
    pub async fn serve(self) -> anyhow::Result<()> {
        use anyhow::Context;
        if let Some(dir) = self.socket.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // A socket left by an earlier process of the driver.
        match std::fs::remove_file(&self.socket) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", self.socket.display())),
        }
        let listener = UnixListener::bind(&self.socket)
            .with_context(|| format!("listening on {}", self.socket.display()))?;
        // Only this user (root, in a cluster) may call the driver.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.socket, std::fs::Permissions::from_mode(0o600))?;
        }
        let controller = matches!(self.mode, Mode::Controller | Mode::All);
        let node = matches!(self.mode, Mode::Node | Mode::All);
        let mut router = tonic::transport::Server::builder().add_service(
            csi::identity_server::IdentityServer::new(identity::IdentityService { controller }),
        );
        if controller {
            router = router.add_service(csi::controller_server::ControllerServer::new(
                controller::ControllerService {
                    pools: self.pools.clone(),
                },
            ));
        }
        if node {
            router = router.add_service(csi::node_server::NodeServer::new(node::NodeService {
                node_id: self.node_id.clone(),
                pools: self.pools.clone(),
                shale: self.shale.clone(),
                lock: Default::default(),
            }));
        }
        tracing::info!(socket = %self.socket.display(), mode = ?self.mode, "serving CSI");
        router
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown())
            .await
            .context("serving CSI")?;
        let _ = std::fs::remove_file(&self.socket);
        Ok(())
    }
}

/// Resolves when the process is asked to stop.
async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
