//! What the kernel says of mounts (`/proc/self/mountinfo`), and the one
//! setting a mount changes there: how far the kernel reads ahead in it.

use std::path::Path;

/// How far (KiB) the kernel reads ahead in a mount's files.
///
/// The kernel starts a FUSE mount at 128 KiB, whatever the file system asks
/// for in its `INIT` reply (it takes the smaller). Measured on a 2 GiB
/// sequential read through a Shale mount (three rounds, taking turns):
/// 128 KiB 872-943 MB/s, 1 MiB 1,001-1,050, 4 MiB 902-971.
pub const READ_AHEAD_KB: u32 = 1024;

/// The device (`major:minor`) of what is mounted at `mountpoint` (an
/// absolute path without symbolic links), by the kernel's mount table; the
/// topmost mount where several are stacked.
pub fn mounted_device(mountpoint: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    device_in(&info, mountpoint)
}

fn device_in(mountinfo: &str, mountpoint: &Path) -> Option<String> {
    let want = escape(&mountpoint.to_string_lossy());
    mountinfo.lines().rev().find_map(|l| {
        let mut fields = l.split(' ');
        let dev = fields.nth(2)?;
        (fields.nth(1)? == want).then(|| dev.to_string())
    })
}

/// A path as mountinfo writes it: space, tab, newline and backslash in
/// octal.
fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// Sets how far the kernel reads ahead in the mount at `mountpoint` (its
/// backing device's `read_ahead_kb` under `/sys/class/bdi`). Needs root;
/// without it the kernel's default stays, which is slower but correct.
pub fn set_read_ahead(mountpoint: &Path, kb: u32) {
    let Some(dev) = mounted_device(mountpoint) else {
        return tracing::debug!("{} not in the mount table", mountpoint.display());
    };
    let setting = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    if let Err(e) = std::fs::write(&setting, kb.to_string()) {
        tracing::debug!("{setting}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:39 / /mnt/my\\040data rw,nosuid,nodev,relatime shared:20 - fuse.shale pool rw,user_id=0
41 22 0:40 / /mnt/other rw shared:21 - fuse.shale pool rw
42 40 0:41 / /mnt/my\\040data rw shared:22 - fuse.shale pool rw
";

    #[test]
    fn finds_the_topmost_device_at_a_mount_point_with_escaped_names() {
        assert_eq!(
            device_in(INFO, Path::new("/mnt/my data")).as_deref(),
            Some("0:41")
        );
        assert_eq!(
            device_in(INFO, Path::new("/mnt/other")).as_deref(),
            Some("0:40")
        );
        assert_eq!(device_in(INFO, Path::new("/")).as_deref(), Some("254:0"));
        assert_eq!(device_in(INFO, Path::new("/mnt")), None);
        assert_eq!(escape("a\\b\tc\nd"), "a\\134b\\011c\\012d");
    }
}
