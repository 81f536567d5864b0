//! The API's errors: a status and `{"error": MESSAGE}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use shale_core::Error;

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// What went wrong, for programs (`volume_not_found`, `forbidden` …):
    /// clients raise their own error kinds from it.
    pub kind: &'static str,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        let kind = match status {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
            _ => "error",
        };
        ApiError {
            status,
            message: message.into(),
            kind,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::VolumeNotFound(_) | Error::SnapshotNotFound { .. } => StatusCode::NOT_FOUND,
            Error::VolumeExists(_)
            | Error::SnapshotExists { .. }
            | Error::NameHeld { .. }
            | Error::Conflict(_) => StatusCode::CONFLICT,
            Error::InvalidName { .. } | Error::InvalidArgument(_) | Error::BadPath(_) => {
                StatusCode::BAD_REQUEST
            }
            // A quota is the volume's state: going past it conflicts with it.
            Error::QuotaExceeded { .. } | Error::Mounted { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let kind = match &e {
            Error::VolumeNotFound(_) => "volume_not_found",
            Error::SnapshotNotFound { .. } => "snapshot_not_found",
            Error::VolumeExists(_) | Error::SnapshotExists { .. } | Error::NameHeld { .. } => {
                "name_exists"
            }
            Error::InvalidName { .. } => "invalid_name",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::Conflict(_) | Error::Mounted { .. } => "conflict",
            Error::Corrupt { .. } | Error::MissingObject(_) => "corrupt",
            _ => ApiError::new(status, "").kind,
        };
        ApiError {
            status,
            message: e.to_string(),
            kind,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message, "kind": self.kind })),
        )
            .into_response()
    }
}
