//! Random sequences of insert / update / upsert / delete / batch / flush /
//! merge / reopen / reader checks against an in-memory model, with graphs
//! built at every flush and merge: the store's contents must always equal
//! the model's, through the writer and through reader handles.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::Notes;
use engram::index::{Hnsw, Search, SearchParams};
use engram::kernels::distance::{distance, Metric};
use engram::storage::{Row, RowId, Sparse, Store, StoreOptions, Update, Value, WriteBatch};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Insert(Vec<u8>),
    Update(usize, u8),
    Upsert(u8, u8),
    Delete(usize),
    Batch(Vec<BatchOp>),
    Ingest(Vec<u8>, usize),
    Flush,
    Merge,
    Reopen,
    Reader,
}

#[derive(Clone, Debug)]
enum BatchOp {
    Delete(usize),
    Append(u8),
    Upsert(u8, u8),
    Update(usize, u8),
}

fn batch_op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        any::<usize>().prop_map(BatchOp::Delete),
        any::<u8>().prop_map(BatchOp::Append),
        (0u8..6, any::<u8>()).prop_map(|(t, d)| BatchOp::Upsert(t, d)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, d)| BatchOp::Update(i, d)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 1..6).prop_map(Op::Insert),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, d)| Op::Update(i, d)),
        3 => (0u8..6, any::<u8>()).prop_map(|(t, d)| Op::Upsert(t, d)),
        3 => any::<usize>().prop_map(Op::Delete),
        2 => proptest::collection::vec(batch_op(), 1..6).prop_map(Op::Batch),
        1 => (proptest::collection::vec(any::<u8>(), 0..30), any::<usize>()).prop_map(|(s, d)| Op::Ingest(s, d)),
        1 => Just(Op::Flush),
        1 => Just(Op::Merge),
        1 => Just(Op::Reopen),
        1 => Just(Op::Reader),
    ]
}

struct Model {
    notes: Notes,
    rows: BTreeMap<u64, Row>,
    next_id: u64,
}

impl Model {
    /// A row whose every column is derived from `seed` and `tag`, so a
    /// mix-up shows; its edges name earlier ids.
    fn row(&self, seed: u8, tag: u64) -> Row {
        let n = &self.notes;
        let s = f32::from(seed);
        let edges: Vec<RowId> = (0..u64::from(seed % 3))
            .filter(|e| *e < self.next_id)
            .map(RowId)
            .collect();
        n.canonical(
            Row::new(&n.schema)
                .with(n.key, vec![s, -s, s * 0.5, 1.0 + (tag % 7) as f32])
                .with(n.ns, format!("ns{}", seed % 3))
                .with(n.n, u64::from(seed))
                .with(n.w, s * 0.25)
                .with(n.ts, i64::from(seed) * 1000)
                .with(n.next, Sparse::counts([(u32::from(seed), 1), (7, u32::from(seed) + 1)]))
                .with(n.text, format!("row {seed} {}", "x".repeat(usize::from(seed) % 40)))
                .with(n.edges, edges)
                .with(n.tag, tag),
        )
    }

    fn target(&self, i: usize) -> u64 {
        if self.next_id == 0 {
            0
        } else {
            (i as u64) % self.next_id
        }
    }

    fn updates(&self, d: u8) -> Vec<Update> {
        let n = &self.notes;
        vec![
            n.n.add(u64::from(d)),
            n.w.set(f32::from(d) * 0.5),
            n.next.merge(Sparse::counts([(u32::from(d % 5), 1)])),
        ]
    }

    fn conflict(&self, d: u8) -> Vec<Update> {
        let n = &self.notes;
        vec![n.n.add(u64::from(d)), n.next.merge(Sparse::counts([(9, u32::from(d))]))]
    }

