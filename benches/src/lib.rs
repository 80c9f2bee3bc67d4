//! Support for the benchmark programs: synthetic rows and JSON output.

use std::path::Path;

use engram::storage::{Meta, Row};
use rand::Rng;

/// A row with a random `dim`-dimensional key, ~60 bytes of text and
/// metadata, as an agent-memory workload writes them.
pub fn synthetic_row(rng: &mut impl Rng, i: u64, dim: usize) -> Row {
    let key: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    Row::new(key)
        .with_text(format!(
            "memory {i}: the user asked about item {} in session {}",
            i % 977,
            i % 31
        ))
        .with_meta(Meta {
            timestamp: i as i64,
            namespace: format!("tenant{}", i % 8),
            session: format!("s{}", i % 31),
            token_count: 14,
            ..Meta::default()
        })
}

/// Logical bytes of a row: key, text, fixed position and meta records.
pub fn logical_bytes(row: &Row) -> usize {
    row.key.len() * 4 + row.text.len() + 32 + 48
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
