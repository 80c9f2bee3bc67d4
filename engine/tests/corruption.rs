//! Torn and corrupt files: every case either recovers the valid prefix or
//! fails with a typed error. None may panic or return wrong rows silently.

mod common;

use std::path::{Path, PathBuf};

use common::Notes;
use engram::storage::{Row, RowId, Sparse, Store, StoreOptions};
use engram::Error;

fn notes() -> Notes {
    Notes::new(3, false)
}

fn row(i: u64) -> Row {
    let n = notes();
    n.canonical(
        n.row(vec![i as f32, 1.0, -(i as f32)], &format!("text of row {i}"))
            .with(n.next, Sparse::counts([(i as u32, 2)]))
            .with(n.ns, format!("ns{}", i % 3))
            .with(n.n, i),
    )
}

fn rows_of(store: &Store) -> Result<Vec<(u64, Row)>, Error> {
    let t = store.table("t")?;
    store.scan(t)?.map(|r| r.map(|(id, row)| (id.0, row))).collect()
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn wal_cut_at_every_byte_of_its_last_record_recovers_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let last_start;
    {
        let store = Store::create(&src, StoreOptions::default()).unwrap();
        let t = store.create_table("t", notes().schema).unwrap();
        for i in 0..5 {
            store.insert(t, row(i)).unwrap();
        }
        last_start = store.stats().unwrap().wal_bytes;
        store.insert_batch(t, vec![row(5), row(6)]).unwrap();
    }
    let wal = files(&src, "wal-").pop().unwrap();
    let full = std::fs::read(&wal).unwrap();
    assert!(full.len() as u64 > last_start);
    let work = dir.path().join("work");
    for cut in last_start as usize..=full.len() {
        copy_dir(&src, &work);
        let wal = files(&work, "wal-").pop().unwrap();
        std::fs::write(&wal, &full[..cut]).unwrap();
        let store = Store::open(&work, StoreOptions::default()).unwrap();
        let got = rows_of(&store).unwrap();
        let want: Vec<u64> = if cut == full.len() {
            (0..7).collect()
        } else {
            (0..5).collect()
        };
        assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), want, "cut at {cut}");
        for (id, r) in &got {
            assert_eq!(r, &row(*id));
        }
        // The torn tail is cut off, so new writes are readable after reopen.
        let t = store.table("t").unwrap();
        let id = store.insert(t, row(100)).unwrap();
        drop(store);
        let store = Store::open(&work, StoreOptions::default()).unwrap();
        assert_eq!(store.get(t, id).unwrap(), Some(row(100)));
    }
}

#[test]
fn flipped_wal_byte_keeps_the_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let mut ends = vec![];
    {
        let store = Store::create(&src, StoreOptions::default()).unwrap();
        let t = store.create_table("t", notes().schema).unwrap();
        ends.push(store.stats().unwrap().wal_bytes);
        for i in 0..6 {
            store.insert(t, row(i)).unwrap();
            ends.push(store.stats().unwrap().wal_bytes);
        }
    }
    let wal = files(&src, "wal-").pop().unwrap();
    let full = std::fs::read(&wal).unwrap();
    let work = dir.path().join("work");
    for pos in (ends[0] as usize..full.len()).step_by(7) {
        copy_dir(&src, &work);
        let mut b = full.clone();
        b[pos] ^= 0x41;
        std::fs::write(files(&work, "wal-").pop().unwrap(), &b).unwrap();
        let store = Store::open(&work, StoreOptions::default()).unwrap();
        // Records wholly before the flipped byte survive; none after it.
        let intact = ends.iter().skip(1).filter(|e| (**e as usize) <= pos).count() as u64;
        let got: Vec<u64> = rows_of(&store).unwrap().into_iter().map(|r| r.0).collect();
        assert_eq!(got, (0..intact).collect::<Vec<_>>(), "flip at {pos}");
    }
}

fn flushed_store(dir: &Path) -> Vec<(u64, Row)> {
    let store = Store::create(dir, StoreOptions::default()).unwrap();
    let t = store.create_table("t", notes().schema).unwrap();
    store.insert_batch(t, (0..300).map(row).collect()).unwrap();
    store.delete(t, RowId(7)).unwrap();
    // Updates of segment rows make a patch file.
    store.flush().unwrap();
    store.update(t, RowId(9), vec![notes().n.add(5)]).unwrap();
    store.flush().unwrap();
    rows_of(&store).unwrap()
}

