//! The one blocking adapter between Shale's synchronous code and the
//! asynchronous `object_store` clients: a bucket under a key prefix, with a
//! small tokio runtime of its own that callers (import's workers, a mount's
//! reader threads, sync's jobs) block on, several at a time. Object-store
//! pools ([`Remote`](super::Remote)) and sync's bucket sides both go
//! through it.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore as Backend, ObjectStoreExt, PutPayload};

use super::backend::backend_and_lister;
use super::listing::{list_through, Listed, S3Lister};
use super::location::StoreLocation;
use crate::config::StoreOptions;
use crate::error::{Error, Result};

/// Objects this size or smaller are written with one request; larger ones
/// as multipart uploads of parts of this size.
pub const PART: usize = 16 << 20;

/// A bucket (or container) under a key prefix, reached by blocking calls.
pub struct Bucket {
    backend: Arc<dyn Backend>,
    /// For S3: lists keys `backend` refuses to parse.
    lister: Option<S3Lister>,
    prefix: String,
    /// What to call it in messages: its URL.
    name: String,
    runtime: tokio::runtime::Runtime,
}

impl Bucket {
    /// The bucket of `location`, with `threads` I/O threads (no request is
    /// made yet).
    pub fn connect(
        location: &StoreLocation,
        options: &StoreOptions,
        threads: usize,
    ) -> Result<Self> {
        let (backend, lister) = backend_and_lister(location, options)?;
        let mut bucket = Bucket::new(backend, &location.prefix, &location.url(), threads)?;
        bucket.lister = lister;
        Ok(bucket)
    }

    /// A bucket over any `object_store` backend (tests use its in-memory one).
    pub fn new(
        backend: Arc<dyn Backend>,
        prefix: &str,
        name: &str,
        threads: usize,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("shale-io")
            .enable_all()
            .build()
            .map_err(|e| Error::io(name, e))?;
        Ok(Bucket {
            backend,
            lister: None,
            prefix: prefix.trim_matches('/').to_string(),
            name: name.to_string(),
            runtime,
        })
    }

    /// Its URL.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its key prefix (no leading or trailing `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full path of `key` under the prefix.
    pub fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Writes a whole object in one request.
    pub fn put(&self, path: &ObjectPath, data: Vec<u8>) -> object_store::Result<()> {
        let payload = PutPayload::from(data);
        self.runtime
            .block_on(self.backend.put(path, payload))
            .map(drop)
    }

    /// An upload of the object at `path`, written piece by piece.
    pub fn upload(&self, path: ObjectPath) -> Upload<'_> {
        Upload {
            bucket: self,
            path,
            part: Vec::new(),
            multipart: None,
            sent: 0,
        }
    }

    /// Reads a whole object.
    pub fn get(&self, path: &ObjectPath) -> object_store::Result<Bytes> {
        self.runtime
            .block_on(async { self.backend.get(path).await?.bytes().await })
    }

    /// Reads bytes `range` of an object.
    pub fn get_range(&self, path: &ObjectPath, range: Range<u64>) -> object_store::Result<Bytes> {
        self.runtime.block_on(self.backend.get_range(path, range))
    }

    /// An object's size and time.
    pub fn head(&self, path: &ObjectPath) -> object_store::Result<ObjectMeta> {
        self.runtime.block_on(self.backend.head(path))
    }

    /// Every object under `base` (the whole bucket for `None`).
    pub fn list(&self, base: Option<&ObjectPath>) -> object_store::Result<Vec<ObjectMeta>> {
        self.runtime.block_on(self.backend.list(base).try_collect())
    }

    /// Every object whose key starts with `prefix` (a whole key, not under
    /// this bucket's prefix), any key the store holds: keys `object_store`
    /// cannot parse (`a//b`, `../x`) are listed too, for S3.
    pub fn list_keys(&self, prefix: &str) -> object_store::Result<Vec<Listed>> {
        match &self.lister {
            Some(l) => self.runtime.block_on(l.list(prefix)),
            None => {
                let dir = prefix.trim_end_matches('/');
                self.runtime
                    .block_on(list_through(self.backend.as_ref(), dir))
            }
        }
    }

    /// Deletes an object; an absent one is not an error.
    pub fn delete(&self, path: &ObjectPath) -> object_store::Result<()> {
        match self.runtime.block_on(self.backend.delete(path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `e`, an error of the object at `path`, as an [`Error::Io`] naming
    /// the object by URL, with `NotFound` kept as the I/O error's kind and
    /// the client's error as its source.
    pub fn error(&self, path: &ObjectPath, e: object_store::Error) -> Error {
        let kind = match e {
            object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
            _ => std::io::ErrorKind::Other,
        };
        let scheme_end = self.name.find("://").map_or(0, |i| i + 3);
        let bucket = self.name[scheme_end..]
            .split('/')
            .next()
            .unwrap_or_default();
        let url = format!("{}{bucket}/{path}", &self.name[..scheme_end]);
        Error::io(url, std::io::Error::new(kind, e))
    }
}

/// An object being written: up to [`PART`] bytes go up in one request at
/// [`finish`](Upload::finish); more become a multipart upload whose parts
/// go up as they fill. Dropped unfinished, a multipart upload is aborted,
/// so no object appears under the name.
pub struct Upload<'a> {
    bucket: &'a Bucket,
    path: ObjectPath,
    part: Vec<u8>,
    multipart: Option<Box<dyn object_store::MultipartUpload>>,
    sent: u64,
}

impl Upload<'_> {
    /// Adds `piece` to the object.
    pub fn write(&mut self, mut piece: &[u8]) -> Result<()> {
        while !piece.is_empty() {
            let n = (PART - self.part.len()).min(piece.len());
            self.part.extend_from_slice(&piece[..n]);
            piece = &piece[n..];
            if self.part.len() == PART {
                self.send_part()?;
            }
        }
        Ok(())
    }

    /// Writes what is left and completes the object; returns its size.
    pub fn finish(mut self) -> Result<u64> {
        let (bucket, path) = (self.bucket, self.path.clone());
        if self.multipart.is_none() {
            let data = std::mem::take(&mut self.part);
            let n = data.len() as u64;
            bucket
                .put(&path, data)
                .map_err(|e| bucket.error(&path, e))?;
            return Ok(n);
        }
        if !self.part.is_empty() {
            self.send_part()?;
        }
        let mut upload = self.multipart.take().expect("checked above");
        match bucket.runtime.block_on(upload.complete()) {
            Ok(_) => Ok(self.sent),
            Err(e) => {
                let _ = bucket.runtime.block_on(upload.abort());
                Err(bucket.error(&path, e))
            }
        }
    }

    fn send_part(&mut self) -> Result<()> {
        let bucket = self.bucket;
        if self.multipart.is_none() {
            let started = bucket
                .runtime
                .block_on(bucket.backend.put_multipart(&self.path));
            self.multipart = Some(started.map_err(|e| bucket.error(&self.path, e))?);
        }
        let part = std::mem::replace(&mut self.part, Vec::with_capacity(PART));
        self.sent += part.len() as u64;
        let upload = self.multipart.as_mut().expect("started above");
        bucket
            .runtime
            .block_on(upload.put_part(PutPayload::from(part)))
            .map_err(|e| bucket.error(&self.path, e))
    }
}

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        if let Some(mut upload) = self.multipart.take() {
            let _ = self.bucket.runtime.block_on(upload.abort());
        }
    }
}
