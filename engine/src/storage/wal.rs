//! The write-ahead log.
//!
//! ```text
//! file   := header record*
//! header := magic "ENGRMWAL" (8) | version u32 | reserved u32 | wal id u64 |
//!           reserved u32 | crc32 of bytes 0..28 u32                 (32 bytes)
//! record := payload length u32 | crc32 of payload u32 | payload (rkyv WalRecord)
//! ```
//!
//! Records carry consecutive log sequence numbers. Reading stops at the first
//! record that is short, fails its checksum, fails validation or breaks the
//! sequence: everything before it is the log, everything after is a torn tail
//! that is never applied. The WAL is only ever appended to with plain writes
//! (never mmapped: it changes while readers look at it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rkyv::{Archive, Deserialize, Serialize};

use super::codec;
use super::format::{le_u32, Field, WalVersion, MAGIC, VERSION, WAL_MAGIC};
use super::fs::{Fs, FsFile};
use super::legacy;
use super::row::Row;
use super::schema::Schema;
use super::update::Update;
use crate::error::{corrupt, Error, IoContext, Result};

/// WAL header fields after the magic and version (zero: reserved).
const HEADER_PAD: Field = VERSION.then(4);
/// The WAL's number, which the manifest names.
const HEADER_ID: Field = HEADER_PAD.then(8);
const HEADER_PAD2: Field = HEADER_ID.then(4);
/// crc32 of everything before it.
const HEADER_CRC: Field = HEADER_PAD2.then(4);
/// Size of the WAL file header.
pub(crate) const HEADER_LEN: u64 = HEADER_CRC.end() as u64;
const _: () = assert!(HEADER_LEN == 32, "the WAL header layout is part of the format");
/// Largest record accepted; a longer length field is treated as a torn tail.
pub(crate) const MAX_RECORD: usize = 256 << 20;
const FRAME_LEN: usize = 8;

/// When the WAL is fsynced.
///
/// Every policy hands each write to the operating system before the call
/// returns, so a crash of the *process* loses nothing acknowledged under any
/// policy; they differ on a crash of the *machine*.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// fsync before acknowledging every commit group (default): nothing
    /// acknowledged is lost even on power failure.
    #[default]
    Always,
    /// fsync when a commit finds [`BATCH_INTERVAL`] elapsed or [`BATCH_BYTES`]
    /// unsynced since the last fsync; there is no timer, so after a pause the
    /// last commits stay unsynced until the next commit, flush, `sync()` or
    /// close. A machine crash can lose those acknowledged writes.
    Batch,
    /// fsync only on flush, `Store::sync` and close of a handle opened as
    /// the writer (a reader handle giving the role back does not fsync):
    /// fastest; a machine crash can lose every write since the last flush.
    /// For stores derived from a source that is itself durable.
    Off,
}

/// Longest time between fsyncs under [`SyncPolicy::Batch`].
pub const BATCH_INTERVAL: Duration = Duration::from_millis(10);
/// Most unsynced bytes under [`SyncPolicy::Batch`].
pub const BATCH_BYTES: u64 = 4 << 20;

/// One logged change.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) enum WalOp {
    CreateTable {
        table: u32,
        name: String,
        schema: Schema,
    },
    /// Deletes, inserts at resolved ids and updates, applied as one, and
    /// optionally a new watermark.
    Write(WriteOp),
}

/// What one atomic write does, resolved: applied as its deletes, then its
/// inserts, then its updates, then the watermark.
#[derive(Clone, Debug, PartialEq, Default, Archive, Serialize, Deserialize)]
pub(crate) struct WriteOp {
    pub deletes: Vec<TableIds>,
    pub inserts: Vec<TableRows>,
    pub updates: Vec<RowUpdates>,
    pub watermark: Option<u64>,
}

/// Rows of one table inserted at the given increasing ids.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct TableRows {
    pub table: u32,
    pub ids: Vec<u64>,
    pub rows: Vec<Row>,
}

/// Row ids of one table.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct TableIds {
    pub table: u32,
    pub ids: Vec<u64>,
}

/// Updates of one row, applied in order.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct RowUpdates {
    pub table: u32,
    pub id: u64,
    pub updates: Vec<Update>,
}

/// A change with its log sequence number.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct WalRecord {
    pub lsn: u64,
    pub op: WalOp,
}

