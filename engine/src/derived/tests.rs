//! The derived-copy protocol against an in-memory source, with faults
//! injected into sources and change sets: copies end equal to their source
//! or untouched, and the writer role is never left held.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::apply::{ChangeSet, Turn};
use super::*;
use crate::storage::{Dim, FixedType, KeySpec, Row, Schema, Store, StoreOptions, TextCol};

fn spec() -> CopySpec {
    CopySpec {
        tag: "source-1".into(),
        table: "rows".into(),
        schema: Schema::builder()
            .key("key", KeySpec::new(Dim::new(2).unwrap()).with_index(None))
            .text("body")
            .fixed("sid", FixedType::U64)
            .unique("sid")
            .build()
            .unwrap(),
        source_id: "sid".into(),
        deriver: None,
    }
}

fn body() -> TextCol {
    spec().schema.text("body").unwrap()
}

fn row(id: u64, len: usize) -> Row {
    let s = spec().schema;
    Row::new(&s)
        .with(s.key("key").unwrap(), vec![1.0, id as f32])
        .with(body(), format!("{id}:{}", "x".repeat(len)))
}

/// A source whose rows may fail or panic after `fault_after` rows.
#[derive(Default)]
struct Source {
    rows: BTreeMap<u64, Row>,
    fault_after: Option<usize>,
    panics: bool,
}

impl RowSource for Source {
    fn ids(&mut self) -> Result<Vec<u64>> {
        Ok(self.rows.keys().copied().collect())
    }

    fn rows(&mut self, only: Option<&[u64]>, each: &mut dyn FnMut(u64, Row) -> Result<()>) -> Result<()> {
        let ids: Vec<u64> = match only {
            Some(ids) => ids.to_vec(),
            None => self.rows.keys().copied().collect(),
        };
        for (n, id) in ids.into_iter().enumerate() {
            if self.fault_after == Some(n) {
                if self.panics {
                    panic!("injected panic in the source");
                }
                return Err(Error::Internal("injected source failure".into()));
            }
            each(id, self.rows[&id].clone())?;
        }
        Ok(())
    }
}

/// A change set that fails after `fault_after` changes.
struct Faulty(Vec<Change>, usize);

impl ChangeSet for Faulty {
    fn bytes(&self) -> usize {
        self.0.bytes()
    }
    fn replay(&mut self, each: &mut dyn FnMut(Change) -> Result<()>) -> Result<()> {
        for (n, c) in std::mem::take(&mut self.0).into_iter().enumerate() {
            if n == self.1 {
                return Err(Error::Internal("injected change-set failure".into()));
            }
            each(c)?;
        }
        Ok(())
    }
}

const WAIT: RoleWait<'static> = RoleWait {
    timeout: Duration::from_secs(5),
    cancelled: &|| false,
};
const NOW: Turn = Turn {
    waits: 0,
    pause: Duration::from_millis(1),
};

fn opts() -> StoreOptions {
    StoreOptions::reader()
}

fn fresh(dir: &Path, src: &mut Source) -> DerivedCopy {
    DerivedCopy::rebuild(dir, opts(), &spec(), 0, src, WAIT).unwrap().0
}

/// The copy's rows as (source id, body).
fn contents(c: &DerivedCopy) -> BTreeMap<u64, String> {
    let snap = c.store().snapshot().unwrap();
    let t = snap.table(c.table()).unwrap();
    t.rows()
        .map(|r| (r.get(c.source_column()), r.text(body()).unwrap().into_owned()))
        .collect()
}

fn of(src: &Source) -> BTreeMap<u64, String> {
    let b = spec().schema.id("body").unwrap();
    src.rows
        .iter()
        .map(|(id, r)| {
            let v = match r.get(b) {
                crate::storage::Value::Str(s) => s.clone(),
                _ => String::new(),
            };
            (*id, v)
        })
        .collect()
}

/// Whether another handle can take the copy's writer role right now.
fn role_is_free(dir: &Path) -> bool {
    let other = Store::open(dir, StoreOptions::reader()).unwrap();
    let free = other.begin_write(Duration::ZERO, &|| false).is_ok();
    let _ = other.end_write();
    free
}

