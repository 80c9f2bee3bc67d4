//! Which rows a search may return: small predicates over a table's columns
//! (equality, sets, half-open ranges, row ids; and / or / not), compiled
//! against the table's schema, then bound to each segment — a symbol value
//! becomes the segment's local id and its posting list, so a selective
//! filter reads the rows that match and nothing else, and a value a segment
//! lacks rules the whole segment out.

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::{ColumnKind, FixedType, RowView, Schema, Segment, Value};

/// A predicate on rows.
///
/// ```
/// use engram::index::Filter;
/// let f = Filter::eq("namespace", "tenant-7").and(Filter::range("timestamp", 0i64..1_000));
/// assert!(!f.is_all());
/// ```
#[derive(Clone, Debug, Default)]
pub enum Filter {
    /// Every row.
    #[default]
    All,
    /// The column equals the value.
    Eq(String, Value),
    /// The column equals one of the values.
    In(String, Vec<Value>),
    /// The column lies in `[low, high)` (an open end is `None`); for
    /// numeric and timestamp columns.
    Range {
        /// The column.
        column: String,
        /// Inclusive lower bound.
        low: Option<Value>,
        /// Exclusive upper bound.
        high: Option<Value>,
    },
    /// The row id is in the set.
    Ids(Arc<HashSet<u64>>),
    /// Every one holds.
    And(Vec<Filter>),
    /// At least one holds.
    Or(Vec<Filter>),
    /// It does not hold.
    Not(Box<Filter>),
}

impl Filter {
    /// `column == value`.
    pub fn eq(column: &str, value: impl Into<Value>) -> Filter {
        Filter::Eq(column.to_string(), value.into())
    }

    /// `column` in `values`.
    pub fn one_of<V: Into<Value>>(column: &str, values: impl IntoIterator<Item = V>) -> Filter {
        Filter::In(column.to_string(), values.into_iter().map(Into::into).collect())
    }

    /// `column` in `range` (half-open).
    pub fn range<V: Into<Value>>(column: &str, range: std::ops::Range<V>) -> Filter {
        Filter::Range {
            column: column.to_string(),
            low: Some(range.start.into()),
            high: Some(range.end.into()),
        }
    }

    /// The rows whose id is in `ids`.
    pub fn ids(ids: impl IntoIterator<Item = u64>) -> Filter {
        Filter::Ids(Arc::new(ids.into_iter().collect()))
    }

    /// This and `other`.
    pub fn and(self, other: Filter) -> Filter {
        match (self, other) {
            (Filter::All, f) | (f, Filter::All) => f,
            (Filter::And(mut a), Filter::And(b)) => {
                a.extend(b);
                Filter::And(a)
            }
            (Filter::And(mut a), f) => {
                a.push(f);
                Filter::And(a)
            }
            (f, g) => Filter::And(vec![f, g]),
        }
    }

    /// This or `other`.
    pub fn or(self, other: Filter) -> Filter {
        Filter::Or(vec![self, other])
    }

    /// Whether the filter admits every row.
    pub fn is_all(&self) -> bool {
        match self {
            Filter::All => true,
            Filter::And(v) => v.iter().all(Filter::is_all),
            _ => false,
        }
    }

    /// Check the filter against `schema` and resolve its columns and values.
    pub(crate) fn compile(&self, schema: &Schema) -> Result<Pred> {
        Ok(match self {
            Filter::All => Pred::True,
            Filter::Eq(c, v) => leaf(schema, c, std::slice::from_ref(v))?,
            Filter::In(c, vs) => leaf(schema, c, vs)?,
            Filter::Range { column, low, high } => range(schema, column, low.as_ref(), high.as_ref())?,
            Filter::Ids(ids) => Pred::Ids(ids.clone()),
            Filter::And(fs) => Pred::And(fs.iter().map(|f| f.compile(schema)).collect::<Result<_>>()?),
            Filter::Or(fs) => Pred::Or(fs.iter().map(|f| f.compile(schema)).collect::<Result<_>>()?),
            Filter::Not(f) => Pred::Not(Box::new(f.compile(schema)?)),
        })
    }
}

