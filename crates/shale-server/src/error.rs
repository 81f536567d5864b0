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
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
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
            Error::QuotaExceeded { .. } => StatusCode::INSUFFICIENT_STORAGE,
            Error::Mounted { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}
