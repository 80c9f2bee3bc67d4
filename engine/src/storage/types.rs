//! Identifiers and limits shared by the whole storage layer.

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

/// The largest row a store accepts, so that any row fits in one log record
/// with room to spare, whoever batches it.
pub const MAX_ROW_BYTES: usize = 64 << 20;
