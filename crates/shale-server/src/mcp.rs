//! The pool's operations as Model Context Protocol tools for AI
//! assistants (rmcp, the official Rust SDK): over stdio (`shale mcp`, run
//! by someone who can open the pool), and over the streamable HTTP
//! transport at `/mcp` under `shale serve`, where every request carries a
//! bearer token and each tool checks its role and volume scope as the API
//! does, and changes are written to the audit log. Each tool takes
//! JSON-schema'd arguments and answers structured JSON with its schema; a
//! failure is a tool error carrying Shale's message. Restore is marked
//! destructive; the reading tools read-only.

use std::sync::Arc;

use anyhow::{Context, Result};
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{Implementation, ServerCapabilities, ServerInfo};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shale_core::ops::diff::{DiffEntry, DiffStat};
use shale_core::ops::lineage::Lineage;
use shale_core::ops::tokens::{Grant, Role};
use shale_core::ops::volumes::{SnapshotReport, VolumeReport};
use shale_core::Pool;

use crate::auth::Caller;

/// The MCP server over one pool.
#[derive(Clone)]
pub struct Tools {
    pool: Arc<Pool>,
}

/// Who calls a tool: over HTTP, the token the request carried (put there
/// by the server's authentication); over stdio, nobody in particular (the
/// pool's own user: everything is allowed).
struct Who(Option<Caller>);

impl Who {
    fn of(ctx: &RequestContext<RoleServer>) -> Who {
        let grant = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Grant>());
        Who(grant.map(|g| Caller(g.clone())))
    }

    /// Refuses unless the caller has `role` and sees each of `volumes`.
    fn allow(&self, pool: &Pool, role: Role, volumes: &[&str]) -> Result<(), String> {
        let Some(caller) = &self.0 else { return Ok(()) };
        caller.require(role).map_err(|e| e.message)?;
        for v in volumes {
            caller.check_volume(pool, v).map_err(|e| e.message)?;
        }
        Ok(())
    }

    /// Writes a change and its outcome to the audit log (over HTTP).
    fn audit<T>(
        &self,
        pool: &Pool,
        action: &str,
        result: &Result<T, String>,
    ) -> Result<(), String> {
        let Some(caller) = &self.0 else { return Ok(()) };
        let outcome = match result {
            Ok(_) => "ok (mcp)".to_string(),
            Err(e) => format!("failed (mcp): {e}"),
        };
        pool.record_audit(Some(caller.0.token.id), action, &outcome)
            .map_err(|e| e.to_string())
    }
}

/// Runs a pool operation off the async threads; a failure is its message.
async fn blocking<T: Send + 'static>(
    pool: &Arc<Pool>,
    work: impl FnOnce(&Pool) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || work(&pool))
        .await
        .map_err(|e| e.to_string())?
}

/// A change: allowed (`role` over `volume`), made, audited.
async fn change<T: Send + 'static>(
    pool: &Arc<Pool>,
    who: Who,
    volume: String,
    action: String,
    work: impl FnOnce(&Pool) -> shale_core::Result<T> + Send + 'static,
) -> Result<T, String> {
    blocking(pool, move |p| {
        let result = who
            .allow(p, Role::Write, &[&volume])
            .and_then(|()| work(p).map_err(|e| e.to_string()));
        who.audit(p, &action, &result)?;
        result
    })
    .await
}

fn text(e: shale_core::Error) -> String {
    e.to_string()
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
    async fn pool_info(&self, ctx: RequestContext<RoleServer>) -> Result<Json<PoolInfo>, String> {
        let who = Who::of(&ctx);
        blocking(&self.pool, move |p| {
            who.allow(p, Role::Read, &[])?;
            let t = p.totals().map_err(text)?;
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
    async fn list_volumes(&self, ctx: RequestContext<RoleServer>) -> Result<Json<Volumes>, String> {
        let who = Who::of(&ctx);
        blocking(&self.pool, move |p| {
            who.allow(p, Role::Read, &[])?;
            let mut volumes = p.list_volumes().map_err(text)?;
            if let Some(caller) = &who.0 {
                volumes.retain(|v| caller.sees(p, &v.name));
            }
            Ok(Json(Volumes { volumes }))
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
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Snapshots>, String> {
        let who = Who::of(&ctx);
        blocking(&self.pool, move |p| {
            who.allow(p, Role::Read, &[&a.volume])?;
            p.volume_info(&a.volume).map_err(text)?;
            Ok(Json(Snapshots {
                snapshots: p.list_snapshots(Some(&a.volume)).map_err(text)?,
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
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<SnapshotReport>, String> {
        let action = format!("snapshot {}", a.volume);
        change(
            &self.pool,
            Who::of(&ctx),
            a.volume.clone(),
            action,
            move |p| p.create_snapshot(&a.volume, a.name.as_deref()).map(Json),
        )
        .await
    }

    #[tool(
        description = "Clone a volume (or one of its snapshots) into a new volume in constant time",
        annotations(read_only_hint = false, destructive_hint = false)
    )]
    async fn clone_volume(
        &self,
        Parameters(a): Parameters<CloneArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<VolumeReport>, String> {
        let source = match &a.snapshot {
            Some(s) => format!("{}@{s}", a.source),
            None => a.source.clone(),
        };
        let action = format!("clone {source} into {}", a.new_volume);
        change(
            &self.pool,
            Who::of(&ctx),
            a.source.clone(),
            action,
            move |p| p.clone_volume(&a.new_volume, &source).map(Json),
        )
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
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<SnapshotReport>, String> {
        let action = format!("restore {}@{}", a.volume, a.snapshot);
        change(
            &self.pool,
            Who::of(&ctx),
            a.volume.clone(),
            action,
            move |p| p.restore_snapshot(&a.volume, &a.snapshot).map(Json),
        )
        .await
    }

    #[tool(
        description = "What changed between two volumes or snapshots: totals and the changed paths",
        annotations(read_only_hint = true)
    )]
    async fn diff(
        &self,
        Parameters(a): Parameters<DiffArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Diff>, String> {
        let who = Who::of(&ctx);
        blocking(&self.pool, move |p| {
            who.allow(p, Role::Read, &[volume_of(&a.from), volume_of(&a.to)])?;
            let mut entries = p.diff(&a.from, &a.to).map_err(text)?;
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
    async fn lineage(
        &self,
        Parameters(a): Parameters<SpecArg>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<Json<Lineage>, String> {
        let who = Who::of(&ctx);
        blocking(&self.pool, move |p| {
            who.allow(p, Role::Read, &[volume_of(&a.spec)])?;
            let l = p.lineage(&a.spec).map_err(text)?;
            Ok(Json(match &who.0 {
                Some(caller) => crate::api::scoped_lineage(p, caller, l),
                None => l,
            }))
        })
        .await
    }
}

/// The volume of `VOLUME[@SNAPSHOT]`.
fn volume_of(spec: &str) -> &str {
    spec.split('@').next().unwrap_or(spec)
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

/// The streamable HTTP transport of the tools, for `/mcp` under `shale
/// serve`: one JSON answer per request, no sessions. Requests reach it
/// authenticated (see `crate::api::router_with`). Any Host is accepted:
/// rmcp's Host check guards unauthenticated local servers against DNS
/// rebinding, and a page on another origin has no token to send here.
pub fn http_service(pool: Arc<Pool>) -> StreamableHttpService<Tools, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default();
    config.stateful_mode = false;
    config.json_response = true;
    config.allowed_hosts.clear();
    StreamableHttpService::new(
        move || Ok(Tools::new(pool.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
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
