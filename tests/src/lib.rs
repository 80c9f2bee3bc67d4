//! Helpers shared by the integration tests and the child processes they
//! start (writers killed at random moments, readers racing a writer).

use std::sync::Arc;

use engram::index::Hnsw;
use engram::storage::{Dim, FixedType, IndexSpec, KeySpec, Row, Schema, SegmentIndexer, Sparse, SparseKind, Value};

/// Key dimension used by the child processes.
pub const DIM: u32 = 16;

/// A single-threaded graph builder for the child writers, so that every
/// flushed and merged segment gets a graph cheaply (the schema asks for
/// small graphs: M 8, ef_construction 32).
pub fn small_indexer() -> Option<Arc<dyn SegmentIndexer>> {
    Some(Arc::new(Hnsw {
        threads: 1,
        ..Hnsw::default()
    }))
}

/// The table the child processes write.
pub fn schema() -> Schema {
    Schema::builder()
        .key(
            "key",
            KeySpec::new(Dim::new(DIM).unwrap_or_else(|_| unreachable!())).with_index(Some(IndexSpec {
                m: 8,
                ef_construction: 32,
            })),
        )
        .text("text")
        .sparse("next", SparseKind::Counts)
        .fixed("absolute", FixedType::U64)
        .fixed("document", FixedType::U64)
        .fixed("timestamp", FixedType::Timestamp)
        .symbol("namespace")
        .build()
        .unwrap_or_else(|e| unreachable!("{e}"))
}

/// The key of row `n`.
pub fn key_for(n: u64) -> Vec<f32> {
    (0..DIM).map(|j| (n as f32) + j as f32 * 0.25).collect()
}

/// The row whose every column is derived from `n`, so that a reader can tell
/// a correct row from a torn or mixed-up one (in canonical form: as a store
/// returns it).
pub fn row_for(n: u64) -> Row {
    Row::from_values(vec![
        Value::Vector(key_for(n)),
        Value::Str(format!("row {n} {}", "·".repeat((n % 50) as usize))),
        Value::Sparse(Sparse::counts([(n as u32, 1), ((n * 7) as u32, 3)])),
        Value::UInt(n),
        Value::UInt(n / 100),
        Value::Int(n as i64),
        Value::Str(format!("ns{}", n % 4)),
    ])
}

/// Recover `n` from a row's text and check that every column agrees with it.
pub fn check_row(row: &Row) -> Result<u64, String> {
    let text = match row.values().get(1) {
        Some(Value::Str(t)) => t.clone(),
        other => return Err(format!("no text: {other:?}")),
    };
    let n: u64 = text
        .strip_prefix("row ")
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("unreadable text {text:?}"))?;
    if *row != row_for(n) {
        return Err(format!("row {n} differs from what was written"));
    }
    Ok(n)
}
