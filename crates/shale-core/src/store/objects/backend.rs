//! The `object_store` clients: S3 (path-style, for S3-compatible stores
//! too), Google Cloud Storage and Azure Blob Storage, each configured from
//! the provider's standard settings in [`StoreOptions`], with one retry
//! policy (`object_store`'s backoff) for all.

use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{HttpConnector, ReqwestConnector};
use object_store::{ClientOptions, ObjectStore as Backend};

use super::listing::S3Lister;

use super::location::{StoreKind, StoreLocation};
use crate::config::StoreOptions;
use crate::error::{Error, Result};

/// How long a request is retried (timeouts, 5xx answers, refused
/// connections) before it fails: `options.retry`, default 180 s
/// (`object_store`'s default), with at most 10 retries.
fn retry_config(options: &StoreOptions) -> object_store::RetryConfig {
    let mut retry = object_store::RetryConfig::default();
    if let Some(window) = options.retry {
        retry.retry_timeout = window;
        if window.is_zero() {
            retry.max_retries = 0;
        }
    }
    retry
}

/// The settings of `options` whose names start with `prefix`, as config
/// keys of a builder (`AWS_ACCESS_KEY_ID` -> `aws_access_key_id`); names
/// the builder does not know are left out, as its `from_env` does.
fn config_keys<'a, K: std::str::FromStr>(
    options: &'a StoreOptions,
    prefix: &'a str,
) -> impl Iterator<Item = (K, &'a str)> {
    options
        .with_prefix(prefix)
        .filter_map(|(k, v)| Some((k.to_ascii_lowercase().parse().ok()?, v)))
}

/// An `object_store` client for the bucket of `location` (the prefix is
/// the caller's to apply): S3 path-style, GCS and Azure, each configured
/// with the standard settings of its provider given in `options`.
pub fn backend(location: &StoreLocation, options: &StoreOptions) -> Result<Arc<dyn Backend>> {
    Ok(backend_and_lister(location, options)?.0)
}

/// [`backend`], and for S3 a lister that lists any key the bucket holds
/// (see [`S3Lister`]).
pub fn backend_and_lister(
    location: &StoreLocation,
    options: &StoreOptions,
) -> Result<(Arc<dyn Backend>, Option<S3Lister>)> {
    let retry = retry_config(options);
    let invalid =
        |e: object_store::Error| Error::InvalidArgument(format!("{}: {e}", location.url()));
    Ok(match location.kind {
        StoreKind::S3 => {
            let from_file = super::credentials::from_file(options)?;
            check_s3_credentials(location, options, !from_file.is_empty())?;
            let mut builder = s3_builder(location, options, retry);
            for (k, v) in from_file {
                if let Ok(key) = k.to_ascii_lowercase().parse() {
                    builder = builder.with_config(key, v);
                }
            }
            let lister_of = |s3: Arc<AmazonS3>, b: &AmazonS3Builder| -> Result<S3Lister> {
                let region = b
                    .get_config_value(&AmazonS3ConfigKey::Region)
                    .unwrap_or_else(|| "us-east-1".into());
                let endpoint = b
                    .get_config_value(&AmazonS3ConfigKey::Endpoint)
                    .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
                let allow_http = endpoint.starts_with("http://");
                let client = ReqwestConnector::default()
                    .connect(&ClientOptions::new().with_allow_http(allow_http))
                    .map_err(invalid)?;
                let url = format!("{}/{}", endpoint.trim_end_matches('/'), location.bucket);
                Ok(S3Lister::new(s3, client, url, region))
            };
            let s3 = Arc::new(builder.clone().build().map_err(invalid)?);
            let lister = lister_of(s3.clone(), &builder)?;
            (s3, Some(lister))
        }
        StoreKind::Gcs => (gcs(location, options, retry).map_err(invalid)?, None),
        StoreKind::Azure => (azure(location, options, retry).map_err(invalid)?, None),
    })
}

/// A Google Cloud Storage client (`gs://`).
#[cfg(feature = "gcs")]
fn gcs(
    location: &StoreLocation,
    options: &StoreOptions,
    retry: object_store::RetryConfig,
) -> object_store::Result<Arc<dyn Backend>> {
    let mut builder = object_store::gcp::GoogleCloudStorageBuilder::new();
    for (k, v) in config_keys(options, "GOOGLE_") {
        builder = builder.with_config(k, v);
    }
    builder = builder.with_bucket_name(&location.bucket).with_retry(retry);
    if let Some(endpoint) = &location.endpoint {
        builder = builder.with_base_url(endpoint);
    }
    Ok(Arc::new(builder.build()?))
}

