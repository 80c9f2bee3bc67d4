//! Stores of the first on-disk format (WAL 1, manifest 1, segments 1 and 2):
//! tables of one fixed row shape. They are read as tables of the *legacy
//! schema* below — the same data, column by column — and a writer that
//! opens one rewrites it in today's format (`open.rs`, `upgrade`).
//!
//! The record types here are the ones those stores were written with; rkyv
//! lays archives out by declaration order, so they must never change.

use rkyv::{Archive, Deserialize, Serialize};

use super::row::{Row as NewRow, Value as NewValue};
use super::schema::{EdgeSpec, FixedType, IndexSpec, KeySpec, Schema};
use super::types::Dim;
use crate::error::Result;

/// Column numbers of the legacy schema.
pub(crate) mod col {
    pub const KEY: u16 = 0;
    pub const VALUE: u16 = 1;
    pub const POS_ABSOLUTE: u16 = 2;
    pub const POS_DOCUMENT: u16 = 3;
    pub const POS_RELATIVE: u16 = 4;
    pub const POS_LENGTH: u16 = 5;
    pub const POS_SENTENCE: u16 = 6;
    pub const POS_PARAGRAPH: u16 = 7;
    pub const TIMESTAMP: u16 = 8;
    pub const NAMESPACE: u16 = 9;
    pub const SESSION: u16 = 10;
    pub const ORDER: u16 = 11;
    pub const ACCESS_COUNT: u16 = 12;
    pub const TOKEN_COUNT: u16 = 13;
    pub const AUTHORITY: u16 = 14;
    pub const CONFIDENCE: u16 = 15;
    pub const DECAY_RATE: u16 = 16;
    pub const ANCHOR_DENSITY: u16 = 17;
    pub const SCOPE: u16 = 18;
    pub const KIND: u16 = 19;
    pub const TIER: u16 = 20;
    pub const TEXT: u16 = 21;
    pub const EDGES: u16 = 22;
}

/// The schema a format 1 table of key dimension `dim` is read as. `value`
/// holds the old tagged value bytes (0 empty; 1 then f32s; 2 then (u32 id,
/// u32 count) pairs); scope, kind and tier keep their old numbering.
///
/// ```
/// let s = engram::storage::legacy_schema(engram::storage::Dim::new(8).unwrap());
/// assert_eq!(s.columns().len(), 23);
/// assert!(s.text("text").is_ok());
/// ```
pub fn schema(dim: Dim) -> Schema {
    let u32c = FixedType::U32;
    Schema::builder()
        .key(
            "key",
            KeySpec {
                index: Some(IndexSpec::default()),
                ..KeySpec::new(dim)
            },
        )
        .blob("value", Default::default())
        .fixed("pos_absolute", FixedType::U64)
        .fixed("pos_document", FixedType::U64)
        .fixed("pos_relative", u32c.clone())
        .fixed("pos_length", u32c.clone())
        .fixed("pos_sentence", u32c.clone())
        .fixed("pos_paragraph", u32c.clone())
        .fixed("timestamp", FixedType::Timestamp)
        .symbol("namespace")
        .symbol("session")
        .fixed("order", u32c.clone())
        .fixed("access_count", u32c.clone())
        .fixed("token_count", u32c)
        .fixed("authority", FixedType::F32)
        .fixed("confidence", FixedType::F32)
        .fixed("decay_rate", FixedType::F32)
        .fixed("anchor_density", FixedType::F32)
        .enumeration("scope", &["global", "user", "session"])
        .enumeration("kind", &["generic", "turn", "summary", "authored"])
        .enumeration("tier", &["variant", "soft", "hard"])
        .text("text")
        .edges("edges", EdgeSpec::default())
        .build()
        .unwrap_or_else(|e| unreachable!("the legacy schema is valid: {e}"))
}

macro_rules! byte_enum {
    ($name:ident { $($v:ident = $n:expr),+ $(,)? }) => {
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default, Archive, Serialize, Deserialize)]
        #[repr(u8)]
        pub(crate) enum $name { #[default] $($v = $n),+ }
    };
}

byte_enum!(Scope { Global = 0, User = 1, Session = 2 });
byte_enum!(Kind { Generic = 0, Turn = 1, Summary = 2, Authored = 3 });
byte_enum!(Tier { Variant = 0, SoftInvariant = 1, HardInvariant = 2 });

