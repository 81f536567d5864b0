//! Applying the intent logs of mounts that stopped without unmounting
//! (`kill -9`, a crash, a power cut): each log is applied again, through
//! the same file operations, to the commit it began from, and the result
//! committed. If the volume moved on since (a restore or import while the
//! mount was gone), the result is kept as a snapshot instead, as a commit
//! that finds its volume replaced does.
//!
//! A log being applied is renamed `<volume>.log.recovering` first, so that
//! the volume can be claimed for writing; a recovery cut short is taken up
//! again from that name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_bytes::ByteBuf;
use shale_core::{Error, Pool};

use crate::journal::{self, Op};
use crate::state::{Errno, State, Target, Write};

/// Where a log being applied is kept meanwhile.
fn recovering(log: &Path) -> PathBuf {
    log.with_extension("log.recovering")
}

/// Applies every log in `POOL/journal/` whose volume no live mount writes;
/// returns what was done, in words. Files that do not fit go to `upper`.
pub fn recover_all(pool: &Arc<Pool>, upper: &Path) -> shale_core::Result<Vec<String>> {
    let dir = pool.root().join("journal");
    let mut volumes: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(items) => items
            .flatten()
            .filter_map(|i| {
                let name = i.file_name().to_string_lossy().to_string();
                let v = name
                    .strip_suffix(".log")
                    .or_else(|| name.strip_suffix(".log.recovering"))?;
                Some(v.to_string())
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    volumes.sort();
    volumes.dedup();
    let mut done = Vec::new();
    for volume in volumes {
        done.extend(recover_volume(pool, &volume, upper)?);
    }
    Ok(done)
}

/// [`recover_all`] from a process other than a mount (`shale unmount` of
/// a mount whose server is gone), with a scratch upper directory.
pub fn recover(pool: &Arc<Pool>) -> shale_core::Result<Vec<String>> {
    if !pool.root().join("journal").exists() {
        return Ok(Vec::new());
    }
    let root = pool.root();
    let upper = crate::upper::upper_dir(root).map_err(|e| Error::io(root, e))?;
    let done = recover_all(pool, &upper);
    let _ = std::fs::remove_dir_all(&upper);
    done
}

/// Applies the logs of `volume` (one cut short first, then the current
/// one) unless a live mount writes it.
fn recover_volume(pool: &Arc<Pool>, volume: &str, upper: &Path) -> shale_core::Result<Vec<String>> {
    let log = journal::path_of(pool.root(), volume);
    let mut done = Vec::new();
    for path in [recovering(&log), log.clone()] {
        let read = journal::read(&path).map_err(|e| Error::io(&path, e))?;
        let Some(read) = read.filter(|r| !r.records.is_empty()) else {
            // Empty, or only a header: nothing was made durable.
            if path.exists() && live_writer(pool, volume)?.is_none() {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        };
        if let Some(holder) = live_writer(pool, volume)? {
            tracing::debug!("intent log of volume {volume}: {holder} writes it");
            return Ok(done);
        }
        if pool.catalog().volume(volume).is_err() {
            done.push(format!(
                "volume {volume} no longer exists: its intent log is left at {}",
                path.display()
            ));
            continue;
        }
        if path == log {
            std::fs::rename(&log, recovering(&log)).map_err(|e| Error::io(&log, e))?;
        }
        done.push(apply(pool, volume, &read, upper)?);
        let _ = std::fs::remove_file(recovering(&log));
    }
    Ok(done)
}

/// The process writing `volume`, if any.
fn live_writer(pool: &Pool, volume: &str) -> shale_core::Result<Option<String>> {
    Ok(shale_core::coord::mounts::claim_writer(pool, volume, "shale recovery")?.err())
}

/// Applies one log to its volume and commits; says what it did.
fn apply(
    pool: &Arc<Pool>,
    volume: &str,
    log: &journal::Read,
    upper: &Path,
) -> shale_core::Result<String> {
    let target = Target::Volume {
        volume: volume.to_string(),
        snapshot: None,
    };
    let here = Path::new("(recovery)");
    let mut st = State::with_pool(
        pool.clone(),
        target,
        false,
        false,
        upper.to_path_buf(),
        here,
    )?;
    let moved_on = st.rebase(volume, log.header.base);
    let (applied, failed) = replay(&mut st, volume, log);
    st.commit(volume)?;
    let n = log.records.len();
    let mut said = format!("volume {volume}: applied {applied} of {n} changes from the intent log of a mount that stopped without unmounting");
    if log.torn > 0 {
        said.push_str(&format!(
            " ({} bytes of a change cut short at its end were not acknowledged and are dropped)",
            log.torn
        ));
    }
    if moved_on {
        said.push_str(
            " (the volume had changed since: they are kept as a snapshot mount.conflict.*)",
        );
    }
    if let Some((at, errno)) = failed {
        let kept = journal::path_of(pool.root(), volume).with_extension("log.failed");
        let _ = std::fs::copy(recovering(&journal::path_of(pool.root(), volume)), &kept);
        said.push_str(&format!(
            "; change {} could not be applied ({}), the log is kept at {}",
            at + 1,
            std::io::Error::from_raw_os_error(errno),
            kept.display()
        ));
    }
    Ok(said)
}

/// Applies `log`'s records in order; returns how many applied, and the
/// first that failed with its errno.
fn replay(st: &mut State, volume: &str, log: &journal::Read) -> (usize, Option<(usize, Errno)>) {
    let Some(root) = st.vols.get(volume).map(|v| v.root) else {
        return (0, Some((0, libc::ENOENT)));
    };
    let mut inos = HashMap::from([(log.header.root, root)]);
    for (n, rec) in log.records.iter().enumerate() {
        match st.at_time(rec.t, |st| apply_op(st, &inos, &rec.op)) {
            Ok(Some((logged, here))) => {
                // Kept while the log may name it (as if the kernel held it).
                if let Some(i) = st.table.get_mut(here) {
                    i.lookups += 1;
                }
                inos.insert(logged, here);
            }
            Ok(None) => {}
            Err(e) => return (n, Some((n, e))),
        }
    }
    (log.records.len(), None)
}

/// Applies one change; returns the inode it named or made (its number in
/// the log, and here).
fn apply_op(
    st: &mut State,
    inos: &HashMap<u64, u64>,
    op: &Op,
) -> Result<Option<(u64, u64)>, Errno> {
    match op {
        Op::Ident { .. }
        | Op::Create { .. }
        | Op::Mkdir { .. }
        | Op::Mknod { .. }
        | Op::Symlink { .. } => make(st, inos, op).map(Some),
        Op::Data {
            ino,
            size,
            mode,
            mtime_ns,
            ranges,
        } => apply_data(st, here(inos, ino)?, *size, (*mode, *mtime_ns), ranges).map(|()| None),
        _ => change(st, inos, op).map(|()| None),
    }
}

/// The inode here of inode `ino` of the log.
fn here(inos: &HashMap<u64, u64>, ino: &u64) -> Result<u64, Errno> {
    inos.get(ino).copied().ok_or(libc::ESTALE)
}

/// Applies a change that names or makes an inode: (its number in the log,
/// and here).
fn make(st: &mut State, inos: &HashMap<u64, u64>, op: &Op) -> Result<(u64, u64), Errno> {
    let here = |ino: &u64| here(inos, ino);
    let (ino, new) = match op {
        Op::Ident { ino, parent, name } => (ino, st.child(here(parent)?, name)?),
        Op::Create {
            ino,
            parent,
            name,
            mode,
            uid,
            gid,
        } => {
            let (new, fh) = st.create(here(parent)?, name, *mode, (*uid, *gid), false)?;
            st.release(fh);
            (ino, new)
        }
        Op::Mkdir {
            ino,
            parent,
            name,
            mode,
            uid,
            gid,
        } => (ino, st.mkdir(here(parent)?, name, *mode, (*uid, *gid))?),
        Op::Mknod {
            ino,
            parent,
            name,
            mode,
            rdev,
            uid,
            gid,
        } => (
            ino,
            st.mknod(here(parent)?, name, *mode, *rdev, (*uid, *gid))?,
        ),
        Op::Symlink {
            ino,
            parent,
            name,
            target,
            uid,
            gid,
        } => (ino, st.symlink(here(parent)?, name, target, (*uid, *gid))?),
        _ => return Err(libc::EINVAL),
    };
    Ok((*ino, new))
}

/// Applies a change to inodes that exist.
fn change(st: &mut State, inos: &HashMap<u64, u64>, op: &Op) -> Result<(), Errno> {
    let here = |ino: &u64| here(inos, ino);
    match op {
        Op::Link { ino, parent, name } => st.link(here(ino)?, here(parent)?, name).map(drop),
        Op::Unlink { parent, name } => st.unlink(here(parent)?, name).map(drop),
        Op::Rmdir { parent, name } => st.rmdir(here(parent)?, name).map(drop),
        Op::Rename {
            parent,
            name,
            newparent,
            newname,
            flags,
        } => st
            .rename(here(parent)?, name, here(newparent)?, newname, *flags)
            .map(drop),
        Op::SetAttr { ino, set } => st.set_attr(here(ino)?, set).map(drop),
        Op::Fallocate {
            ino,
            offset,
            length,
            mode,
        } => st.fallocate(here(ino)?, *offset, *length, *mode).map(drop),
        Op::SetXattr {
            ino,
            name,
            value,
            flags,
        } => st.set_xattr(here(ino)?, name, value, *flags).map(drop),
        Op::RemoveXattr { ino, name } => st.remove_xattr(here(ino)?, name).map(drop),
        Op::DropPrivileges { ino, kill_suidgid } => {
            st.drop_privileges(here(ino)?, *kill_suidgid).map(drop)
        }
        _ => Err(libc::EINVAL),
    }
}

/// Applies what `fsync` logged of file `ino`: its bytes where written, its
/// size, and its (mode, mtime).
fn apply_data(
    st: &mut State,
    ino: u64,
    size: u64,
    (mode, mtime_ns): (u32, i64),
    ranges: &[(u64, ByteBuf)],
) -> Result<(), Errno> {
    for (offset, bytes) in ranges {
        let w = Write {
            ino,
            append: false,
            held: true,
        };
        st.write(w, *offset, bytes)?;
    }
    if st.file_size(ino)? != size {
        st.truncate(ino, size)?;
    }
    st.set_written_meta(ino, mode, mtime_ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inodes::{Data, Kind};
    use crate::state::SetAttr;

    const ROOT: u64 = fuser::INodeNo::ROOT.0;

    /// What a file holds, from its chunks (after a commit).
    fn bytes_of(st: &State, ino: u64) -> Vec<u8> {
        match &st.inode(ino).unwrap().kind {
            Kind::File(Data::Chunks { chunks, .. }) => chunks
                .refs
                .iter()
                .flat_map(|c| st.pool.blobs().get(&c.id).unwrap().to_vec())
                .collect(),
            other => panic!("not committed: {other:?}"),
        }
    }

    fn write(st: &mut State, ino: u64, offset: u64, data: &[u8]) {
        let w = Write {
            ino,
            append: false,
            held: true,
        };
        st.write(w, offset, data).unwrap();
    }

    fn create(st: &mut State, parent: u64, name: &[u8]) -> u64 {
        let (ino, _fh) = st
            .logged(
                parent,
                |st| st.create(parent, name, 0o644, (0, 0), true),
                |&(ino, _)| Op::Create {
                    ino,
                    parent,
                    name: name.to_vec(),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
            )
            .unwrap();
        ino
    }

    #[test]
    fn rewriting_a_range_with_fsync_keeps_the_log_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = crate::state::tests::one_volume(dir.path());
        let f = create(&mut st, ROOT, b"db");
        let log = journal::path_of(st.pool.root(), "v");
        let page = vec![7u8; 1 << 20];
        let first = st.vols["v"].committed;
        let mut longest = 0;
        for _ in 0..100 {
            write(&mut st, f, 0, &page);
            st.fsync(f).unwrap();
            longest = longest.max(std::fs::metadata(&log).map_or(0, |m| m.len()));
        }
        assert!(
            longest <= crate::state::LOG_FILE_MAX + (2 << 20),
            "the log reached {longest} bytes"
        );
        assert_ne!(st.vols["v"].committed, first, "an fsync committed");
    }

    #[test]
    fn a_stopped_mounts_log_brings_back_what_fsync_made_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = crate::state::tests::one_volume(dir.path());
        // Committed before: d/kept (1.5 MiB: an upper file when written).
        let d = st.mkdir(ROOT, b"d", 0o755, (0, 0)).unwrap();
        let kept = create(&mut st, d, b"kept");
        let big: Vec<u8> = (0..3 << 19).map(|i| (i % 251) as u8).collect();
        write(&mut st, kept, 0, &big);
        st.commit("v").unwrap();
        let mtime_before = st.inode(d).unwrap().meta.mtime_ns;
        // Forget what was looked up, as the kernel would: the log must
        // name d and d/kept by their names.
        let (d, kept) = {
            st.reload("v");
            let d = st.child(ROOT, b"d").unwrap();
            (d, st.child(d, b"kept").unwrap())
        };
        // Since the commit: an in-place edit of d/kept, d renamed to e, a
        // new file e/new and a chmod, fsync'd; then one more file, not.
        write(&mut st, kept, 1000, b"EDITED");
        let r = st.logged(
            ROOT,
            |st| st.rename(ROOT, b"d", ROOT, b"e", 0),
            |_| Op::Rename {
                parent: ROOT,
                name: b"d".to_vec(),
                newparent: ROOT,
                newname: b"e".to_vec(),
                flags: 0,
            },
        );
        r.unwrap();
        let new = create(&mut st, d, b"new");
        write(&mut st, new, 0, b"fsync'd");
        let set = SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        };
        st.logged(
            new,
            |st| st.set_attr(new, &set),
            |_| Op::SetAttr { ino: new, set },
        )
        .unwrap();
        st.fsync(new).unwrap();
        st.fsync(kept).unwrap();
        let new_mtime = st.inode(new).unwrap().meta.mtime_ns;
        let lost = create(&mut st, d, b"lost");
        write(&mut st, lost, 0, b"never fsync'd");
        let root_before = st.vols["v"].committed;
        // The server stops without committing.
        drop(st);
        let pool = Arc::new(Pool::open(&dir.path().join("pool")).unwrap());
        assert_eq!(pool.catalog().volume("v").unwrap().root, root_before);
        let said = recover_all(&pool, &dir.path().join("upper")).unwrap();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("applied"), "{said:?}");
        assert!(!journal::path_of(pool.root(), "v").exists());
        assert!(!recovering(&journal::path_of(pool.root(), "v")).exists());
        // What was fsync'd is committed, with its times and modes.
        let mut st = State::with_pool(
            pool.clone(),
            Target::Volume {
                volume: "v".into(),
                snapshot: None,
            },
            true,
            false,
            dir.path().join("upper"),
            dir.path(),
        )
        .unwrap();
        assert_eq!(st.child(ROOT, b"d"), Err(libc::ENOENT));
        let e = st.child(ROOT, b"e").unwrap();
        let new = st.child(e, b"new").unwrap();
        assert_eq!(bytes_of(&st, new), b"fsync'd");
        assert_eq!(st.inode(new).unwrap().meta.mode, 0o600);
        assert_eq!(st.inode(new).unwrap().meta.mtime_ns, new_mtime);
        let kept = st.child(e, b"kept").unwrap();
        let mut edited = big.clone();
        edited[1000..1006].copy_from_slice(b"EDITED");
        assert_eq!(bytes_of(&st, kept), edited);
        assert!(st.inode(e).unwrap().meta.mtime_ns >= mtime_before);
        // The file created after the last fsync was never made durable.
        assert_eq!(st.child(e, b"lost"), Err(libc::ENOENT));
        // Nothing is left to apply.
        drop(st);
        assert!(recover_all(&pool, &dir.path().join("upper"))
            .unwrap()
            .is_empty());
    }
}
