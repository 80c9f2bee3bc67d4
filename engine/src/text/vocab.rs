//! The dynamic vocabulary, kept in a store like every other table: each
//! token the generator learns gets a stable id (its row id), a count, an
//! embedding from the store's [`Embedder`] and a weight. Learning the same
//! token again adds to its count (an upsert by the token's text: the id
//! never changes); weights follow `dw/dt = eta (E - lambda w)`
//! (l2s-transformer §9.3), one Euler step per [`Vocabulary::adapt`], so a
//! token's weight moves toward `E / lambda`, its average difficulty.
//!
//! The embedder a vocabulary was built with is recorded in the store (table
//! `vocab_embedder`); opening it with another is refused, since embeddings
//! of two embedders cannot be compared.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::{
    Dim, FixedCol, FixedType, KeyCol, KeySpec, Row, RowId, Schema, Snapshot, Store, TableId, TextCol, WriteBatch,
};
use crate::text::embed::Embedder;

/// A token's id in a vocabulary: stable for the life of the store.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(pub u64);

/// What a vocabulary knows of one token.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenInfo {
    /// The token.
    pub text: String,
    /// How many times it was learned.
    pub count: u64,
    /// Its weight.
    pub weight: f32,
    /// Its continuation count: how many distinct contexts of the shortest
    /// pattern level it has followed (what Kneser-Ney's lowest order uses).
    pub cont: u64,
}

/// The vocabulary of a store (tables `vocab` and `vocab_embedder`).
///
/// ```
/// use std::sync::Arc;
/// use engram::storage::{Store, StoreOptions};
/// use engram::text::{embed::HashedNgrams, vocab::Vocabulary};
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
/// let vocab = Vocabulary::open_or_create(&store, Arc::new(HashedNgrams::new(64).unwrap())).unwrap();
/// let ids = vocab.learn(&store, &["the", "dog", "the"]).unwrap();
/// assert_eq!(ids[0], ids[2]);
/// let snap = store.snapshot().unwrap();
/// assert_eq!(vocab.get(&snap, ids[0]).unwrap().unwrap().count, 2);
/// assert_eq!(vocab.id(&snap, "dog").unwrap(), Some(ids[1]));
/// ```
pub struct Vocabulary {
    table: TableId,
    embedder: Arc<dyn Embedder>,
    key: KeyCol,
    text: TextCol,
    count: FixedCol<u64>,
    weight: FixedCol<f32>,
    cont: FixedCol<u64>,
}

/// The weight a token starts with.
pub const INITIAL_WEIGHT: f32 = 1.0;

fn vocab_schema(dim: usize) -> Result<Schema> {
    let dim = u32::try_from(dim)
        .ok()
        .and_then(|d| Dim::new(d).ok())
        .ok_or_else(|| Error::InvalidArgument(format!("embedder dimension {dim} is not a valid key dimension")))?;
    Schema::builder()
        .key("embedding", KeySpec::new(dim))
        .text("token")
        .fixed("count", FixedType::U64)
        .fixed("weight", FixedType::F32)
        .fixed("cont", FixedType::U64)
        .unique("token")
        .build()
}

impl Vocabulary {
    /// The vocabulary of `store`, created (empty) if the store has none.
    /// A vocabulary built with another embedder (another id, or dimension)
    /// is an [`Error::InvalidArgument`].
    pub fn open_or_create(store: &Store, embedder: Arc<dyn Embedder>) -> Result<Vocabulary> {
        let schema = vocab_schema(embedder.dim())?;
        let id_schema = Schema::builder().text("id").unique("id").build()?;
        let recorded = match store.table("vocab_embedder") {
            Ok(t) => {
                let snap = store.snapshot()?;
                let ids = id_schema.text("id")?;
                let found: Vec<String> = snap
                    .table(t)?
                    .rows()
                    .map(|r| r.text(ids).map(|s| s.into_owned()))
                    .collect::<Result<_>>()?;
                Some(found)
            }
            Err(Error::NoSuchTable(_)) => None,
            Err(e) => return Err(e),
        };
        let table = match recorded {
            Some(ids) => {
                if ids != [embedder.id()] {
                    return Err(Error::InvalidArgument(format!(
                        "the vocabulary was built with embedder {ids:?}, not {:?}",
                        embedder.id()
                    )));
                }
                store.table("vocab")?
            }
            None => {
                let t = store.create_table("vocab_embedder", id_schema.clone())?;
                let v = store.create_table("vocab", schema.clone())?;
                store.insert(t, Row::new(&id_schema).with(id_schema.text("id")?, embedder.id()))?;
                v
            }
        };
        if *store.schema(table)? != schema {
            return Err(Error::InvalidArgument(
                "table vocab has another schema than a vocabulary's".into(),
            ));
        }
        Ok(Vocabulary {
            table,
            key: schema.key("embedding")?,
            text: schema.text("token")?,
            count: schema.fixed("count")?,
            weight: schema.fixed("weight")?,
            cont: schema.fixed("cont")?,
            embedder,
        })
    }

