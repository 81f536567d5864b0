//! Tokens for the server: made by someone who can open the pool, stored
//! as hashes, with a role (`admin`, `write`, `read`) over the whole pool
//! or one volume, an optional expiry, and revocable.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use serde::Serialize;

use crate::catalog::{self, AuditRow, TokenRow};
use crate::error::{Error, Result};
use crate::names::check_name;
use crate::pool::Pool;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read volumes, snapshots, lineage.
    Read,
    /// Also snapshot, clone, restore, delete.
    Write,
    /// Also manage tokens and read the audit log.
    Admin,
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::InvalidArgument(format!(
                "role {s:?}: use admin, write or read"
            ))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        })
    }
}

/// A token that works: its record and its role.
#[derive(Clone, Debug, Serialize)]
pub struct Grant {
    /// Its record.
    #[serde(flatten)]
    pub token: TokenRow,
    /// Its role, parsed.
    #[serde(skip)]
    pub role: Role,
}

/// What `create_token` makes: the secret, shown once, and the record.
#[derive(Clone, Debug, Serialize)]
pub struct NewToken {
    /// The secret (`shale_` and 64 hex digits); only its hash is kept.
    pub token: String,
    /// Its record.
    #[serde(flatten)]
    pub record: TokenRow,
}

/// Prefix of every secret, so a leaked one is recognisable.
const PREFIX: &str = "shale_";

fn hash(secret: &str) -> [u8; 32] {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::InvalidArgument(format!("no randomness for a token: {e}")))?;
    Ok(format!("{PREFIX}{}", hex::encode(bytes)))
}

impl Pool {
    /// Makes a token with `role`, limited to `volume` (and its clones) if
    /// given, expiring at `expires` (ns since the epoch) if given.
    pub fn create_token(
        &self,
        role: Role,
        volume: Option<&str>,
        note: &str,
        expires: Option<i64>,
    ) -> Result<NewToken> {
        if let Some(v) = volume {
            check_name(v)?;
            self.volume_info(v)?;
            if role == Role::Admin {
                return Err(Error::InvalidArgument(
                    "an admin token is for the whole pool: drop --volume".into(),
                ));
            }
        }
        let token = random_secret()?;
        let role_text = role.to_string();
        let record = self.catalog().write(|tx| {
            catalog::insert_token(tx, &hash(&token), &role_text, volume, note, expires)
        })?;
        Ok(NewToken { token, record })
    }

    /// Every token (never their secrets).
    pub fn tokens(&self) -> Result<Vec<TokenRow>> {
        self.catalog().read(|db| catalog::tokens(db))
    }

    /// Revokes token `id`.
    pub fn revoke_token(&self, id: i64) -> Result<()> {
        if self.catalog().write(|tx| catalog::revoke_token(tx, id))? {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!("no token {id}")))
        }
    }

    /// The grant a secret carries, if it is a token of this pool that is
    /// neither revoked nor expired.
    pub fn authenticate(&self, secret: &str) -> Result<Option<Grant>> {
        if !secret.starts_with(PREFIX) {
            return Ok(None);
        }
        let found = self
            .catalog()
            .read(|db| catalog::token_by_hash(db, &hash(secret)))?;
        let now = crate::catalog::now_ns();
        Ok(found
            .filter(|t| t.revoked.is_none() && !matches!(t.expires, Some(e) if e <= now))
            .and_then(|t| {
                let role = t.role.parse().ok()?;
                Some(Grant { token: t, role })
            }))
    }

    /// Appends to the audit log: `token` asked `action`, which ended in `result`.
    pub fn record_audit(&self, token: Option<i64>, action: &str, result: &str) -> Result<()> {
        self.catalog()
            .write(|tx| catalog::insert_audit(tx, token, action, result))
    }

    /// The last `limit` audit entries, newest first.
    pub fn audit(&self, limit: i64) -> Result<Vec<AuditRow>> {
        self.catalog().read(|db| catalog::audit(db, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_scoped_revocable_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::init(&dir.path().join("pool")).unwrap();
        pool.create_volume("imagenet", None).unwrap();
        let admin = pool.create_token(Role::Admin, None, "first", None).unwrap();
        assert!(admin.token.starts_with("shale_") && admin.token.len() == 6 + 64);
        let grant = pool.authenticate(&admin.token).unwrap().unwrap();
        assert_eq!((grant.role, grant.token.id), (Role::Admin, admin.record.id));

        let read = pool
            .create_token(Role::Read, Some("imagenet"), "", None)
            .unwrap();
        assert_eq!(
            pool.authenticate(&read.token)
                .unwrap()
                .unwrap()
                .token
                .volume
                .as_deref(),
            Some("imagenet")
        );
        assert!(pool
            .create_token(Role::Read, Some("nope"), "", None)
            .is_err());
        assert!(pool
            .create_token(Role::Admin, Some("imagenet"), "", None)
            .is_err());

        pool.revoke_token(read.record.id).unwrap();
        assert!(pool.authenticate(&read.token).unwrap().is_none());
        assert!(pool.revoke_token(999).is_err());
        let expired = pool.create_token(Role::Read, None, "", Some(1)).unwrap();
        assert!(pool.authenticate(&expired.token).unwrap().is_none());
        assert!(pool.authenticate("shale_00").unwrap().is_none());
        assert!(pool.authenticate("").unwrap().is_none());

        pool.record_audit(Some(1), "POST /api/v1/volumes", "201")
            .unwrap();
        assert_eq!(pool.audit(10).unwrap()[0].action, "POST /api/v1/volumes");
    }
}
