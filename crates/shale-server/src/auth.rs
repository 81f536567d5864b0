//! Who is asking, and what they may do: the bearer token's grant, checked
//! against the role an operation needs and the volume it touches.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use shale_core::ops::tokens::{Grant, Role};
use shale_core::Pool;

use crate::error::ApiError;

/// The caller of a request: a token that works.
pub struct Caller(pub Grant);

impl FromRequestParts<Arc<Pool>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, pool: &Arc<Pool>) -> Result<Caller, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let Some(secret) = header.strip_prefix("Bearer ").map(str::trim) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "send a token: Authorization: Bearer TOKEN (shale token create)",
            ));
        };
        let (pool, secret) = (pool.clone(), secret.to_string());
        let grant = tokio::task::spawn_blocking(move || pool.authenticate(&secret))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
        grant.map(Caller).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this token is not valid here (unknown, revoked or expired)",
            )
        })
    }
}

impl Caller {
    /// Refuses unless the token has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.0.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this token's role is {}; this needs {role}",
                self.0.role
            )))
        }
    }

    /// Refuses unless the token covers the whole pool.
    pub fn require_pool_wide(&self) -> Result<(), ApiError> {
        match &self.0.token.volume {
            None => Ok(()),
            Some(v) => Err(ApiError::forbidden(format!(
                "this token is limited to volume {v}; this needs a pool-wide token"
            ))),
        }
    }

    /// Whether the token may see `volume`: any, for a pool-wide token; its
    /// own volume and that volume's clones (at any depth) otherwise.
    pub fn sees(&self, pool: &Pool, volume: &str) -> bool {
        let Some(own) = &self.0.token.volume else {
            return true;
        };
        own == volume
            || pool.lineage(volume).is_ok_and(|l| {
                l.origins
                    .iter()
                    .any(|o| o.split('@').next() == Some(own.as_str()))
            })
    }

    /// Refuses a volume the token may not see (403, whether or not it
    /// exists: the answer confirms no name).
    pub fn check_volume(&self, pool: &Pool, volume: &str) -> Result<(), ApiError> {
        match &self.0.token.volume {
            Some(own) if !self.sees(pool, volume) => Err(ApiError::forbidden(format!(
                "this token is limited to volume {own} and its clones"
            ))),
            _ => Ok(()),
        }
    }
}