    /// The vocabulary's table.
    pub fn table(&self) -> TableId {
        self.table
    }

    /// Learn `tokens` (in order, repeats allowed) in one atomic write: a new
    /// token is added with its embedding and [`INITIAL_WEIGHT`], a known one
    /// has its count raised. Returns each token's id, in input order.
    pub fn learn(&self, store: &Store, tokens: &[&str]) -> Result<Vec<TokenId>> {
        let schema = store.schema(self.table)?;
        let mut order: Vec<&str> = Vec::new();
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for &t in tokens {
            if t.is_empty() {
                return Err(Error::InvalidArgument("an empty token".into()));
            }
            let n = counts.entry(t).or_insert(0);
            if *n == 0 {
                order.push(t);
            }
            *n += 1;
        }
        let mut b = WriteBatch::new();
        for t in &order {
            let n = counts[t];
            let row = Row::new(&schema)
                .with(self.key, self.embedder.embed(t))
                .with(self.text, *t)
                .with(self.count, n)
                .with(self.weight, INITIAL_WEIGHT);
            b.upsert(self.table, row, vec![self.count.add(n)]);
        }
        let report = store.write(b)?;
        let ids: HashMap<&str, TokenId> = order
            .iter()
            .zip(&report.upserted)
            .map(|(t, (id, _))| (*t, TokenId(id.0)))
            .collect();
        Ok(tokens.iter().map(|t| ids[t]).collect())
    }

    /// Add `n` to the continuation count of token `id` (the distinct
    /// shortest contexts it has followed), in batch `b`.
    pub(crate) fn add_continuation(&self, b: &mut WriteBatch, id: TokenId, n: u64) {
        b.update(self.table, RowId(id.0), vec![self.cont.add(n)]);
    }

    /// Every token with its continuation count, in id order.
    pub fn continuations(&self, snap: &Snapshot) -> Result<Vec<(TokenId, u64)>> {
        Ok(snap
            .table(self.table)?
            .rows()
            .map(|r| (TokenId(r.id().0), r.get(self.cont)))
            .collect())
    }

    /// Every token with its text and continuation count, in id order.
    pub fn tokens(&self, snap: &Snapshot) -> Result<Vec<(TokenId, String, u64)>> {
        snap.table(self.table)?
            .rows()
            .map(|r| Ok((TokenId(r.id().0), r.text(self.text)?.into_owned(), r.get(self.cont))))
            .collect()
    }

    /// The id of `token`, if learned.
    pub fn id(&self, snap: &Snapshot, token: &str) -> Result<Option<TokenId>> {
        Ok(snap
            .table(self.table)?
            .find(&crate::storage::Value::Str(token.to_string()))?
            .map(|r| TokenId(r.0)))
    }

    /// What is known of token `id`.
    pub fn get(&self, snap: &Snapshot, id: TokenId) -> Result<Option<TokenInfo>> {
        let t = snap.table(self.table)?;
        let Some(r) = t.get(RowId(id.0)) else { return Ok(None) };
        Ok(Some(TokenInfo {
            text: r.text(self.text)?.into_owned(),
            count: r.get(self.count),
            weight: r.get(self.weight),
            cont: r.get(self.cont),
        }))
    }

