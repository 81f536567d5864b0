//! Listing every key a bucket holds, whatever it is.
//!
//! `object_store` parses each listed key into its `Path`, which refuses keys
//! S3 accepts (`a//b`, `../x`, `./x`, a leading `/`, control characters),
//! and one such key fails the whole listing. A sync must list every key and
//! skip, by name, the ones it cannot use, so for S3 this module sends
//! `ListObjectsV2` itself: signed by `object_store`'s SigV4 signer with the
//! client's own credentials, sent through `object_store`'s HTTP client,
//! keys asked URL-encoded (`encoding-type=url`) so that no byte of a key is
//! lost in the XML. Other stores are listed through `object_store`.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AwsAuthorizer};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore as Backend;
use serde::Deserialize;

/// An object as the listing names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Its whole key, exactly as the store holds it.
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// When it was written, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Its ETag, unquoted.
    pub e_tag: Option<String>,
}

/// `ListObjectsV2` against one S3 bucket.
pub struct S3Lister {
    s3: Arc<AmazonS3>,
    client: HttpClient,
    /// `ENDPOINT/BUCKET` (path-style, as the client is configured).
    bucket_url: String,
    region: String,
}

impl S3Lister {
    /// A lister for the bucket `s3` reaches at `bucket_url`
    /// (`ENDPOINT/BUCKET`) in `region`, sending through `client`.
    pub fn new(s3: Arc<AmazonS3>, client: HttpClient, bucket_url: String, region: String) -> Self {
        S3Lister {
            s3,
            client,
            bucket_url,
            region,
        }
    }

    /// Every object whose key starts with `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> object_store::Result<Vec<Listed>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = (|| self.page(prefix, token.as_deref()))
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(Duration::from_millis(100))
                        .with_max_times(5),
                )
                .sleep(tokio::time::sleep)
                .when(|e| !matches!(e, object_store::Error::PermissionDenied { .. }))
                .await?;
            for c in page.contents {
                out.push(c.into_listed()?);
            }
            match page.next_continuation_token {
                Some(t) if page.is_truncated => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// One page of the listing.
    async fn page(&self, prefix: &str, token: Option<&str>) -> object_store::Result<ListPage> {
        // Percent-encoded as SigV4's canonical query is (a space is %20).
        let mut url = format!(
            "{}?encoding-type=url&list-type=2&prefix={}",
            self.bucket_url,
            encode(prefix)
        );
        if let Some(t) = token {
            url.push_str(&format!("&continuation-token={}", encode(t)));
        }
        let mut req: HttpRequest = http::Request::get(&url)
            .body(HttpRequestBody::empty())
            .map_err(|e| generic(format!("listing {url}: {e}")))?;
        let credential = self.s3.credentials().get_credential().await?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut req, None)
            .map_err(|e| generic(format!("signing a listing: {e}")))?;
        let resp = self
            .client
            .execute(req)
            .await
            .map_err(|e| generic(format!("listing {url}: {e}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .bytes()
            .await
            .map_err(|e| generic(format!("listing {url}: {e}")))?;
        if status == http::StatusCode::FORBIDDEN || status == http::StatusCode::UNAUTHORIZED {
            return Err(object_store::Error::PermissionDenied {
                path: self.bucket_url.clone(),
                source: String::from_utf8_lossy(&body).into_owned().into(),
            });
        }
        if !status.is_success() {
            return Err(generic(format!(
                "listing {url}: {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        quick_xml::de::from_reader(body.as_ref())
            .map_err(|e| generic(format!("listing {url}: unreadable answer: {e}")))
    }
}

/// Every object under `prefix` of a store without a raw lister.
pub async fn list_through(
    backend: &dyn Backend,
    prefix: &str,
) -> object_store::Result<Vec<Listed>> {
    let base = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
    let metas: Vec<_> = backend.list(base.as_ref()).try_collect().await?;
    Ok(metas
        .into_iter()
        .map(|m| Listed {
            key: m.location.to_string(),
            size: m.size,
            mtime_ns: m.last_modified.timestamp_nanos_opt().unwrap_or(0),
            e_tag: m.e_tag.map(|t| t.trim_matches('"').to_string()),
        })
        .collect())
}

/// `s` with every byte but the unreserved ones (`A-Z a-z 0-9 - _ . ~`)
/// percent-encoded.
fn encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

fn generic(msg: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: msg.into(),
    }
}

/// A `ListObjectsV2` answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPage {
    #[serde(default)]
    contents: Vec<Contents>,
    #[serde(default)]
    is_truncated: bool,
    next_continuation_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Contents {
    key: String,
    size: u64,
    last_modified: String,
    #[serde(rename = "ETag")]
    e_tag: Option<String>,
}

impl Contents {
    fn into_listed(self) -> object_store::Result<Listed> {
        let key = percent_encoding::percent_decode_str(&self.key)
            .decode_utf8()
            .map_err(|_| generic(format!("listed key {:?} is not UTF-8", self.key)))?
            .into_owned();
        let mtime_ns = chrono::DateTime::parse_from_rfc3339(&self.last_modified)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .unwrap_or(0);
        Ok(Listed {
            key,
            size: self.size,
            mtime_ns,
            e_tag: self.e_tag.map(|t| t.trim_matches('"').to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_with_odd_keys_parses_and_decodes() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>p%2F</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>
  <EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
  <NextContinuationToken>tok</NextContinuationToken>
  <Contents><Key>p/a//b.txt</Key><LastModified>2026-12-06T03:20:47.000Z</LastModified>
    <ETag>"abc"</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>p/..%2Fx%20y%0A</Key><LastModified>2026-12-06T03:20:47.500Z</LastModified>
    <ETag>&quot;def&quot;</ETag><Size>0</Size></Contents>
</ListBucketResult>"#;
        let page: ListPage = quick_xml::de::from_str(xml).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.next_continuation_token.as_deref(), Some("tok"));
        let listed: Vec<Listed> = page
            .contents
            .into_iter()
            .map(|c| c.into_listed().unwrap())
            .collect();
        assert_eq!(listed[0].key, "p/a//b.txt");
        assert_eq!(listed[0].e_tag.as_deref(), Some("abc"));
        assert_eq!(listed[0].mtime_ns, 1_796_527_247_000_000_000);
        assert_eq!(listed[1].key, "p/../x y\n");
        assert_eq!(listed[1].size, 0);
        let empty: ListPage = quick_xml::de::from_str(
            "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>",
        )
        .unwrap();
        assert!(empty.contents.is_empty());
    }
}