    /// Apply `ups` to the model row `id`, as the store does.
    fn apply(&mut self, id: u64, ups: &[Update]) {
        let schema = self.notes.schema.clone();
        let Some(r) = self.rows.get_mut(&id) else { return };
        for u in ups {
            let u = u.clone().check("t", &schema).unwrap();
            let col = u.column();
            let cur = r.get(col).clone();
            let new = match (u, cur) {
                (Update::Set(_, v), _) => v,
                (Update::Add(_, Value::Int(d)), Value::UInt(x)) => Value::UInt(x.saturating_add_signed(d)),
                (Update::Add(_, Value::UInt(d)), Value::UInt(x)) => Value::UInt(x.saturating_add(d)),
                (Update::Add(_, Value::Float(d)), Value::Float(x)) => Value::Float(f64::from((x + d) as f32)),
                (Update::Merge(_, s), Value::Sparse(x)) => {
                    let pairs = |v: &Sparse| match &v.weights {
                        engram::storage::Weights::Counts(c) => {
                            v.ids.iter().copied().zip(c.iter().copied()).collect::<Vec<_>>()
                        }
                        _ => unreachable!(),
                    };
                    Value::Sparse(Sparse::counts(pairs(&x).into_iter().chain(pairs(&s))))
                }
                other => panic!("model cannot apply {other:?}"),
            };
            r.set_value(col, new);
        }
    }

    fn find_tag(&self, tag: u64) -> Option<u64> {
        self.rows
            .iter()
            .find(|(_, r)| r.get(self.notes.tag.0) == &Value::UInt(tag))
            .map(|(id, _)| *id)
    }

    /// Insert `row` at the next id.
    fn push(&mut self, row: Row) -> u64 {
        let id = self.next_id;
        self.rows.insert(id, row);
        self.next_id += 1;
        id
    }

    /// An upsert: the row found by its tag is updated, or the row inserted.
    fn upsert(&mut self, tag: u8, d: u8) -> (u64, bool) {
        let tag = u64::from(tag);
        match self.find_tag(tag) {
            Some(id) => {
                let ups = self.conflict(d);
                self.apply(id, &ups);
                (id, false)
            }
            None => {
                let row = self.row(d, tag);
                (self.push(row), true)
            }
        }
    }
}

fn opts() -> StoreOptions {
    StoreOptions {
        memtable_bytes: 4 << 10,
        indexer: Some(Arc::new(Hnsw { threads: 1, seed: 1 })),
        ..StoreOptions::default()
    }
}

