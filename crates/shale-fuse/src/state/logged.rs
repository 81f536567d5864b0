//! Changes recorded in the intent log (see `journal.rs`), and `fsync`,
//! which makes them durable there or, failing that, commits.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;

use super::*;
use crate::journal::{self, Header, Journal, Op};

/// An `fsync` of a file with more new bytes than this commits instead:
/// the log would hold them twice over (ZFS's log writes large blocks in
/// place for the same reason).
const LOG_DATA_MAX: u64 = 16 << 20;

/// An `fsync` that finds the log longer than this commits instead, which
/// starts it again: a program that rewrites and `fsync`s the same range
/// (a database's pages) would otherwise grow it by every write until the
/// next commit, and a crash would replay them all.
pub(crate) const LOG_FILE_MAX: u64 = 64 << 20;

impl State {
    /// The time the change being applied uses: one for all it does, and the
    /// one the log records, so that applying the log again gives the same
    /// times.
    pub fn now(&self) -> i64 {
        self.clock.unwrap_or_else(now_ns)
    }

    /// Applies a change to the volume of inode `at` and records `op` of
    /// what it returned in that volume's log if it succeeded.
    pub fn logged<T>(
        &mut self,
        at: u64,
        apply: impl FnOnce(&mut State) -> Result<T, Errno>,
        op: impl FnOnce(&T) -> Op,
    ) -> Result<T, Errno> {
        let t = now_ns();
        self.clock = Some(t);
        let r = apply(self);
        self.clock = None;
        if let Ok(v) = &r {
            self.record(at, t, op(v));
        }
        r
    }

    /// Applies a change at time `t` (replaying a log).
    pub(crate) fn at_time<T>(&mut self, t: i64, apply: impl FnOnce(&mut State) -> T) -> T {
        self.clock = Some(t);
        let r = apply(self);
        self.clock = None;
        r
    }

    /// Records `op`, made just now, in the log of the volume of `at`.
    pub fn record_now(&mut self, at: u64, op: Op) {
        self.record(at, now_ns(), op);
    }

    /// Records `op`, made at `t`, in the log of the volume of `at`,
    /// naming first the inodes of the committed tree it uses.
    fn record(&mut self, at: u64, t: i64, op: Op) {
        let Some(volume) = self.volume_of(at) else {
            return;
        };
        let idents = self.idents_for(&volume, &op.uses());
        let Some(j) = self.journal_mut(&volume) else {
            return;
        };
        match idents {
            Some(idents) => {
                for (ino, parent, name) in idents {
                    j.push(t, Op::Ident { ino, parent, name });
                }
                let commit_point = matches!(
                    op,
                    Op::Unlink { .. } | Op::Rmdir { .. } | Op::Rename { .. } | Op::Link { .. }
                );
                j.push(t, op);
                if commit_point {
                    if let Err(e) = j.write() {
                        tracing::warn!("volume {volume}: writing its intent log: {e}");
                        j.broken = true;
                    }
                }
            }
            None => {
                // An inode the log cannot name: the next fsync commits.
                tracing::debug!("volume {volume}: a change the intent log cannot name");
                j.broken = true;
            }
        }
    }

    fn journal_mut(&mut self, volume: &str) -> Option<&mut Journal> {
        self.vols.get_mut(volume)?.journal.as_mut()
    }

    /// `Ident` records (inode, directory, name) that name `inos` and the
    /// directories above them the log does not know yet, outermost first;
    /// `None` where one has no name.
    fn idents_for(&self, volume: &str, inos: &[u64]) -> Option<Vec<(u64, u64, Vec<u8>)>> {
        let Some(j) = self.vols.get(volume).and_then(|v| v.journal.as_ref()) else {
            return Some(Vec::new());
        };
        let mut out = Vec::new();
        let mut named = HashSet::new();
        for &ino in inos {
            let mut chain = Vec::new();
            let mut cur = ino;
            while !j.knows(cur) && !named.contains(&cur) {
                let (parent, name) = self.name_of(cur)?;
                chain.push((cur, parent, name));
                cur = parent;
            }
            for link in chain.into_iter().rev() {
                named.insert(link.0);
                out.push(link);
            }
        }
        Some(out)
    }

    /// A directory holding `ino`, and its name there.
    fn name_of(&self, ino: u64) -> Option<(u64, Vec<u8>)> {
        let inode = self.table.get(ino)?;
        inode.parents.iter().find_map(|&p| {
            let dir = self.table.get(p)?.dir()?;
            let (name, _) = dir.children.iter().find(|(_, s)| **s == Slot::Ino(ino))?;
            Some((p, name.clone()))
        })
    }

    /// Notes bytes written to `ino`, for the log at its next `fsync`.
    pub(super) fn note_written(&mut self, ino: u64, offset: u64, len: u64) {
        if let Some(volume) = self.volume_of(ino) {
            if let Some(j) = self.journal_mut(&volume) {
                j.wrote(ino, offset, len);
            }
        }
    }

