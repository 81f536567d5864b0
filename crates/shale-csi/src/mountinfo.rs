//! What is mounted where, from `/proc/self/mountinfo`, and the mount
//! calls the node service makes itself (bind mounts and unmounts).

use std::io;
use std::path::{Component, Path};

use nix::mount::{MntFlags, MsFlags};

/// A mount of this process's mount namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// File system type (`fuse` for a Shale mount).
    pub fs_type: String,
    /// Its source (a Shale mount's names its volume).
    pub source: String,
    /// Whether it is mounted read-only.
    pub read_only: bool,
}

impl Mount {
    /// Whether it is a Shale mount (a FUSE file system named `shale:POOL`).
    pub fn is_shale(&self) -> bool {
        self.fs_type.starts_with("fuse") && self.source.starts_with("shale:")
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let mut out = Vec::new();
    let b = field.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The topmost mount at `path`, if one is there.
pub fn at(path: &Path) -> io::Result<Option<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    let want = path.to_string_lossy();
    let want = want.trim_end_matches('/');
    let mut found = None;
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        if fields.len() < 6 || unescape(fields[4]) != want {
            continue;
        }
        let mut rest = right.split(' ');
        let fs_type = rest.next().unwrap_or_default().to_string();
        let source = unescape(rest.next().unwrap_or_default());
        let read_only = fields[5].split(',').any(|o| o == "ro");
        found = Some(Mount {
            fs_type,
            source,
            read_only,
        });
    }
    Ok(found)
}

/// Whether a mount at `path` lost its server (a FUSE server gone).
pub fn is_stale(path: &Path) -> bool {
    // Reading the directory asks the server: attributes may come from the
    // kernel's cache, and a FUSE file system may have the kernel open
    // directories without asking it (`FUSE_NO_OPENDIR_SUPPORT`).
    let gone = |e: &io::Error| e.raw_os_error() == Some(libc::ENOTCONN);
    match std::fs::read_dir(path) {
        Err(e) => gone(&e),
        Ok(mut entries) => matches!(entries.next(), Some(Err(e)) if gone(&e)),
    }
}

/// Bind-mounts `from` on `to`, read-only if asked.
pub fn bind(from: &Path, to: &Path, read_only: bool) -> io::Result<()> {
    nix::mount::mount(Some(from), to, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
    if read_only {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(e) = nix::mount::mount(None::<&str>, to, None::<&str>, flags, None::<&str>) {
            let _ = unmount(to, true);
            return Err(e.into());
        }
    }
    Ok(())
}

/// Unmounts `path`; `lazy` detaches it even if busy or stale.
pub fn unmount(path: &Path, lazy: bool) -> io::Result<()> {
    let flags = if lazy {
        MntFlags::MNT_DETACH
    } else {
        MntFlags::empty()
    };
    nix::mount::umount2(path, flags).map_err(io::Error::from)
}

/// Whether `path` is one a CO may give: absolute, no `..`, no NUL.
pub fn is_plain_absolute(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && p.is_absolute()
        && !path.contains('\0')
        && p.components().all(|c| !matches!(c, Component::ParentDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_paths() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert!(at(Path::new("/proc")).unwrap().is_some());
        assert!(is_plain_absolute("/var/lib/kubelet/pods/x/volumes/y"));
        assert!(!is_plain_absolute("relative/path"));
        assert!(!is_plain_absolute("/var/../etc"));
        assert!(!is_plain_absolute(""));
    }
}
