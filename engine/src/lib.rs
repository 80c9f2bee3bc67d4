//! # engram
//!
//! A storage engine for *memory that can speak*: text stored as vectors with
//! values, positions and metadata, in a columnar, append-only, crash-safe store.
//!
//! This crate holds everything that is not SQL; the PostgreSQL extension
//! `pg_engram` only adapts it. The layers, bottom up:
//!
//! - [`kernels`]: distance kernels and int8 quantization;
//! - [`storage`]: stores of tables with schemas: WAL, memtable, segments,
//!   manifest, updates, merge, snapshots;
//! - [`index`]: nearest-neighbour search over a table's key columns;
//! - [`text`]: tokens, embeddings, the vocabulary and positions;
//! - [`generate`]: generation by retrieval;
//! - [`memory`]: agent memory (so far: the hybrid score and token budgets).
//!
//! ```
//! use engram::storage::{Dim, KeySpec, Row, Schema, Store, StoreOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::create(dir.path().join("demo"), StoreOptions::default()).unwrap();
//! let schema = Schema::builder().key("key", KeySpec::new(Dim::new(3).unwrap())).text("text").build().unwrap();
//! let (key, text) = (schema.key("key").unwrap(), schema.text("text").unwrap());
//! let t = store.create_table("notes", schema.clone()).unwrap();
//! let id = store.insert(t, Row::new(&schema).with(key, vec![1.0, 0.0, 0.0]).with(text, "hello")).unwrap();
//! let snap = store.snapshot().unwrap();
//! assert_eq!(snap.table(t).unwrap().get(id).unwrap().text(text).unwrap(), "hello");
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

#[cfg(target_endian = "big")]
compile_error!(
    "engram's on-disk format is little-endian and read by zero-copy views; big-endian targets are not supported"
);

pub mod derived;
pub mod error;
pub mod generate;
pub mod index;
pub mod kernels;
pub mod memory;
pub mod storage;
pub mod text;

pub use error::{Error, Result};