/// An Azure Blob Storage client (`az://`).
#[cfg(feature = "azure")]
fn azure(
    location: &StoreLocation,
    options: &StoreOptions,
    retry: object_store::RetryConfig,
) -> object_store::Result<Arc<dyn Backend>> {
    let mut builder = object_store::azure::MicrosoftAzureBuilder::new();
    for (k, v) in config_keys(options, "AZURE_") {
        builder = builder.with_config(k, v);
    }
    builder = builder
        .with_container_name(&location.bucket)
        .with_retry(retry);
    if let Some(endpoint) = &location.endpoint {
        builder = builder
            .with_endpoint(endpoint.clone())
            .with_allow_http(endpoint.starts_with("http://"));
    }
    Ok(Arc::new(builder.build()?))
}

/// The error of a build without the store kind's feature.
#[cfg(any(not(feature = "gcs"), not(feature = "azure")))]
fn not_built(feature: &'static str) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!(
            "this build of Shale has no support for it (built without the `{feature}` feature)"
        )
        .into(),
    }
}

#[cfg(not(feature = "gcs"))]
fn gcs(
    _: &StoreLocation,
    _: &StoreOptions,
    _: object_store::RetryConfig,
) -> object_store::Result<Arc<dyn Backend>> {
    Err(not_built("gcs"))
}

#[cfg(not(feature = "azure"))]
fn azure(
    _: &StoreLocation,
    _: &StoreOptions,
    _: object_store::RetryConfig,
) -> object_store::Result<Arc<dyn Backend>> {
    Err(not_built("azure"))
}

/// Settings any of which gives the S3 client credentials without asking
/// a cloud's instance-metadata service.
const S3_CREDENTIALS: [&str; 4] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

/// Refuses, with the ways to give them, to reach an S3 store without
/// credentials where asking the instance-metadata service (169.254.169.254,
/// the client's last resort) makes no sense: a custom endpoint (not AWS),
/// or when [`StoreOptions::no_instance_metadata`] says so. Otherwise the
/// request would go there and fail with a cryptic `403 Forbidden` (or hang
/// off the cloud).
fn check_s3_credentials(
    location: &StoreLocation,
    options: &StoreOptions,
    from_file: bool,
) -> Result<()> {
    let custom = location.endpoint.is_some()
        || options.get("AWS_ENDPOINT_URL").is_some()
        || options.get("AWS_ENDPOINT").is_some();
    let given = from_file || S3_CREDENTIALS.iter().any(|k| options.get(k).is_some());
    if given || !(custom || options.no_instance_metadata) {
        return Ok(());
    }
    let why = if custom {
        "the endpoint is not AWS's, so its instance-metadata service is not asked"
    } else {
        "the instance-metadata service is not asked (--no-instance-metadata)"
    };
    let file = match &options.credentials_file {
        Some(p) => p.display().to_string(),
        None => "~/.aws/credentials".into(),
    };
    Err(Error::InvalidArgument(format!(
        "{}: no credentials for the object store ({why}). Give them in the environment \
         (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with AWS_SESSION_TOKEN for temporary \
         ones; or AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN), or as a profile in the \
         credentials file {file} (mode 0600; [default], or the one AWS_PROFILE names; \
         AWS_SHARED_CREDENTIALS_FILE names another file)",
        location.url()
    )))
}

/// An S3 client, path-style (what S3-compatible stores expect), with the
/// endpoint and region of `location` over those of `options`.
fn s3_builder(
    location: &StoreLocation,
    options: &StoreOptions,
    retry: object_store::RetryConfig,
) -> object_store::aws::AmazonS3Builder {
    let mut builder = object_store::aws::AmazonS3Builder::new();
    for (k, v) in config_keys(options, "AWS_") {
        builder = builder.with_config(k, v);
    }
    builder = builder
        .with_bucket_name(&location.bucket)
        .with_virtual_hosted_style_request(false)
        .with_retry(retry);
    if let Some(endpoint) = &location.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let endpoint = location.endpoint.as_deref().or_else(|| {
        options
            .get("AWS_ENDPOINT_URL")
            .or_else(|| options.get("AWS_ENDPOINT"))
    });
    if endpoint.is_some_and(|e| e.starts_with("http://")) {
        builder = builder.with_allow_http(true);
    }
    if let Some(region) = &location.region {
        builder = builder.with_region(region);
    } else if options.get("AWS_REGION").is_none() && options.get("AWS_DEFAULT_REGION").is_none() {
        builder = builder.with_region("us-east-1");
    }
    builder
}
