//! Workspaces as every machine may know them: a name, its volume, its
//! owner and where it was cloned from. Where one runs (port, process,
//! mount point) is per machine and not kept here.

use serde::Serialize;

use super::{now_ns, Row, Sql};
use crate::args;
use crate::error::Result;

/// A workspace's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkspaceRow {
    /// The workspace's name.
    pub name: String,
    /// The volume that is its root directory.
    pub volume: String,
    /// The user who created it.
    pub owner: String,
    /// `VOLUME@SNAPSHOT` (or `VOLUME`) it was cloned from, if it was.
    pub origin: Option<String>,
    /// When it was created (ns since the epoch).
    pub created: i64,
}

const COLS: &str = "name, volume, owner, origin, created FROM workspaces";

fn from_row(r: &Row) -> Result<WorkspaceRow> {
    Ok(WorkspaceRow {
        name: r.text(0)?,
        volume: r.text(1)?,
        owner: r.text(2)?,
        origin: r.opt_text(3)?,
        created: r.int(4)?,
    })
}

/// The workspace named `name`, if there is one.
pub fn workspace(db: &dyn Sql, name: &str) -> Result<Option<WorkspaceRow>> {
    db.query_opt(
        &format!("SELECT {COLS} WHERE name = ?1"),
        args![name],
        from_row,
    )
}

/// Every workspace, by name.
pub fn workspaces(db: &dyn Sql) -> Result<Vec<WorkspaceRow>> {
    db.query_all(&format!("SELECT {COLS} ORDER BY name"), &[], from_row)
}

/// Records a new workspace.
pub fn insert_workspace(
    tx: &dyn Sql,
    name: &str,
    volume: &str,
    owner: &str,
    origin: Option<&str>,
) -> Result<WorkspaceRow> {
    let created = now_ns();
    tx.execute(
        "INSERT INTO workspaces (name, volume, owner, origin, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        args![name, volume, owner, origin, created],
    )?;
    Ok(WorkspaceRow {
        name: name.into(),
        volume: volume.into(),
        owner: owner.into(),
        origin: origin.map(Into::into),
        created,
    })
}

/// Forgets the workspace `name` (its volume is not touched).
pub fn delete_workspace(tx: &dyn Sql, name: &str) -> Result<()> {
    tx.execute("DELETE FROM workspaces WHERE name = ?1", args![name])?;
    Ok(())
}