#[test]
fn flipped_segment_bytes_are_detected_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let want = flushed_store(&src);
    let seg = files(&src, "seg-").pop().unwrap();
    let full = std::fs::read(&seg).unwrap();
    let work = dir.path().join("work");
    let verify = StoreOptions {
        verify_checksums: true,
        ..StoreOptions::default()
    };
    let positions: Vec<usize> = (0..640.min(full.len())).chain((640..full.len()).step_by(37)).collect();
    for pos in positions {
        copy_dir(&src, &work);
        let mut b = full.clone();
        b[pos] ^= 0x08;
        std::fs::write(files(&work, "seg-").pop().unwrap(), &b).unwrap();
        // With checksums verified, a flip is an error unless it hit padding.
        match Store::open(&work, verify.clone()) {
            Ok(s) => assert_eq!(rows_of(&s).unwrap(), want, "undetected flip at {pos} changed rows"),
            Err(e) => assert!(
                matches!(
                    e,
                    Error::Corrupt { .. } | Error::BadMagic { .. } | Error::UnsupportedVersion { .. }
                ),
                "{e}"
            ),
        }
        // Without verification, nothing panics: reads give rows or errors.
        if let Ok(s) = Store::open(&work, StoreOptions::default()) {
            let _ = rows_of(&s);
            let _ = s.verify();
        }
    }
}

#[test]
fn flipped_or_cut_manifest_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    flushed_store(&src);
    let full = std::fs::read(src.join("MANIFEST")).unwrap();
    let work = dir.path().join("work");
    for pos in 0..full.len() {
        copy_dir(&src, &work);
        let mut b = full.clone();
        b[pos] ^= 0x02;
        std::fs::write(work.join("MANIFEST"), &b).unwrap();
        let e = Store::open(&work, StoreOptions::default())
            .err()
            .unwrap_or_else(|| panic!("flip at {pos} accepted"));
        assert!(
            matches!(
                e,
                Error::Corrupt { .. } | Error::BadMagic { .. } | Error::UnsupportedVersion { .. }
            ),
            "{e}"
        );
    }
    for cut in (0..full.len()).step_by(5) {
        copy_dir(&src, &work);
        std::fs::write(work.join("MANIFEST"), &full[..cut]).unwrap();
        assert!(Store::open(&work, StoreOptions::reader()).is_err());
    }
}

/// Rewrite a header's version field and fix up its checksum, as a future
/// engram would write it.
fn bump_version(path: &Path, crc_range: std::ops::Range<usize>, crc_at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[8..12].copy_from_slice(&99u32.to_le_bytes());
    let crc = crc32fast_hash(&b[crc_range]);
    b[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

// A tiny CRC-32 (IEEE) so the test does not share the engine's code path.
fn crc32fast_hash(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_newer_format_version_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    flushed_store(&src);
    let work = dir.path().join("work");

    copy_dir(&src, &work);
    bump_version(&work.join("MANIFEST"), 0..36, 36);
    let e = Store::open(&work, StoreOptions::default()).err().unwrap();
    assert!(matches!(e, Error::UnsupportedVersion { found: 99, .. }), "{e}");
    assert!(e.to_string().contains("rebuild"));

    copy_dir(&src, &work);
    bump_version(&files(&work, "seg-").pop().unwrap(), 0..60, 60);
    assert!(matches!(
        Store::open(&work, StoreOptions::default()),
        Err(Error::UnsupportedVersion { found: 99, .. })
    ));

    copy_dir(&src, &work);
    bump_version(&files(&work, "wal-").pop().unwrap(), 0..28, 28);
    assert!(matches!(
        Store::open(&work, StoreOptions::default()),
        Err(Error::UnsupportedVersion { found: 99, .. })
    ));
}

#[test]
fn flipped_or_cut_patch_file_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let want = flushed_store(&src);
    assert_eq!(
        want.iter().find(|r| r.0 == 9).map(|r| r.1.get(notes().n.0).clone()),
        Some(engram::storage::Value::UInt(14))
    );
    let patch = files(&src, "pat-").pop().expect("a patch file");
    let full = std::fs::read(&patch).unwrap();
    let work = dir.path().join("work");
    for pos in 0..full.len() {
        copy_dir(&src, &work);
        let mut b = full.clone();
        b[pos] ^= 0x04;
        std::fs::write(files(&work, "pat-").pop().unwrap(), &b).unwrap();
        let e = Store::open(&work, StoreOptions::default())
            .err()
            .unwrap_or_else(|| panic!("flip at {pos} accepted"));
        assert!(
            matches!(
                e,
                Error::Corrupt { .. } | Error::BadMagic { .. } | Error::UnsupportedVersion { .. }
            ),
            "{e}"
        );
    }
    copy_dir(&src, &work);
    std::fs::remove_file(files(&work, "pat-").pop().unwrap()).unwrap();
    assert!(matches!(
        Store::open(&work, StoreOptions::reader()),
        Err(Error::Io { .. })
    ));
}
