//! Workspace records: which volume is a workspace's root, whose it is and
//! where it came from. The catalog keeps what every machine may know; the
//! running server (port, process, mount point) is the front end's business
//! on the machine that runs it.

pub use crate::catalog::WorkspaceRow;
use crate::catalog::{self};
use crate::error::{Error, Result};
use crate::names::check_name;
use crate::pool::Pool;

impl Pool {
    /// Records workspace `name` on `volume` (which must exist), made by
    /// `owner`, cloned from `origin` if it was.
    pub fn record_workspace(
        &self,
        name: &str,
        volume: &str,
        owner: &str,
        origin: Option<&str>,
    ) -> Result<WorkspaceRow> {
        check_name(name)?;
        self.catalog().write(|tx| {
            if catalog::workspace(tx, name)?.is_some() {
                return Err(Error::WorkspaceExists(name.into()));
            }
            catalog::volume_by_name(tx, volume)?;
            catalog::insert_workspace(tx, name, volume, owner, origin)
        })
    }

    /// The record of workspace `name`.
    pub fn workspace(&self, name: &str) -> Result<WorkspaceRow> {
        check_name(name)?;
        self.catalog()
            .read(|conn| catalog::workspace(conn, name))?
            .ok_or_else(|| Error::WorkspaceNotFound(name.into()))
    }

    /// Every workspace, by name.
    pub fn workspaces(&self) -> Result<Vec<WorkspaceRow>> {
        self.catalog().read(|conn| catalog::workspaces(conn))
    }

    /// Forgets workspace `name`; its volume is left as it is.
    pub fn forget_workspace(&self, name: &str) -> Result<()> {
        self.workspace(name)?;
        self.catalog()
            .write(|tx| catalog::delete_workspace(tx, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_is_recorded_once_on_a_volume_that_exists() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::init(&dir.path().join("p")).unwrap();
        pool.create_volume("alice", None).unwrap();
        assert!(matches!(
            pool.record_workspace("alice", "nope", "root", None),
            Err(Error::VolumeNotFound(_))
        ));
        let row = pool
            .record_workspace("alice", "alice", "root", None)
            .unwrap();
        assert_eq!(pool.workspace("alice").unwrap(), row);
        assert!(matches!(
            pool.record_workspace("alice", "alice", "root", None),
            Err(Error::WorkspaceExists(_))
        ));
        pool.create_volume("exp", None).unwrap();
        pool.record_workspace("exp", "exp", "bob", Some("alice@s1"))
            .unwrap();
        let names: Vec<_> = pool
            .workspaces()
            .unwrap()
            .into_iter()
            .map(|w| w.name)
            .collect();
        assert_eq!(names, ["alice", "exp"]);
        pool.forget_workspace("alice").unwrap();
        assert!(matches!(
            pool.workspace("alice"),
            Err(Error::WorkspaceNotFound(_))
        ));
        assert!(pool.volume_info("alice").is_ok());
        assert!(matches!(
            pool.record_workspace("a/b", "exp", "x", None),
            Err(Error::InvalidName { .. })
        ));
    }
}
