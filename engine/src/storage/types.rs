//! The row model: what a caller writes and reads back.

use rkyv::{Archive, Deserialize, Serialize};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::{Error, Result};

/// Identifies a row within its table. Ids are assigned by the store in
/// increasing order and never reused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowId(pub u64);

/// Identifies a table within its store.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(pub u32);

/// The dimension of a table's key vectors: between 1 and [`Dim::MAX`].
///
/// ```
/// use engram::storage::Dim;
/// assert_eq!(Dim::new(384).unwrap().get(), 384);
/// assert!(Dim::new(0).is_err());
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dim(u32);

impl Dim {
    /// Largest supported dimension.
    pub const MAX: u32 = 65_536;

    /// Checked constructor.
    pub fn new(d: u32) -> Result<Dim> {
        if d == 0 || d > Self::MAX {
            return Err(Error::InvalidArgument(format!(
                "dimension must be between 1 and {}, got {d}",
                Self::MAX
            )));
        }
        Ok(Dim(d))
    }

    /// The dimension as a number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The dimension as a length.
    pub fn len(self) -> usize {
        self.0 as usize
    }

    /// Always false: a dimension is at least 1 (present for clippy's sake).
    pub fn is_empty(self) -> bool {
        false
    }
}

/// A row's value: nothing, a vector (L2S values), or a sparse next-token
/// distribution of `(token id, count)` pairs.
#[derive(Clone, Debug, PartialEq, Default, Archive, Serialize, Deserialize)]
pub enum Value {
    /// No value.
    #[default]
    Empty,
    /// A dense vector.
    Vector(Vec<f32>),
    /// `(token id, count)` pairs.
    Sparse(Vec<(u32, u32)>),
}

/// Where a row's text sits in its source.
///
/// Stored as a fixed-width `#[repr(C)]` record (32 bytes, no padding):
///
/// ```text
/// 0  absolute   u64   position from the start of the document
/// 8  document   u64   document id
/// 16 relative   u32   position counted from the end
/// 20 length     u32   length of the sequence
/// 24 sentence   u32   sentence index
/// 28 paragraph  u32   paragraph index
/// ```
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Archive,
    Serialize,
    Deserialize,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
)]
#[repr(C)]
pub struct Position {
    /// Position from the start of the document.
    pub absolute: u64,
    /// Document id.
    pub document: u64,
    /// Position counted from the end of the sequence.
    pub relative: u32,
    /// Length of the sequence.
    pub length: u32,
    /// Sentence index.
    pub sentence: u32,
    /// Paragraph index.
    pub paragraph: u32,
}

macro_rules! byte_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $n:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default, Archive, Serialize, Deserialize)]
        #[repr(u8)]
        pub enum $name { #[default] $($(#[$vm])* $v = $n),+ }

        impl $name {
            /// Decode from the on-disk byte.
            pub fn from_u8(b: u8) -> Option<Self> {
                match b { $($n => Some(Self::$v),)+ _ => None }
            }
        }
    };
}

byte_enum!(
    /// Who a record is visible to.
    Scope { /** Everyone. */ Global = 0, /** One user. */ User = 1, /** One session. */ Session = 2 }
);
byte_enum!(
    /// What a row is.
    Kind { /** A plain row (e.g. a generation pattern). */ Generic = 0, /** A conversation turn. */ Turn = 1,
           /** A summary of other rows. */ Summary = 2, /** An authored rule or fact. */ Authored = 3 }
);
byte_enum!(
    /// How binding a memory is.
    Tier { /** Included when it scores well. */ Variant = 0, /** Included while budget allows. */ SoftInvariant = 1,
           /** Always included. */ HardInvariant = 2 }
);

