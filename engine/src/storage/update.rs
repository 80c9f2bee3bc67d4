//! Updates of stored rows in place: ids never change on update.
//!
//! An update is logged as what it does (set a value, add to a number, merge
//! counts into a distribution) and applied when a row is read: the store
//! keeps, per table, the latest value of every updated column of every
//! updated row ("patches", `patch.rs`), which flushes and merges fold into
//! the segments they write.

use rkyv::{Archive, Deserialize, Serialize};

use super::row::{canonical_fixed, Sparse, Value};
use super::schema::{ColumnId, ColumnKind, FixedCol, FixedType, Scalar, ScalarKind, Schema, SparseCol};
use crate::error::{Error, Result};

/// One change to one column of a row.
///
/// ```
/// use engram::storage::{FixedType, Schema, Sparse, SparseKind, Update};
/// let s = Schema::builder().fixed("hits", FixedType::U64).sparse("next", SparseKind::Counts).build().unwrap();
/// let bump: Update = s.fixed::<u64>("hits").unwrap().add(1);
/// let learn: Update = s.sparse("next").unwrap().merge(Sparse::counts([(42, 1)]));
/// assert!(bump.check("t", &s).is_ok() && learn.check("t", &s).is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub enum Update {
    /// Replace the value of a fixed (not symbol, not unique) or sparse column.
    Set(u16, Value),
    /// Add to a numeric fixed column (integers saturate at their bounds).
    Add(u16, Value),
    /// Add a distribution into a sparse column, id by id.
    Merge(u16, Sparse),
}

impl<T: Scalar + Into<Value>> FixedCol<T> {
    /// Set this column to `v`.
    pub fn set(&self, v: T) -> Update {
        Update::Set(self.0 .0, v.into())
    }

    /// Add `d` to this column.
    pub fn add(&self, d: T) -> Update {
        Update::Add(self.0 .0, d.into())
    }
}

impl SparseCol {
    /// Add `s` into this column's distribution.
    pub fn merge(&self, s: Sparse) -> Update {
        Update::Merge(self.0 .0, s)
    }

    /// Replace this column's distribution with `s`.
    pub fn set(&self, s: Sparse) -> Update {
        Update::Set(self.0 .0, Value::Sparse(s))
    }
}

impl Update {
    /// The column it changes.
    pub fn column(&self) -> ColumnId {
        match self {
            Update::Set(c, _) | Update::Add(c, _) | Update::Merge(c, _) => ColumnId(*c),
        }
    }

    /// Check the update against `schema` (of table `table`) and bring its
    /// value to canonical form.
    pub fn check(self, table: &str, schema: &Schema) -> Result<Update> {
        let col = self.column();
        let c = schema
            .column(col)
            .ok_or_else(|| Error::NoSuchColumn(format!("#{} of {table:?}", col.0)))?;
        let refuse = |why: &str| {
            Err(Error::InvalidArgument(format!(
                "column {:?} of table {table:?} cannot be updated: {why}",
                c.name
            )))
        };
        if schema.unique() == Some(col) {
            return refuse("it is the table's unique column");
        }
        match (&c.kind, self) {
            (ColumnKind::Fixed(FixedType::Symbol), _) => {
                refuse("symbols are indexed by value; delete the row and insert it again")
            }
            (ColumnKind::Fixed(t), Update::Set(id, v)) => Ok(Update::Set(id, canonical_fixed(&c.name, t, v)?)),
            (ColumnKind::Fixed(FixedType::Enum(_)), Update::Add(..)) => refuse("enums are set, not added to"),
            (ColumnKind::Fixed(t), Update::Add(id, v)) => {
                // The delta may be negative on an unsigned column.
                let v = match (t.scalar(), v) {
                    (ScalarKind::Unsigned, Value::UInt(x)) => Value::UInt(x),
                    (ScalarKind::Signed, Value::UInt(x)) => Value::Int(
                        i64::try_from(x).map_err(|_| Error::InvalidArgument(format!("delta {x} is too large")))?,
                    ),
                    (ScalarKind::Unsigned | ScalarKind::Signed, Value::Int(x)) => Value::Int(x),
                    (ScalarKind::Float, v) => canonical_fixed(&c.name, &FixedType::F64, v)?,
                    (_, v) => return Err(Error::InvalidArgument(format!("column {:?}: cannot add {v:?}", c.name))),
                };
                Ok(Update::Add(id, v))
            }
            (ColumnKind::Sparse(k), Update::Merge(id, s)) => match canonical_sparse(&c.name, *k, Value::Sparse(s))? {
                Value::Sparse(s) => Ok(Update::Merge(id, s)),
                _ => unreachable!(),
            },
            (ColumnKind::Sparse(k), Update::Set(id, v)) => Ok(Update::Set(id, canonical_sparse(&c.name, *k, v)?)),
            (_, Update::Merge(..)) => refuse("only sparse columns merge"),
            (_, _) => refuse("only fixed and sparse columns are updatable"),
        }
    }
}

