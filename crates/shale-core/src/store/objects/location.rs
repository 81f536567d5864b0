//! Where an object store is: its kind (S3, GCS, Azure), bucket, prefix,
//! and an endpoint or region given with it.

use crate::error::{Error, Result};

/// Which service a store location is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreKind {
    /// AWS S3 or an S3-compatible store (`s3://`).
    #[default]
    S3,
    /// Google Cloud Storage (`gs://`).
    Gcs,
    /// Azure Blob Storage (`az://`, the bucket is the container).
    Azure,
}

impl StoreKind {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            StoreKind::S3 => "s3",
            StoreKind::Gcs => "gs",
            StoreKind::Azure => "az",
        }
    }

    /// The kind a URL names, if it is an object-store URL.
    pub fn of_url(url: &str) -> Option<StoreKind> {
        let scheme = url.split_once("://")?.0;
        [StoreKind::S3, StoreKind::Gcs, StoreKind::Azure]
            .into_iter()
            .find(|k| k.scheme() == scheme)
    }

    /// The name recorded in a pool's description (`s3`, `gcs`, `azure`).
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::S3 => "s3",
            StoreKind::Gcs => "gcs",
            StoreKind::Azure => "azure",
        }
    }
}

/// Where an object-store pool lives and how to reach it. Credentials are
/// never part of it: they come from each service's standard chain (for S3
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles, instance roles;
/// for GCS `GOOGLE_APPLICATION_CREDENTIALS` or `GOOGLE_SERVICE_ACCOUNT`;
/// for Azure `AZURE_STORAGE_ACCOUNT_NAME` with `AZURE_STORAGE_ACCOUNT_KEY`,
/// a SAS or Azure AD variables).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreLocation {
    /// Which service.
    pub kind: StoreKind,
    /// Bucket (Azure: container) name.
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`.
    pub prefix: String,
    /// Endpoint URL for S3-compatible stores (`http://127.0.0.1:3900`) or
    /// emulators; `None`: the service's own (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region (S3); `None`: `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
}

impl StoreLocation {
    /// Parses `s3://BUCKET[/PREFIX]`, `gs://…` or `az://CONTAINER[/PREFIX]`.
    pub fn parse(url: &str) -> Result<StoreLocation> {
        let kind = StoreKind::of_url(url).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{url}: an object-store pool URL starts with s3://, gs:// or az://"
            ))
        })?;
        let rest = &url[kind.scheme().len() + 3..];
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::InvalidArgument(format!("{url}: no bucket name")));
        }
        Ok(StoreLocation {
            kind,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            ..Default::default()
        })
    }

    /// `SCHEME://BUCKET/PREFIX`.
    pub fn url(&self) -> String {
        let scheme = self.kind.scheme();
        if self.prefix.is_empty() {
            format!("{scheme}://{}", self.bucket)
        } else {
            format!("{scheme}://{}/{}", self.bucket, self.prefix)
        }
    }
}
