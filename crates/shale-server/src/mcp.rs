//! `shale mcp`: the pool's operations as Model Context Protocol tools for
//! AI assistants, over stdio (rmcp, the official Rust SDK). Each tool
//! takes JSON-schema'd arguments and answers structured JSON with its
//! schema; a failure is a tool error carrying Shale's message. Restore is
//! marked destructive; the reading tools read-only.

use std::sync::Arc;

use anyhow::{Context, Result};
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{Implementation, ServerCapabilities, ServerInfo};
use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shale_core::ops::diff::{DiffEntry, DiffStat};
use shale_core::ops::lineage::Lineage;
use shale_core::ops::volumes::{SnapshotReport, VolumeReport};
use shale_core::Pool;

/// The MCP server over one pool.
#[derive(Clone)]
pub struct Tools {
    pool: Arc<Pool>,
}

/// Runs a pool operation off the async threads; a failure is its message.
async fn blocking<T: Send + 'static>(
    pool: &Arc<Pool>,
    work: impl FnOnce(&Pool) -> shale_core::Result<T> + Send + 'static,
) -> Result<T, String> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || work(&pool))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// `{ "volume": NAME }`.
#[derive(Deserialize, JsonSchema)]
pub struct VolumeArg {
    /// The volume.
    pub volume: String,
}

/// Arguments of `create_snapshot`.
#[derive(Deserialize, JsonSchema)]
pub struct SnapshotArgs {
    /// The volume to snapshot.
    pub volume: String,
    /// The snapshot's name (default: shale.YYYYMMDDhhmmss).
    pub name: Option<String>,
}

/// Arguments of `clone_volume`.
#[derive(Deserialize, JsonSchema)]
pub struct CloneArgs {
    /// The new volume's name.
    pub new_volume: String,
    /// The volume to clone.
    pub source: String,
    /// One of its snapshots (default: its current state).
    pub snapshot: Option<String>,
}

/// Arguments of `restore_snapshot`.
#[derive(Deserialize, JsonSchema)]
pub struct RestoreArgs {
    /// The volume to put back.
    pub volume: String,
    /// Its snapshot to put it back to.
    pub snapshot: String,
}

/// Arguments of `diff`.
#[derive(Deserialize, JsonSchema)]
pub struct DiffArgs {
    /// VOLUME or VOLUME@SNAPSHOT: the older side.
    pub from: String,
    /// VOLUME or VOLUME@SNAPSHOT: the newer side.
    pub to: String,
}

/// `{ "spec": VOLUME or VOLUME@SNAPSHOT }`.
#[derive(Deserialize, JsonSchema)]
pub struct SpecArg {
    /// VOLUME or VOLUME@SNAPSHOT.
    pub spec: String,
}

/// The pool's totals.
#[derive(Serialize, JsonSchema)]
pub struct PoolInfo {
    /// The pool's path or URL.
    pub name: String,
    /// Volumes.
    pub volumes: u64,
    /// Snapshots.
    pub snapshots: u64,
    /// Bytes the volumes and snapshots hold, as files.
    pub logical_bytes: u64,
    /// Bytes of distinct data (after deduplication).
    pub unique_bytes: u64,
    /// Bytes stored (after compression).
    pub stored_bytes: u64,
}

/// Every volume.
#[derive(Serialize, JsonSchema)]
pub struct Volumes {
    /// The volumes, by name.
    pub volumes: Vec<VolumeReport>,
}

/// A volume's snapshots.
#[derive(Serialize, JsonSchema)]
pub struct Snapshots {
    /// Oldest first.
    pub snapshots: Vec<SnapshotReport>,
}

/// What changed between two trees.
#[derive(Serialize, JsonSchema)]
pub struct Diff {
    /// Totals.
    pub stat: DiffStat,
    /// The changed paths (at most 1,000; `truncated` says if there were more).
    pub entries: Vec<DiffEntry>,
    /// Whether entries were left out.
    pub truncated: bool,
}

/// Longest diff listing a tool answers with.
const MAX_DIFF_ENTRIES: usize = 1000;

#[tool_router]
impl Tools {
    /// The tools over `pool`.
    pub fn new(pool: Arc<Pool>) -> Tools {
        Tools { pool }
    }

