//! API tokens (`shale token`, `shale serve`) and the audit log of what
//! they changed. A token is stored as its BLAKE3 hash only: the secret is
//! shown once, when it is made.

use serde::{Deserialize, Serialize};

use super::{now_ns, Row, Sql};
use crate::args;
use crate::error::Result;

/// A token's record (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    /// Its number.
    pub id: i64,
    /// `admin`, `write` or `read`.
    pub role: String,
    /// The volume it is limited to (with that volume's clones); None: the pool.
    pub volume: Option<String>,
    /// What it is for.
    pub note: String,
    /// When it was made (ns since the epoch).
    pub created: i64,
    /// When it stops working, if ever.
    pub expires: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked: Option<i64>,
}

const COLS: &str = "id, role, volume, note, created, expires, revoked FROM tokens";

fn from_row(r: &Row) -> Result<TokenRow> {
    Ok(TokenRow {
        id: r.int(0)?,
        role: r.text(1)?,
        volume: r.opt_text(2)?,
        note: r.text(3)?,
        created: r.int(4)?,
        expires: r.opt_int(5)?,
        revoked: r.opt_int(6)?,
    })
}

/// Records a token by the hash of its secret; returns its record.
pub fn insert_token(
    tx: &dyn Sql,
    hash: &[u8],
    role: &str,
    volume: Option<&str>,
    note: &str,
    expires: Option<i64>,
) -> Result<TokenRow> {
    let created = now_ns();
    let id = tx.query_one(
        "INSERT INTO tokens (hash, role, volume, note, created, expires) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        args![hash, role, volume, note, created, expires],
        |r| r.int(0),
    )?;
    Ok(TokenRow {
        id,
        role: role.into(),
        volume: volume.map(Into::into),
        note: note.into(),
        created,
        expires,
        revoked: None,
    })
}

/// The token whose secret hashes to `hash`, if any (revoked or not).
pub fn token_by_hash(db: &dyn Sql, hash: &[u8]) -> Result<Option<TokenRow>> {
    db.query_opt(
        &format!("SELECT {COLS} WHERE hash = ?1"),
        args![hash],
        from_row,
    )
}

/// Every token, oldest first.
pub fn tokens(db: &dyn Sql) -> Result<Vec<TokenRow>> {
    db.query_all(&format!("SELECT {COLS} ORDER BY id"), &[], from_row)
}

/// Marks token `id` revoked; false if there is no such token.
pub fn revoke_token(tx: &dyn Sql, id: i64) -> Result<bool> {
    let n = tx.execute(
        "UPDATE tokens SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
        args![id, now_ns()],
    )?;
    Ok(n > 0 || tokens(tx)?.iter().any(|t| t.id == id))
}

/// One entry of the audit log: a change made through the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    /// Its number.
    pub id: i64,
    /// When (ns since the epoch).
    pub at: i64,
    /// The token that made it.
    pub token: Option<i64>,
    /// What was asked (`POST /api/v1/volumes/x/snapshots`).
    pub action: String,
    /// The answer's status and, for a failure, its message.
    pub result: String,
}

/// Appends to the audit log.
pub fn insert_audit(tx: &dyn Sql, token: Option<i64>, action: &str, result: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO audit (at, token, action, result) VALUES (?1, ?2, ?3, ?4)",
        args![now_ns(), token, action, result],
    )?;
    Ok(())
}

/// The last `limit` entries of the audit log, newest first.
pub fn audit(db: &dyn Sql, limit: i64) -> Result<Vec<AuditRow>> {
    db.query_all(
        "SELECT id, at, token, action, result FROM audit ORDER BY id DESC LIMIT ?1",
        args![limit],
        |r| {
            Ok(AuditRow {
                id: r.int(0)?,
                at: r.int(1)?,
                token: r.opt_int(2)?,
                action: r.text(3)?,
                result: r.text(4)?,
            })
        },
    )
}
