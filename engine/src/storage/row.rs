//! Rows as callers write them: one [`Value`] per column of the table's
//! schema, checked and normalized against the schema before they are logged.

use rkyv::{Archive, Deserialize, Serialize};

use super::schema::{
    BlobCol, ColumnId, ColumnKind, EdgeCol, FixedCol, FixedType, KeyCol, Scalar, ScalarKind, Schema, SparseCol,
    SparseKind, SymbolCol, TextCol,
};
use super::types::{RowId, MAX_ROW_BYTES};
use crate::error::{Error, Result};

/// Weights of a [`Sparse`] distribution.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub enum Weights {
    /// Integer counts.
    Counts(Vec<u32>),
    /// Float weights.
    F32(Vec<f32>),
}

/// A sparse distribution: strictly increasing ids, one weight each.
///
/// ```
/// use engram::storage::Sparse;
/// let s = Sparse::counts([(7, 1), (2, 3), (7, 4)]);
/// assert_eq!(s.ids, vec![2, 7]);
/// assert_eq!(s.count_of(7), 5);
/// ```
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub struct Sparse {
    /// Ids, strictly increasing.
    pub ids: Vec<u32>,
    /// One weight per id.
    pub weights: Weights,
}

impl Sparse {
    /// Counts from `(id, count)` pairs in any order; repeated ids are added.
    pub fn counts(pairs: impl IntoIterator<Item = (u32, u32)>) -> Sparse {
        let mut v: Vec<(u32, u32)> = pairs.into_iter().collect();
        v.sort_unstable_by_key(|p| p.0);
        let mut ids: Vec<u32> = Vec::with_capacity(v.len());
        let mut counts: Vec<u32> = Vec::with_capacity(v.len());
        for (id, c) in v {
            if ids.last() == Some(&id) {
                let last = counts.len() - 1;
                counts[last] = counts[last].saturating_add(c);
            } else {
                ids.push(id);
                counts.push(c);
            }
        }
        Sparse {
            ids,
            weights: Weights::Counts(counts),
        }
    }

    /// Weights from `(id, weight)` pairs in any order; repeated ids are added.
    pub fn weights(pairs: impl IntoIterator<Item = (u32, f32)>) -> Sparse {
        let mut v: Vec<(u32, f32)> = pairs.into_iter().collect();
        v.sort_unstable_by_key(|p| p.0);
        let mut ids: Vec<u32> = Vec::with_capacity(v.len());
        let mut w: Vec<f32> = Vec::with_capacity(v.len());
        for (id, x) in v {
            if ids.last() == Some(&id) {
                let last = w.len() - 1;
                w[last] += x;
            } else {
                ids.push(id);
                w.push(x);
            }
        }
        Sparse {
            ids,
            weights: Weights::F32(w),
        }
    }

    /// An empty distribution of `kind`.
    pub fn empty(kind: SparseKind) -> Sparse {
        Sparse {
            ids: Vec::new(),
            weights: match kind {
                SparseKind::Counts => Weights::Counts(Vec::new()),
                SparseKind::Weights => Weights::F32(Vec::new()),
            },
        }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there is no id.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The count of `id` (0 if absent, or for float weights).
    pub fn count_of(&self, id: u32) -> u32 {
        match (&self.weights, self.ids.binary_search(&id)) {
            (Weights::Counts(c), Ok(i)) => c[i],
            _ => 0,
        }
    }

    /// A borrowed view.
    pub fn as_ref(&self) -> SparseRef<'_> {
        SparseRef {
            ids: &self.ids,
            weights: match &self.weights {
                Weights::Counts(c) => WeightsRef::Counts(c),
                Weights::F32(w) => WeightsRef::F32(w),
            },
        }
    }

    fn kind(&self) -> SparseKind {
        match self.weights {
            Weights::Counts(_) => SparseKind::Counts,
            Weights::F32(_) => SparseKind::Weights,
        }
    }

    fn check(&self, column: &str, kind: SparseKind) -> Result<()> {
        let n = match &self.weights {
            Weights::Counts(c) => c.len(),
            Weights::F32(w) => {
                if let Some(i) = w.iter().position(|x| !x.is_finite()) {
                    return Err(Error::NonFinite {
                        what: "sparse weight",
                        index: i,
                        value: w[i],
                    });
                }
                w.len()
            }
        };
        if self.kind() != kind {
            return Err(Error::InvalidArgument(format!(
                "column {column:?} holds {kind:?}; got {:?}",
                self.kind()
            )));
        }
        if n != self.ids.len() || !self.ids.windows(2).all(|w| w[0] < w[1]) {
            return Err(Error::InvalidArgument(format!(
                "sparse value of {column:?}: ids must be strictly increasing, with one weight each"
            )));
        }
        Ok(())
    }
}

