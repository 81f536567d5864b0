//! The Controller service: volumes and snapshots made, listed, grown and
//! deleted in the configured pools. Every call is idempotent as the spec
//! asks: the same name and parameters give the same volume or snapshot;
//! the same name with others, ALREADY_EXISTS.
//!
//! A volume is named after its CSI name (`pvc-…`), a snapshot after its
//! (`snapshot-…`). Deleting a volume keeps its snapshots (Shale's
//! `delete_volume(keep_snapshots)`), so a VolumeSnapshot outlives the PVC
//! it was taken from; they stay listable and clonable as `VOLUME@SNAPSHOT`
//! until deleted.

use std::collections::HashMap;
use std::sync::Arc;

use bpfman_csi::v1 as csi;
use csi::controller_server::Controller;
use shale_core::Error;
use tonic::{Request, Response, Status};

use crate::caps;
use crate::ids::Id;
use crate::pools::Pools;
use crate::provision::{
    create, delete, page, quota, snapshot, source_spec, volume, POOL_PARAMETER,
};
use crate::status::{blocking, status};

/// The Controller service over `pools`.
pub struct ControllerService {
    /// The pools served.
    pub pools: Arc<Pools>,
}

impl ControllerService {
    /// The pool a StorageClass's parameters pick: INVALID_ARGUMENT for
    /// unknown parameters or pools.
    fn pool_of(&self, parameters: &HashMap<String, String>) -> Result<String, Status> {
        if let Some(k) = parameters
            .keys()
            .find(|k| *k != POOL_PARAMETER && !k.starts_with("csi.storage.k8s.io/"))
        {
            return Err(Status::invalid_argument(format!(
                "unknown StorageClass parameter {k:?} (Shale reads \"pool\")"
            )));
        }
        let name = parameters
            .get(POOL_PARAMETER)
            .map(String::as_str)
            .unwrap_or(self.pools.default_name());
        self.pools
            .config(name)
            .map_err(|s| Status::invalid_argument(s.message().to_string()))?;
        Ok(name.to_string())
    }

