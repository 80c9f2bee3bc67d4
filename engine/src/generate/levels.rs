//! Pattern levels: for each context length `r`, a table of every distinct
//! context of `r` tokens seen in the learned text, keyed for nearest-
//! neighbour search by [`ContextKeyer`], found exactly by [`context_hash`]
//! (its unique column), with the counts of the tokens that followed it (a
//! sparse distribution, merged into by each new occurrence: an upsert, so a
//! context's row — and the id that traces point to — never changes) and
//! where it was first seen (document and position).
//!
//! Learning is online: [`Levels::learn`] adds a document's patterns to every
//! level in one atomic write, whatever was learned before.

use super::context::{context_hash, ContextKeyer};
use super::overlay::Overlay;
use crate::error::{Error, Result};
use crate::storage::Sparse;
use crate::storage::{
    Dim, FixedCol, FixedType, KeyCol, KeySpec, Row, Schema, Snapshot, SparseCol, SparseKind, Store, TableId, Value,
    WriteBatch,
};
use crate::text::vocab::{TokenId, Vocabulary};

/// The default context lengths.
pub const DEFAULT_LENGTHS: [usize; 6] = [1, 2, 3, 4, 6, 8];

/// One level's table and columns.
#[derive(Clone, Debug)]
pub struct Level {
    /// Its context length.
    pub r: usize,
    /// Its table (`level_<r>`).
    pub table: TableId,
    key: KeyCol,
    hash: FixedCol<u64>,
    next: SparseCol,
    cont: SparseCol,
    doc: FixedCol<u64>,
    pos: FixedCol<u64>,
}

impl Level {
    /// Its column of context keys.
    pub fn key_col(&self) -> KeyCol {
        self.key
    }

    /// The context hash of `row`, one of its rows.
    pub(crate) fn hash_of(&self, row: &crate::storage::RowView<'_>) -> u64 {
        row.get(self.hash)
    }
}

/// A stored context: its row, where it was first seen, and what followed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Pattern {
    /// The row (stable).
    pub id: u64,
    /// Its context's hash ([`context_hash`]).
    pub hash: u64,
    /// Document and token position of its first occurrence.
    pub doc: u64,
    /// See `doc`.
    pub pos: u64,
    /// (next token, count), by token id.
    pub next: Vec<(TokenId, u32)>,
    /// (next token, continuation count): of the distinct contexts of the
    /// next longer level that end with this one, how many were followed by
    /// the token (Kneser-Ney's counts for a lower order). Empty at the
    /// longest level.
    pub cont: Vec<(TokenId, u32)>,
}

fn level_schema(dim: u32) -> Result<Schema> {
    Schema::builder()
        .key("key", KeySpec::new(Dim::new(dim)?))
        .fixed("hash", FixedType::U64)
        .sparse("next", SparseKind::Counts)
        .sparse("cont", SparseKind::Counts)
        .fixed("doc", FixedType::U64)
        .fixed("pos", FixedType::U64)
        .unique("hash")
        .build()
}

/// A document to learn: its id, its tokens and the embedding of each.
#[derive(Copy, Clone, Debug)]
pub struct Document<'a> {
    /// Its id (what traces point to).
    pub id: u64,
    /// Its tokens.
    pub tokens: &'a [TokenId],
    /// One embedding per token.
    pub embeddings: &'a [&'a [f32]],
}

/// The pattern levels of a store.
pub struct Levels {
    keyer: ContextKeyer,
    levels: Vec<Level>,
}

/// What learning a batch of documents writes and changes.
pub(crate) struct Learning {
    /// The write.
    pub batch: WriteBatch,
    /// The patterns (occurrences) it counts.
    pub counted: usize,
    /// Its change to each order's counts of counts
    /// ([`Overlay::counts_of_counts`]).
    pub counts_of_counts: Vec<[i64; 4]>,
}