/// Borrowed weights.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum WeightsRef<'a> {
    /// Counts.
    Counts(&'a [u32]),
    /// Float weights.
    F32(&'a [f32]),
}

/// A borrowed sparse distribution, read in place from a segment or the
/// memtable.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct SparseRef<'a> {
    /// Strictly increasing ids.
    pub ids: &'a [u32],
    /// One weight per id.
    pub weights: WeightsRef<'a>,
}

impl SparseRef<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> Sparse {
        Sparse {
            ids: self.ids.to_vec(),
            weights: match self.weights {
                WeightsRef::Counts(c) => Weights::Counts(c.to_vec()),
                WeightsRef::F32(w) => Weights::F32(w.to_vec()),
            },
        }
    }

    /// Weight of entry `i` as f64.
    pub fn weight(&self, i: usize) -> f64 {
        match self.weights {
            WeightsRef::Counts(c) => c.get(i).map_or(0.0, |&x| f64::from(x)),
            WeightsRef::F32(w) => w.get(i).map_or(0.0, |&x| f64::from(x)),
        }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there is no id.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// `self + other`, id by id (counts saturate).
    pub(crate) fn merged(&self, other: SparseRef<'_>) -> Sparse {
        let (a, b) = (self.ids, other.ids);
        let mut ids = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        let mut order = Vec::with_capacity(a.len() + b.len());
        while i < a.len() || j < b.len() {
            let take = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x == y => (Some(i), Some(j)),
                (Some(x), Some(y)) if x < y => (Some(i), None),
                (Some(_), None) => (Some(i), None),
                _ => (None, Some(j)),
            };
            ids.push(take.0.map_or_else(|| b[j], |i| a[i]));
            order.push(take);
            i += usize::from(take.0.is_some());
            j += usize::from(take.1.is_some());
        }
        let weights = match (self.weights, other.weights) {
            (WeightsRef::Counts(x), WeightsRef::Counts(y)) => Weights::Counts(
                order
                    .iter()
                    .map(|(p, q)| p.map_or(0, |p| x[p]).saturating_add(q.map_or(0, |q| y[q])))
                    .collect(),
            ),
            (x, y) => Weights::F32(
                order
                    .iter()
                    .map(|(p, q)| {
                        let w = |s: WeightsRef<'_>, k: usize| match s {
                            WeightsRef::Counts(c) => c[k] as f32,
                            WeightsRef::F32(f) => f[k],
                        };
                        p.map_or(0.0, |p| w(x, p)) + q.map_or(0.0, |q| w(y, q))
                    })
                    .collect(),
            ),
        };
        Sparse { ids, weights }
    }
}

/// One column's value.
///
/// `Null` stands for the column's default (0, the empty string, an empty
/// distribution or edge list); a key column has no default and must be set.
#[derive(Clone, Debug, PartialEq, Default, Archive, Serialize, Deserialize)]
pub enum Value {
    /// The column's default.
    #[default]
    Null,
    /// A key vector.
    Vector(Vec<f32>),
    /// A signed integer (signed columns and timestamps).
    Int(i64),
    /// An unsigned integer (unsigned columns and enum indexes).
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string: a symbol, an enum value's name, or text.
    Str(String),
    /// Blob bytes.
    Bytes(Vec<u8>),
    /// A sparse distribution.
    Sparse(Sparse),
    /// Row ids.
    Edges(Vec<u64>),
}

macro_rules! value_from {
    ($($t:ty => |$v:ident| $e:expr),+ $(,)?) => {
        $(impl From<$t> for Value {
            fn from($v: $t) -> Value {
                $e
            }
        })+
    };
}

value_from!(
    &str => |v| Value::Str(v.to_string()),
    String => |v| Value::Str(v),
    i64 => |v| Value::Int(v),
    i32 => |v| Value::Int(i64::from(v)),
    u64 => |v| Value::UInt(v),
    u32 => |v| Value::UInt(u64::from(v)),
    u8 => |v| Value::UInt(u64::from(v)),
    f64 => |v| Value::Float(v),
    f32 => |v| Value::Float(f64::from(v)),
    Vec<f32> => |v| Value::Vector(v),
    Vec<u8> => |v| Value::Bytes(v),
    Sparse => |v| Value::Sparse(v),
);