/// A test on a fixed column's carried bits.
#[derive(Clone, Debug)]
pub(crate) enum Test {
    In(Vec<u64>),
    U(u64, u64),
    I(i64, i64),
    F(f64, f64),
}

impl Test {
    #[inline]
    fn holds(&self, bits: u64, ty: &FixedType) -> bool {
        match self {
            Test::In(v) if v.len() > 8 => v.binary_search(&bits).is_ok(),
            Test::In(v) => v.contains(&bits),
            Test::U(lo, hi) => (*lo..*hi).contains(&bits),
            Test::I(lo, hi) => (*lo..*hi).contains(&(bits as i64)),
            Test::F(lo, hi) => {
                let x = match ty {
                    FixedType::F32 => f64::from(f32::from_bits(bits as u32)),
                    _ => f64::from_bits(bits),
                };
                (*lo..*hi).contains(&x)
            }
        }
    }
}

/// A filter resolved against a schema.
#[derive(Clone, Debug)]
pub(crate) enum Pred {
    True,
    /// A symbol column is one of these strings.
    Sym(u16, Vec<String>),
    Fixed(u16, FixedType, Test),
    Ids(Arc<HashSet<u64>>),
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
}

fn column<'a>(schema: &'a Schema, name: &str) -> Result<(u16, &'a ColumnKind)> {
    let id = schema.id(name)?;
    Ok((id.0, &schema.columns()[id.0 as usize].kind))
}

fn leaf(schema: &Schema, name: &str, values: &[Value]) -> Result<Pred> {
    match column(schema, name)? {
        (c, ColumnKind::Fixed(FixedType::Symbol)) => {
            let strs = values
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    other => Err(Error::InvalidArgument(format!(
                        "filter on {name:?}: {other:?} is not a string"
                    ))),
                })
                .collect::<Result<_>>()?;
            Ok(Pred::Sym(c, strs))
        }
        (c, ColumnKind::Fixed(t)) => {
            let mut bits: Vec<u64> = values
                .iter()
                .map(|v| canonical_bits(name, t, v))
                .collect::<Result<_>>()?;
            // Sorted, so a long list is searched rather than walked.
            bits.sort_unstable();
            bits.dedup();
            Ok(Pred::Fixed(c, t.clone(), Test::In(bits)))
        }
        _ => Err(Error::InvalidArgument(format!(
            "filter on {name:?}: only fixed and symbol columns can be filtered on"
        ))),
    }
}

fn canonical_bits(name: &str, t: &FixedType, v: &Value) -> Result<u64> {
    let schema = Schema::builder().fixed(name, t.clone()).build()?;
    let row = crate::storage::Row::from_values(vec![v.clone()]).normalize("filter", &schema)?;
    Ok(match (t, row.get(crate::storage::ColumnId(0))) {
        (FixedType::F32, Value::Float(x)) => u64::from((*x as f32).to_bits()),
        (_, Value::Float(x)) => x.to_bits(),
        (_, Value::UInt(x)) => *x,
        (_, Value::Int(x)) => *x as u64,
        _ => 0,
    })
}

fn range(schema: &Schema, name: &str, low: Option<&Value>, high: Option<&Value>) -> Result<Pred> {
    let (c, kind) = column(schema, name)?;
    let t = match kind {
        ColumnKind::Fixed(t) if !matches!(t, FixedType::Symbol | FixedType::Enum(_)) => t.clone(),
        _ => {
            return Err(Error::InvalidArgument(format!(
                "range filter on {name:?}: only numeric and timestamp columns have ranges"
            )))
        }
    };
    let num = |v: Option<&Value>| -> Result<Option<f64>> {
        match v {
            None => Ok(None),
            Some(Value::Int(x)) => Ok(Some(*x as f64)),
            Some(Value::UInt(x)) => Ok(Some(*x as f64)),
            Some(Value::Float(x)) if !x.is_nan() => Ok(Some(*x)),
            Some(other) => Err(Error::InvalidArgument(format!(
                "range filter on {name:?}: {other:?} is not a number"
            ))),
        }
    };
    let int = |v: Option<&Value>, open: i128| -> Result<i128> {
        match v {
            None => Ok(open),
            Some(Value::Int(x)) => Ok(i128::from(*x)),
            Some(Value::UInt(x)) => Ok(i128::from(*x)),
            Some(Value::Float(x)) if !x.is_nan() => Ok(x.ceil() as i128),
            Some(other) => Err(Error::InvalidArgument(format!(
                "range filter on {name:?}: {other:?} is not a number"
            ))),
        }
    };
    let test = match t {
        FixedType::F32 | FixedType::F64 => Test::F(
            num(low)?.unwrap_or(f64::NEG_INFINITY),
            num(high)?.unwrap_or(f64::INFINITY),
        ),
        FixedType::I32 | FixedType::I64 | FixedType::Timestamp => {
            let clamp = |x: i128| x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
            Test::I(
                clamp(int(low, i128::from(i64::MIN))?),
                clamp(int(high, i128::from(i64::MAX))?),
            )
        }
        _ => {
            let clamp = |x: i128| x.clamp(0, i128::from(u64::MAX)) as u64;
            Test::U(clamp(int(low, 0)?), clamp(int(high, i128::from(u64::MAX))?))
        }
    };
    Ok(Pred::Fixed(c, t, test))
}

