//! Support for the benchmark programs: synthetic rows and JSON output.

use std::path::Path;

pub mod kn;

use engram::storage::{Dim, FixedType, KeySpec, Row, Schema, Value};
use rand::Rng;

/// The table an agent-memory workload writes: a `dim`-dimensional key
/// (without a graph), text, a timestamp, tenant and session symbols, a token
/// count, an access count, and a unique memory id.
pub fn memory_schema(dim: usize) -> Schema {
    Schema::builder()
        .key("key", KeySpec::new(Dim::new(dim as u32).expect("dim")).with_index(None))
        .text("text")
        .fixed("timestamp", FixedType::Timestamp)
        .symbol("namespace")
        .symbol("session")
        .fixed("token_count", FixedType::U32)
        .fixed("access_count", FixedType::U64)
        .fixed("memory_id", FixedType::U64)
        .unique("memory_id")
        .build()
        .expect("valid schema")
}

/// A row of [`memory_schema`] with a random key and ~60 bytes of text.
pub fn synthetic_row(rng: &mut impl Rng, i: u64, dim: usize) -> Row {
    let key: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    Row::from_values(vec![
        Value::Vector(key),
        Value::Str(format!(
            "memory {i}: the user asked about item {} in session {}",
            i % 977,
            i % 31
        )),
        Value::Int(i as i64),
        Value::Str(format!("tenant{}", i % 8)),
        Value::Str(format!("s{}", i % 31)),
        Value::UInt(14),
        Value::UInt(0),
        Value::UInt(i),
    ])
}

/// Logical bytes of a row: key, text, and 8 bytes per other column.
pub fn logical_bytes(row: &Row) -> usize {
    row.values()
        .iter()
        .map(|v| match v {
            Value::Vector(k) => k.len() * 4,
            Value::Str(s) => s.len(),
            _ => 8,
        })
        .sum()
}

/// Bytes of all files directly in `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| it.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Write `value` as pretty JSON to `target/bench/<name>.json` and print it.
pub fn write_report(name: &str, value: &serde_json::Value) -> std::io::Result<()> {
    let dir = std::env::var("ENGRAM_BENCH_DIR").unwrap_or_else(|_| "target/bench".into());
    std::fs::create_dir_all(&dir)?;
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(Path::new(&dir).join(format!("{name}.json")), &text)?;
    println!("{text}");
    Ok(())
}