    #[tool(
        description = "The pool's totals: volumes, snapshots, logical, unique and stored bytes",
        annotations(read_only_hint = true)
    )]
    async fn pool_info(&self) -> Result<Json<PoolInfo>, String> {
        blocking(&self.pool, |p| {
            let t = p.totals()?;
            Ok(Json(PoolInfo {
                name: p.name(),
                volumes: t.volumes,
                snapshots: t.snapshots,
                logical_bytes: t.logical_bytes,
                unique_bytes: t.unique_bytes,
                stored_bytes: t.stored_bytes,
            }))
        })
        .await
    }

    #[tool(
        description = "Every volume: name, content id, size, files, snapshots, clone origin, quota",
        annotations(read_only_hint = true)
    )]
    async fn list_volumes(&self) -> Result<Json<Volumes>, String> {
        blocking(&self.pool, |p| {
            Ok(Json(Volumes {
                volumes: p.list_volumes()?,
            }))
        })
        .await
    }

    #[tool(
        description = "A volume's snapshots, oldest first, each with its content id",
        annotations(read_only_hint = true)
    )]
    async fn list_snapshots(
        &self,
        Parameters(a): Parameters<VolumeArg>,
    ) -> Result<Json<Snapshots>, String> {
        blocking(&self.pool, move |p| {
            p.volume_info(&a.volume)?;
            Ok(Json(Snapshots {
                snapshots: p.list_snapshots(Some(&a.volume))?,
            }))
        })
        .await
    }

    #[tool(
        description = "Snapshot a volume in constant time; answers the snapshot and its content id",
        annotations(read_only_hint = false, destructive_hint = false)
    )]
    async fn create_snapshot(
        &self,
        Parameters(a): Parameters<SnapshotArgs>,
    ) -> Result<Json<SnapshotReport>, String> {
        blocking(&self.pool, move |p| {
            p.create_snapshot(&a.volume, a.name.as_deref()).map(Json)
        })
        .await
    }

    #[tool(
        description = "Clone a volume (or one of its snapshots) into a new volume in constant time",
        annotations(read_only_hint = false, destructive_hint = false)
    )]
    async fn clone_volume(
        &self,
        Parameters(a): Parameters<CloneArgs>,
    ) -> Result<Json<VolumeReport>, String> {
        let source = match &a.snapshot {
            Some(s) => format!("{}@{s}", a.source),
            None => a.source.clone(),
        };
        blocking(&self.pool, move |p| {
            p.clone_volume(&a.new_volume, &source).map(Json)
        })
        .await
    }

    #[tool(
        description = "Put a volume back to one of its snapshots: DISCARDS every change made since",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true
        )
    )]
    async fn restore_snapshot(
        &self,
        Parameters(a): Parameters<RestoreArgs>,
    ) -> Result<Json<SnapshotReport>, String> {
        blocking(&self.pool, move |p| {
            p.restore_snapshot(&a.volume, &a.snapshot).map(Json)
        })
        .await
    }

    #[tool(
        description = "What changed between two volumes or snapshots: totals and the changed paths",
        annotations(read_only_hint = true)
    )]
    async fn diff(&self, Parameters(a): Parameters<DiffArgs>) -> Result<Json<Diff>, String> {
        blocking(&self.pool, move |p| {
            let mut entries = p.diff(&a.from, &a.to)?;
            let stat = DiffStat::of(&entries);
            let truncated = entries.len() > MAX_DIFF_ENTRIES;
            entries.truncate(MAX_DIFF_ENTRIES);
            Ok(Json(Diff {
                stat,
                entries,
                truncated,
            }))
        })
        .await
    }

    #[tool(
        description = "Where a volume or snapshot came from (clones) and which runs read or wrote it",
        annotations(read_only_hint = true)
    )]
    async fn lineage(&self, Parameters(a): Parameters<SpecArg>) -> Result<Json<Lineage>, String> {
        blocking(&self.pool, move |p| p.lineage(&a.spec).map(Json)).await
    }
}

#[tool_handler]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerInfo {
        ServerInfo::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("shale", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Shale volumes: datasets and models with constant-time snapshots and clones. \\
                 Snapshot before changing data; restore discards changes.",
            )
    }
}

/// Serves the tools over stdin and stdout until the client goes away.
pub fn serve_stdio(pool: Pool) -> Result<()> {
    let pool = Arc::new(pool);
    let runtime = tokio::runtime::Runtime::new().context("starting the MCP server's runtime")?;
    let tools = Tools::new(pool.clone());
    let served = runtime.block_on(async move {
        let service = tools
            .serve(rmcp::transport::stdio())
            .await
            .context("starting MCP on stdio")?;
        service.waiting().await.context("serving MCP")?;
        anyhow::Ok(())
    });
    drop(runtime);
    drop(pool); // outside the runtime: see `serve`
    served
}