/// A row: one [`Value`] per column of its table's schema, in column order.
///
/// ```
/// use engram::storage::{Dim, KeySpec, Row, Schema, Value};
/// let s = Schema::builder().key("k", KeySpec::new(Dim::new(2).unwrap())).text("t").build().unwrap();
/// let row = Row::new(&s).with(s.key("k").unwrap(), vec![1.0, 0.0]).with(s.text("t").unwrap(), "hi");
/// assert_eq!(row.get(s.id("t").unwrap()), &Value::Str("hi".into()));
/// ```
#[derive(Clone, Debug, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct Row {
    values: Vec<Value>,
}

/// A typed column handle that sets values of type `V` in a row.
pub trait SetColumn<V> {
    /// The column.
    fn id(&self) -> ColumnId;
    /// The value it stores.
    fn value(v: V) -> Value;
}

impl SetColumn<Vec<f32>> for KeyCol {
    fn id(&self) -> ColumnId {
        self.0
    }
    fn value(v: Vec<f32>) -> Value {
        Value::Vector(v)
    }
}

impl<T: Scalar + Into<Value>> SetColumn<T> for FixedCol<T> {
    fn id(&self) -> ColumnId {
        self.0
    }
    fn value(v: T) -> Value {
        v.into()
    }
}

impl<S: Into<String>> SetColumn<S> for SymbolCol {
    fn id(&self) -> ColumnId {
        self.0
    }
    fn value(v: S) -> Value {
        Value::Str(v.into())
    }
}

impl<S: Into<String>> SetColumn<S> for TextCol {
    fn id(&self) -> ColumnId {
        self.0
    }
    fn value(v: S) -> Value {
        Value::Str(v.into())
    }
}

impl SetColumn<Vec<u8>> for BlobCol {
    fn id(&self) -> ColumnId {
        self.0
    }
    fn value(v: Vec<u8>) -> Value {
        Value::Bytes(v)
    }
}

impl SetColumn<Sparse> for SparseCol {
    fn id(&self) -> ColumnId {
        self.0
    }
    fn value(v: Sparse) -> Value {
        Value::Sparse(v)
    }
}

impl SetColumn<Vec<RowId>> for EdgeCol {
    fn id(&self) -> ColumnId {
        self.0
    }
    fn value(v: Vec<RowId>) -> Value {
        Value::Edges(v.into_iter().map(|r| r.0).collect())
    }
}

impl Row {
    /// A row of `schema` with every column at its default.
    pub fn new(schema: &Schema) -> Row {
        Row {
            values: vec![Value::Null; schema.columns().len()],
        }
    }

    /// A row from values in column order (checked when written).
    pub fn from_values(values: Vec<Value>) -> Row {
        Row { values }
    }

    /// Set column `col` (builder style). Accepts anything the handle takes,
    /// e.g. `&str` for text and symbols, `Vec<f32>` for keys.
    pub fn with<V, C: SetColumn<V>>(mut self, col: C, v: V) -> Row {
        self.set(col, v);
        self
    }

    /// Set column `col`.
    pub fn set<V, C: SetColumn<V>>(&mut self, col: C, v: V) -> &mut Row {
        self.set_value(col.id(), C::value(v))
    }

    /// Set column `id` to a dynamically typed value (checked when written).
    pub fn set_value(&mut self, id: ColumnId, v: Value) -> &mut Row {
        let i = id.0 as usize;
        if self.values.len() <= i {
            self.values.resize(i + 1, Value::Null);
        }
        self.values[i] = v;
        self
    }

    /// The value of column `id` (`Null` if unset).
    pub fn get(&self, id: ColumnId) -> &Value {
        self.values.get(id.0 as usize).unwrap_or(&Value::Null)
    }

    /// Values in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The row as bytes (the archive format of the WAL), e.g. to spill it.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        super::codec::encode(self)
            .map(|b| b.to_vec())
            .map_err(|e| Error::Internal(format!("cannot encode a row: {e}")))
    }

    /// A row from [`Row::to_bytes`]; bytes that are not one are an error.
    pub fn from_bytes(b: &[u8]) -> Result<Row> {
        super::codec::decode(b).map_err(|e| Error::InvalidArgument(format!("not an encoded row: {e}")))
    }

    /// An upper bound on the bytes this row takes in a log record.
    pub fn log_bytes(&self) -> usize {
        let v: usize = self
            .values
            .iter()
            .map(|v| {
                16 + match v {
                    Value::Vector(x) => x.len() * 4,
                    Value::Str(s) => s.len(),
                    Value::Bytes(b) => b.len(),
                    Value::Sparse(s) => s.ids.len() * 8,
                    Value::Edges(e) => e.len() * 8,
                    _ => 8,
                }
            })
            .sum();
        64 + v
    }

    /// Check the row against `schema` (table `table`) and bring every value
    /// to its canonical form: a default for `Null`, unsigned integers for
    /// unsigned and enum columns (enum names are looked up), f32 precision
    /// for f32 columns, text as `Str`. Rows read back from a store are in
    /// this form.
    pub fn normalize(self, table: &str, schema: &Schema) -> Result<Row> {
        let n = schema.columns().len();
        if self.values.len() > n {
            return Err(Error::InvalidArgument(format!(
                "row has {} values, table {table:?} has {n} columns",
                self.values.len()
            )));
        }
        let mut values = self.values;
        values.resize(n, Value::Null);
        for (c, v) in schema.columns().iter().zip(values.iter_mut()) {
            *v = canonical(table, &c.name, &c.kind, std::mem::take(v))?;
        }
        let row = Row { values };
        let bytes = row.log_bytes();
        if bytes > MAX_ROW_BYTES {
            return Err(Error::TooLarge {
                what: "a row",
                bytes,
                limit: MAX_ROW_BYTES,
            });
        }
        Ok(row)
    }
}

