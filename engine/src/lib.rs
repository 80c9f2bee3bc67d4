//! # engram
//!
//! A storage engine for *memory that can speak*: text stored as vectors with
//! values, positions and metadata, in a columnar, append-only, crash-safe store.
//!
//! This crate holds everything that is not SQL; the PostgreSQL extension
//! `pg_engram` only adapts it. The layers, bottom up:
//!
//! - [`kernels`]: distance kernels and int8 quantization;
//! - [`storage`]: stores, tables, WAL, memtable, segments, manifest, merge;
//! - [`index`]: nearest-neighbour search over a table's keys.
//!
//! ```
//! use engram::storage::{Store, StoreOptions, Row, Dim};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::create(dir.path().join("demo"), StoreOptions::default()).unwrap();
//! let t = store.create_table("notes", Dim::new(3).unwrap()).unwrap();
//! let id = store.insert(t, Row::new(vec![1.0, 0.0, 0.0]).with_text("hello")).unwrap();
//! assert_eq!(store.get(t, id).unwrap().unwrap().text, "hello");
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

#[cfg(target_endian = "big")]
compile_error!(
    "engram's on-disk format is little-endian and read by zero-copy views; big-endian targets are not supported"
);

pub mod error;
pub mod index;
pub mod kernels;
pub mod storage;

pub use error::{Error, Result};