fn canonical_sparse(column: &str, kind: super::schema::SparseKind, v: Value) -> Result<Value> {
    // Reuse the row rules for one column.
    let s = Schema::builder().sparse(column, kind).build()?;
    let row = super::row::Row::from_values(vec![v]).normalize("update", &s)?;
    Ok(row.get(ColumnId(0)).clone())
}

fn unsigned_max(t: &FixedType) -> u64 {
    match t {
        FixedType::U8 => u64::from(u8::MAX),
        FixedType::U32 => u64::from(u32::MAX),
        _ => u64::MAX,
    }
}

/// `a + d` held within ±`max`, as integer adds saturate: a sum of finite
/// values never becomes infinite (non-finite operands keep IEEE rules).
fn saturating_float(a: f64, d: f64, max: f64) -> f64 {
    let sum = a + d;
    if a.is_finite() && d.is_finite() {
        sum.clamp(-max, max)
    } else {
        sum
    }
}

/// `base + delta` for a fixed column of type `t`, as carried bits; integers
/// and floats saturate at the column's bounds.
pub(crate) fn add_bits(t: &FixedType, base: u64, delta: &Value) -> u64 {
    match (t, delta) {
        (FixedType::F32, Value::Float(d)) => {
            let a = f64::from(f32::from_bits(base as u32));
            u64::from((saturating_float(a, *d, f64::from(f32::MAX)) as f32).to_bits())
        }
        (FixedType::F64, Value::Float(d)) => saturating_float(f64::from_bits(base), *d, f64::MAX).to_bits(),
        (_, Value::UInt(d)) if t.scalar() == ScalarKind::Unsigned => base.saturating_add(*d).min(unsigned_max(t)),
        (_, Value::Int(d)) => match t.scalar() {
            ScalarKind::Unsigned => {
                let max = unsigned_max(t);
                let r = if *d >= 0 {
                    base.saturating_add(*d as u64)
                } else {
                    base.saturating_sub(d.unsigned_abs())
                };
                r.min(max)
            }
            _ => {
                let (lo, hi) = match t {
                    FixedType::I32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
                    _ => (i64::MIN, i64::MAX),
                };
                ((base as i64).saturating_add(*d)).clamp(lo, hi) as u64
            }
        },
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_saturates_per_type() {
        assert_eq!(add_bits(&FixedType::U8, 250, &Value::Int(10)), 255);
        assert_eq!(add_bits(&FixedType::U64, 5, &Value::UInt(u64::MAX)), u64::MAX);
        assert_eq!(add_bits(&FixedType::U32, 3, &Value::Int(-5)), 0);
        assert_eq!(add_bits(&FixedType::I32, (-5i64) as u64, &Value::Int(-3)) as i64, -8);
        assert_eq!(
            add_bits(&FixedType::I32, i64::from(i32::MAX) as u64, &Value::Int(1)) as i64,
            i64::from(i32::MAX)
        );
        // Floats saturate too: finite adds never reach infinity.
        let big = u64::from(f32::MAX.to_bits());
        assert_eq!(
            f32::from_bits(add_bits(&FixedType::F32, big, &Value::Float(1e38)) as u32),
            f32::MAX
        );
        let low = u64::from((-f32::MAX).to_bits());
        assert_eq!(
            f32::from_bits(add_bits(&FixedType::F32, low, &Value::Float(-1e38)) as u32),
            -f32::MAX
        );
        assert_eq!(
            f64::from_bits(add_bits(&FixedType::F64, f64::MAX.to_bits(), &Value::Float(f64::MAX))),
            f64::MAX
        );
        let half = u64::from(0.5f32.to_bits());
        assert_eq!(
            f32::from_bits(add_bits(&FixedType::F32, half, &Value::Float(0.25)) as u32),
            0.75
        );
    }

    #[test]
    fn updates_are_checked_against_the_schema() {
        let s = Schema::builder()
            .symbol("ns")
            .fixed("n", FixedType::U32)
            .enumeration("e", &["a", "b"])
            .fixed("id", FixedType::U64)
            .unique("id")
            .build()
            .unwrap();
        assert!(Update::Set(0, Value::Str("x".into())).check("t", &s).is_err());
        assert!(Update::Set(3, Value::UInt(1)).check("t", &s).is_err());
        assert!(Update::Add(2, Value::Int(1)).check("t", &s).is_err());
        assert_eq!(
            Update::Set(2, Value::Str("b".into())).check("t", &s).unwrap(),
            Update::Set(2, Value::UInt(1))
        );
        assert_eq!(
            Update::Add(1, Value::UInt(2)).check("t", &s).unwrap(),
            Update::Add(1, Value::UInt(2))
        );
        assert!(Update::Merge(1, Sparse::counts([])).check("t", &s).is_err());
        assert!(Update::Set(9, Value::Null).check("t", &s).is_err());
    }
}
