//! Table schemas: the columns a table declares when it is created.
//!
//! Storage knows column *types* — keys, fixed-width scalars, interned
//! symbols, blobs, sparse distributions, edges — never what they mean: a
//! generation level, a vocabulary and a memory record are each one schema
//! defined by the layer that owns them. A segment stores one group of
//! sections per column (its "parts", `segment/mod.rs`), so a new column is a
//! schema, not a format change.
//!
//! Typed handles ([`KeyCol`], [`FixedCol`], [`SymbolCol`], [`TextCol`],
//! [`BlobCol`], [`SparseCol`], [`EdgeCol`]) are looked up by name once,
//! checked against the column's type, and then read rows without a lookup.

use std::marker::PhantomData;

use rkyv::{Archive, Deserialize, Serialize};

use super::types::Dim;
use crate::error::{Error, Result};
use crate::kernels::distance::Metric;

/// Position of a column in its table's schema.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColumnId(pub u16);

/// Most columns a table may declare.
pub const MAX_COLUMNS: usize = 256;

/// How a key column's graph is built.
///
/// ```
/// let spec = engram::storage::IndexSpec::default();
/// assert_eq!((spec.m, spec.ef_construction), (16, 200));
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct IndexSpec {
    /// Links per node above level 0 (level 0 keeps twice as many): 2..=128.
    pub m: u32,
    /// Candidate list size while building: 1..=4096.
    pub ef_construction: u32,
}

impl Default for IndexSpec {
    fn default() -> Self {
        IndexSpec {
            m: 16,
            ef_construction: 200,
        }
    }
}

/// Distance of a key column, as stored (the kernels' [`Metric`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, Archive, Serialize, Deserialize)]
#[repr(u8)]
pub enum KeyMetric {
    /// `1 - cos`.
    #[default]
    Cosine = 0,
    /// Negated inner product.
    Dot = 1,
    /// Squared Euclidean distance.
    L2 = 2,
}

impl From<KeyMetric> for Metric {
    fn from(m: KeyMetric) -> Metric {
        match m {
            KeyMetric::Cosine => Metric::Cosine,
            KeyMetric::Dot => Metric::Dot,
            KeyMetric::L2 => Metric::L2,
        }
    }
}

impl From<Metric> for KeyMetric {
    fn from(m: Metric) -> KeyMetric {
        match m {
            Metric::Cosine => KeyMetric::Cosine,
            Metric::Dot => KeyMetric::Dot,
            Metric::L2 => KeyMetric::L2,
        }
    }
}

/// A key column: an f32 vector per row, its norm, and (with `codes`) its
/// int8 code and scale, which graphs and scans search on.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct KeySpec {
    /// Vector length.
    pub dim: u32,
    /// The distance searches rank by (and the graph is built for).
    pub metric: KeyMetric,
    /// Store int8 codes (needed for a graph and for fast scans).
    pub codes: bool,
    /// Build an HNSW graph of each segment (needs `codes`).
    pub index: Option<IndexSpec>,
    /// Matryoshka prefix lengths, increasing and below `dim`: each row also
    /// stores the norm of each prefix, for cascade search.
    pub prefixes: Vec<u32>,
}

impl KeySpec {
    /// A cosine key of `dim` with codes and a graph of default settings.
    pub fn new(dim: Dim) -> KeySpec {
        KeySpec {
            dim: dim.get(),
            metric: KeyMetric::Cosine,
            codes: true,
            index: Some(IndexSpec::default()),
            prefixes: Vec::new(),
        }
    }

    /// The same key ranked by `metric`.
    pub fn with_metric(mut self, metric: Metric) -> KeySpec {
        self.metric = metric.into();
        self
    }

    /// The same key with graph settings `index` (`None`: no graph).
    pub fn with_index(mut self, index: Option<IndexSpec>) -> KeySpec {
        self.index = index;
        self
    }

    /// The key's dimension.
    pub fn dim(&self) -> Dim {
        Dim::new(self.dim).unwrap_or_else(|_| unreachable!("validated when the schema was built"))
    }
}

/// Type of a fixed-width column.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum FixedType {
    /// 8-bit unsigned.
    U8,
    /// 32-bit unsigned.
    U32,
    /// 32-bit signed.
    I32,
    /// 64-bit unsigned.
    U64,
    /// 64-bit signed.
    I64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// Microseconds since the Unix epoch (i64).
    Timestamp,
    /// An interned string (namespace, session): stored as a segment-local
    /// id, with a dictionary and a posting list per value, so that a filter
    /// on it reads only the rows that match. Symbols cannot be updated.
    Symbol,
    /// One of a few named values, stored as a u8 index into the names.
    Enum(Vec<String>),
}

