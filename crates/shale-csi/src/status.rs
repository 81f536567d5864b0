//! Shale's errors as the CSI spec's gRPC codes.

use shale_core::Error;
use tonic::{Code, Status};

/// The status a CSI caller gets for `e`.
pub fn status(e: Error) -> Status {
    let code = match &e {
        Error::VolumeNotFound(_) | Error::SnapshotNotFound { .. } | Error::NoPool(_) => {
            Code::NotFound
        }
        Error::VolumeExists(_) | Error::SnapshotExists { .. } | Error::NameHeld { .. } => {
            Code::AlreadyExists
        }
        Error::InvalidName { .. } | Error::BadPath(_) | Error::InvalidArgument(_) => {
            Code::InvalidArgument
        }
        Error::QuotaExceeded { .. } => Code::OutOfRange,
        Error::Mounted { .. } | Error::Conflict(_) | Error::NotEmpty(_) => Code::FailedPrecondition,
        Error::Cancelled => Code::Aborted,
        // The store or the catalog could not be reached, or failed: the
        // sidecars retry UNAVAILABLE with backoff.
        Error::Io { .. } | Error::Catalog { .. } => Code::Unavailable,
        _ => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// Runs the blocking pool operation `f` off the async threads; its error as
/// a status.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("operation failed: {e}")))?
}