    /// `fsync` of `ino` (a file or directory): makes the changes to its
    /// volume durable in the intent log, or commits the volume where the
    /// log cannot take them. Nothing to do where nothing changed.
    pub fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        let attached = self
            .inode(ino)
            .map(|i| self.is_attached(i))
            .unwrap_or(false);
        let Some(volume) = self.volume_of(ino).filter(|_| attached) else {
            return Ok(());
        };
        match self.log_fsync(ino, &volume) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!("volume {volume}: writing its intent log: {e}; committing instead");
            }
        }
        self.commit(&volume).map(drop).map_err(|e| {
            tracing::error!("commit of volume {volume}: {e}");
            no_space(&e).unwrap_or(libc::EIO)
        })
    }

    /// Writes what `fsync` of `ino` needs to the log; `Ok(false)` where the
    /// volume must be committed instead.
    fn log_fsync(&mut self, ino: u64, volume: &str) -> std::io::Result<bool> {
        let Some(j) = self.journal_mut(volume) else {
            return Ok(false);
        };
        if j.broken || j.len() > LOG_FILE_MAX {
            return Ok(false);
        }
        let written = j.take_written(ino);
        if !written.is_empty() && !self.log_data(ino, &written)? {
            return Ok(false);
        }
        let Some(j) = self.journal_mut(volume) else {
            return Ok(false);
        };
        if j.broken {
            return Ok(false);
        }
        j.flush()?;
        Ok(true)
    }

    /// Records the bytes of `ino` in `written` (ranges); `Ok(false)` where
    /// they are too many to log.
    fn log_data(&mut self, ino: u64, written: &[(u64, u64)]) -> std::io::Result<bool> {
        let Ok(inode) = self.inode(ino) else {
            return Ok(true);
        };
        if inode.parents.is_empty() {
            // Unlinked: nothing will find it after a crash.
            return Ok(true);
        }
        let Kind::File(data) = &inode.kind else {
            return Ok(true);
        };
        let size = data.size();
        let clipped: Vec<(u64, u64)> = written
            .iter()
            .filter(|r| r.0 < size)
            .map(|&(s, e)| (s, e.min(size)))
            .collect();
        if clipped.iter().map(|r| r.1 - r.0).sum::<u64>() > LOG_DATA_MAX {
            return Ok(false);
        }
        let mut ranges = Vec::with_capacity(clipped.len());
        for (s, e) in clipped {
            let bytes = match data {
                Data::Memory(m) => m[s as usize..e as usize].to_vec(),
                Data::Upper(u) => {
                    let mut buf = vec![0; (e - s) as usize];
                    u.file_once()?.read_exact_at(&mut buf, s)?;
                    buf
                }
                // Committed since it was written: nothing new.
                Data::Chunks { .. } => continue,
            };
            ranges.push((s, serde_bytes::ByteBuf::from(bytes)));
        }
        let op = Op::Data {
            ino,
            size,
            mode: inode.meta.mode,
            mtime_ns: inode.meta.mtime_ns,
            ranges,
        };
        self.record(ino, now_ns(), op);
        Ok(true)
    }

    /// A new intent log for `volume` (as loaded from `row`, its root at
    /// inode `root`).
    pub(crate) fn new_journal(
        &self,
        volume: &str,
        row: &shale_core::catalog::VolumeRow,
        root: u64,
    ) -> Journal {
        let header = Header {
            volume: volume.to_string(),
            base: DirRef {
                tree: row.root,
                bytes: row.bytes,
                files: row.files,
                entries: 0,
            },
            root,
        };
        Journal::new(journal::path_of(self.pool.root(), volume), header)
    }

    /// Claims the right to write `volume` as [`State::claim`] does, but not
    /// while the intent log of a mount that stopped without unmounting
    /// waits to be applied (`shale unmount` of that mount, or the next
    /// `shale mount`, applies it).
    pub(crate) fn claim_unless_logged(
        &self,
        volume: &str,
    ) -> shale_core::Result<Result<Option<shale_core::coord::mounts::WriterClaim>, String>> {
        let claim = self.claim(volume)?;
        if let Ok(Some(_)) = &claim {
            let path = journal::path_of(self.pool.root(), volume);
            if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
                return Ok(Err(format!(
                    "a mount that stopped without unmounting (its intent log {} waits to \
                     be applied by `shale unmount` of that mount or a new `shale mount`)",
                    path.display()
                )));
            }
        }
        Ok(claim)
    }

    /// Sets what a logged write left in a file's attributes (replaying a
    /// log).
    pub(crate) fn set_written_meta(
        &mut self,
        ino: u64,
        mode: u32,
        mtime_ns: i64,
    ) -> Result<(), Errno> {
        let i = self.inode_mut(ino)?;
        i.meta.mode = mode;
        i.meta.mtime_ns = mtime_ns;
        self.touch(ino);
        Ok(())
    }

    /// Makes `volume` look as of the commit whose root tree is `base`
    /// (replaying a log that began there); returns whether the volume has
    /// moved on since, so that committing will keep the result as a
    /// snapshot instead.
    pub(crate) fn rebase(&mut self, volume: &str, base: DirRef) -> bool {
        let Some(v) = self.vols.get_mut(volume) else {
            return false;
        };
        if v.committed == base.tree {
            return false;
        }
        v.committed = base.tree;
        v.bytes = base.bytes;
        let root = v.root;
        if let Some(d) = self.table.get_mut(root).and_then(|i| i.dir_mut()) {
            d.base = Some(base);
            d.children.clear();
            d.subdirs = None;
        }
        true
    }

    /// Starts `volume`'s log again after a commit (or a reload) whose root
    /// tree is `base`.
    pub(crate) fn restart_journal(&mut self, volume: &str, base: DirRef) {
        if let Some(j) = self.journal_mut(volume) {
            if let Err(e) = j.reset(base) {
                tracing::error!("volume {volume}: emptying its intent log: {e}");
                j.broken = true;
            }
        }
    }
}