/// A row's record metadata.
#[derive(Clone, Debug, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct Meta {
    /// Microseconds since the Unix epoch.
    pub timestamp: i64,
    /// Visibility scope.
    pub scope: Scope,
    /// Namespace (interned by the store).
    pub namespace: String,
    /// Session (interned by the store).
    pub session: String,
    /// Row kind.
    pub kind: Kind,
    /// Memory tier.
    pub tier: Tier,
    /// Authored order.
    pub order: u32,
    /// How often the row was retrieved.
    pub access_count: u32,
    /// Authority weight.
    pub authority: f32,
    /// Confidence.
    pub confidence: f32,
    /// Decay rate.
    pub decay_rate: f32,
    /// Token count of the text.
    pub token_count: u32,
    /// Temporal anchor density.
    pub anchor_density: f32,
}

/// Metadata as stored: fixed width, strings replaced by symbol ids
/// (48 bytes, `#[repr(C)]`, no implicit padding):
///
/// ```text
/// 0  timestamp      i64
/// 8  namespace      u32 (symbol id)
/// 12 session        u32 (symbol id)
/// 16 order          u32
/// 20 access_count   u32
/// 24 token_count    u32
/// 28 authority      f32
/// 32 confidence     f32
/// 36 decay_rate     f32
/// 40 anchor_density f32
/// 44 scope u8, 45 kind u8, 46 tier u8, 47 padding u8
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MetaRecord {
    /// Microseconds since the Unix epoch.
    pub timestamp: i64,
    /// Namespace symbol id.
    pub namespace: u32,
    /// Session symbol id.
    pub session: u32,
    /// Authored order.
    pub order: u32,
    /// Access count.
    pub access_count: u32,
    /// Token count.
    pub token_count: u32,
    /// Authority.
    pub authority: f32,
    /// Confidence.
    pub confidence: f32,
    /// Decay rate.
    pub decay_rate: f32,
    /// Anchor density.
    pub anchor_density: f32,
    /// [`Scope`] byte.
    pub scope: u8,
    /// [`Kind`] byte.
    pub kind: u8,
    /// [`Tier`] byte.
    pub tier: u8,
    /// Explicit padding, always zero.
    pub _pad: u8,
}

const _: () = assert!(std::mem::size_of::<MetaRecord>() == 48);
const _: () = assert!(std::mem::size_of::<Position>() == 32);

/// One row: a key vector plus everything stored beside it.
///
/// ```
/// use engram::storage::{Row, Value};
/// let row = Row::new(vec![0.5, 0.5]).with_text("hi").with_value(Value::Sparse(vec![(7, 2)]));
/// assert_eq!(row.key.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct Row {
    /// The key vector; its length must equal the table's dimension.
    pub key: Vec<f32>,
    /// The value.
    pub value: Value,
    /// Positional metadata.
    pub position: Position,
    /// Record metadata.
    pub meta: Meta,
    /// Source text.
    pub text: String,
    /// Edges to other rows of the same table (hops, summary sources).
    pub edges: Vec<u64>,
}

impl Row {
    /// A row with this key and everything else default.
    pub fn new(key: Vec<f32>) -> Row {
        Row { key, ..Row::default() }
    }

    /// Set the text.
    pub fn with_text(mut self, text: impl Into<String>) -> Row {
        self.text = text.into();
        self
    }

    /// Set the value.
    pub fn with_value(mut self, value: Value) -> Row {
        self.value = value;
        self
    }

    /// Set the position.
    pub fn with_position(mut self, position: Position) -> Row {
        self.position = position;
        self
    }

    /// Set the metadata.
    pub fn with_meta(mut self, meta: Meta) -> Row {
        self.meta = meta;
        self
    }

    /// Set the edges.
    pub fn with_edges(mut self, edges: Vec<RowId>) -> Row {
        self.edges = edges.into_iter().map(|e| e.0).collect();
        self
    }

    /// An upper bound on the bytes this row takes in a log record; at most
    /// [`MAX_ROW_BYTES`] for a row that [`Row::validate`] accepts.
    ///
    /// ```
    /// let row = engram::storage::Row::new(vec![0.0; 4]).with_text("hi");
    /// assert!(row.log_bytes() >= 4 * 4 + 2);
    /// ```
    pub fn log_bytes(&self) -> usize {
        let value = match &self.value {
            Value::Empty => 0,
            Value::Vector(v) => v.len() * 4,
            Value::Sparse(p) => p.len() * 8,
        };
        // Fixed fields, rkyv's relative pointers and alignment padding.
        256 + self.key.len() * 4
            + value
            + self.text.len()
            + self.meta.namespace.len()
            + self.meta.session.len()
            + self.edges.len() * 8
    }

