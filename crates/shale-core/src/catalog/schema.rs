//! The catalog's tables, in each dialect (`docs/FORMAT.md` describes them),
//! and the upgrades from older versions.
//!
//! SQLite and PostgreSQL hold the same tables and columns; the differences
//! are only in spelling: 64-bit integers are `INTEGER` in SQLite and
//! `BIGINT` in PostgreSQL, byte strings `BLOB` and `BYTEA`, and generated
//! keys `INTEGER PRIMARY KEY` and identity columns.

use super::sql::Dialect;

/// Version of the catalog schema this build reads and writes. Older
/// catalogs are upgraded in place when opened ([`upgrade`]).
pub const SCHEMA_VERSION: u32 = 13;

/// The tables of schema version 1 (SQLite spelling).
const TABLES_1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE packs (
    id INTEGER PRIMARY KEY,
    name BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    created INTEGER NOT NULL,
    session INTEGER
);
CREATE TABLE blobs (
    id BLOB PRIMARY KEY,
    pack INTEGER NOT NULL REFERENCES packs(id),
    \"offset\" INTEGER NOT NULL,
    stored_len INTEGER NOT NULL,
    raw_len INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    compression INTEGER NOT NULL,
    condemned INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX blobs_by_pack ON blobs(pack);
CREATE TABLE volumes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    root BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    files INTEGER NOT NULL,
    origin TEXT,
    quota INTEGER,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    proc_start INTEGER NOT NULL,
    started INTEGER NOT NULL,
    what TEXT NOT NULL
);
CREATE TABLE snapshots (
    volume INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    root BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    files INTEGER NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (volume, name)
);
";

/// Version 2 adds `root_meta`: the mode, owner and extended attributes of a
/// volume's top directory, which its tree does not hold.
const TABLES_2: &str = "
CREATE TABLE IF NOT EXISTS root_meta (
    volume INTEGER PRIMARY KEY REFERENCES volumes(id) ON DELETE CASCADE,
    mode INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    xattrs BLOB NOT NULL
);
";

/// Version 3 adds the lineage records of runs (`lineage.rs`): a run, and
/// each snapshot it read (`output` 0) or wrote (1). Names are kept as text,
/// not keys: the record outlives the volumes and snapshots it names.
const TABLES_3: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,
    host TEXT NOT NULL,
    started INTEGER NOT NULL,
    ended INTEGER,
    exit_code INTEGER,
    mlflow_run TEXT
);
CREATE TABLE IF NOT EXISTS run_data (
    run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    output INTEGER NOT NULL,
    volume TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    snapshot_id BLOB NOT NULL,
    PRIMARY KEY (run, output, volume)
);
";