#[test]
fn publish_applies_at_its_base_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    let c = fresh(&path, &mut Source::default());
    let mut set = vec![Change::Insert(7, row(7, 3)), Change::Insert(9, row(9, 3))];
    assert_eq!(c.publish(0, 1, &mut set, WAIT, NOW).unwrap(), Step::Applied);
    let mut set = vec![Change::Delete(7), Change::Insert(11, row(11, 3))];
    assert_eq!(c.publish(1, 3, &mut set, WAIT, NOW).unwrap(), Step::Applied);
    assert_eq!(c.watermark().unwrap(), 3);
    assert_eq!(contents(&c).keys().copied().collect::<Vec<_>>(), vec![9, 11]);
    // Out of turn: nothing changes.
    let mut set = vec![Change::Insert(20, row(20, 3))];
    assert_eq!(c.publish(5, 6, &mut set.clone(), WAIT, NOW).unwrap(), Step::Behind(3));
    assert_eq!(c.publish(1, 2, &mut set, WAIT, NOW).unwrap(), Step::Ahead(3));
    assert_eq!(c.watermark().unwrap(), 3);
    assert_eq!(contents(&c).len(), 2);
    assert!(role_is_free(&path));
}

/// A later change set that reaches the copy first waits for the earlier one.
#[test]
fn publishes_wait_for_their_turn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    drop(fresh(&path, &mut Source::default()));
    let open = || match DerivedCopy::open(&path, opts(), &spec()).unwrap() {
        Opened::Usable(c) => *c,
        _ => panic!("copy does not open"),
    };
    let (a, b) = (open(), open());
    let turn = Turn {
        waits: 500,
        pause: Duration::from_millis(2),
    };
    std::thread::scope(|s| {
        let later = s.spawn(|| {
            a.publish(1, 2, &mut vec![Change::Insert(2, row(2, 1))], WAIT, turn)
                .unwrap()
        });
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(
            b.publish(0, 1, &mut vec![Change::Insert(1, row(1, 1))], WAIT, turn)
                .unwrap(),
            Step::Applied
        );
        assert_eq!(later.join().unwrap(), Step::Applied);
    });
    assert_eq!(a.watermark().unwrap(), 2);
    assert_eq!(contents(&a).keys().copied().collect::<Vec<_>>(), vec![1, 2]);
}

/// Large change sets go through bulk ingest; either path applies a set
/// whole or not at all, and gives the role back on failure.
#[test]
fn change_sets_of_any_size_are_applied_whole_or_not_at_all() {
    for len in [10usize, 200_000] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let mut src = Source::default();
        for id in 0..10 {
            src.rows.insert(id, row(id, 5));
        }
        let c = fresh(&path, &mut src);
        let set: Vec<Change> = (100..200)
            .map(|id| Change::Insert(id, row(id, len)))
            .chain([Change::Delete(3)])
            .collect();
        assert_eq!(set.bytes() > LOG_BYTES, len > 1000);
        let before = contents(&c);
        let mut faulty = Faulty(set.clone(), 60);
        assert!(c.publish(0, 1, &mut faulty, WAIT, NOW).is_err());
        assert_eq!((c.watermark().unwrap(), contents(&c)), (0, before.clone()), "len {len}");
        assert!(role_is_free(&path));
        assert_eq!(c.publish(0, 1, &mut set.clone(), WAIT, NOW).unwrap(), Step::Applied);
        let after = contents(&c);
        assert_eq!(after.len(), 10 - 1 + 100);
        assert!(!after.contains_key(&3) && after[&150].len() == len + 4);
    }
}