/// A format 1 row's value.
#[derive(Clone, Debug, PartialEq, Default, Archive, Serialize, Deserialize)]
pub(crate) enum Value {
    #[default]
    Empty,
    Vector(Vec<f32>),
    Sparse(Vec<(u32, u32)>),
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub(crate) struct Position {
    pub absolute: u64,
    pub document: u64,
    pub relative: u32,
    pub length: u32,
    pub sentence: u32,
    pub paragraph: u32,
}

#[derive(Clone, Debug, PartialEq, Default, Archive, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub timestamp: i64,
    pub scope: Scope,
    pub namespace: String,
    pub session: String,
    pub kind: Kind,
    pub tier: Tier,
    pub order: u32,
    pub access_count: u32,
    pub authority: f32,
    pub confidence: f32,
    pub decay_rate: f32,
    pub token_count: u32,
    pub anchor_density: f32,
}

/// A format 1 row.
#[derive(Clone, Debug, PartialEq, Default, Archive, Serialize, Deserialize)]
pub(crate) struct Row {
    pub key: Vec<f32>,
    pub value: Value,
    pub position: Position,
    pub meta: Meta,
    pub text: String,
    pub edges: Vec<u64>,
}

/// A format 1 WAL operation.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) enum WalOp {
    CreateTable {
        table: u32,
        name: String,
        dim: u32,
    },
    Insert {
        table: u32,
        first_id: u64,
        rows: Vec<Row>,
    },
    Delete {
        table: u32,
        ids: Vec<u64>,
    },
    Batch {
        deletes: Vec<BatchDelete>,
        inserts: Vec<BatchInsert>,
        watermark: Option<u64>,
    },
}

#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct BatchInsert {
    pub table: u32,
    pub ids: Vec<u64>,
    pub rows: Vec<Row>,
}

#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct BatchDelete {
    pub table: u32,
    pub ids: Vec<u64>,
}

/// A format 1 WAL record.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct WalRecord {
    pub lsn: u64,
    pub op: WalOp,
}

/// A format 1 manifest's segment entry.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct SegmentEntry {
    pub id: u64,
    pub rows: u64,
    pub min_id: u64,
    pub max_id: u64,
    pub bytes: u64,
}

/// A format 1 manifest's table.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct TableEntry {
    pub id: u32,
    pub name: String,
    pub dim: u32,
    pub next_row_id: u64,
    pub segments: Vec<SegmentEntry>,
    pub tombstones: Vec<u64>,
}

/// A format 1 manifest.
#[derive(Clone, Debug, PartialEq, Archive, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub generation: u64,
    pub incarnation: u64,
    pub tag: String,
    pub watermark: u64,
    pub wal_id: u64,
    pub flushed_lsn: u64,
    pub next_segment_id: u64,
    pub symbols: Vec<String>,
    pub tables: Vec<TableEntry>,
}

/// The old tagged encoding of a value, as the `value` column holds it.
pub(crate) fn encode_value(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match v {
        Value::Empty => out.push(0),
        Value::Vector(x) => {
            out.push(1);
            x.iter().for_each(|f| out.extend_from_slice(&f.to_le_bytes()));
        }
        Value::Sparse(pairs) => {
            out.push(2);
            for (t, c) in pairs {
                out.extend_from_slice(&t.to_le_bytes());
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
    }
    out
}

/// A format 1 row as a row of the legacy schema.
pub(crate) fn convert_row(r: Row) -> NewRow {
    let m = r.meta;
    let p = r.position;
    let f = |x: f32| NewValue::Float(f64::from(x));
    let u = NewValue::UInt;
    NewRow::from_values(vec![
        NewValue::Vector(r.key),
        NewValue::Bytes(encode_value(&r.value)),
        u(p.absolute),
        u(p.document),
        u(u64::from(p.relative)),
        u(u64::from(p.length)),
        u(u64::from(p.sentence)),
        u(u64::from(p.paragraph)),
        NewValue::Int(m.timestamp),
        NewValue::Str(m.namespace),
        NewValue::Str(m.session),
        u(u64::from(m.order)),
        u(u64::from(m.access_count)),
        u(u64::from(m.token_count)),
        f(m.authority),
        f(m.confidence),
        f(m.decay_rate),
        f(m.anchor_density),
        u(m.scope as u64),
        u(m.kind as u64),
        u(m.tier as u64),
        NewValue::Str(r.text),
        NewValue::Edges(r.edges),
    ])
}

/// The schema of a format 1 table of dimension `dim`, or the reason it has
/// none.
pub(crate) fn table_schema(dim: u32) -> Result<Schema> {
    Ok(schema(Dim::new(dim)?))
}