impl Pred {
    /// Whether every row passes.
    pub fn is_true(&self) -> bool {
        match self {
            Pred::True => true,
            Pred::And(v) => v.iter().all(Pred::is_true),
            _ => false,
        }
    }

    /// Whether the row passes (any row: memtable or segment).
    pub fn matches(&self, r: &RowView<'_>) -> bool {
        match self {
            Pred::True => true,
            Pred::Sym(c, any) => {
                let v = r.symbol(crate::storage::SymbolCol(crate::storage::ColumnId(*c)));
                any.iter().any(|s| s == v)
            }
            Pred::Fixed(c, t, test) => test.holds(r.bits(*c), t),
            Pred::Ids(ids) => ids.contains(&r.id().0),
            Pred::And(v) => v.iter().all(|p| p.matches(r)),
            Pred::Or(v) => v.iter().any(|p| p.matches(r)),
            Pred::Not(p) => !p.matches(r),
        }
    }

    /// The predicate over one segment's rows: symbol values resolved to the
    /// segment's local ids.
    pub fn bind<'s>(&self, seg: &'s Segment) -> Bound<'s> {
        match self {
            Pred::True => Bound::True,
            Pred::Sym(c, any) => {
                let d = seg.dict(*c as usize);
                let mut ids: Vec<u32> = any.iter().filter_map(|s| d.lookup(s)).collect();
                ids.sort_unstable();
                ids.dedup();
                if ids.is_empty() {
                    Bound::False
                } else {
                    Bound::Sym { dict: d, ids }
                }
            }
            Pred::Fixed(c, t, test) => Bound::Fixed {
                col: *c,
                data: seg.fixed(*c as usize, t),
                ty: t.clone(),
                test: test.clone(),
            },
            Pred::Ids(ids) => Bound::Ids(ids.clone()),
            Pred::And(v) => simplify_and(v.iter().map(|p| p.bind(seg)).collect()),
            Pred::Or(v) => simplify_or(v.iter().map(|p| p.bind(seg)).collect()),
            Pred::Not(p) => match p.bind(seg) {
                Bound::True => Bound::False,
                Bound::False => Bound::True,
                b => Bound::Not(Box::new(b)),
            },
        }
    }
}