#[test]
fn catch_up_makes_the_copy_equal_its_source() {
    for n in [50u64, 3000] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let mut src = Source::default();
        for id in 0..20 {
            src.rows.insert(id * 3, row(id * 3, 4));
        }
        let c = fresh(&path, &mut src);
        // The source moves on without the copy: rows removed and added.
        for id in 0..10 {
            src.rows.remove(&(id * 3));
        }
        for id in 1000..1000 + n {
            src.rows.insert(id, row(id, 8));
        }
        // A failing source leaves the copy as it was, and the role free.
        src.fault_after = Some(n as usize / 2);
        assert!(c.catch_up(5, &mut src, WAIT).is_err());
        assert_eq!(c.watermark().unwrap(), 0);
        assert_eq!(contents(&c).len(), 20);
        assert!(role_is_free(&path));
        src.fault_after = None;
        assert_eq!(c.catch_up(5, &mut src, WAIT).unwrap(), Step::Applied);
        assert_eq!((c.watermark().unwrap(), contents(&c)), (5, of(&src)), "n {n}");
        // In step: nothing to do; past the source: left to a rebuild.
        assert_eq!(c.catch_up(5, &mut src, WAIT).unwrap(), Step::Applied);
        assert_eq!(c.catch_up(4, &mut src, WAIT).unwrap(), Step::Ahead(5));
    }
}

/// A panic in the middle of a catch-up (or a publish) gives the writer role
/// back at once: another handle takes it without waiting.
#[test]
fn a_panic_mid_protocol_releases_the_role() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    let mut src = Source::default();
    let c = fresh(&path, &mut src);
    for id in 0..10 {
        src.rows.insert(id, row(id, 4));
    }
    src.fault_after = Some(4);
    src.panics = true;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.catch_up(1, &mut src, WAIT)));
    assert!(caught.is_err());
    assert!(role_is_free(&path));
    struct Panics;
    impl ChangeSet for Panics {
        fn bytes(&self) -> usize {
            0
        }
        fn replay(&mut self, _: &mut dyn FnMut(Change) -> Result<()>) -> Result<()> {
            panic!("injected panic in a change set")
        }
    }
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.publish(0, 1, &mut Panics, WAIT, NOW)));
    assert!(caught.is_err());
    assert!(role_is_free(&path));
    assert_eq!(c.watermark().unwrap(), 0);
}

#[test]
fn rebuild_replaces_missing_foreign_and_stale_copies_and_fails_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    let mut src = Source::default();
    for id in 0..500 {
        src.rows.insert(id, row(id, 30));
    }
    assert!(matches!(
        DerivedCopy::open(&path, opts(), &spec()).unwrap(),
        Opened::Missing
    ));
    let (c, r) = DerivedCopy::rebuild(&path, opts(), &spec(), 9, &mut src, WAIT).unwrap();
    assert_eq!((r.rows, c.watermark().unwrap()), (500, 9));
    assert_eq!(contents(&c), of(&src));
    drop(c);
    // Another tag or schema: unusable.
    let foreign = CopySpec {
        tag: "source-2".into(),
        ..spec()
    };
    assert!(matches!(
        DerivedCopy::open(&path, opts(), &foreign).unwrap(),
        Opened::Unusable(_)
    ));
    // A rebuild that fails part-way leaves the old copy in place.
    src.rows.insert(900, row(900, 1));
    src.fault_after = Some(300);
    assert!(DerivedCopy::rebuild(&path, opts(), &spec(), 10, &mut src, WAIT).is_err());
    let Opened::Usable(old) = DerivedCopy::open(&path, opts(), &spec()).unwrap() else {
        panic!("old copy lost")
    };
    assert_eq!(old.watermark().unwrap(), 9);
    // While another handle holds the role, a rebuild waits, then gives up.
    old.store().begin_write(Duration::ZERO, &|| false).unwrap();
    src.fault_after = None;
    let short = RoleWait {
        timeout: Duration::from_millis(20),
        cancelled: &|| false,
    };
    assert!(matches!(
        DerivedCopy::rebuild(&path, opts(), &spec(), 10, &mut src, short),
        Err(Error::WriterLocked { .. })
    ));
    old.store().end_write().unwrap();
    let (c, _) = DerivedCopy::rebuild(&path, opts(), &spec(), 10, &mut src, WAIT).unwrap();
    assert_eq!((c.watermark().unwrap(), contents(&c)), (10, of(&src)));
    // The old handle notices the store was replaced.
    assert_eq!(old.watermark().unwrap(), 10);
}
