//! What this machine knows of a workspace it runs: one JSON file per
//! workspace under `LOCAL/workspaces/` (the pool, or an object-store pool's
//! cache), beside the directories its volumes are mounted on and its
//! server's log. Owner-only, like everything there.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::lab::{Listen, Process};

/// An extra volume mounted inside a workspace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DataMount {
    /// `VOLUME[@SNAPSHOT]`.
    pub spec: String,
    /// Where inside the workspace, relative to its root.
    pub path: PathBuf,
    /// Mounted read-only (always so for a snapshot).
    pub read_only: bool,
}

impl DataMount {
    /// Parses `VOLUME[@SNAPSHOT]:/PATH[:ro|:rw]` (read-only unless `:rw`).
    pub fn parse(text: &str) -> Result<DataMount> {
        let usage = || {
            anyhow::anyhow!(
                "--data {text:?}: use VOLUME[@SNAPSHOT]:/PATH, with :rw at the end to write"
            )
        };
        let (rest, read_only) = match text.rsplit_once(':') {
            Some((rest, "ro")) => (rest, true),
            Some((rest, "rw")) => (rest, false),
            _ => (text, true),
        };
        let (spec, path) = rest.split_once(':').ok_or_else(usage)?;
        shale_core::names::Spec::parse(spec)?;
        let path = Path::new(path);
        let inside = path.strip_prefix("/").unwrap_or(path);
        let normal = inside
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if inside.as_os_str().is_empty() || !normal {
            anyhow::bail!(
                "--data {text:?}: the path must name a directory inside the workspace, like /data"
            );
        }
        if spec.contains('@') && !read_only {
            anyhow::bail!("--data {text:?}: a snapshot is read-only; mount its volume to write");
        }
        Ok(DataMount {
            spec: spec.to_string(),
            path: inside.to_path_buf(),
            read_only,
        })
    }
}

/// A workspace as this machine runs it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Local {
    /// How its server listens (kept across restarts).
    pub listen: Listen,
    /// Extra volumes mounted inside it.
    pub data: Vec<DataMount>,
    /// Its server, while it should be running; `None` once stopped.
    pub server: Option<Process>,
}

/// Where a workspace's files live on this machine.
pub struct Paths {
    /// `LOCAL/workspaces/NAME/`.
    pub dir: PathBuf,
}

impl Paths {
    /// The paths of workspace `name` under the pool's local root.
    pub fn new(local_root: &Path, name: &str) -> Paths {
        Paths {
            dir: local_root.join("workspaces").join(name),
        }
    }

    /// The state file.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Where its volume is mounted: the lab's root directory.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The server's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("lab.log")
    }

    /// Reads the state, if this machine has any.
    pub fn load(&self) -> Result<Option<Local>> {
        match std::fs::read(self.state()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("reading {}", self.state().display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.state().display())),
        }
    }

    /// Writes the state (atomically: a crash leaves the old or the new).
    pub fn save(&self, local: &Local) -> Result<()> {
        shale_core::private::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let tmp = self.dir.join("state.json.tmp");
        let mut f = shale_core::private::open(
            &tmp,
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true),
        )?;
        std::io::Write::write_all(&mut f, &serde_json::to_vec_pretty(local)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.state())?;
        Ok(())
    }

    /// Removes everything this machine kept (mount points must be unmounted).
    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", self.dir.display()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_mounts_parse_with_read_only_by_default() {
        let d = DataMount::parse("imagenet@v3:/data").unwrap();
        assert_eq!(
            (d.spec.as_str(), d.path.as_path(), d.read_only),
            ("imagenet@v3", Path::new("data"), true)
        );
        let d = DataMount::parse("scratch:/work/tmp:rw").unwrap();
        assert_eq!(
            (d.path.as_path(), d.read_only),
            (Path::new("work/tmp"), false)
        );
        for bad in [
            "imagenet",
            "imagenet:/",
            "imagenet:/../x",
            "a@s:/d:rw",
            "bad/name:/d",
        ] {
            assert!(DataMount::parse(bad).is_err(), "{bad}");
        }
    }
}