fn simplify_and(v: Vec<Bound<'_>>) -> Bound<'_> {
    if v.iter().any(|b| matches!(b, Bound::False)) {
        return Bound::False;
    }
    let v: Vec<_> = v.into_iter().filter(|b| !matches!(b, Bound::True)).collect();
    match v.len() {
        0 => Bound::True,
        1 => v.into_iter().next().unwrap_or(Bound::True),
        _ => Bound::And(v),
    }
}

fn simplify_or(v: Vec<Bound<'_>>) -> Bound<'_> {
    if v.iter().any(|b| matches!(b, Bound::True)) {
        return Bound::True;
    }
    let v: Vec<_> = v.into_iter().filter(|b| !matches!(b, Bound::False)).collect();
    match v.len() {
        0 => Bound::False,
        1 => v.into_iter().next().unwrap_or(Bound::False),
        _ => Bound::Or(v),
    }
}

/// A predicate bound to one segment.
pub(crate) enum Bound<'s> {
    True,
    False,
    Sym {
        dict: crate::storage::Dict<'s>,
        ids: Vec<u32>,
    },
    Fixed {
        col: u16,
        data: crate::storage::Fixed<'s>,
        ty: FixedType,
        test: Test,
    },
    Ids(Arc<HashSet<u64>>),
    And(Vec<Bound<'s>>),
    Or(Vec<Bound<'s>>),
    Not(Box<Bound<'s>>),
}

impl Bound<'_> {
    /// Whether row `i` (id `id`) passes; `patched` gives the updated bits of
    /// a fixed column, if the row has them.
    pub fn holds(&self, i: usize, id: u64, patched: &impl Fn(u64, u16) -> Option<u64>) -> bool {
        match self {
            Bound::True => true,
            Bound::False => false,
            Bound::Sym { dict, ids } => dict.data.get(i).is_some_and(|v| ids.binary_search(v).is_ok()),
            Bound::Fixed { col, data, ty, test } => test.holds(patched(id, *col).unwrap_or_else(|| data.bits(i)), ty),
            Bound::Ids(set) => set.contains(&id),
            Bound::And(v) => v.iter().all(|b| b.holds(i, id, patched)),
            Bound::Or(v) => v.iter().any(|b| b.holds(i, id, patched)),
            Bound::Not(b) => !b.holds(i, id, patched),
        }
    }

    /// The rows that can pass, increasing, when posting lists (or an id
    /// set) bound them; `None` when only a check of every row can tell.
    pub fn candidates(&self, seg: &Segment) -> Option<Vec<u32>> {
        match self {
            Bound::False => Some(Vec::new()),
            Bound::Sym { dict, ids } => {
                let mut rows: Vec<u32> = ids.iter().flat_map(|&v| dict.postings(v).iter().copied()).collect();
                if ids.len() > 1 {
                    rows.sort_unstable();
                }
                Some(rows)
            }
            Bound::Ids(set) => {
                let mut rows: Vec<u32> = set.iter().filter_map(|&id| seg.find(id)).map(|r| r as u32).collect();
                rows.sort_unstable();
                Some(rows)
            }
            // The smallest bounded child bounds the conjunction.
            Bound::And(v) => v.iter().filter_map(|b| b.candidates(seg)).min_by_key(Vec::len),
            Bound::Or(v) => {
                let mut all = Vec::new();
                for b in v {
                    all.extend(b.candidates(seg)?);
                }
                all.sort_unstable();
                all.dedup();
                Some(all)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Dim, KeySpec, Schema};

    fn schema() -> Schema {
        Schema::builder()
            .key("k", KeySpec::new(Dim::new(2).unwrap()))
            .symbol("ns")
            .fixed("ts", FixedType::Timestamp)
            .fixed("w", FixedType::F32)
            .enumeration("tier", &["a", "b"])
            .text("t")
            .build()
            .unwrap()
    }

    #[test]
    fn filters_compile_against_the_schema() {
        let s = schema();
        assert!(matches!(Filter::eq("ns", "x").compile(&s), Ok(Pred::Sym(1, _))));
        assert!(matches!(Filter::eq("tier", "b").compile(&s), Ok(Pred::Fixed(4, _, Test::In(v))) if v == vec![1]));
        assert!(matches!(
            Filter::range("ts", 5i64..9).compile(&s),
            Ok(Pred::Fixed(2, _, Test::I(5, 9)))
        ));
        assert!(matches!(
            Filter::range("w", 0.5f64..1.0).compile(&s),
            Ok(Pred::Fixed(3, _, Test::F(..)))
        ));
        for bad in [
            Filter::eq("nope", 1u64),
            Filter::eq("t", "x"),
            Filter::eq("ns", 3u64),
            Filter::eq("tier", "c"),
            Filter::range("ns", 0u64..1),
            Filter::range("tier", 0u64..1),
        ] {
            assert!(bad.compile(&s).is_err(), "{bad:?}");
        }
        assert!(Filter::All.and(Filter::All).is_all());
    }
}
