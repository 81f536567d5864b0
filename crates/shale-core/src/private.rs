//! Files and directories only their owner (or, for a pool made with
//! `--group`, that group) can open: a pool's own files (packs, catalog,
//! description, staging, logs, mount records), an object-store pool's cache
//! and a mount's upper files hold the bytes of every volume, whose own
//! permissions only the mount enforces.
//!
//! A pool's root directory is made with an explicit [`Access`]
//! ([`create_root`]); everything created under it takes the access of the
//! directory it is created in ([`Access::of`]): owner-only (directories
//! 0700, files 0600) unless that directory is a group directory (setgid,
//! group `rwx`, nothing for others), whose new entries are 2770 and 0660.
//! Modes are set whatever the umask.

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who besides a file's owner may open a pool's files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// Nobody: directories 0700, files 0600.
    #[default]
    Owner,
    /// The pool's group: directories 2770 (new entries get the group),
    /// files 0660.
    Group,
}

impl Access {
    /// Mode of the directories.
    pub fn dir_mode(self) -> u32 {
        match self {
            Access::Owner => 0o700,
            Access::Group => 0o2770,
        }
    }

    /// Mode of the files.
    pub fn file_mode(self) -> u32 {
        match self {
            Access::Owner => 0o600,
            Access::Group => 0o660,
        }
    }

    /// Permission bits that must stay clear.
    fn closed_bits(self) -> u32 {
        match self {
            Access::Owner => 0o077,
            Access::Group => 0o007,
        }
    }

    /// The access of what is created in the directory with mode `mode`.
    fn of_mode(mode: u32) -> Access {
        if mode & 0o2077 == 0o2070 {
            Access::Group
        } else {
            Access::Owner
        }
    }

    /// The access of what is created in `dir`: [`Access::Group`] if it is
    /// a group directory (setgid, group `rwx`, nothing for others), else
    /// owner-only (also when `dir` cannot be read).
    pub fn of(dir: &Path) -> Access {
        std::fs::metadata(dir)
            .map(|md| Access::of_mode(md.mode()))
            .unwrap_or_default()
    }
}

/// Makes `path` (and its missing parents) the root of a pool or cache with
/// `access`, owned by `group` if given. Its mode is set even if it existed
/// (a pool directory made empty beforehand); parents made here are
/// owner-only.
pub fn create_root(path: &Path, access: Access, group: Option<u32>) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::DirBuilder::new().recursive(true).create(parent)?;
            std::fs::set_permissions(parent, Permissions::from_mode(Access::Owner.dir_mode()))?;
        }
    }
    match std::fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    std::fs::set_permissions(path, Permissions::from_mode(access.dir_mode()))
}

