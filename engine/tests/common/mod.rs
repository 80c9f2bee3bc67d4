//! A table shape the engine tests share: a key with a graph, a symbol, a
//! counter, a weight, a next-token distribution, text, edges, and (when
//! asked) a unique tag.
#![allow(dead_code)]

use engram::storage::{
    Dim, EdgeCol, EdgeSpec, FixedCol, FixedType, KeyCol, KeySpec, Row, Schema, SparseCol, SparseKind, SymbolCol,
    TextCol,
};

pub struct Notes {
    pub schema: Schema,
    pub key: KeyCol,
    pub ns: SymbolCol,
    pub n: FixedCol<u64>,
    pub w: FixedCol<f32>,
    pub ts: FixedCol<i64>,
    pub next: SparseCol,
    pub text: TextCol,
    pub edges: EdgeCol,
    pub tag: FixedCol<u64>,
}

impl Notes {
    /// The shape with key dimension `dim`; `unique` makes `tag` unique.
    pub fn new(dim: u32, unique: bool) -> Notes {
        let mut b = Schema::builder()
            .key("key", KeySpec::new(Dim::new(dim).unwrap()))
            .symbol("ns")
            .fixed("n", FixedType::U64)
            .fixed("w", FixedType::F32)
            .fixed("ts", FixedType::Timestamp)
            .sparse("next", SparseKind::Counts)
            .text("text")
            .edges("edges", EdgeSpec::default())
            .fixed("tag", FixedType::U64);
        if unique {
            b = b.unique("tag");
        }
        let schema = b.build().unwrap();
        Notes {
            key: schema.key("key").unwrap(),
            ns: schema.symbol("ns").unwrap(),
            n: schema.fixed("n").unwrap(),
            w: schema.fixed("w").unwrap(),
            ts: schema.fixed("ts").unwrap(),
            next: schema.sparse("next").unwrap(),
            text: schema.text("text").unwrap(),
            edges: schema.edges("edges").unwrap(),
            tag: schema.fixed("tag").unwrap(),
            schema,
        }
    }

    /// A row with only a key and a text.
    pub fn row(&self, key: Vec<f32>, text: &str) -> Row {
        Row::new(&self.schema).with(self.key, key).with(self.text, text)
    }

    /// The row as the store returns it.
    pub fn canonical(&self, r: Row) -> Row {
        r.normalize("t", &self.schema).unwrap()
    }
}