    /// One step of `dw/dt = eta (E - lambda w)` for each `(token, energy)`:
    /// `w += eta * (E - lambda * w)`, in one atomic write. `eta` and
    /// `lambda` must be finite and non-negative, with `eta * lambda <= 1`
    /// (a larger step would overshoot `E / lambda` and oscillate). The
    /// weights are read and written back: run it where the store's writes
    /// are (one writer at a time).
    pub fn adapt(&self, store: &Store, energies: &[(TokenId, f32)], eta: f32, lambda: f32) -> Result<()> {
        let ok = |x: f32| x.is_finite() && x >= 0.0;
        if !ok(eta) || !ok(lambda) || eta * lambda > 1.0 {
            return Err(Error::InvalidArgument(format!(
                "eta {eta} and lambda {lambda} must be finite, non-negative, with eta * lambda <= 1"
            )));
        }
        let snap = store.snapshot()?;
        let t = snap.table(self.table)?;
        let mut b = WriteBatch::new();
        for &(id, e) in energies {
            if !e.is_finite() {
                return Err(Error::InvalidArgument(format!(
                    "energy {e} of token {} is not finite",
                    id.0
                )));
            }
            let Some(r) = t.get(RowId(id.0)) else {
                return Err(Error::InvalidArgument(format!("no token {}", id.0)));
            };
            let w: f32 = r.get(self.weight);
            b.update(
                self.table,
                RowId(id.0),
                vec![self.weight.set(w + eta * (e - lambda * w))],
            );
        }
        store.write(b)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreOptions;
    use crate::text::embed::HashedNgrams;

    fn embedder(dim: usize) -> Arc<dyn Embedder> {
        Arc::new(HashedNgrams::new(dim).unwrap())
    }

    #[test]
    fn ids_are_stable_counts_add_up_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let (the, dog) = {
            let store = Store::create(&path, StoreOptions::default()).unwrap();
            let v = Vocabulary::open_or_create(&store, embedder(32)).unwrap();
            let a = v.learn(&store, &["the", "dog", "the", "the"]).unwrap();
            assert_eq!((a[0], a[2], a[3]), (a[0], a[0], a[0]));
            assert_ne!(a[0], a[1]);
            store.flush().unwrap();
            let b = v.learn(&store, &["dog", "bites"]).unwrap();
            assert_eq!(b[0], a[1], "a learned token keeps its id, across a flush too");
            (a[0], a[1])
        };
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let v = Vocabulary::open_or_create(&store, embedder(32)).unwrap();
        let snap = store.snapshot().unwrap();
        assert_eq!(
            v.get(&snap, the).unwrap().unwrap(),
            TokenInfo {
                text: "the".into(),
                count: 3,
                weight: 1.0,
                cont: 0
            }
        );
        assert_eq!(v.get(&snap, dog).unwrap().unwrap().count, 2);
        assert_eq!(
            v.id(&snap, "bites")
                .unwrap()
                .map(|i| v.get(&snap, i).unwrap().unwrap().count),
            Some(1)
        );
        assert_eq!(v.id(&snap, "cat").unwrap(), None);
        // The embedding is the embedder's.
        let row = snap.table(v.table()).unwrap().get(RowId(dog.0)).unwrap();
        let want = embedder(32).embed("dog");
        assert!(row.key(v.key).iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6));
        // Another embedder is refused.
        assert!(matches!(
            Vocabulary::open_or_create(&store, embedder(64)),
            Err(Error::InvalidArgument(_))
        ));
        assert!(v.learn(&store, &[""]).is_err());
    }

    #[test]
    fn weights_follow_the_euler_steps_to_e_over_lambda() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path().join("s"), StoreOptions::default()).unwrap();
        let v = Vocabulary::open_or_create(&store, embedder(16)).unwrap();
        let id = v.learn(&store, &["hard"]).unwrap()[0];
        let (eta, lambda, e) = (0.5f32, 0.5f32, 2.0f32);
        let mut w = INITIAL_WEIGHT;
        for _ in 0..40 {
            v.adapt(&store, &[(id, e)], eta, lambda).unwrap();
            w += eta * (e - lambda * w);
            let got = v.get(&store.snapshot().unwrap(), id).unwrap().unwrap().weight;
            assert!((got - w).abs() < 1e-5, "{got} vs {w}");
        }
        assert!((w - e / lambda).abs() < 1e-3, "converges to E / lambda = 4: {w}");
        assert!(v.adapt(&store, &[(id, 1.0)], 3.0, 1.0).is_err());
        assert!(v.adapt(&store, &[(id, f32::NAN)], 0.1, 0.1).is_err());
        assert!(v.adapt(&store, &[(TokenId(999), 1.0)], 0.1, 0.1).is_err());
    }
}
