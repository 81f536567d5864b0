//! The Node service: a volume is mounted once per node at its staging
//! path by a `shale mount` server (a process of its own, which outlives a
//! restart of this plugin and is found again by its mount), and
//! bind-mounted into each pod's target path. Unstaging unmounts it with
//! `shale unmount`, which commits what was written.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bpfman_csi::v1 as csi;
use csi::node_server::Node;
use tonic::{Request, Response, Status};

use crate::caps;
use crate::ids::Id;
use crate::mountinfo;
use crate::pools::Pools;
use crate::status::blocking;

/// The Node service of node `node_id`.
pub struct NodeService {
    /// This node's id, as NodeGetInfo reports it.
    pub node_id: String,
    /// The pools served.
    pub pools: Arc<Pools>,
    /// The `shale` binary that runs mounts.
    pub shale: PathBuf,
    /// Serializes operations on the node's mounts.
    pub lock: Arc<std::sync::Mutex<()>>,
}

/// A path argument `what`: present, absolute, without `..`.
fn path_arg(path: &str, what: &str) -> Result<PathBuf, Status> {
    if path.is_empty() {
        return Err(Status::invalid_argument(format!("{what} is missing")));
    }
    if !mountinfo::is_plain_absolute(path) {
        return Err(Status::invalid_argument(format!(
            "{what} {path:?} must be an absolute path without '..'"
        )));
    }
    Ok(PathBuf::from(path))
}

/// A volume path to look at (stats, expansion): present, and existing
/// (NOT_FOUND otherwise); nothing is created or mounted there.
fn existing_path(path: &str) -> Result<PathBuf, Status> {
    if path.is_empty() {
        return Err(Status::invalid_argument("volume path is missing"));
    }
    let path = PathBuf::from(path);
    match std::fs::symlink_metadata(&path) {
        Ok(_) => Ok(path),
        // A mount whose server is gone: there, and abnormal.
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(path),
        Err(_) => Err(Status::not_found(format!(
            "no volume at {}",
            path.display()
        ))),
    }
}

/// The volume capability of a request, checked.
fn capability(cap: Option<&csi::VolumeCapability>) -> Result<&csi::VolumeCapability, Status> {
    let cap = cap.ok_or_else(|| Status::invalid_argument("volume capability is missing"))?;
    caps::check(std::slice::from_ref(cap))?;
    Ok(cap)
}

/// Runs `shale` with `args`; its error message as a status.
fn shale(bin: &Path, args: &[&std::ffi::OsStr]) -> Result<(), Status> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .map_err(|e| Status::internal(format!("running {}: {e}", bin.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.trim().trim_start_matches("shale: error: ");
    let code = if err.contains("not found") || err.contains("no volume") {
        tonic::Code::NotFound
    } else if err.contains("writer") || err.contains("mounted") {
        tonic::Code::FailedPrecondition
    } else {
        tonic::Code::Internal
    };
    Err(Status::new(code, err.to_string()))
}

impl NodeService {
    /// Mounts `id` at `staging` (read-only if asked) unless a live mount of
    /// it is there.
    fn stage(&self, id: &Id, staging: &Path, read_only: bool) -> Result<(), Status> {
        let config = self.pools.config(&id.pool)?;
        if let Some(m) = live_mount(staging)? {
            if !m.is_shale() {
                return Err(Status::already_exists(format!(
                    "{} holds another mount ({})",
                    staging.display(),
                    m.fs_type
                )));
            }
            return same_access(&m, staging, read_only);
        }
        std::fs::create_dir_all(staging).map_err(io_status)?;
        let spec = id.spec();
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--pool".as_ref(),
            config.spec.as_ref(),
            "mount".as_ref(),
            staging.as_os_str(),
            "--volume".as_ref(),
            spec.as_ref(),
        ];
        if read_only {
            args.push("--read-only".as_ref());
        }
        shale(&self.shale, &args)
    }

    /// Unmounts what is at `staging`, committing it.
    fn unstage(&self, id: &Id, staging: &Path) -> Result<(), Status> {
        if live_mount(staging)?.is_none() {
            return Ok(());
        }
        let config = self.pools.config(&id.pool)?;
        shale(
            &self.shale,
            &[
                "--pool".as_ref(),
                config.spec.as_ref(),
                "unmount".as_ref(),
                staging.as_os_str(),
            ],
        )
    }

    /// Bind-mounts the staged volume into `target`.
    fn publish(&self, staging: &Path, target: &Path, read_only: bool) -> Result<(), Status> {
        if !live_mount(staging)?.is_some_and(|m| m.is_shale()) {
            return Err(Status::failed_precondition(format!(
                "the volume is not staged at {}",
                staging.display()
            )));
        }
        if let Some(m) = live_mount(target)? {
            return same_access(&m, target, read_only);
        }
        std::fs::create_dir_all(target).map_err(io_status)?;
        mountinfo::bind(staging, target, read_only).map_err(io_status)
    }

    /// Unmounts `target` and removes it.
    fn unpublish(&self, target: &Path) -> Result<(), Status> {
        while mountinfo::at(target).map_err(io_status)?.is_some() {
            let stale = mountinfo::is_stale(target);
            mountinfo::unmount(target, stale).map_err(io_status)?;
        }
        match std::fs::remove_dir(target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_status(e)),
        }
    }
}