impl FixedType {
    /// Bytes per row in a segment.
    pub fn width(&self) -> usize {
        match self {
            FixedType::U8 | FixedType::Enum(_) => 1,
            FixedType::U32 | FixedType::I32 | FixedType::F32 | FixedType::Symbol => 4,
            FixedType::U64 | FixedType::I64 | FixedType::F64 | FixedType::Timestamp => 8,
        }
    }

    /// The scalar family values of this type compare and update as.
    pub(crate) fn scalar(&self) -> ScalarKind {
        match self {
            FixedType::U8 | FixedType::U32 | FixedType::U64 | FixedType::Enum(_) => ScalarKind::Unsigned,
            FixedType::I32 | FixedType::I64 | FixedType::Timestamp => ScalarKind::Signed,
            FixedType::F32 | FixedType::F64 => ScalarKind::Float,
            FixedType::Symbol => ScalarKind::Symbol,
        }
    }
}

/// How values of a fixed column are compared and added.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ScalarKind {
    Unsigned,
    Signed,
    Float,
    Symbol,
}

/// How a blob column stores its bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, Archive, Serialize, Deserialize)]
pub enum Compression {
    /// lz4 blocks of 16 KiB: small on disk; a read decompresses a block.
    #[default]
    Lz4,
    /// Bytes as they are: read in place, without a copy.
    Raw,
}

/// A blob column: variable-length bytes per row.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, Archive, Serialize, Deserialize)]
pub struct BlobSpec {
    /// How the bytes are stored.
    pub compression: Compression,
    /// Values must be UTF-8 (a text column).
    pub utf8: bool,
}

/// Weights of a sparse column.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum SparseKind {
    /// u32 counts (a next-token count distribution); merged by adding,
    /// saturating at `u32::MAX`.
    Counts,
    /// f32 weights; merged by adding.
    Weights,
}

/// An edge column: row ids of the same or another table of the store.
#[derive(Clone, Debug, PartialEq, Eq, Default, Archive, Serialize, Deserialize)]
pub struct EdgeSpec {
    /// The table edges point into; `None` is the table itself.
    pub target: Option<String>,
}

/// What a column holds.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum ColumnKind {
    /// A vector key.
    Key(KeySpec),
    /// A fixed-width scalar.
    Fixed(FixedType),
    /// Variable-length bytes or text.
    Blob(BlobSpec),
    /// Sorted `(id, weight)` pairs.
    Sparse(SparseKind),
    /// Row ids.
    Edges(EdgeSpec),
}

/// A named column.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Column {
    /// 1 to 63 bytes: letters, digits and `_`.
    pub name: String,
    /// Its type.
    pub kind: ColumnKind,
}

/// The columns of a table, and the column (if any) whose values identify a
/// row for upserts.
///
/// ```
/// use engram::storage::{Dim, FixedType, KeySpec, Schema};
/// let s = Schema::builder()
///     .key("key", KeySpec::new(Dim::new(4).unwrap()))
///     .fixed("count", FixedType::U64)
///     .text("text")
///     .build()
///     .unwrap();
/// assert_eq!(s.columns().len(), 3);
/// let count = s.fixed::<u64>("count").unwrap();
/// assert!(s.fixed::<f32>("count").is_err()); // wrong type
/// # let _ = count;
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Schema {
    columns: Vec<Column>,
    unique: Option<u16>,
}

/// Builds a [`Schema`]; [`SchemaBuilder::build`] checks it.
#[derive(Clone, Debug, Default)]
pub struct SchemaBuilder {
    columns: Vec<Column>,
    unique: Option<String>,
}

impl SchemaBuilder {
    fn push(mut self, name: &str, kind: ColumnKind) -> Self {
        self.columns.push(Column {
            name: name.to_string(),
            kind,
        });
        self
    }

    /// A key column.
    pub fn key(self, name: &str, spec: KeySpec) -> Self {
        self.push(name, ColumnKind::Key(spec))
    }

    /// A fixed-width column.
    pub fn fixed(self, name: &str, ty: FixedType) -> Self {
        self.push(name, ColumnKind::Fixed(ty))
    }

    /// An interned-string column with posting lists.
    pub fn symbol(self, name: &str) -> Self {
        self.fixed(name, FixedType::Symbol)
    }

    /// A small enum column of the given value names (at most 256).
    pub fn enumeration(self, name: &str, names: &[&str]) -> Self {
        self.fixed(name, FixedType::Enum(names.iter().map(|s| s.to_string()).collect()))
    }

