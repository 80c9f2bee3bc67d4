//! The embedded-engine demo: create a store, write rows, reopen it and read
//! them back, with what happened printed along the way.
//!
//! `cargo run --release -p engram --example demo [DIR]`

use engram::storage::{Dim, Meta, Position, Row, Store, StoreOptions, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("engram-demo-store"));
    let _ = std::fs::remove_dir_all(&dir);

    println!("== engram embedded demo: store at {}", dir.display());
    let sentences = [
        "In the beginning was the word.",
        "Memory that can speak remembers what it read.",
        "Every acknowledged write survives a crash.",
        "Readers never block the writer.",
    ];
    let ids = {
        let store = Store::create(&dir, StoreOptions::default())?;
        let t = store.create_table("sentences", Dim::new(8)?)?;
        let rows: Vec<Row> = sentences
            .iter()
            .enumerate()
            .map(|(i, s)| {
                // A toy key: letter statistics, enough to show the columns.
                let mut key = vec![0.0f32; 8];
                for b in s.bytes() {
                    key[usize::from(b) % 8] += 1.0;
                }
                Row::new(key)
                    .with_text(*s)
                    .with_value(Value::Sparse(vec![(i as u32, 1)]))
                    .with_position(Position {
                        absolute: i as u64,
                        sentence: i as u32,
                        ..Position::default()
                    })
                    .with_meta(Meta {
                        namespace: "demo".into(),
                        token_count: s.split_whitespace().count() as u32,
                        ..Meta::default()
                    })
            })
            .collect();
        let ids = store.insert_batch(t, rows)?;
        println!(
            "wrote {} rows (ids {:?}) to the WAL",
            ids.len(),
            ids.iter().map(|i| i.0).collect::<Vec<_>>()
        );
        store.delete(t, ids[3])?;
        println!("deleted row {}", ids[3].0);
        store.flush()?;
        let st = store.stats()?;
        println!(
            "flushed: generation {}, {} segment(s), {} live rows",
            st.generation, st.tables[0].segments, st.tables[0].live_rows
        );
        ids
    };

    let store = Store::open(&dir, StoreOptions::default())?;
    let t = store.table("sentences")?;
    println!("reopened; reading back:");
    for r in store.scan(t)? {
        let (id, row) = r?;
        println!("  row {:>2}  tokens={}  {:?}", id.0, row.meta.token_count, row.text);
    }
    let again = store.get(t, ids[0])?.ok_or("row 0 missing after reopen")?;
    assert_eq!(again.text, sentences[0]);
    assert!(store.get(t, ids[3])?.is_none());
    println!("row 0 read back intact; deleted row stays deleted");
    Ok(())
}