/// The mount at `path` if its server answers; one whose server is gone
/// is detached (kubelet's next call mounts afresh).
fn live_mount(path: &Path) -> Result<Option<mountinfo::Mount>, Status> {
    let Some(m) = mountinfo::at(path).map_err(io_status)? else {
        return Ok(None);
    };
    if !mountinfo::is_stale(path) {
        return Ok(Some(m));
    }
    tracing::warn!(path = %path.display(), "detaching a stale mount");
    mountinfo::unmount(path, true).map_err(io_status)?;
    Ok(None)
}

/// OK if the mount `m` at `path` is read-only as asked, ALREADY_EXISTS if
/// not (the same path asked for with another access).
fn same_access(m: &mountinfo::Mount, path: &Path, read_only: bool) -> Result<(), Status> {
    if m.read_only == read_only {
        return Ok(());
    }
    let was = if m.read_only {
        "read-only"
    } else {
        "read-write"
    };
    Err(Status::already_exists(format!(
        "{} is mounted {was} already",
        path.display()
    )))
}

fn io_status(e: std::io::Error) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        request: Request<csi::NodeStageVolumeRequest>,
    ) -> Result<Response<csi::NodeStageVolumeResponse>, Status> {
        let req = request.into_inner();
        let id = Id::parse(&req.volume_id, self.pools.default_name(), "volume id")?;
        let staging = path_arg(&req.staging_target_path, "staging target path")?;
        let cap = capability(req.volume_capability.as_ref())?;
        let read_only = caps::read_only(cap) || id.snapshot.is_some();
        let this = self.clone_handle();
        blocking(move || {
            let _held = this.lock.lock().unwrap();
            let pool = this.pools.get(&id.pool)?;
            pool.resolve(&id.spec()).map_err(crate::status::status)?;
            this.stage(&id, &staging, read_only)
        })
        .await?;
        Ok(Response::new(csi::NodeStageVolumeResponse {}))
    }

    async fn node_unstage_volume(
        &self,
        request: Request<csi::NodeUnstageVolumeRequest>,
    ) -> Result<Response<csi::NodeUnstageVolumeResponse>, Status> {
        let req = request.into_inner();
        let id = Id::parse(&req.volume_id, self.pools.default_name(), "volume id")?;
        let staging = path_arg(&req.staging_target_path, "staging target path")?;
        let this = self.clone_handle();
        blocking(move || {
            let _held = this.lock.lock().unwrap();
            this.unstage(&id, &staging)
        })
        .await?;
        Ok(Response::new(csi::NodeUnstageVolumeResponse {}))
    }

    async fn node_publish_volume(
        &self,
        request: Request<csi::NodePublishVolumeRequest>,
    ) -> Result<Response<csi::NodePublishVolumeResponse>, Status> {
        let req = request.into_inner();
        let id = Id::parse(&req.volume_id, self.pools.default_name(), "volume id")?;
        let staging = path_arg(&req.staging_target_path, "staging target path")?;
        let target = path_arg(&req.target_path, "target path")?;
        let cap = capability(req.volume_capability.as_ref())?;
        let read_only = req.readonly || caps::read_only(cap) || id.snapshot.is_some();
        let this = self.clone_handle();
        blocking(move || {
            let _held = this.lock.lock().unwrap();
            let fresh = mountinfo::at(&target).map_err(io_status)?.is_none();
            this.publish(&staging, &target, read_only)?;
            if fresh {
                crate::lineage::record_publish(
                    &this.pools,
                    &id,
                    &this.node_id,
                    &target,
                    read_only,
                    &req.volume_context,
                );
            }
            Ok(())
        })
        .await?;
        Ok(Response::new(csi::NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<csi::NodeUnpublishVolumeRequest>,
    ) -> Result<Response<csi::NodeUnpublishVolumeResponse>, Status> {
        let req = request.into_inner();
        let id = Id::parse(&req.volume_id, self.pools.default_name(), "volume id")?;
        let target = path_arg(&req.target_path, "target path")?;
        let this = self.clone_handle();
        blocking(move || {
            let _held = this.lock.lock().unwrap();
            this.unpublish(&target)?;
            crate::lineage::record_unpublish(&this.pools, &id, &target);
            Ok(())
        })
        .await?;
        Ok(Response::new(csi::NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<csi::NodeGetVolumeStatsRequest>,
    ) -> Result<Response<csi::NodeGetVolumeStatsResponse>, Status> {
        let req = request.into_inner();
        Id::find(&req.volume_id, self.pools.default_name(), "volume id")?;
        let path = existing_path(&req.volume_path)?;
        blocking(move || volume_stats(&path))
            .await
            .map(Response::new)
    }

    async fn node_expand_volume(
        &self,
        request: Request<csi::NodeExpandVolumeRequest>,
    ) -> Result<Response<csi::NodeExpandVolumeResponse>, Status> {
        let req = request.into_inner();
        let id = Id::find(&req.volume_id, self.pools.default_name(), "volume id")?;
        existing_path(&req.volume_path)?;
        let capacity = self
            .pools
            .run(id.pool.clone(), move |pool| {
                let v = pool
                    .volume_info(&id.volume)
                    .map_err(crate::status::status)?;
                // The mount shows the volume's quota as its size at once.
                Ok(v.quota.unwrap_or(0) as i64)
            })
            .await?;
        Ok(Response::new(csi::NodeExpandVolumeResponse {
            capacity_bytes: capacity,
        }))
    }

    async fn node_get_capabilities(
        &self,
        _: Request<csi::NodeGetCapabilitiesRequest>,
    ) -> Result<Response<csi::NodeGetCapabilitiesResponse>, Status> {
        use csi::node_service_capability::{rpc::Type, Rpc, Type as Cap};
        let capabilities = [
            Type::StageUnstageVolume,
            Type::GetVolumeStats,
            Type::ExpandVolume,
            Type::VolumeCondition,
            Type::SingleNodeMultiWriter,
        ]
        .into_iter()
        .map(|t| csi::NodeServiceCapability {
            r#type: Some(Cap::Rpc(Rpc { r#type: t as i32 })),
        })
        .collect();
        Ok(Response::new(csi::NodeGetCapabilitiesResponse {
            capabilities,
        }))
    }

    async fn node_get_info(
        &self,
        _: Request<csi::NodeGetInfoRequest>,
    ) -> Result<Response<csi::NodeGetInfoResponse>, Status> {
        Ok(Response::new(csi::NodeGetInfoResponse {
            node_id: self.node_id.clone(),
            max_volumes_per_node: 0,
            accessible_topology: None,
        }))
    }
}

impl NodeService {
    /// A handle for a blocking task.
    fn clone_handle(&self) -> NodeService {
        NodeService {
            node_id: self.node_id.clone(),
            pools: self.pools.clone(),
            shale: self.shale.clone(),
            lock: self.lock.clone(),
        }
    }
}

/// Bytes and inodes of the volume mounted at `path` (its quota is the
/// mount's size); the condition says whether its server answers.
fn volume_stats(path: &Path) -> Result<csi::NodeGetVolumeStatsResponse, Status> {
    use csi::volume_usage::Unit;
    if mountinfo::is_stale(path) {
        return Ok(csi::NodeGetVolumeStatsResponse {
            usage: Vec::new(),
            volume_condition: Some(csi::VolumeCondition {
                abnormal: true,
                message: "the volume's mount server is gone; republish it".into(),
            }),
        });
    }
    let s = match crate::space::statvfs(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Status::not_found(format!(
                "{} does not exist",
                path.display()
            )))
        }
        Err(e) => return Err(io_status(e)),
    };
    let block = s.fragment_size() as i64;
    let total = s.blocks() as i64 * block;
    let available = s.blocks_available() as i64 * block;
    let usage = vec![
        csi::VolumeUsage {
            available,
            total,
            used: total - s.blocks_free() as i64 * block,
            unit: Unit::Bytes as i32,
        },
        csi::VolumeUsage {
            available: s.files_available() as i64,
            total: s.files() as i64,
            used: s.files() as i64 - s.files_free() as i64,
            unit: Unit::Inodes as i32,
        },
    ];
    Ok(csi::NodeGetVolumeStatsResponse {
        usage,
        volume_condition: Some(csi::VolumeCondition {
            abnormal: false,
            message: String::new(),
        }),
    })
}