impl Levels {
    /// The levels of context lengths `lengths` (each 1 to the keyer's
    /// `max_r`, no repeats) in `store`, created where missing, keyed by
    /// `keyer` (whose dimension is the embeddings').
    pub fn open_or_create(store: &Store, keyer: ContextKeyer, dim: usize, lengths: &[usize]) -> Result<Levels> {
        let dim32 = u32::try_from(dim).map_err(|_| Error::InvalidArgument(format!("dimension {dim}")))?;
        let schema = level_schema(dim32)?;
        let mut seen = std::collections::HashSet::new();
        let mut levels = Vec::new();
        for &r in lengths {
            if r == 0 || r > keyer.max_r() || !seen.insert(r) {
                return Err(Error::InvalidArgument(format!(
                    "context length {r}: lengths must be 1 to {} and distinct",
                    keyer.max_r()
                )));
            }
            let name = format!("level_{r}");
            let table = match store.table(&name) {
                Ok(t) => t,
                Err(Error::NoSuchTable(_)) => store.create_table(&name, schema.clone())?,
                Err(e) => return Err(e),
            };
            if *store.schema(table)? != schema {
                return Err(Error::InvalidArgument(format!(
                    "table {name} is not a pattern level of dimension {dim}"
                )));
            }
            levels.push(Level {
                r,
                table,
                key: schema.key("key")?,
                hash: schema.fixed("hash")?,
                next: schema.sparse("next")?,
                cont: schema.sparse("cont")?,
                doc: schema.fixed("doc")?,
                pos: schema.fixed("pos")?,
            });
        }
        levels.sort_by_key(|l| l.r);
        Ok(Levels { keyer, levels })
    }

    /// The keyer of the levels' context keys.
    pub fn keyer(&self) -> &ContextKeyer {
        &self.keyer
    }

    /// The levels, shortest context first.
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// Learn document `doc`: `tokens` with the embedding of each. For every
    /// level `r` and position `i >= r`, the context `tokens[i-r..i]` gains
    /// one count of `tokens[i]`; a context new to the level is stored with
    /// its key and first position. A (context, token) pair new to a level
    /// also raises the continuation count of that token at the context's
    /// suffix one level down (in `vocab` for the shortest level): the
    /// counting is [`Overlay::observe`]'s. One atomic write; returns the
    /// patterns (occurrences) counted.
    pub fn learn(
        &self,
        store: &Store,
        vocab: &Vocabulary,
        doc: u64,
        tokens: &[TokenId],
        embeddings: &[&[f32]],
    ) -> Result<usize> {
        self.learn_all(
            store,
            vocab,
            &[Document {
                id: doc,
                tokens,
                embeddings,
            }],
        )
    }