    /// Check the row against a table named `table` of dimension `dim`: the
    /// key's length, and that every vector and float is finite. Stores do
    /// this on every write; callers may do it earlier to fail sooner.
    ///
    /// ```
    /// use engram::storage::{Dim, Row};
    /// assert!(Row::new(vec![1.0, f32::NAN]).validate("t", Dim::new(2).unwrap()).is_err());
    /// ```
    pub fn validate(&self, table: &str, dim: Dim) -> Result<()> {
        if self.key.len() != dim.len() {
            return Err(Error::DimensionMismatch {
                table: table.to_string(),
                expected: dim.get(),
                found: u32::try_from(self.key.len()).unwrap_or(u32::MAX),
            });
        }
        let bytes = self.log_bytes();
        if bytes > MAX_ROW_BYTES {
            return Err(Error::TooLarge {
                what: "a row",
                bytes,
                limit: MAX_ROW_BYTES,
            });
        }
        check_finite("key", &self.key)?;
        if let Value::Vector(v) = &self.value {
            check_finite("value", v)?;
        }
        let m = &self.meta;
        for (what, v) in [
            ("authority", m.authority),
            ("confidence", m.confidence),
            ("decay_rate", m.decay_rate),
            ("anchor_density", m.anchor_density),
        ] {
            check_finite(what, &[v])?;
        }
        Ok(())
    }
}

/// The largest row a store accepts, so that any row fits in one log record
/// with room to spare, whoever batches it.
pub const MAX_ROW_BYTES: usize = 64 << 20;

fn check_finite(what: &'static str, v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            what,
            index,
            value: v[index],
        }),
        None => Ok(()),
    }
}

/// Encode a value into the bytes stored in the value column:
/// a tag byte (0 empty, 1 vector, 2 sparse) then little-endian payload.
pub(crate) fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Empty => out.push(0),
        Value::Vector(x) => {
            out.push(1);
            out.extend_from_slice(x.as_bytes());
        }
        Value::Sparse(pairs) => {
            out.push(2);
            for (t, c) in pairs {
                out.extend_from_slice(&t.to_le_bytes());
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
    }
}

/// Decode what [`encode_value`] wrote; `None` if the bytes are malformed.
pub(crate) fn decode_value(b: &[u8]) -> Option<Value> {
    let (&tag, rest) = b.split_first()?;
    match tag {
        0 if rest.is_empty() => Some(Value::Empty),
        1 if rest.len() % 4 == 0 => Some(Value::Vector(
            rest.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )),
        2 if rest.len() % 8 == 0 => Some(Value::Sparse(
            rest.chunks_exact(8)
                .map(|c| {
                    (
                        u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                        u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                    )
                })
                .collect(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_encoding_round_trips_and_rejects_garbage() {
        for v in [
            Value::Empty,
            Value::Vector(vec![1.5, -2.0]),
            Value::Sparse(vec![(1, 2), (u32::MAX, 0)]),
        ] {
            let mut b = Vec::new();
            encode_value(&v, &mut b);
            assert_eq!(decode_value(&b), Some(v));
        }
        assert_eq!(decode_value(&[]), None);
        assert_eq!(decode_value(&[1, 0, 0]), None);
        assert_eq!(decode_value(&[9]), None);
        assert_eq!(decode_value(&[0, 0]), None);
    }

    #[test]
    fn validate_rejects_wrong_dim_and_nan() {
        let d = Dim::new(2).unwrap();
        assert!(matches!(
            Row::new(vec![1.0]).validate("t", d),
            Err(Error::DimensionMismatch {
                expected: 2,
                found: 1,
                ..
            })
        ));
        assert!(matches!(
            Row::new(vec![1.0, f32::NAN]).validate("t", d),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(Row::new(vec![1.0, 2.0]).validate("t", d).is_ok());
    }
}