fn mismatch(column: &str, kind: &str, v: &Value) -> Error {
    Error::InvalidArgument(format!("column {column:?} holds {kind}; got {v:?}"))
}

/// The canonical value of a fixed column of type `t`, or an error.
pub(crate) fn canonical_fixed(column: &str, t: &FixedType, v: Value) -> Result<Value> {
    let out_of_range = |v: &Value| Error::InvalidArgument(format!("value {v:?} is out of range for column {column:?}"));
    let unsigned_max = match t {
        FixedType::U8 => u64::from(u8::MAX),
        FixedType::U32 => u64::from(u32::MAX),
        FixedType::Enum(names) => names.len() as u64 - 1,
        _ => u64::MAX,
    };
    let signed = match t {
        FixedType::I32 => i64::from(i32::MIN)..=i64::from(i32::MAX),
        _ => i64::MIN..=i64::MAX,
    };
    match (t.scalar(), v) {
        (_, Value::Null) => Ok(match t.scalar() {
            ScalarKind::Unsigned => Value::UInt(0),
            ScalarKind::Signed => Value::Int(0),
            ScalarKind::Float => Value::Float(0.0),
            ScalarKind::Symbol => Value::Str(String::new()),
        }),
        (ScalarKind::Unsigned, Value::Str(s)) if matches!(t, FixedType::Enum(_)) => match t {
            FixedType::Enum(names) => names
                .iter()
                .position(|n| *n == s)
                .map(|i| Value::UInt(i as u64))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("column {column:?} is one of {}; got {s:?}", names.join(", ")))
                }),
            _ => unreachable!(),
        },
        (ScalarKind::Unsigned, v @ (Value::UInt(_) | Value::Int(_))) => {
            let x = match v {
                Value::UInt(x) => Some(x),
                Value::Int(x) => u64::try_from(x).ok(),
                _ => None,
            };
            match x {
                Some(x) if x <= unsigned_max => Ok(Value::UInt(x)),
                _ => Err(out_of_range(&v)),
            }
        }
        (ScalarKind::Signed, v @ (Value::UInt(_) | Value::Int(_))) => {
            let x = match v {
                Value::Int(x) => Some(x),
                Value::UInt(x) => i64::try_from(x).ok(),
                _ => None,
            };
            match x {
                Some(x) if signed.contains(&x) => Ok(Value::Int(x)),
                _ => Err(out_of_range(&v)),
            }
        }
        (ScalarKind::Float, v @ (Value::Float(_) | Value::Int(_) | Value::UInt(_))) => {
            let x = match v {
                Value::Float(x) => x,
                Value::Int(x) => x as f64,
                Value::UInt(x) => x as f64,
                _ => 0.0,
            };
            let x = if *t == FixedType::F32 { f64::from(x as f32) } else { x };
            if !x.is_finite() {
                return Err(Error::NonFinite {
                    what: "float column",
                    index: 0,
                    value: x as f32,
                });
            }
            Ok(Value::Float(x))
        }
        (ScalarKind::Symbol, Value::Str(s)) => Ok(Value::Str(s)),
        (_, v) => Err(mismatch(column, &format!("{t:?}"), &v)),
    }
}

