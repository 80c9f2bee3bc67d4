//! Helpers shared by the integration tests and the child processes they
//! start (writers killed at random moments, readers racing a writer).

use std::sync::Arc;

use engram::index::Hnsw;
use engram::storage::{Meta, Position, Row, SegmentIndexer, Value};

/// Key dimension used by the child processes.
pub const DIM: u32 = 16;

/// A small, single-threaded graph builder for the child writers, so that
/// every flushed and merged segment gets a graph cheaply.
pub fn small_indexer() -> Option<Arc<dyn SegmentIndexer>> {
    Some(Arc::new(Hnsw {
        m: 8,
        ef_construction: 32,
        threads: 1,
        ..Hnsw::default()
    }))
}

/// The row whose every column is derived from `n`, so that a reader can tell
/// a correct row from a torn or mixed-up one.
pub fn row_for(n: u64) -> Row {
    let key = (0..DIM).map(|j| (n as f32) + j as f32 * 0.25).collect();
    Row::new(key)
        .with_text(format!("row {n} {}", "·".repeat((n % 50) as usize)))
        .with_value(Value::Sparse(vec![(n as u32, 1), ((n * 7) as u32, 3)]))
        .with_position(Position {
            absolute: n,
            document: n / 100,
            ..Position::default()
        })
        .with_meta(Meta {
            timestamp: n as i64,
            namespace: format!("ns{}", n % 4),
            ..Meta::default()
        })
}

/// Recover `n` from a row's text and check that every column agrees with it.
pub fn check_row(row: &Row) -> Result<u64, String> {
    let n: u64 = row
        .text
        .strip_prefix("row ")
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("unreadable text {:?}", row.text))?;
    if *row != row_for(n) {
        return Err(format!("row {n} differs from what was written"));
    }
    Ok(n)
}
