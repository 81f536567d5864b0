//! What `shale sync` and `shale scan` accept as a place: a local path, an
//! object-store prefix (`s3://`, `gs://`, `az://`), or a volume
//! (`volume:NAME[@SNAPSHOT][/PATH]`).

use std::ffi::OsStr;
use std::path::PathBuf;

use shale_core::names::Spec;
use shale_core::store::objects::{StoreKind, StoreLocation};
use shale_core::{Error, Result};

/// One side of a sync, or what a scan looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A directory (or file) on this machine.
    Local(PathBuf),
    /// Objects under a prefix of a bucket.
    Store(StoreLocation),
    /// A directory of a volume or of one of its snapshots.
    Volume {
        /// Volume name.
        volume: String,
        /// Snapshot name, if a snapshot.
        snapshot: Option<String>,
        /// Directory inside it, `/`-separated, without leading `/` ("" = all).
        path: String,
    },
}

impl Location {
    /// Parses a command-line argument.
    pub fn parse(arg: &OsStr) -> Result<Location> {
        let Some(s) = arg.to_str() else {
            return Ok(Location::Local(PathBuf::from(arg)));
        };
        if let Some(rest) = s.strip_prefix("volume:") {
            let (spec, path) = match rest.split_once('/') {
                Some((spec, path)) => (spec, path.trim_matches('/')),
                None => (rest, ""),
            };
            let spec = Spec::parse(spec)?;
            shale_core::tree::split_path(path)?;
            return Ok(Location::Volume {
                volume: spec.volume,
                snapshot: spec.snapshot,
                path: path.to_string(),
            });
        }
        if StoreKind::of_url(s).is_some() {
            return Ok(Location::Store(StoreLocation::parse(s)?));
        }
        if s.contains("://") {
            return Err(Error::InvalidArgument(format!(
                "{s}: not a place to sync (a path, s3://BUCKET/PREFIX, gs://…, az://…, \
                 or volume:NAME[@SNAPSHOT][/PATH])"
            )));
        }
        Ok(Location::Local(PathBuf::from(s)))
    }

    /// How to name it to a user.
    pub fn describe(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::Store(l) => l.url(),
            Location::Volume {
                volume,
                snapshot,
                path,
            } => {
                let mut s = format!("volume:{volume}");
                if let Some(snap) = snapshot {
                    s.push('@');
                    s.push_str(snap);
                }
                if !path.is_empty() {
                    s.push('/');
                    s.push_str(path);
                }
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_place() {
        let p = |s: &str| Location::parse(OsStr::new(s));
        assert_eq!(p("./data").unwrap(), Location::Local("./data".into()));
        assert!(matches!(p("s3://b/x").unwrap(), Location::Store(l) if l.prefix == "x"));
        assert_eq!(
            p("volume:ds@v1/train/cats").unwrap(),
            Location::Volume {
                volume: "ds".into(),
                snapshot: Some("v1".into()),
                path: "train/cats".into()
            }
        );
        assert_eq!(p("volume:ds").unwrap().describe(), "volume:ds");
        assert!(p("volume:").is_err());
        assert!(p("volume:ds/../x").is_err());
        assert!(p("http://x/y").is_err());
    }
}