fn check(store: &Store, m: &Model) -> Result<(), TestCaseError> {
    let t = store.table("t").unwrap();
    let got: Vec<(u64, Row)> = store
        .scan(t)
        .unwrap()
        .map(|r| r.map(|(id, row)| (id.0, row)).unwrap())
        .collect();
    let want: Vec<(u64, Row)> = m.rows.iter().map(|(k, v)| (*k, v.clone())).collect();
    prop_assert_eq!(&got, &want);
    for (id, row) in m.rows.iter().take(5) {
        prop_assert_eq!(store.get(t, RowId(*id)).unwrap(), Some(row.clone()));
    }
    prop_assert_eq!(store.stats().unwrap().tables[0].live_rows, m.rows.len() as u64);
    // Unique lookups find exactly the model's rows.
    let snap = store.snapshot().unwrap();
    let view = snap.table(t).unwrap();
    for tag in 0..6u64 {
        prop_assert_eq!(view.find(&Value::UInt(tag)).unwrap().map(|r| r.0), m.find_tag(tag));
    }
    // A search returns live rows only, nearest first, and finds the nearest.
    if let Some((_, probe)) = m.rows.iter().next() {
        let Value::Vector(q) = probe.get(m.notes.key.0).clone() else {
            unreachable!()
        };
        let hits = store.search(t, &q, 3, &SearchParams::default()).unwrap();
        prop_assert_eq!(hits.len(), m.rows.len().min(3));
        prop_assert!(hits.iter().all(|h| m.rows.contains_key(&h.id.0)));
        prop_assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
        let best = m
            .rows
            .values()
            .map(|r| match r.get(m.notes.key.0) {
                Value::Vector(k) => distance(Metric::Cosine, &q, k),
                _ => unreachable!(),
            })
            .fold(f32::INFINITY, f32::min);
        prop_assert!((hits[0].distance - best).abs() < 1e-5, "{} vs {best}", hits[0].distance);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..50)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut store = Store::create(&path, opts()).unwrap();
        let mut m = Model { notes: Notes::new(4, true), rows: BTreeMap::new(), next_id: 0 };
        let t = store.create_table("t", m.notes.schema.clone()).unwrap();
        for op in ops {
            match op {
                Op::Insert(seeds) => {
                    let rows: Vec<Row> = seeds
                        .iter()
                        .enumerate()
                        .map(|(k, s)| m.row(*s, 1_000_000 + m.next_id + k as u64))
                        .collect();
                    let ids = store.insert_batch(t, rows.clone()).unwrap();
                    for (id, r) in ids.iter().zip(rows) {
                        prop_assert_eq!(id.0, m.push(r));
                    }
                }
                Op::Update(i, d) => {
                    let id = m.target(i);
                    let live = m.rows.contains_key(&id);
                    let ups = m.updates(d);
                    prop_assert_eq!(store.update(t, RowId(id), ups.clone()).unwrap(), live);
                    m.apply(id, &ups);
                }
                Op::Upsert(tag, d) => {
                    let row = m.row(d, u64::from(tag));
                    let got = store.upsert(t, row, m.conflict(d)).unwrap();
                    let want = m.upsert(tag, d);
                    prop_assert_eq!((got.0 .0, got.1), want);
                }
                Op::Delete(i) => {
                    // Sometimes a live row, sometimes one already gone.
                    let id = m.target(i);
                    let existed = m.rows.remove(&id).is_some();
                    prop_assert_eq!(store.delete(t, RowId(id)).unwrap(), existed);
                }
                Op::Batch(bops) => {
                    let mut b = WriteBatch::new();
                    let mut upserts = Vec::new();
                    // Resolved in the order the batch applies: deletes,
                    // appends, upserts, updates.
                    for o in &bops {
                        if let BatchOp::Delete(i) = o {
                            let id = m.target(*i);
                            b.delete(t, RowId(id));
                            m.rows.remove(&id);
                        }
                    }
                    let mut appended = Vec::new();
                    for o in &bops {
                        if let BatchOp::Append(s) = o {
                            let row = m.row(*s, 2_000_000 + m.next_id);
                            b.append(t, row.clone());
                            appended.push(m.push(row));
                        }
                    }
                    for o in &bops {
                        if let BatchOp::Upsert(tag, d) = o {
                            b.upsert(t, m.row(*d, u64::from(*tag)), m.conflict(*d));
                            upserts.push(m.upsert(*tag, *d));
                        }
                    }
                    for o in &bops {
                        if let BatchOp::Update(i, d) = o {
                            let id = m.target(*i);
                            let ups = m.updates(*d);
                            b.update(t, RowId(id), ups.clone());
                            m.apply(id, &ups);
                        }
                    }
                    let r = store.write(b).unwrap();
                    prop_assert_eq!(r.appended.iter().map(|r| r.0).collect::<Vec<_>>(), appended);
                    prop_assert_eq!(r.upserted.iter().map(|(r, n)| (r.0, *n)).collect::<Vec<_>>(), upserts);
                }
                Op::Ingest(seeds, d) => {
                    let gone = m.target(d);
                    let existed = m.rows.remove(&gone).is_some();
                    let first = m.next_id;
                    let rows: Vec<Row> = seeds
                        .iter()
                        .enumerate()
                        .map(|(k, s)| m.row(*s, 3_000_000 + first + k as u64))
                        .collect();
                    let r = store.ingest(t, rows.clone(), &[RowId(gone)], Some(first)).unwrap();
                    for row in rows {
                        m.push(row);
                    }
                    prop_assert_eq!(r.ids, first..m.next_id);
                    prop_assert_eq!(r.deleted, usize::from(existed));
                    prop_assert_eq!(store.watermark().unwrap(), first);
                }
                Op::Flush => store.flush().unwrap(),
                Op::Merge => {
                    store.merge().unwrap();
                    let st = store.stats().unwrap();
                    prop_assert!(st.tables[0].segments <= 1);
                }
                Op::Reopen => {
                    drop(store);
                    store = Store::open(&path, opts()).unwrap();
                }
                Op::Reader => {
                    let reader = Store::open(&path, StoreOptions::reader()).unwrap();
                    check(&reader, &m)?;
                }
            }
            check(&store, &m)?;
        }
        // A reader in this process sees the same thing, and so does a reopen.
        let reader = Store::open(&path, StoreOptions::reader()).unwrap();
        check(&reader, &m)?;
        drop(store);
        let store = Store::open(&path, opts()).unwrap();
        check(&store, &m)?;
    }
}