/// Creates `path` and its missing parents with the access of the nearest
/// directory above them that exists.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = path;
    let access = loop {
        match std::fs::metadata(at) {
            Ok(md) if md.is_dir() => break Access::of_mode(md.mode()),
            Ok(_) => return Err(io::Error::from(io::ErrorKind::NotADirectory)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(at);
                match at.parent().filter(|p| !p.as_os_str().is_empty()) {
                    Some(parent) => at = parent,
                    None => break Access::Owner,
                }
            }
            Err(e) => return Err(e),
        }
    };
    for dir in missing.into_iter().rev() {
        match std::fs::create_dir(dir) {
            Ok(()) => std::fs::set_permissions(dir, Permissions::from_mode(access.dir_mode()))?,
            // made meanwhile by another thread or process
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Opens `path` with `options`; a file it creates gets the mode of its
/// directory's [`Access`], whatever the umask.
pub fn open(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let access = path.parent().map(Access::of).unwrap_or_default();
    let file = options.mode(access.file_mode()).open(path)?;
    if access == Access::Group {
        // The umask may have taken the group's write bit; a file opened
        // (not created) here may be another member's, left as it is.
        let mode = file.metadata()?.mode() & 0o777;
        if mode != access.file_mode() && mode & 0o060 != 0o060 {
            let _ = file.set_permissions(Permissions::from_mode(access.file_mode()));
        }
    }
    Ok(file)
}

/// Writes `data` to a new or truncated file (see [`open`]).
pub fn write(path: &Path, data: impl AsRef<[u8]>) -> io::Result<()> {
    use std::io::Write;
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    open(path, &mut options)?.write_all(data.as_ref())
}

/// The first of a pool's local files (its directory, description,
/// catalog, packs directory, upper and mount directories) that is more
/// open than `access` allows, with its mode; `None` if none is. A few
/// `stat`s.
pub fn first_open(root: &Path, access: Access) -> Option<(PathBuf, u32)> {
    let names = [
        "",
        "pool.json",
        "catalog.db",
        "packs",
        "tmp",
        "upper",
        "mounts",
        "read",
    ];
    names.iter().find_map(|n| {
        let p = if n.is_empty() {
            root.to_path_buf()
        } else {
            root.join(n)
        };
        let mode = std::fs::symlink_metadata(&p).ok()?.mode() & 0o7777;
        (mode & access.closed_bits() != 0).then_some((p, mode))
    })
}

/// What [`fix`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Fixed {
    /// Entries whose mode or group changed.
    pub changed: u64,
    /// Entries left as they were because another user owns them (a member
    /// of a group pool): their owner or root can fix them.
    pub not_owned: u64,
}

/// Sets every entry under `root` (and `root`) to the modes of `access`
/// (and to `group`, if given): permissions for others (and, owner-only,
/// for the group) are taken away, and what is left is read-write (and
/// search, for directories). Safe while other processes use the pool:
/// nothing is moved, and what they need stays open to them. Sockets and
/// symbolic links are left as they are.
pub fn fix(root: &Path, access: Access, group: Option<u32>) -> io::Result<Fixed> {
    let mut fixed = Fixed::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = match std::fs::symlink_metadata(&p) {
            Ok(md) => md,
            // gone meanwhile (a pack repacked, a staging file sealed)
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let want = if md.is_dir() {
            match std::fs::read_dir(&p) {
                Ok(entries) => stack.extend(entries.flatten().map(|e| e.path())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            access.dir_mode()
        } else if md.is_file() {
            access.file_mode()
        } else {
            continue;
        };
        let regroup = group.filter(|&g| md.gid() != g);
        if md.mode() & 0o7777 == want && regroup.is_none() {
            continue;
        }
        // Group first: chown clears the setgid bit the mode then sets.
        let done = regroup
            .map_or(Ok(()), |g| std::os::unix::fs::chown(&p, None, Some(g)))
            .and_then(|()| std::fs::set_permissions(&p, Permissions::from_mode(want)));
        match done {
            Ok(()) => fixed.changed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => fixed.not_owned += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(fixed)
}

/// The id of the group `name` on this machine.
pub fn group_id(name: &str) -> io::Result<u32> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no group named {name:?} on this machine"),
        )),
        Err(e) => Err(io::Error::from(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    /// Runs `f` with umask `mask`, restoring the old one after.
    fn with_umask(mask: u32, f: impl FnOnce()) {
        // SAFETY: umask only changes this process's file-creation mask;
        // the test restores it.
        #[allow(unsafe_code)]
        let old = unsafe { libc::umask(mask as libc::mode_t) };
        f();
        #[allow(unsafe_code)]
        unsafe {
            libc::umask(old)
        };
    }

    #[test]
    fn modes_are_owner_only_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pool");
        let d = root.join("a/b");
        with_umask(0, || {
            create_root(&root, Access::Owner, None).unwrap();
            create_dir_all(&d).unwrap();
            write(&d.join("f"), b"x").unwrap();
        });
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("a")), 0o700);
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join("f")), 0o600);
        assert_eq!(first_open(&root, Access::Owner), None);
    }

    #[test]
    fn a_group_root_gives_its_entries_group_modes_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pool");
        let gid = std::fs::metadata(dir.path()).unwrap().gid();
        let d = root.join("a/b");
        with_umask(0o077, || {
            create_root(&root, Access::Group, Some(gid)).unwrap();
            create_dir_all(&d).unwrap();
            write(&d.join("f"), b"x").unwrap();
        });
        assert_eq!(mode(&root), 0o2770);
        assert_eq!(mode(&d), 0o2770);
        assert_eq!(mode(&d.join("f")), 0o660);
        assert_eq!(Access::of(&d), Access::Group);
        assert_eq!(first_open(&root, Access::Group), None);
        // The same pool seen as owner-only is too open.
        assert!(first_open(&root, Access::Owner).is_some());
    }

    #[test]
    fn fix_closes_what_is_open_to_others() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pool");
        create_root(&root, Access::Owner, None).unwrap();
        write(&root.join("f"), b"x").unwrap();
        std::fs::set_permissions(root.join("f"), Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&root, Permissions::from_mode(0o755)).unwrap();
        assert!(first_open(&root, Access::Owner).is_some());
        let fixed = fix(&root, Access::Owner, None).unwrap();
        assert_eq!(fixed.changed, 2);
        assert_eq!(mode(&root.join("f")), 0o600);
        assert_eq!(first_open(&root, Access::Owner), None);
        assert_eq!(fix(&root, Access::Owner, None).unwrap().changed, 0);
    }

    #[test]
    fn an_unknown_group_is_named() {
        let e = group_id("no-such-group-here").unwrap_err();
        assert!(e.to_string().contains("no-such-group-here"), "{e}");
    }
}