fn canonical(table: &str, column: &str, kind: &ColumnKind, v: Value) -> Result<Value> {
    match (kind, v) {
        (ColumnKind::Key(k), Value::Vector(x)) => {
            if x.len() != k.dim as usize {
                return Err(Error::DimensionMismatch {
                    table: table.to_string(),
                    expected: k.dim,
                    found: u32::try_from(x.len()).unwrap_or(u32::MAX),
                });
            }
            if let Some(index) = x.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    what: "key",
                    index,
                    value: x[index],
                });
            }
            Ok(Value::Vector(x))
        }
        (ColumnKind::Key(_), v) => Err(mismatch(column, "a key vector (keys have no default)", &v)),
        (ColumnKind::Fixed(t), v) => canonical_fixed(column, t, v),
        (ColumnKind::Blob(b), Value::Null) => Ok(if b.utf8 {
            Value::Str(String::new())
        } else {
            Value::Bytes(Vec::new())
        }),
        (ColumnKind::Blob(b), Value::Str(s)) => Ok(if b.utf8 {
            Value::Str(s)
        } else {
            Value::Bytes(s.into_bytes())
        }),
        (ColumnKind::Blob(b), Value::Bytes(x)) => {
            if b.utf8 {
                String::from_utf8(x)
                    .map(Value::Str)
                    .map_err(|_| Error::InvalidArgument(format!("column {column:?} holds UTF-8 text")))
            } else {
                Ok(Value::Bytes(x))
            }
        }
        (ColumnKind::Sparse(k), Value::Null) => Ok(Value::Sparse(Sparse::empty(*k))),
        (ColumnKind::Sparse(k), Value::Sparse(s)) => {
            s.check(column, *k)?;
            Ok(Value::Sparse(s))
        }
        (ColumnKind::Edges(_), Value::Null) => Ok(Value::Edges(Vec::new())),
        (ColumnKind::Edges(_), Value::Edges(e)) => Ok(Value::Edges(e)),
        (kind, v) => Err(mismatch(column, &format!("{kind:?}"), &v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::schema::{FixedType, KeySpec};
    use crate::storage::types::Dim;

    fn schema() -> Schema {
        Schema::builder()
            .key("k", KeySpec::new(Dim::new(2).unwrap()))
            .fixed("u", FixedType::U32)
            .fixed("f", FixedType::F32)
            .enumeration("e", &["a", "b"])
            .text("t")
            .sparse("s", SparseKind::Counts)
            .build()
            .unwrap()
    }

    #[test]
    fn normalize_fills_defaults_and_checks_types() {
        let s = schema();
        let r = Row::new(&s)
            .with(s.key("k").unwrap(), vec![1.0, 2.0])
            .normalize("t", &s)
            .unwrap();
        assert_eq!(r.get(ColumnId(1)), &Value::UInt(0));
        assert_eq!(r.get(ColumnId(4)), &Value::Str(String::new()));
        assert_eq!(r.get(ColumnId(5)), &Value::Sparse(Sparse::empty(SparseKind::Counts)));
        let mut bad = r.clone();
        bad.set_value(ColumnId(1), Value::Int(-1));
        assert!(bad.normalize("t", &s).is_err());
        let mut e = r.clone();
        e.set_value(ColumnId(3), Value::Str("b".into()));
        assert_eq!(e.normalize("t", &s).unwrap().get(ColumnId(3)), &Value::UInt(1));
        let mut f = r.clone();
        f.set_value(ColumnId(2), Value::Float(0.1));
        assert_eq!(
            f.normalize("t", &s).unwrap().get(ColumnId(2)),
            &Value::Float(f64::from(0.1f32))
        );
        assert!(Row::new(&s).normalize("t", &s).is_err(), "a key has no default");
        let mut nan = r.clone();
        nan.set_value(ColumnId(0), Value::Vector(vec![f32::NAN, 0.0]));
        assert!(matches!(nan.normalize("t", &s), Err(Error::NonFinite { .. })));
        let mut unsorted = r;
        unsorted.set_value(
            ColumnId(5),
            Value::Sparse(Sparse {
                ids: vec![3, 1],
                weights: Weights::Counts(vec![1, 1]),
            }),
        );
        assert!(unsorted.normalize("t", &s).is_err());
    }

    #[test]
    fn sparse_merge_adds_and_saturates() {
        let a = Sparse::counts([(1, 2), (5, u32::MAX)]);
        let b = Sparse::counts([(0, 1), (5, 3), (9, 1)]);
        let m = a.as_ref().merged(b.as_ref());
        assert_eq!(m.ids, vec![0, 1, 5, 9]);
        assert_eq!(m.weights, Weights::Counts(vec![1, 2, u32::MAX, 1]));
        let w = Sparse::weights([(2, 0.5)])
            .as_ref()
            .merged(Sparse::weights([(2, 0.25), (3, 1.0)]).as_ref());
        assert_eq!(w.weights, Weights::F32(vec![0.75, 1.0]));
    }
}
