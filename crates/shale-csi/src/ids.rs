//! CSI volume and snapshot ids: a configured pool's name, then Shale's own
//! name of the volume, or of the snapshot as `VOLUME@SNAPSHOT`:
//! `POOL/VOLUME` and `POOL/VOLUME@SNAPSHOT`. A PV adopting an existing
//! volume (static provisioning) names it the same way, or by its bare
//! name in the default pool.

use shale_core::names::check_name;
use tonic::Status;

/// A volume, or one snapshot of it, in a configured pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Id {
    /// The configured pool's name.
    pub pool: String,
    /// The volume's name.
    pub volume: String,
    /// The snapshot's name, for a snapshot id.
    pub snapshot: Option<String>,
}

impl Id {
    /// The id of volume `volume` in `pool`.
    pub fn volume(pool: &str, volume: &str) -> Id {
        Id {
            pool: pool.into(),
            volume: volume.into(),
            snapshot: None,
        }
    }

    /// Parses `id`; a bare name is in `default_pool`. INVALID_ARGUMENT for
    /// an empty or malformed id (a hostile name never reaches the pool).
    pub fn parse(id: &str, default_pool: &str, what: &str) -> Result<Id, Status> {
        if id.is_empty() {
            return Err(Status::invalid_argument(format!("{what} is missing")));
        }
        let (pool, rest) = id.split_once('/').unwrap_or((default_pool, id));
        let (volume, snapshot) = match rest.split_once('@') {
            Some((v, s)) => (v, Some(s)),
            None => (rest, None),
        };
        let bad = |e: shale_core::Error| Status::invalid_argument(format!("{what} {id:?}: {e}"));
        check_name(pool).map_err(bad)?;
        check_name(volume).map_err(bad)?;
        if let Some(s) = snapshot {
            check_name(s).map_err(bad)?;
        }
        Ok(Id {
            pool: pool.into(),
            volume: volume.into(),
            snapshot: snapshot.map(str::to_string),
        })
    }

    /// Parses the id of something to look up: as [`Id::parse`], but an id
    /// that cannot be one of ours names nothing there is (NOT_FOUND); an
    /// empty one is still INVALID_ARGUMENT.
    pub fn find(id: &str, default_pool: &str, what: &str) -> Result<Id, Status> {
        Id::parse(id, default_pool, what).map_err(|s| {
            if id.is_empty() {
                s
            } else {
                Status::not_found(format!("no {what} {id:?} here"))
            }
        })
    }

    /// `VOLUME` or `VOLUME@SNAPSHOT`, as Shale names it.
    pub fn spec(&self) -> String {
        match &self.snapshot {
            Some(s) => format!("{}@{s}", self.volume),
            None => self.volume.clone(),
        }
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.pool, self.spec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_hostile_ones_are_refused() {
        let id = Id::parse("main/pvc-1@snap-2", "main", "volume id").unwrap();
        assert_eq!(id.snapshot.as_deref(), Some("snap-2"));
        assert_eq!(id.to_string(), "main/pvc-1@snap-2");
        let bare = Id::parse("imagenet", "main", "volume id").unwrap();
        assert_eq!(bare, Id::volume("main", "imagenet"));
        for bad in [
            "",
            "main/../x",
            "main/a/b",
            "/abs",
            "main/",
            "main/a@",
            "a\0b",
            "main/.x",
        ] {
            let e = Id::parse(bad, "main", "volume id").unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
    }
}
