//! Volume capabilities: what Shale volumes can be published as. They are
//! file systems (no raw block devices), written by one node at a time
//! (ReadWriteOnce, ReadWriteOncePod) and read by any number
//! (ReadOnlyMany); several writers of one volume do not exist yet, so
//! ReadWriteMany is refused.

use bpfman_csi::v1 as csi;
use csi::volume_capability::access_mode::Mode;
use csi::volume_capability::AccessType;
use tonic::Status;

/// Why `cap` cannot be served, if it cannot.
pub fn unsupported(cap: &csi::VolumeCapability) -> Option<String> {
    match &cap.access_type {
        Some(AccessType::Mount(m)) => {
            if !m.fs_type.is_empty() && m.fs_type != "shale" {
                return Some(format!(
                    "fs_type {:?}: Shale volumes are their own file system (leave it empty)",
                    m.fs_type
                ));
            }
        }
        Some(AccessType::Block(_)) => {
            return Some("Shale volumes are file systems, not block devices".into())
        }
        None => return Some("a volume capability needs an access type (mount)".into()),
    }
    match mode(cap) {
        Mode::SingleNodeWriter
        | Mode::SingleNodeSingleWriter
        | Mode::SingleNodeMultiWriter
        | Mode::SingleNodeReaderOnly
        | Mode::MultiNodeReaderOnly => None,
        Mode::MultiNodeMultiWriter | Mode::MultiNodeSingleWriter => Some(
            "ReadWriteMany is not supported: a Shale volume has one writing node at a time \
             (use ReadWriteOnce, or ReadOnlyMany to read it from many nodes)"
                .into(),
        ),
        Mode::Unknown => Some("a volume capability needs an access mode".into()),
    }
}

/// INVALID_ARGUMENT unless every capability of `caps` (at least one) can
/// be served.
pub fn check(caps: &[csi::VolumeCapability]) -> Result<(), Status> {
    if caps.is_empty() {
        return Err(Status::invalid_argument("volume capabilities are missing"));
    }
    match caps.iter().find_map(unsupported) {
        Some(why) => Err(Status::invalid_argument(why)),
        None => Ok(()),
    }
}

/// The access mode of `cap`.
pub fn mode(cap: &csi::VolumeCapability) -> Mode {
    cap.access_mode
        .as_ref()
        .and_then(|m| Mode::try_from(m.mode).ok())
        .unwrap_or(Mode::Unknown)
}

/// Whether `cap` only reads.
pub fn read_only(cap: &csi::VolumeCapability) -> bool {
    matches!(
        mode(cap),
        Mode::SingleNodeReaderOnly | Mode::MultiNodeReaderOnly
    )
}
