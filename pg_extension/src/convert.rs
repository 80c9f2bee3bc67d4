//! SQL values <-> engine rows for stores of kind `rows`: their schema (a
//! key, a body, and the metadata columns that `meta` jsonb names), and the
//! conversions in both directions. Metadata is normalized on the way in, so
//! the truth table and the engine copy always print the same jsonb.

use engram::storage::{ColumnId, ColumnKind, Dim, FixedType, IndexSpec, KeySpec, Row, RowView, Schema, Value};
use pgrx::PgSqlErrorCode as Code;
use serde_json::{Map, Value as J};

use crate::errors::user_error;

/// Column of the key.
pub const KEY: ColumnId = ColumnId(0);
/// Column of the body.
pub const BODY: ColumnId = ColumnId(1);
/// The column of the SQL row id (the engine copy's unique source id).
pub const SOURCE_ID: &str = "id";
/// Columns before the metadata columns.
const FIRST_META: usize = 3;

/// The engine table of a store of kind `rows` with keys of `dim` and graph
/// settings `index`: `key`, `body`, the SQL row `id` (unique: the engine's
/// own row ids are assigned in publish order), then one column per
/// metadata key.
pub fn rows_schema(dim: u32, index: IndexSpec) -> engram::Result<Schema> {
    Schema::builder()
        .key("key", KeySpec::new(Dim::new(dim)?).with_index(Some(index)))
        .text("body")
        .fixed(SOURCE_ID, FixedType::U64)
        .unique(SOURCE_ID)
        .symbol("namespace")
        .symbol("session")
        .enumeration("scope", &["global", "user", "session"])
        .enumeration("kind", &["generic", "turn", "summary", "authored"])
        .enumeration("tier", &["variant", "soft", "hard"])
        .fixed("timestamp", FixedType::Timestamp)
        .fixed("order", FixedType::U32)
        .fixed("access_count", FixedType::U32)
        .fixed("token_count", FixedType::U32)
        .fixed("authority", FixedType::F32)
        .fixed("confidence", FixedType::F32)
        .fixed("decay_rate", FixedType::F32)
        .fixed("anchor_density", FixedType::F32)
        .build()
}

fn bad(msg: String) -> ! {
    user_error(Code::ERRCODE_INVALID_PARAMETER_VALUE, msg)
}

/// The metadata columns of `s`: all but the key, the body and the id.
pub fn meta_columns(s: &Schema) -> impl Iterator<Item = (ColumnId, &engram::storage::Column)> {
    s.columns()
        .iter()
        .enumerate()
        .skip(FIRST_META)
        .map(|(i, c)| (ColumnId(i as u16), c))
}

fn keys(s: &Schema) -> String {
    meta_columns(s)
        .map(|(_, c)| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The engine value of metadata key `k` of type `t`; 22023 for a wrong type.
fn cell(k: &str, t: &FixedType, v: &J) -> Value {
    let out = match t {
        FixedType::Enum(names) => {
            let s = v
                .as_str()
                .unwrap_or_else(|| bad(format!("meta key {k:?} must be a string")));
            match names.iter().position(|n| n == s) {
                Some(i) => return Value::UInt(i as u64),
                None => bad(format!("meta key {k:?} is {s:?}; allowed: {}", names.join(", "))),
            }
        }
        FixedType::Symbol => v
            .as_str()
            .map(|s| Value::Str(s.to_string()))
            .unwrap_or_else(|| bad(format!("meta key {k:?} must be a string"))),
        FixedType::Timestamp | FixedType::I32 | FixedType::I64 => v.as_i64().map(Value::Int).unwrap_or_else(|| {
            bad(format!(
                "meta key {k:?} must be an integer (for timestamp: microseconds since 1970)"
            ))
        }),
        FixedType::F32 | FixedType::F64 => match v.as_f64() {
            Some(x) if x.is_finite() => Value::Float(x),
            _ => bad(format!("meta key {k:?} must be a finite number")),
        },
        _ => v
            .as_u64()
            .map(Value::UInt)
            .unwrap_or_else(|| bad(format!("meta key {k:?} must be an integer between 0 and {}", u32::MAX))),
    };
    // Ranges and enum names are checked by the schema.
    let one = Schema::builder()
        .fixed(k, t.clone())
        .build()
        .unwrap_or_else(|e| bad(e.to_string()));
    match Row::from_values(vec![out]).normalize("meta", &one) {
        Ok(r) => r.get(ColumnId(0)).clone(),
        Err(engram::Error::InvalidArgument(why)) => bad(format!("meta key {k:?}: {why}")),
        Err(e) => bad(format!("meta key {k:?}: {e}")),
    }
}

/// Parse a meta jsonb object into the metadata values of a row of `s`;
/// unknown keys and wrong types are ERRORs (22023).
pub fn meta_from_json(s: &Schema, v: &J) -> Vec<(ColumnId, Value)> {
    let obj = v
        .as_object()
        .unwrap_or_else(|| bad("meta must be a jsonb object".into()));
    obj.iter()
        .map(|(k, v)| {
            let (id, c) = meta_columns(s)
                .find(|(_, c)| c.name == *k)
                .unwrap_or_else(|| bad(format!("unknown meta key {k:?}; allowed keys: {}", keys(s))));
            match &c.kind {
                ColumnKind::Fixed(t) => (id, cell(k, t, v)),
                _ => bad(format!("meta key {k:?} is not a metadata column")),
            }
        })
        .collect()
}

/// Metadata values as normalized jsonb: only keys whose value differs from
/// the default, enum values by name.
fn meta_json(s: &Schema, values: impl Iterator<Item = (ColumnId, Value)>) -> J {
    let mut o = Map::new();
    for (id, v) in values {
        let Some(c) = s.column(id) else { continue };
        let j = match (&c.kind, v) {
            (_, Value::UInt(0) | Value::Int(0)) => continue,
            (_, Value::Float(0.0)) => continue,
            (_, Value::Str(x)) if x.is_empty() => continue,
            (_, Value::Str(x)) => J::from(x),
            (ColumnKind::Fixed(FixedType::Enum(names)), Value::UInt(i)) => {
                J::from(names.get(i as usize).cloned().unwrap_or_default())
            }
            (_, Value::UInt(x)) => J::from(x),
            (_, Value::Int(x)) => J::from(x),
            (ColumnKind::Fixed(FixedType::F32), Value::Float(x)) => J::from(x as f32),
            (_, Value::Float(x)) => J::from(x),
            _ => continue,
        };
        o.insert(c.name.clone(), j);
    }
    J::Object(o)
}

/// The normalized jsonb of a stored row's metadata.
pub fn meta_to_json(s: &Schema, row: &RowView<'_>) -> J {
    meta_json(
        s,
        meta_columns(s).map(|(id, _)| (id, row.value(id).unwrap_or(Value::Null))),
    )
}

/// The normalized form of a meta object (what `meta_to_json` prints for a
/// row written with it), to store in the truth table.
pub fn normalize_meta(s: &Schema, meta: &J) -> J {
    meta_json(s, meta_from_json(s, meta).into_iter())
}

/// The engine row for a stored truth row.
pub fn row(s: &Schema, key: Vec<f32>, body: String, meta: &J) -> Row {
    let mut r = Row::new(s);
    r.set_value(KEY, Value::Vector(key)).set_value(BODY, Value::Str(body));
    for (id, v) in meta_from_json(s, meta) {
        r.set_value(id, v);
    }
    r
}