/// A format 1 record as today's record (its rows as rows of the legacy
/// schema); `None` for a table whose dimension is invalid.
fn from_legacy(r: legacy::WalRecord) -> Option<WalRecord> {
    let rows = |rows: Vec<legacy::Row>| rows.into_iter().map(legacy::convert_row).collect();
    let op = match r.op {
        legacy::WalOp::CreateTable { table, name, dim } => WalOp::CreateTable {
            table,
            name,
            schema: legacy::table_schema(dim).ok()?,
        },
        legacy::WalOp::Insert {
            table,
            first_id,
            rows: r,
        } => WalOp::Write(WriteOp {
            inserts: vec![TableRows {
                table,
                ids: (first_id..first_id + r.len() as u64).collect(),
                rows: rows(r),
            }],
            ..WriteOp::default()
        }),
        legacy::WalOp::Delete { table, ids } => WalOp::Write(WriteOp {
            deletes: vec![TableIds { table, ids }],
            ..WriteOp::default()
        }),
        legacy::WalOp::Batch {
            deletes,
            inserts,
            watermark,
        } => WalOp::Write(WriteOp {
            deletes: deletes
                .into_iter()
                .map(|d| TableIds {
                    table: d.table,
                    ids: d.ids,
                })
                .collect(),
            inserts: inserts
                .into_iter()
                .map(|i| TableRows {
                    table: i.table,
                    ids: i.ids,
                    rows: rows(i.rows),
                })
                .collect(),
            updates: Vec::new(),
            watermark,
        }),
    };
    Some(WalRecord { lsn: r.lsn, op })
}

/// Path of WAL number `id` in store directory `dir`.
pub(crate) fn wal_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("wal-{id:08}.log"))
}

fn header_bytes(id: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    MAGIC.put(&mut h, &WAL_MAGIC);
    VERSION.put(&mut h, &(WalVersion::CURRENT as u32).to_le_bytes());
    HEADER_ID.put(&mut h, &id.to_le_bytes());
    let crc = crc32fast::hash(&h[..HEADER_CRC.at]);
    HEADER_CRC.put(&mut h, &crc.to_le_bytes());
    h
}

fn check_header(path: &Path, h: &[u8], id: u64) -> Result<WalVersion> {
    if h.len() < HEADER_LEN as usize {
        return Err(corrupt(path, h.len() as u64, "WAL header is truncated"));
    }
    if MAGIC.of(h) != WAL_MAGIC {
        return Err(Error::BadMagic {
            path: path.to_path_buf(),
            expected: "WAL",
        });
    }
    if crc32fast::hash(&h[..HEADER_CRC.at]) != HEADER_CRC.u32(h) {
        return Err(corrupt(path, 0, "WAL header checksum mismatch"));
    }
    let version = WalVersion::check(path, VERSION.u32(h))?;
    let found = HEADER_ID.u64(h);
    if found != id {
        return Err(corrupt(
            path,
            HEADER_ID.at as u64,
            format!("WAL id is {found}, manifest expects {id}"),
        ));
    }
    Ok(version)
}

/// What a scan of a WAL found.
pub(crate) struct WalScan {
    /// Valid records in order.
    pub records: Vec<WalRecord>,
    /// Offset just past the last valid record.
    pub end: u64,
    /// Whether bytes remain after `end` (a torn or corrupt tail).
    pub torn: bool,
}