    /// [`Levels::learn`] for many documents, in one atomic write.
    pub fn learn_all(&self, store: &Store, vocab: &Vocabulary, docs: &[Document<'_>]) -> Result<usize> {
        let l = self.learning(store, vocab, docs)?;
        store.write(l.batch)?;
        Ok(l.counted)
    }

    /// The write that learns `docs` (see [`Levels::learn_all`]), the
    /// patterns it counts, and what it changes in each order's counts of
    /// counts.
    pub(crate) fn learning(&self, store: &Store, vocab: &Vocabulary, docs: &[Document<'_>]) -> Result<Learning> {
        let snap = store.snapshot()?;
        let mut overlay = Overlay::new(self);
        let mut counted = 0;
        for (seq, &Document { tokens, embeddings, .. }) in docs.iter().enumerate() {
            if tokens.len() != embeddings.len() {
                return Err(Error::InvalidArgument(format!(
                    "{} tokens but {} embeddings",
                    tokens.len(),
                    embeddings.len()
                )));
            }
            if let Some(t) = tokens.iter().find(|t| u32::try_from(t.0).is_err()) {
                return Err(Error::InvalidArgument(format!("token id {} past u32", t.0)));
            }
            overlay.begin(seq);
            for i in 0..tokens.len() {
                overlay.observe(self, &snap, tokens, i, 1)?;
            }
            counted += self
                .levels
                .iter()
                .map(|l| tokens.len().saturating_sub(l.r))
                .sum::<usize>();
        }
        let sparse = |m: &std::collections::BTreeMap<TokenId, i64>| {
            Sparse::counts(m.iter().filter(|x| *x.1 > 0).map(|(t, &n)| (t.0 as u32, n as u32)))
        };
        let mut b = WriteBatch::new();
        for (j, l) in self.levels.iter().enumerate() {
            let schema = store.schema(l.table)?;
            for (h, e) in overlay.entries(j) {
                let Document {
                    id: doc, embeddings, ..
                } = docs[e.seq];
                let next = sparse(&e.next);
                let cont = sparse(&e.cont);
                let row = Row::new(&schema)
                    .with(l.key, self.keyer.key(&embeddings[e.first - l.r..e.first]))
                    .with(l.hash, h)
                    .with(l.next, next.clone())
                    .with(l.cont, cont.clone())
                    .with(l.doc, doc)
                    .with(l.pos, e.first as u64);
                let mut on_conflict = vec![l.next.merge(next)];
                if !cont.ids.is_empty() {
                    on_conflict.push(l.cont.merge(cont));
                }
                b.upsert(l.table, row, on_conflict);
            }
        }
        for (w, n) in overlay.vocab_conts() {
            vocab.add_continuation(&mut b, w, n as u64);
        }
        let counts_of_counts = overlay.counts_of_counts(|w| Ok(vocab.get(&snap, w)?.map_or(0, |info| info.cont)))?;
        Ok(Learning {
            batch: b,
            counted,
            counts_of_counts,
        })
    }

    /// The stored pattern of the exact context `context` at the level of
    /// its length, if any.
    pub fn exact(&self, snap: &Snapshot, context: &[TokenId]) -> Result<Option<Pattern>> {
        let Some(l) = self.levels.iter().find(|l| l.r == context.len()) else {
            return Err(Error::InvalidArgument(format!(
                "no level of context length {}",
                context.len()
            )));
        };
        self.stored(snap, l, context_hash(context))
    }

    /// The pattern of the context of hash `hash` stored at level `l`, if any.
    pub(crate) fn stored(&self, snap: &Snapshot, l: &Level, hash: u64) -> Result<Option<Pattern>> {
        stored_row(snap, l, hash)?
            .map(|row| self.pattern_of(l, &row))
            .transpose()
    }

    /// The next-token counts (`cont` false) or the continuation counts of
    /// the context of hash `hash` stored at level `l`, if any: one list
    /// read, where [`Levels::stored`] decodes both.
    pub(crate) fn stored_counts(
        &self,
        snap: &Snapshot,
        l: &Level,
        hash: u64,
        cont: bool,
    ) -> Result<Option<Vec<(TokenId, u32)>>> {
        stored_row(snap, l, hash)?
            .map(|row| Ok(pairs(row.sparse(if cont { l.cont } else { l.next })?)))
            .transpose()
    }

    /// The pattern stored in `row` of level `l`.
    pub(crate) fn pattern_of(&self, l: &Level, row: &crate::storage::RowView<'_>) -> Result<Pattern> {
        self.read_pattern(l, row, true)
    }

    /// The pattern stored in `row` of level `l` without its continuation
    /// counts (`cont` empty): what retrieval weighs. A short context's
    /// continuations are thousands of pairs that retrieval never reads.
    pub(crate) fn followers_of(&self, l: &Level, row: &crate::storage::RowView<'_>) -> Result<Pattern> {
        self.read_pattern(l, row, false)
    }

    fn read_pattern(&self, l: &Level, row: &crate::storage::RowView<'_>, with_cont: bool) -> Result<Pattern> {
        Ok(Pattern {
            id: row.id().0,
            hash: row.get(l.hash),
            doc: row.get(l.doc),
            pos: row.get(l.pos),
            next: pairs(row.sparse(l.next)?),
            cont: if with_cont {
                pairs(row.sparse(l.cont)?)
            } else {
                Vec::new()
            },
        })
    }
}

/// The row of the context of hash `hash` at level `l`, if stored.
fn stored_row<'s>(snap: &'s Snapshot, l: &Level, hash: u64) -> Result<Option<crate::storage::RowView<'s>>> {
    let t = snap.table(l.table)?;
    Ok(t.find(&Value::UInt(hash))?.and_then(|id| t.get(id)))
}

