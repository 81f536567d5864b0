//! What the kernel says of mounts (`/proc/self/mountinfo`).

use std::path::Path;

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
