//! Generation by retrieval (issue 10; this is its first piece): the keys
//! under which contexts are stored and found.
//!
//! [`context`] makes an order-aware key from the embeddings of a context's
//! tokens, and the hash that finds the exact context in O(1); [`levels`]
//! keeps the patterns of each context length in a table of the store, with
//! their next-token counts; [`retrieve`] predicts one level's next token
//! from the stored contexts nearest to the current one; [`decode`] chooses
//! the next token (greedy, temperature, top-k, top-p, repetition penalty,
//! seeded); [`smooth`] gives the exact statistics smoothed as interpolated
//! Kneser-Ney; [`predict`] adds retrieval to them, level by level;
//! [`generator`] writes from a prompt, every token traced.

pub mod context;
pub mod decode;
pub mod fit;
pub mod generator;
pub mod levels;
pub mod model;
mod overlay;
pub mod predict;
pub mod retrieve;
mod rng;
pub mod score;
pub mod smooth;
pub mod spell;
pub mod strategy;
#[cfg(test)]
mod testing;

pub use context::{context_hash, ContextKeyer};
pub use decode::{Sampler, Sampling};
pub use fit::FitReport;
pub use generator::{trace, GeneratedToken, Request, TraceEntry};
pub use levels::{Document, Level, Levels, Pattern, DEFAULT_LENGTHS};
pub use model::{EmbedderSpec, Generator, Learned, LevelInfo, Settings};
pub use predict::{Params, Prediction};
pub use retrieve::{Hit, Neighbour, Retrieved};
pub use score::{Score, ScoreMode};
pub use smooth::{Discount, Smoothed};
pub use spell::Speller;
pub use strategy::{Strategies, Strategy, StrategyParams};
