//! Stores of the first format open and answer identically: the checked-in
//! fixture (`fixtures/format-2`, written by the last build of that format)
//! is read as a reader, then opened as the writer — which rewrites it in
//! today's format — and every row, the tag, the watermark and the nearest
//! rows to a few keys must equal what the old build read back from it.

use std::path::{Path, PathBuf};

use engram::index::{Search, SearchParams};
use engram::storage::{legacy_schema, Dim, Row, RowId, Store, StoreOptions, Value};
use serde_json::Value as J;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-2")
}

fn copy_store(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(fixture().join("store")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn expected() -> J {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap()).unwrap()
}

fn f32s(v: &J) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The old tagged value encoding (0 empty; 1 f32s; 2 (u32, u32) pairs),
/// checked against the fixture's JSON spelling of the value.
fn same_value(b: &[u8], want: &J) {
    match b.split_first() {
        Some((0, [])) => assert!(want.get("empty").is_some(), "{want}"),
        Some((1, rest)) => {
            let v: Vec<f32> = rest
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(v, f32s(&want["vector"]));
        }
        Some((2, rest)) => {
            let p: Vec<(u64, u64)> = rest
                .chunks_exact(8)
                .map(|c| {
                    (
                        u64::from(u32::from_le_bytes(c[..4].try_into().unwrap())),
                        u64::from(u32::from_le_bytes(c[4..].try_into().unwrap())),
                    )
                })
                .collect();
            let w: Vec<(u64, u64)> = want["sparse"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
                .collect();
            assert_eq!(p, w);
        }
        other => panic!("malformed value bytes {other:?}"),
    }
}

/// Compare one stored row with the old build's reading of it.
fn same_row(dim: u32, id: RowId, row: &Row, want: &J) {
    let s = legacy_schema(Dim::new(dim).unwrap());
    let col = |name: &str| row.get(s.id(name).unwrap()).clone();
    let u = |name: &str| match col(name) {
        Value::UInt(x) => x,
        other => panic!("{name}: {other:?}"),
    };
    let f = |name: &str| match col(name) {
        Value::Float(x) => x as f32,
        other => panic!("{name}: {other:?}"),
    };
    let st = |name: &str| match col(name) {
        Value::Str(x) => x,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(id.0, want["id"].as_u64().unwrap());
    assert_eq!(col("key"), Value::Vector(f32s(&want["key"])), "row {}", id.0);
    match col("value") {
        Value::Bytes(b) => same_value(&b, &want["value"]),
        other => panic!("value: {other:?}"),
    }
    let pos: Vec<u64> = want["position"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    let got_pos = [
        "pos_absolute",
        "pos_document",
        "pos_relative",
        "pos_length",
        "pos_sentence",
        "pos_paragraph",
    ]
    .map(u);
    assert_eq!(got_pos.to_vec(), pos);
    let m = &want["meta"];
    assert_eq!(col("timestamp"), Value::Int(m["timestamp"].as_i64().unwrap()));
    assert_eq!(st("namespace"), m["namespace"].as_str().unwrap());
    assert_eq!(st("session"), m["session"].as_str().unwrap());
    for k in ["scope", "kind", "tier", "order", "access_count", "token_count"] {
        assert_eq!(u(k), m[k].as_u64().unwrap(), "{k} of row {}", id.0);
    }
    for k in ["authority", "confidence", "decay_rate", "anchor_density"] {
        assert_eq!(f(k), m[k].as_f64().unwrap() as f32, "{k} of row {}", id.0);
    }
    assert_eq!(st("text"), want["text"].as_str().unwrap());
    let edges: Vec<u64> = want["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(col("edges"), Value::Edges(edges));
}

/// Every row, the tag, the watermark and the searches, as the old build
/// read them.
fn same_store(store: &Store, exp: &J) {
    assert_eq!(store.tag().unwrap(), exp["tag"].as_str().unwrap());
    assert_eq!(store.watermark().unwrap(), exp["watermark"].as_u64().unwrap());
    for (name, t) in exp["tables"].as_object().unwrap() {
        let dim = t["dim"].as_u64().unwrap() as u32;
        let id = store.table(name).unwrap();
        let rows: Vec<(RowId, Row)> = store.scan(id).unwrap().map(|r| r.unwrap()).collect();
        let want = t["rows"].as_array().unwrap();
        assert_eq!(rows.len(), want.len(), "rows of {name}");
        for ((rid, row), w) in rows.iter().zip(want) {
            same_row(dim, *rid, row, w);
        }
        for s in t["searches"].as_array().unwrap() {
            let q = f32s(&want.iter().find(|r| r["id"] == s["query_row"]).map_or_else(
                // The query row may be deleted; its key is the fixture
                // program's, recomputed here only through the search's answer.
                || J::Null,
                |r| r["key"].clone(),
            ));
            if q.is_empty() {
                continue;
            }
            let hits = store
                .search(
                    id,
                    &q,
                    5,
                    &SearchParams {
                        ef: 400,
                        ..SearchParams::default()
                    },
                )
                .unwrap();
            let got: Vec<u64> = hits.iter().map(|h| h.id.0).collect();
            let want_ids: Vec<u64> = s["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            assert_eq!(got, want_ids, "nearest rows of row {} in {name}", s["query_row"]);
        }
    }
}

fn version_of(path: &Path) -> u32 {
    let b = std::fs::read(path).unwrap();
    u32::from_le_bytes(b[8..12].try_into().unwrap())
}

#[test]
fn a_format_2_store_reads_identically_then_upgrades_in_place() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    copy_store(&path);
    {
        let reader = Store::open(&path, StoreOptions::reader()).unwrap();
        same_store(&reader, &exp);
    }
    assert_eq!(
        version_of(&path.join("MANIFEST")),
        2,
        "a reader leaves the store as it was"
    );
    {
        let writer = Store::open(&path, StoreOptions::default()).unwrap();
        same_store(&writer, &exp);
        // Graphs were carried over, row for row.
        let st = writer.stats().unwrap();
        let alpha = st.tables.iter().find(|t| t.info.name == "alpha").unwrap();
        assert_eq!(alpha.indexed_rows, 300);
    }
    assert_eq!(version_of(&path.join("MANIFEST")), 3);
    let mut segments = 0;
    for e in std::fs::read_dir(&path).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".seg") {
            assert_eq!(version_of(&p), 3, "{name}");
            segments += 1;
        }
        if name.ends_with(".log") {
            assert_eq!(version_of(&p), 3, "{name}");
        }
    }
    assert_eq!(segments, 5, "the three old segments and one flushed memtable per table");
    // Reopened in today's format, written to, and read back.
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    same_store(&store, &exp);
    let beta = store.table("beta").unwrap();
    let s = store.schema(beta).unwrap();
    let row = Row::new(&s)
        .with(s.key("key").unwrap(), vec![0.5, 0.5, 0.5])
        .with(s.text("text").unwrap(), "new");
    let id = store.insert(beta, row).unwrap();
    assert_eq!(id, RowId(53));
    store.optimize().unwrap();
    drop(store);
    let store = Store::open(&path, StoreOptions::reader()).unwrap();
    let got = store.get(beta, id).unwrap().unwrap();
    assert_eq!(got.get(s.id("text").unwrap()), &Value::Str("new".into()));
}
