//! Shale volumes and snapshots as a FUSE file system (read-only for now).
//!
//! A mount shows either the whole pool (one directory per volume) or one
//! volume or snapshot. Every volume root has a `.snapshot/` directory, not
//! listed by `ls -a` (as on the reference arrays) but reachable by name,
//! holding one read-only directory per snapshot. A live volume's root is
//! looked up in the catalog on every access to the root, so a restore,
//! an import or a new snapshot made by another process shows at once.
//!
//! Read-write mounts (the overlay of DESIGN.md's "Live writes") are not
//! built yet; every write is refused with `EROFS`.

mod fs;
mod inodes;

pub use fs::{ShaleFs, Target};

use std::path::Path;

/// Mounts `fs` at `mountpoint` and serves it until unmounted.
pub fn mount(fs: ShaleFs, mountpoint: &Path, fs_name: &str) -> std::io::Result<()> {
    let mut options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName(fs_name.to_string()),
        fuser::MountOption::Subtype("shale".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    // Other users may read a root-owned mount (permissions still apply);
    // for an ordinary user that needs user_allow_other in /etc/fuse.conf.
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        options.push(fuser::MountOption::AllowOther);
    }
    fuser::mount2(fs, mountpoint, &options)
}