    /// Every snapshot of every pool, in id order.
    fn all_snapshots(&self, only_pool: Option<&str>) -> Result<Vec<csi::Snapshot>, Status> {
        let mut out = Vec::new();
        for name in self.pools.names() {
            if only_pool.is_some_and(|p| p != name) {
                continue;
            }
            let pool = self.pools.get(&name)?;
            let snaps = pool.list_snapshots(None).map_err(status)?;
            out.extend(snaps.iter().map(|s| snapshot(&name, s)));
        }
        out.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
        Ok(out)
    }
}

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn create_volume(
        &self,
        request: Request<csi::CreateVolumeRequest>,
    ) -> Result<Response<csi::CreateVolumeResponse>, Status> {
        let req = request.into_inner();
        if req.name.is_empty() {
            return Err(Status::invalid_argument("name is missing"));
        }
        shale_core::names::check_name(&req.name)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        caps::check(&req.volume_capabilities)?;
        let pool_name = self.pool_of(&req.parameters)?;
        let source = match &req.volume_content_source {
            Some(s) => Some(source_spec(s, &pool_name)?),
            None => None,
        };
        if let Some(s) = source.as_ref().filter(|s| s.pool != pool_name) {
            return Err(Status::invalid_argument(format!(
                "{s} is in pool {}, the new volume in {pool_name}: clones stay in their pool",
                s.pool
            )));
        }
        let made = self
            .pools
            .run(pool_name.clone(), move |pool| {
                let v = create(
                    pool,
                    &req.name,
                    source.as_ref(),
                    req.capacity_range.as_ref(),
                )?;
                pool.sync_catalog().map_err(status)?;
                Ok(volume(&pool_name, &v, req.volume_content_source))
            })
            .await?;
        Ok(Response::new(csi::CreateVolumeResponse {
            volume: Some(made),
        }))
    }

    async fn delete_volume(
        &self,
        request: Request<csi::DeleteVolumeRequest>,
    ) -> Result<Response<csi::DeleteVolumeResponse>, Status> {
        let req = request.into_inner();
        let id = Id::parse(&req.volume_id, self.pools.default_name(), "volume id")?;
        if id.snapshot.is_some() || self.pools.config(&id.pool).is_err() {
            // A snapshot adopted as a read-only volume is deleted through
            // its VolumeSnapshot; an unknown pool holds nothing of ours.
            return Ok(Response::new(csi::DeleteVolumeResponse {}));
        }
        self.pools
            .run(id.pool.clone(), move |pool| {
                delete(pool, &id.volume)?;
                pool.sync_catalog().map_err(status)
            })
            .await?;
        Ok(Response::new(csi::DeleteVolumeResponse {}))
    }

    async fn controller_publish_volume(
        &self,
        _: Request<csi::ControllerPublishVolumeRequest>,
    ) -> Result<Response<csi::ControllerPublishVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "Shale volumes need no attaching: nodes mount them themselves",
        ))
    }

    async fn controller_unpublish_volume(
        &self,
        _: Request<csi::ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<csi::ControllerUnpublishVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "Shale volumes need no attaching: nodes mount them themselves",
        ))
    }

    async fn validate_volume_capabilities(
        &self,
        request: Request<csi::ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<csi::ValidateVolumeCapabilitiesResponse>, Status> {
        let req = request.into_inner();
        let id = Id::find(&req.volume_id, self.pools.default_name(), "volume id")?;
        if req.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume capabilities are missing"));
        }
        let spec = id.spec();
        self.pools
            .run(id.pool, move |pool| {
                pool.resolve(&spec).map(|_| ()).map_err(status)
            })
            .await?;
        let why: Vec<String> = req
            .volume_capabilities
            .iter()
            .filter_map(caps::unsupported)
            .collect();
        Ok(Response::new(if why.is_empty() {
            csi::ValidateVolumeCapabilitiesResponse {
                confirmed: Some(csi::validate_volume_capabilities_response::Confirmed {
                    volume_context: req.volume_context,
                    volume_capabilities: req.volume_capabilities,
                    parameters: req.parameters,
                    mutable_parameters: req.mutable_parameters,
                }),
                message: String::new(),
            }
        } else {
            csi::ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message: why.join("; "),
            }
        }))
    }

    async fn list_volumes(
        &self,
        request: Request<csi::ListVolumesRequest>,
    ) -> Result<Response<csi::ListVolumesResponse>, Status> {
        let req = request.into_inner();
        let pools = self.pools.clone();
        let all = blocking(move || {
            let mut out = Vec::new();
            for name in pools.names() {
                let listed = pools.get(&name)?.list_volumes().map_err(status)?;
                out.extend(listed.iter().map(|v| volume(&name, v, None)));
            }
            out.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
            Ok(out)
        })
        .await?;
        let (items, next_token) = page(all, &req.starting_token, req.max_entries)?;
        let entries = items
            .into_iter()
            .map(|v| csi::list_volumes_response::Entry {
                volume: Some(v),
                status: None,
            })
            .collect();
        Ok(Response::new(csi::ListVolumesResponse {
            entries,
            next_token,
        }))
    }

    async fn get_capacity(
        &self,
        request: Request<csi::GetCapacityRequest>,
    ) -> Result<Response<csi::GetCapacityResponse>, Status> {
        let req = request.into_inner();
        let pool_name = self.pool_of(&req.parameters)?;
        if req
            .volume_capabilities
            .iter()
            .any(|c| caps::unsupported(c).is_some())
        {
            return Ok(Response::new(csi::GetCapacityResponse {
                available_capacity: 0,
                maximum_volume_size: None,
                minimum_volume_size: None,
            }));
        }
        let available = self
            .pools
            .run(pool_name, move |pool| Ok(crate::space::available(pool)))
            .await?;
        Ok(Response::new(csi::GetCapacityResponse {
            available_capacity: available,
            maximum_volume_size: None,
            minimum_volume_size: None,
        }))
    }

    async fn controller_get_capabilities(
        &self,
        _: Request<csi::ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<csi::ControllerGetCapabilitiesResponse>, Status> {
        use csi::controller_service_capability::{rpc::Type, Rpc, Type as Cap};
        let capabilities = [
            Type::CreateDeleteVolume,
            Type::CreateDeleteSnapshot,
            Type::ListSnapshots,
            Type::ListVolumes,
            Type::CloneVolume,
            Type::ExpandVolume,
            Type::GetCapacity,
        ]
        .into_iter()
        .map(|t| csi::ControllerServiceCapability {
            r#type: Some(Cap::Rpc(Rpc { r#type: t as i32 })),
        })
        .collect();
        Ok(Response::new(csi::ControllerGetCapabilitiesResponse {
            capabilities,
        }))
    }

    async fn create_snapshot(
        &self,
        request: Request<csi::CreateSnapshotRequest>,
    ) -> Result<Response<csi::CreateSnapshotResponse>, Status> {
        let req = request.into_inner();
        if req.name.is_empty() {
            return Err(Status::invalid_argument("name is missing"));
        }
        shale_core::names::check_name(&req.name)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let source = Id::find(
            &req.source_volume_id,
            self.pools.default_name(),
            "source volume id",
        )?;
        if source.snapshot.is_some() {
            return Err(Status::invalid_argument(format!(
                "{} is a snapshot: snapshots are taken of volumes",
                req.source_volume_id
            )));
        }
        self.pools.config(&source.pool)?;
        let made = self
            .pools
            .run(source.pool.clone(), move |pool| {
                let same_name = pool
                    .list_snapshots(None)
                    .map_err(status)?
                    .into_iter()
                    .find(|s| s.name == req.name);
                let s = match same_name {
                    Some(s) if s.volume == source.volume => s,
                    Some(s) => {
                        return Err(Status::already_exists(format!(
                            "snapshot {} exists, of volume {}",
                            req.name, s.volume
                        )))
                    }
                    None => {
                        let made = pool
                            .create_snapshot(&source.volume, Some(&req.name))
                            .map_err(status)?;
                        pool.sync_catalog().map_err(status)?;
                        made
                    }
                };
                Ok(snapshot(&source.pool, &s))
            })
            .await?;
        Ok(Response::new(csi::CreateSnapshotResponse {
            snapshot: Some(made),
        }))
    }

    async fn delete_snapshot(
        &self,
        request: Request<csi::DeleteSnapshotRequest>,
    ) -> Result<Response<csi::DeleteSnapshotResponse>, Status> {
        let req = request.into_inner();
        if req.snapshot_id.is_empty() {
            return Err(Status::invalid_argument("snapshot id is missing"));
        }
        // An id that cannot be one of our snapshots names one that is gone.
        let parsed = Id::parse(&req.snapshot_id, self.pools.default_name(), "snapshot id");
        let Some((id, snap)) = parsed
            .ok()
            .and_then(|id| id.snapshot.clone().map(|s| (id, s)))
        else {
            return Ok(Response::new(csi::DeleteSnapshotResponse {}));
        };
        if self.pools.config(&id.pool).is_err() {
            return Ok(Response::new(csi::DeleteSnapshotResponse {}));
        }
        self.pools
            .run(id.pool.clone(), move |pool| {
                match pool.delete_snapshot(&id.volume, &snap) {
                    Ok(()) | Err(Error::SnapshotNotFound { .. } | Error::VolumeNotFound(_)) => {}
                    Err(e) => return Err(status(e)),
                }
                pool.sync_catalog().map_err(status)
            })
            .await?;
        Ok(Response::new(csi::DeleteSnapshotResponse {}))
    }

    async fn list_snapshots(
        &self,
        request: Request<csi::ListSnapshotsRequest>,
    ) -> Result<Response<csi::ListSnapshotsResponse>, Status> {
        let req = request.into_inner();
        let default = self.pools.default_name().to_string();
        // A filter naming what cannot exist matches nothing.
        let by_snapshot = match req.snapshot_id.as_str() {
            "" => None,
            s => match Id::parse(s, &default, "snapshot id") {
                Ok(id) if id.snapshot.is_some() => Some(id),
                _ => return Ok(Response::new(csi::ListSnapshotsResponse::default())),
            },
        };
        let by_source = match req.source_volume_id.as_str() {
            "" => None,
            s => match Id::parse(s, &default, "volume id") {
                Ok(id) if id.snapshot.is_none() => Some(id),
                _ => return Ok(Response::new(csi::ListSnapshotsResponse::default())),
            },
        };
        let only_pool = by_snapshot
            .as_ref()
            .or(by_source.as_ref())
            .map(|id| id.pool.clone());
        if only_pool
            .as_deref()
            .is_some_and(|p| self.pools.config(p).is_err())
        {
            return Ok(Response::new(csi::ListSnapshotsResponse::default()));
        }
        let this = ControllerService {
            pools: self.pools.clone(),
        };
        let all = blocking(move || this.all_snapshots(only_pool.as_deref())).await?;
        let wanted: Vec<csi::Snapshot> = all
            .into_iter()
            .filter(|s| {
                by_snapshot
                    .as_ref()
                    .is_none_or(|id| s.snapshot_id == id.to_string())
            })
            .filter(|s| {
                by_source
                    .as_ref()
                    .is_none_or(|id| s.source_volume_id == id.to_string())
            })
            .collect();
        let (items, next_token) = page(wanted, &req.starting_token, req.max_entries)?;
        Ok(Response::new(csi::ListSnapshotsResponse {
            entries: items
                .into_iter()
                .map(|s| csi::list_snapshots_response::Entry { snapshot: Some(s) })
                .collect(),
            next_token,
        }))
    }

    async fn controller_expand_volume(
        &self,
        request: Request<csi::ControllerExpandVolumeRequest>,
    ) -> Result<Response<csi::ControllerExpandVolumeResponse>, Status> {
        let req = request.into_inner();
        let id = Id::find(&req.volume_id, self.pools.default_name(), "volume id")?;
        if id.snapshot.is_some() {
            return Err(Status::invalid_argument("a snapshot cannot grow"));
        }
        let Some(wanted) = quota(req.capacity_range.as_ref())? else {
            return Err(Status::invalid_argument("capacity range is missing"));
        };
        self.pools.config(&id.pool)?;
        let capacity = self
            .pools
            .run(id.pool.clone(), move |pool| {
                let v = pool.volume_info(&id.volume).map_err(status)?;
                if v.quota.is_some_and(|q| q >= wanted) {
                    return Ok(v.quota.unwrap_or(0));
                }
                let v = pool
                    .resize_volume(&id.volume, Some(wanted))
                    .map_err(status)?;
                pool.sync_catalog().map_err(status)?;
                Ok(v.quota.unwrap_or(0))
            })
            .await?;
        Ok(Response::new(csi::ControllerExpandVolumeResponse {
            capacity_bytes: capacity as i64,
            // Mounts show the new size at once: nothing to do on nodes.
            node_expansion_required: false,
        }))
    }

    async fn controller_get_volume(
        &self,
        _: Request<csi::ControllerGetVolumeRequest>,
    ) -> Result<Response<csi::ControllerGetVolumeResponse>, Status> {
        Err(Status::unimplemented("ControllerGetVolume is not offered"))
    }

    async fn controller_modify_volume(
        &self,
        _: Request<csi::ControllerModifyVolumeRequest>,
    ) -> Result<Response<csi::ControllerModifyVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "ControllerModifyVolume is not offered",
        ))
    }
}