/// Read the valid records of WAL `id` starting at byte `from` (0 or
/// [`HEADER_LEN`] both mean "from the first record"). `next_lsn` is the
/// sequence number the first record must carry, if known.
pub(crate) fn read(fs: &dyn Fs, path: &Path, id: u64, from: u64, mut next_lsn: Option<u64>) -> Result<WalScan> {
    let header = fs.read_prefix(path, HEADER_LEN as usize).at(path)?;
    let version = check_header(path, &header, id)?;
    let from = from.max(HEADER_LEN);
    let buf = fs.read_from(path, from).at(path)?;

    let mut records = Vec::new();
    let mut pos = 0usize;
    while buf.len() - pos >= FRAME_LEN {
        let len = le_u32(&buf, pos) as usize;
        let crc = le_u32(&buf, pos + 4);
        if len > MAX_RECORD || buf.len() - pos - FRAME_LEN < len {
            break;
        }
        let payload = &buf[pos + FRAME_LEN..pos + FRAME_LEN + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        let rec = match version {
            WalVersion::V1 | WalVersion::V2 => codec::decode::<legacy::WalRecord>(payload).ok().and_then(from_legacy),
            WalVersion::V3 => codec::decode::<WalRecord>(payload).ok(),
        };
        let Some(rec) = rec else {
            break;
        };
        if next_lsn.is_some_and(|want| rec.lsn != want) {
            break;
        }
        next_lsn = Some(rec.lsn + 1);
        records.push(rec);
        pos += FRAME_LEN + len;
    }
    Ok(WalScan {
        records,
        end: from + pos as u64,
        torn: pos < buf.len(),
    })
}

/// Appends records to one WAL file. Owned by the store's single writer.
pub(crate) struct WalWriter {
    path: PathBuf,
    file: Box<dyn FsFile>,
    len: u64,
    synced_len: u64,
    last_sync: Instant,
    policy: SyncPolicy,
    buf: Vec<u8>,
}

impl WalWriter {
    /// Create WAL `id` (header written and fsynced; the caller syncs the directory).
    pub fn create(fs: &dyn Fs, dir: &Path, id: u64, policy: SyncPolicy) -> Result<WalWriter> {
        let path = wal_path(dir, id);
        let mut file = fs.create(&path).at(&path)?;
        file.append(&header_bytes(id)).at(&path)?;
        file.sync().at(&path)?;
        Ok(Self::from_parts(path, file, HEADER_LEN, policy))
    }

    /// Open WAL `id` for appending after `valid_len` bytes, cutting off any
    /// torn tail so that new records never follow garbage. A format 1 WAL
    /// is never appended to (a writer upgrades its store first).
    pub fn reopen(fs: &dyn Fs, dir: &Path, id: u64, valid_len: u64, policy: SyncPolicy) -> Result<WalWriter> {
        let path = wal_path(dir, id);
        let header = fs.read_prefix(&path, HEADER_LEN as usize).at(&path)?;
        if check_header(&path, &header, id)? != WalVersion::CURRENT {
            return Err(Error::Internal(format!(
                "WAL {id} is of an older format and cannot be appended to"
            )));
        }
        let mut file = fs.open_append(&path).at(&path)?;
        let on_disk = file.len().at(&path)?;
        if on_disk != valid_len {
            file.set_len(valid_len).at(&path)?;
            file.sync().at(&path)?;
        }
        Ok(Self::from_parts(path, file, valid_len, policy))
    }

    fn from_parts(path: PathBuf, file: Box<dyn FsFile>, len: u64, policy: SyncPolicy) -> WalWriter {
        WalWriter {
            path,
            file,
            len,
            synced_len: len,
            last_sync: Instant::now(),
            policy,
            buf: Vec::new(),
        }
    }

    /// Frame `records` and hand them to the OS in one write, then fsync as the
    /// policy says. On return the records survive a crash of this process
    /// (and of the machine, under [`SyncPolicy::Always`]).
    pub fn append(&mut self, records: &[WalRecord]) -> Result<()> {
        self.buf.clear();
        for r in records {
            let payload = codec::encode(r).map_err(|e| Error::Internal(format!("cannot encode record: {e}")))?;
            if payload.len() > MAX_RECORD {
                return Err(Error::TooLarge {
                    what: "a single atomic write",
                    bytes: payload.len(),
                    limit: MAX_RECORD,
                });
            }
            self.buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            self.buf.extend_from_slice(&payload);
        }
        // On failure the caller stops writing through this handle: part of
        // the buffer may be on disk, and a reopen decides what survives.
        self.file.append(&self.buf).at(&self.path)?;
        self.len += self.buf.len() as u64;
        let due = match self.policy {
            SyncPolicy::Always => true,
            SyncPolicy::Batch => {
                self.len - self.synced_len >= BATCH_BYTES || self.last_sync.elapsed() >= BATCH_INTERVAL
            }
            SyncPolicy::Off => false,
        };
        if due {
            self.sync()?;
        }
        Ok(())
    }

    /// fsync what a writer giving its role back must make durable: all of
    /// it, except under [`SyncPolicy::Off`] (whose writes a flush or
    /// `Store::sync` makes durable).
    pub fn sync_for_release(&mut self) -> Result<()> {
        match self.policy {
            SyncPolicy::Off => Ok(()),
            _ => self.sync(),
        }
    }

    /// fsync everything appended so far.
    pub fn sync(&mut self) -> Result<()> {
        if self.synced_len != self.len {
            self.file.sync().at(&self.path)?;
            self.synced_len = self.len;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::RealFs;

    fn rec(lsn: u64) -> WalRecord {
        WalRecord {
            lsn,
            op: WalOp::Write(WriteOp {
                deletes: vec![TableIds {
                    table: 1,
                    ids: vec![lsn, lsn * 2],
                }],
                ..WriteOp::default()
            }),
        }
    }

    #[test]
    fn records_round_trip_and_every_truncation_yields_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::create(&RealFs, dir.path(), 7, SyncPolicy::Always).unwrap();
        let recs: Vec<_> = (1..=5).map(rec).collect();
        for r in &recs {
            w.append(std::slice::from_ref(r)).unwrap();
        }
        let path = wal_path(dir.path(), 7);
        let scan = read(&RealFs, &path, 7, 0, Some(1)).unwrap();
        assert_eq!(scan.records, recs);
        assert!(!scan.torn);
        let full = std::fs::read(&path).unwrap();
        for cut in HEADER_LEN as usize..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let s = read(&RealFs, &path, 7, 0, Some(1)).unwrap();
            assert_eq!(s.records[..], recs[..s.records.len()]);
            assert!(s.end as usize <= cut);
        }
    }

    #[test]
    fn wrong_id_and_bad_magic_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        WalWriter::create(&RealFs, dir.path(), 3, SyncPolicy::Off).unwrap();
        let path = wal_path(dir.path(), 3);
        assert!(matches!(read(&RealFs, &path, 4, 0, None), Err(Error::Corrupt { .. })));
        let mut b = std::fs::read(&path).unwrap();
        b[0] ^= 0xff;
        std::fs::write(&path, &b).unwrap();
        assert!(matches!(read(&RealFs, &path, 3, 0, None), Err(Error::BadMagic { .. })));
    }
}