/// A stored sparse list as (token, count) pairs.
fn pairs(s: crate::storage::SparseRef<'_>) -> Vec<(TokenId, u32)> {
    (0..s.len())
        .map(|i| (TokenId(u64::from(s.ids[i])), s.weight(i) as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreOptions;
    use crate::text::embed::{Embedder, HashedNgrams};
    use crate::text::Vocabulary;
    use std::sync::Arc;

    struct Corpus {
        vocab: Vocabulary,
        levels: Levels,
        embed: Arc<dyn Embedder>,
    }

    fn corpus(store: &Store) -> Corpus {
        let embed: Arc<dyn Embedder> = Arc::new(HashedNgrams::new(32).unwrap());
        let vocab = Vocabulary::open_or_create(store, embed.clone()).unwrap();
        let keyer = ContextKeyer::new(32, 8, 0.8, 11).unwrap();
        let levels = Levels::open_or_create(store, keyer, 32, &[1, 2, 3]).unwrap();
        Corpus { vocab, levels, embed }
    }

    /// Learn `text` as words and separate spaces (so that the test can name
    /// the space token).
    fn learn(c: &Corpus, store: &Store, doc: u64, text: &str) -> Vec<TokenId> {
        let mut words: Vec<&str> = Vec::new();
        for (i, w) in text.split(' ').enumerate() {
            if i > 0 {
                words.push(" ");
            }
            words.push(w);
        }
        let ids = c.vocab.learn(store, &words).unwrap();
        let embs: Vec<Vec<f32>> = words.iter().map(|w| c.embed.embed(w)).collect();
        let refs: Vec<&[f32]> = embs.iter().map(|e| e.as_slice()).collect();
        c.levels.learn(store, &c.vocab, doc, &ids, &refs).unwrap();
        ids
    }

    #[test]
    fn counts_follow_the_text_and_merge_across_documents_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let ids = {
            let store = Store::create(&path, StoreOptions::default()).unwrap();
            let c = corpus(&store);
            // tokens: dog _ bites _ man _ man _ bites _ dog
            let ids = learn(&c, &store, 1, "dog bites man man bites dog");
            let snap = store.snapshot().unwrap();
            let (dog, sp, bites, man) = (ids[0], ids[1], ids[2], ids[4]);
            // After "bites": a space, twice.
            let p = c.levels.exact(&snap, &[bites]).unwrap().unwrap();
            assert_eq!(p.next, vec![(sp, 2)]);
            assert_eq!((p.doc, p.pos), (1, 3), "first seen at token 3 of document 1");
            // "dog bites" and "man bites" (with their spaces) are different contexts.
            let a = c.levels.exact(&snap, &[dog, sp, bites]).unwrap().unwrap();
            let b = c.levels.exact(&snap, &[man, sp, bites]).unwrap().unwrap();
            assert_ne!(a.id, b.id);
            assert_eq!(
                c.levels
                    .exact(&snap, &[man, sp])
                    .unwrap()
                    .unwrap()
                    .next
                    .iter()
                    .map(|x| x.1)
                    .sum::<u32>(),
                2
            );
            assert_eq!(c.levels.exact(&snap, &[dog, dog]).unwrap(), None);
            // A second document adds to the same rows.
            learn(&c, &store, 2, "bites man");
            let snap = store.snapshot().unwrap();
            let p2 = c.levels.exact(&snap, &[bites]).unwrap().unwrap();
            assert_eq!(
                (p2.id, p2.next.clone()),
                (p.id, vec![(sp, 3)]),
                "same row, one more count"
            );
            ids
        };
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let c = corpus(&store);
        let snap = store.snapshot().unwrap();
        let (sp, bites, man) = (ids[1], ids[2], ids[4]);
        // " bites" is followed by a space twice in document 1; document 2
        // starts with "bites", so it adds none.
        let p = c.levels.exact(&snap, &[sp, bites]).unwrap().unwrap();
        assert_eq!(p.next, vec![(sp, 2)]);
        assert_eq!(c.levels.exact(&snap, &[bites]).unwrap().unwrap().next, vec![(sp, 3)]);
        let after_man = c.levels.exact(&snap, &[man]).unwrap().unwrap();
        assert_eq!(
            after_man.next,
            vec![(sp, 2)],
            "the last 'man' of document 2 has no follower"
        );
        assert!(c.levels.exact(&snap, &[man; 4]).is_err(), "no level of length 4");
    }
}