/// Version 4 adds writer leases on live volumes (`leases.rs`) and an
/// expiry time to sessions: a process renews both while it runs, so a
/// machine that dies stops holding them (0: no expiry, the holder's
/// liveness is checked by process id on its own host).
const TABLES_4: &str = "
CREATE TABLE IF NOT EXISTS leases (
    volume INTEGER PRIMARY KEY REFERENCES volumes(id) ON DELETE CASCADE,
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    proc_start INTEGER NOT NULL,
    taken INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
";
const SESSIONS_EXPIRE: &str = "ALTER TABLE sessions ADD COLUMN expires INTEGER NOT NULL DEFAULT 0;";

/// Version 5 adds mirror relationships (`mirror.rs`), kept on the
/// destination pool: which volume mirrors what, and the last transfer.
const TABLES_5: &str = "
CREATE TABLE IF NOT EXISTS mirrors (
    volume TEXT PRIMARY KEY,
    source_pool TEXT NOT NULL,
    source_volume TEXT NOT NULL,
    policy TEXT NOT NULL,
    state TEXT NOT NULL,
    last_snapshot TEXT,
    last_id BLOB,
    last_source_created INTEGER,
    last_update INTEGER,
    last_bytes INTEGER,
    last_objects INTEGER,
    last_seconds_ms INTEGER
);
";

/// Version 6 makes the index of blobs by pack hold each blob's whole entry,
/// so that learning where a pack's blobs lie (`locate_pack_of`, once per
/// pack a reader meets) reads that pack's index pages and no table page:
/// through the index of version 1 it read one table page per blob (ids are
/// hashes, scattered), measured at about 25 random page reads per pack on
/// cold reads of small files through a mount.
const INDEX_6: &str = "
DROP INDEX IF EXISTS blobs_by_pack;
CREATE INDEX blobs_by_pack ON blobs(pack, \"offset\", stored_len, raw_len, kind, compression, id);
";

/// Version 7 lets a volume be deleted while its snapshots are kept
/// (`volume delete --keep-snapshots`): its row stays, marked with the time
/// it was deleted, hidden from every listing, until its last snapshot goes.
const DELETED_7: &str = "ALTER TABLE volumes ADD COLUMN deleted INTEGER;";

/// Version 8 adds workspaces (`workspaces.rs`): what every machine may
/// know of one (its volume, owner and origin); where it runs is per machine.
const TABLES_8: &str = "
CREATE TABLE IF NOT EXISTS workspaces (
    name TEXT PRIMARY KEY,
    volume TEXT NOT NULL,
    owner TEXT NOT NULL,
    origin TEXT,
    created INTEGER NOT NULL
);
";

/// Version 9 gives runs labels (`shale run --label KEY=VALUE`: the
/// pipeline's run id, the task), a JSON object of strings.
const LABELS_9: &str = "ALTER TABLE runs ADD COLUMN labels TEXT;";

/// Version 10 adds the server's tokens (stored as hashes) and its audit
/// log of every change made through it (`tokens.rs`).
const TABLES_10: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    role TEXT NOT NULL,
    volume TEXT,
    note TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER,
    revoked INTEGER
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    token INTEGER,
    action TEXT NOT NULL,
    result TEXT NOT NULL
);
";

/// Version 11 keeps the pool's totals over time (`history.rs`), for the
/// dashboard's dedup and compression chart.
const HISTORY_11: &str = "
CREATE TABLE IF NOT EXISTS space_history (
    at INTEGER PRIMARY KEY,
    volumes INTEGER NOT NULL,
    snapshots INTEGER NOT NULL,
    logical_bytes INTEGER NOT NULL,
    unique_bytes INTEGER NOT NULL,
    compressed_bytes INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL
);
";

/// Version 12 adds snapshot policies (`policies.rs`): how many hourly,
/// daily and weekly snapshots each volume keeps; and saved syncs
/// (`syncs.rs`): named syncs to re-run, with their last outcome.
const POLICIES_12: &str = "
CREATE TABLE IF NOT EXISTS snapshot_policies (
    volume TEXT PRIMARY KEY,
    hourly INTEGER NOT NULL,
    daily INTEGER NOT NULL,
    weekly INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS syncs (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    options TEXT NOT NULL,
    every_secs INTEGER,
    created INTEGER NOT NULL,
    last_run INTEGER,
    last_ok INTEGER,
    last_report TEXT
);
";

/// Version 13 orders the index of blobs by pack by kind first: learning
/// where a pack's tree nodes lie (`locate_pack_of` for a node, as walks of
/// a tree do) then reads only those entries, not those of the thousands of
/// chunks beside them (a cold walk of a million small files read the whole
/// index, 16 packs' worth).
const INDEX_13: &str = "
DROP INDEX IF EXISTS blobs_by_pack;
CREATE INDEX blobs_by_pack ON blobs(pack, kind, \"offset\", stored_len, raw_len, compression, id);
";

/// `sql` in the spelling of `dialect`.
fn spell(sql: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => sql.to_string(),
        Dialect::Postgres => sql
            .replace(
                "id INTEGER PRIMARY KEY,",
                "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,",
            )
            .replace(" INTEGER", " BIGINT")
            .replace(" BLOB", " BYTEA")
            .replace(") WITHOUT ROWID;", ");"),
    }
}

/// Statements that create a catalog of the current version.
pub fn create(dialect: Dialect) -> String {
    spell(
        &format!(
            "{TABLES_1} {TABLES_2} {TABLES_3} {TABLES_4} {SESSIONS_EXPIRE} {TABLES_5}
             {DELETED_7} {TABLES_8} {LABELS_9} {TABLES_10} {HISTORY_11} {POLICIES_12} {INDEX_13} INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');"
        ),
        dialect,
    )
}

/// Statements that bring a catalog of version `from` to the current one,
/// or `None` if `from` is not a version this build can upgrade.
pub fn upgrade(from: &str, dialect: Dialect) -> Option<String> {
    let steps = match from {
        "1" => format!(
            "{TABLES_2} {TABLES_3} {TABLES_4} {SESSIONS_EXPIRE} {TABLES_5} {INDEX_6} {DELETED_7} \
             {TABLES_8} {LABELS_9} {TABLES_10} {HISTORY_11} {POLICIES_12} {INDEX_13}"
        ),
        "2" => format!(
            "{TABLES_3} {TABLES_4} {SESSIONS_EXPIRE} {TABLES_5} {INDEX_6} {DELETED_7} {TABLES_8} \
             {LABELS_9} {TABLES_10} {HISTORY_11} {POLICIES_12} {INDEX_13}"
        ),
        "3" => format!(
            "{TABLES_4} {SESSIONS_EXPIRE} {TABLES_5} {INDEX_6} {DELETED_7} {TABLES_8} {LABELS_9} {TABLES_10} {HISTORY_11} {POLICIES_12} {INDEX_13}"
        ),
        "4" => format!("{TABLES_5} {INDEX_6} {DELETED_7} {TABLES_8} {LABELS_9} {TABLES_10} {HISTORY_11} {POLICIES_12} {INDEX_13}"),
        "5" => format!("{INDEX_6} {DELETED_7} {TABLES_8} {LABELS_9} {TABLES_10} {HISTORY_11} {POLICIES_12} {INDEX_13}"),
        "6" => format!("{DELETED_7} {TABLES_8} {LABELS_9} {TABLES_10} {HISTORY_11} {POLICIES_12} {INDEX_13}"),
        "7" => format!("{TABLES_8} {LABELS_9} {TABLES_10} {HISTORY_11} {POLICIES_12} {INDEX_13}"),
        "8" => format!("{LABELS_9} {TABLES_10} {HISTORY_11} {POLICIES_12} {INDEX_13}"),
        "9" => format!("{TABLES_10} {HISTORY_11} {POLICIES_12} {INDEX_13}"),
        "10" => format!("{HISTORY_11} {POLICIES_12} {INDEX_13}"),
        "11" => format!("{POLICIES_12} {INDEX_13}"),
        "12" => INDEX_13.to_string(),
        _ => return None,
    };
    Some(spell(
        &format!(
            "{steps} UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version';"
        ),
        dialect,
    ))
}

/// The tables of version 1, for upgrade tests.
#[cfg(test)]
pub fn version_1() -> String {
    format!("{TABLES_1} INSERT INTO meta VALUES ('schema_version', '1');")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_spelling_has_no_sqlite_types() {
        let sql = create(Dialect::Postgres);
        for word in [" INTEGER", " BLOB", "WITHOUT ROWID"] {
            assert!(!sql.contains(word), "{word} in {sql}");
        }
        assert!(sql.contains("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"));
        assert!(sql.contains("volume BIGINT PRIMARY KEY REFERENCES volumes(id)"));
    }
}
