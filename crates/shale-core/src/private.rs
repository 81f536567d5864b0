//! Files and directories only their owner can open: a pool's own files
//! (packs, catalog, description, staging, logs, mount records), an
//! object-store pool's cache and a mount's upper files hold the bytes of
//! every volume, whose own permissions only the mount enforces.
//! Directories are made 0700 and files 0600 whatever the umask.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the directories.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files.
pub const FILE_MODE: u32 = 0o600;

/// Creates `path` and its missing parents, owner-only. The last
/// component's mode is set even if it existed (a pool directory made empty
/// beforehand).
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)?;
    std::fs::set_permissions(path, Permissions::from_mode(DIR_MODE))
}

/// Options that create files owner-only (the umask can only remove bits
/// from 0600, and no file here needs others').
pub fn file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Writes `data` to a new or truncated owner-only file.
pub fn write(path: &Path, data: impl AsRef<[u8]>) -> io::Result<()> {
    use std::io::Write;
    let mut f = file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.set_permissions(Permissions::from_mode(FILE_MODE))?;
    f.write_all(data.as_ref())
}

/// The first of a pool's local files (its directory, description,
/// catalog, packs directory, upper and mount directories) that others may
/// open, with its mode; `None` if all are owner-only. A few `stat`s.
pub fn first_open(root: &Path) -> Option<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::MetadataExt;
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
        (mode & 0o077 != 0).then_some((p, mode))
    })
}

/// Takes every permission from group and others on `root` and everything
/// under it, and makes what is left owner read-write (and search, for
/// directories); returns how many entries changed. Safe while other
/// processes use the pool: modes only tighten, and nothing is moved.
/// Sockets and symbolic links are left as they are.
pub fn fix(root: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut changed = 0;
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
            DIR_MODE
        } else if md.is_file() {
            FILE_MODE
        } else {
            continue;
        };
        if md.mode() & 0o7777 != want {
            match std::fs::set_permissions(&p, Permissions::from_mode(want)) {
                Ok(()) => changed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn modes_are_owner_only_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: umask only changes this process's file-creation mask; the
        // test restores it.
        #[allow(unsafe_code)]
        let old = unsafe { libc::umask(0) };
        let d = dir.path().join("a/b");
        create_dir_all(&d).unwrap();
        write(&d.join("f"), b"x").unwrap();
        #[allow(unsafe_code)]
        unsafe {
            libc::umask(old)
        };
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join("f")), 0o600);
    }
}