    /// A blob column.
    pub fn blob(self, name: &str, spec: BlobSpec) -> Self {
        self.push(name, ColumnKind::Blob(spec))
    }

    /// A UTF-8 text column, lz4-compressed.
    pub fn text(self, name: &str) -> Self {
        self.blob(
            name,
            BlobSpec {
                compression: Compression::Lz4,
                utf8: true,
            },
        )
    }

    /// A sparse-distribution column.
    pub fn sparse(self, name: &str, kind: SparseKind) -> Self {
        self.push(name, ColumnKind::Sparse(kind))
    }

    /// An edge column.
    pub fn edges(self, name: &str, spec: EdgeSpec) -> Self {
        self.push(name, ColumnKind::Edges(spec))
    }

    /// Declare `name` the unique column: at most one live row per value, and
    /// upserts find rows by it. It must be a u64/i64/u32 column, a symbol, or
    /// a blob (a raw blob is read in place; an lz4 one is decompressed on
    /// each lookup).
    pub fn unique(mut self, name: &str) -> Self {
        self.unique = Some(name.to_string());
        self
    }

    /// Check and build.
    pub fn build(self) -> Result<Schema> {
        let unique = match &self.unique {
            None => None,
            Some(u) => Some(
                self.columns
                    .iter()
                    .position(|c| c.name == *u)
                    .ok_or_else(|| Error::InvalidArgument(format!("unique column {u:?} is not declared")))?
                    as u16,
            ),
        };
        let s = Schema {
            columns: self.columns,
            unique,
        };
        s.validate()?;
        Ok(s)
    }
}

