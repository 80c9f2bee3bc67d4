//! Generation by retrieval (issue 10; this is its first piece): the keys
//! under which contexts are stored and found.
//!
//! [`context`] makes an order-aware key from the embeddings of a context's
//! tokens, and the hash that finds the exact context in O(1); [`levels`]
//! keeps the patterns of each context length in a table of the store, with
//! their next-token counts; [`retrieve`] predicts one level's next token
//! from the stored contexts nearest to the current one.

pub mod context;
pub mod levels;
pub mod retrieve;

pub use context::{context_hash, ContextKeyer};
pub use levels::{Level, Levels, Pattern, DEFAULT_LENGTHS};
pub use retrieve::{Neighbour, Retrieved};