fn bad(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

impl Schema {
    /// Start a schema.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder::default()
    }

    /// Check every rule a schema must keep; run on every schema read from
    /// disk too (a schema that fails is corrupt).
    pub fn validate(&self) -> Result<()> {
        if self.columns.is_empty() || self.columns.len() > MAX_COLUMNS {
            return Err(bad(format!("a table has 1 to {MAX_COLUMNS} columns")));
        }
        for (i, c) in self.columns.iter().enumerate() {
            let n = &c.name;
            let ok_name = (1..=63).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok_name {
                return Err(bad(format!("column name {n:?}: use 1 to 63 letters, digits or '_'")));
            }
            if self.columns[..i].iter().any(|o| o.name == *n) {
                return Err(bad(format!("column {n:?} is declared twice")));
            }
            match &c.kind {
                ColumnKind::Key(k) => {
                    Dim::new(k.dim)?;
                    if k.index.is_some() && !k.codes {
                        return Err(bad(format!("key {n:?}: a graph needs int8 codes")));
                    }
                    if let Some(ix) = k.index {
                        if !(2..=128).contains(&ix.m) || !(1..=4096).contains(&ix.ef_construction) {
                            return Err(bad(format!(
                                "key {n:?}: m must be 2 to 128 and ef_construction 1 to 4096"
                            )));
                        }
                    }
                    if !k.prefixes.windows(2).all(|w| w[0] < w[1])
                        || k.prefixes.iter().any(|&p| p == 0 || p >= k.dim)
                        || k.prefixes.len() > 8
                    {
                        return Err(bad(format!(
                            "key {n:?}: prefixes must be at most 8 increasing lengths below the dimension"
                        )));
                    }
                }
                ColumnKind::Fixed(FixedType::Enum(names)) => {
                    if names.is_empty() || names.len() > 256 {
                        return Err(bad(format!("enum {n:?} has 1 to 256 names")));
                    }
                    if names.iter().enumerate().any(|(j, a)| names[..j].contains(a)) {
                        return Err(bad(format!("enum {n:?} repeats a name")));
                    }
                }
                ColumnKind::Edges(e) if e.target.as_ref().is_some_and(|t| t.is_empty()) => {
                    return Err(bad(format!("edges {n:?}: empty target table name")));
                }
                _ => {}
            }
        }
        if let Some(u) = self.unique {
            let c = self
                .columns
                .get(u as usize)
                .ok_or_else(|| bad("unique column out of range".into()))?;
            let ok = matches!(
                c.kind,
                ColumnKind::Fixed(FixedType::U64 | FixedType::I64 | FixedType::U32 | FixedType::Symbol)
                    | ColumnKind::Blob(_)
            );
            if !ok {
                return Err(bad(format!(
                    "unique column {:?} must be u64, i64, u32, symbol or blob",
                    c.name
                )));
            }
        }
        Ok(())
    }

    /// The columns in declaration order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The column `id`.
    pub fn column(&self, id: ColumnId) -> Option<&Column> {
        self.columns.get(id.0 as usize)
    }

    /// The unique column, if declared.
    pub fn unique(&self) -> Option<ColumnId> {
        self.unique.map(ColumnId)
    }

    /// The column named `name`.
    pub fn id(&self, name: &str) -> Result<ColumnId> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .map(|i| ColumnId(i as u16))
            .ok_or_else(|| Error::NoSuchColumn(name.to_string()))
    }

    fn kind(&self, name: &str) -> Result<(ColumnId, &ColumnKind)> {
        let id = self.id(name)?;
        Ok((id, &self.columns[id.0 as usize].kind))
    }

    fn wrong(&self, name: &str, want: &str) -> Error {
        Error::ColumnType {
            column: name.to_string(),
            expected: want.to_string(),
        }
    }

    /// The first key column, if any: what a search ranks by unless told.
    pub fn first_key(&self) -> Option<KeyCol> {
        self.columns
            .iter()
            .position(|c| matches!(c.kind, ColumnKind::Key(_)))
            .map(|i| KeyCol(ColumnId(i as u16)))
    }

    /// The key column `name`.
    pub fn key(&self, name: &str) -> Result<KeyCol> {
        match self.kind(name)? {
            (id, ColumnKind::Key(_)) => Ok(KeyCol(id)),
            _ => Err(self.wrong(name, "key")),
        }
    }

    /// The spec of key column `col`.
    pub fn key_spec(&self, col: KeyCol) -> Option<&KeySpec> {
        match &self.column(col.0)?.kind {
            ColumnKind::Key(k) => Some(k),
            _ => None,
        }
    }

    /// The fixed column `name`, read as `T` (see [`Scalar`] for which types
    /// read which columns).
    pub fn fixed<T: Scalar>(&self, name: &str) -> Result<FixedCol<T>> {
        match self.kind(name)? {
            (id, ColumnKind::Fixed(t)) if T::reads(t) => Ok(FixedCol(id, PhantomData)),
            _ => Err(self.wrong(name, T::NAME)),
        }
    }

    /// The symbol column `name`.
    pub fn symbol(&self, name: &str) -> Result<SymbolCol> {
        match self.kind(name)? {
            (id, ColumnKind::Fixed(FixedType::Symbol)) => Ok(SymbolCol(id)),
            _ => Err(self.wrong(name, "symbol")),
        }
    }

    /// The text (UTF-8 blob) column `name`.
    pub fn text(&self, name: &str) -> Result<TextCol> {
        match self.kind(name)? {
            (id, ColumnKind::Blob(b)) if b.utf8 => Ok(TextCol(id)),
            _ => Err(self.wrong(name, "text")),
        }
    }

    /// The blob column `name` (text columns too, as bytes).
    pub fn blob(&self, name: &str) -> Result<BlobCol> {
        match self.kind(name)? {
            (id, ColumnKind::Blob(_)) => Ok(BlobCol(id)),
            _ => Err(self.wrong(name, "blob")),
        }
    }

    /// The sparse column `name`.
    pub fn sparse(&self, name: &str) -> Result<SparseCol> {
        match self.kind(name)? {
            (id, ColumnKind::Sparse(_)) => Ok(SparseCol(id)),
            _ => Err(self.wrong(name, "sparse")),
        }
    }

    /// The edge column `name`.
    pub fn edges(&self, name: &str) -> Result<EdgeCol> {
        match self.kind(name)? {
            (id, ColumnKind::Edges(_)) => Ok(EdgeCol(id)),
            _ => Err(self.wrong(name, "edges")),
        }
    }

    /// A stable 64-bit fingerprint of the schema (stored in every segment,
    /// checked on open).
    pub fn fingerprint(&self) -> u64 {
        let bytes = super::codec::encode(self).unwrap_or_default();
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }
}

/// A key column of a schema.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyCol(pub ColumnId);

/// A fixed column read as `T`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FixedCol<T>(pub ColumnId, PhantomData<fn() -> T>);

impl<T> Clone for FixedCol<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for FixedCol<T> {}

/// A symbol column.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SymbolCol(pub ColumnId);

/// A UTF-8 blob column.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TextCol(pub ColumnId);

/// A blob column.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlobCol(pub ColumnId);

/// A sparse column.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SparseCol(pub ColumnId);

/// An edge column.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct EdgeCol(pub ColumnId);

/// Rust types that read fixed columns, from the 64 bits a value is carried
/// in (unsigned values zero-extended, signed ones sign-extended, floats as
/// their IEEE bits).
///
/// | type | reads |
/// | --- | --- |
/// | `u8` | `U8`, `Enum` |
/// | `u32` | `U32` |
/// | `i32` | `I32` |
/// | `u64` | `U64` |
/// | `i64` | `I64`, `Timestamp` |
/// | `f32` | `F32` |
/// | `f64` | `F64` |
pub trait Scalar: Copy + Default + std::fmt::Debug + 'static {
    /// Name for error messages.
    const NAME: &'static str;
    /// Whether this type reads columns of type `t`.
    fn reads(t: &FixedType) -> bool;
    /// From carried bits.
    fn from_bits(bits: u64) -> Self;
    /// To carried bits.
    fn to_bits(self) -> u64;
}

macro_rules! scalar {
    ($t:ty, $name:expr, $pat:pat, |$b:ident| $from:expr, |$v:ident| $to:expr) => {
        impl Scalar for $t {
            const NAME: &'static str = $name;
            fn reads(t: &FixedType) -> bool {
                matches!(t, $pat)
            }
            fn from_bits($b: u64) -> Self {
                $from
            }
            fn to_bits(self) -> u64 {
                let $v = self;
                $to
            }
        }
    };
}

scalar!(
    u8,
    "u8",
    FixedType::U8 | FixedType::Enum(_),
    |b| b as u8,
    |v| u64::from(v)
);
scalar!(u32, "u32", FixedType::U32, |b| b as u32, |v| u64::from(v));
scalar!(i32, "i32", FixedType::I32, |b| b as i64 as i32, |v| i64::from(v) as u64);
scalar!(u64, "u64", FixedType::U64, |b| b, |v| v);
scalar!(i64, "i64", FixedType::I64 | FixedType::Timestamp, |b| b as i64, |v| v
    as u64);
scalar!(f32, "f32", FixedType::F32, |b| f32::from_bits(b as u32), |v| u64::from(
    v.to_bits()
));
scalar!(f64, "f64", FixedType::F64, |b| f64::from_bits(b), |v| v.to_bits());

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Schema {
        Schema::builder()
            .key("k", KeySpec::new(Dim::new(8).unwrap()))
            .symbol("ns")
            .enumeration("tier", &["variant", "soft", "hard"])
            .fixed("ts", FixedType::Timestamp)
            .sparse("next", SparseKind::Counts)
            .blob(
                "tok",
                BlobSpec {
                    compression: Compression::Raw,
                    utf8: true,
                },
            )
            .edges("src", EdgeSpec::default())
            .unique("tok")
            .build()
            .unwrap()
    }

    #[test]
    fn handles_check_types_and_fingerprints_are_stable() {
        let s = sample();
        assert!(s.key("k").is_ok());
        assert!(s.fixed::<i64>("ts").is_ok());
        assert!(s.fixed::<u8>("tier").is_ok());
        assert!(matches!(s.fixed::<u64>("ts"), Err(Error::ColumnType { .. })));
        assert!(matches!(s.symbol("nope"), Err(Error::NoSuchColumn(_))));
        assert_eq!(s.unique(), Some(ColumnId(5)));
        assert_eq!(s.fingerprint(), sample().fingerprint());
        let other = Schema::builder().symbol("ns").build().unwrap();
        assert_ne!(s.fingerprint(), other.fingerprint());
    }

    #[test]
    fn bad_schemas_are_refused() {
        let k = || KeySpec::new(Dim::new(4).unwrap());
        for b in [
            Schema::builder(),
            Schema::builder().symbol("a").symbol("a"),
            Schema::builder().symbol("bad name"),
            Schema::builder().key(
                "k",
                k().with_index(Some(IndexSpec {
                    m: 1,
                    ef_construction: 10,
                })),
            ),
            Schema::builder().key("k", KeySpec { codes: false, ..k() }),
            Schema::builder().key(
                "k",
                KeySpec {
                    prefixes: vec![2, 2],
                    ..k()
                },
            ),
            Schema::builder().fixed("f", FixedType::F32).unique("f"),
            Schema::builder().symbol("a").unique("b"),
            Schema::builder().enumeration("e", &[]),
        ] {
            assert!(b.build().is_err());
        }
    }

    #[test]
    fn scalar_bits_round_trip() {
        assert_eq!(i32::from_bits((-5i32).to_bits()), -5);
        assert_eq!(i64::from_bits((-5i64).to_bits()), -5);
        assert_eq!(<f32 as Scalar>::from_bits(Scalar::to_bits(1.5f32)), 1.5);
        assert_eq!(<f64 as Scalar>::from_bits(Scalar::to_bits(-2.25f64)), -2.25);
        assert_eq!(u8::from_bits(Scalar::to_bits(200u8)), 200);
    }
}
