//! Text: how generation cuts what it learns and writes into tokens.
//!
//! [`tokenizer`] splits any text into words, numbers, punctuation and
//! whitespace runs, losslessly; [`embed`] turns text into unit vectors
//! behind the [`Embedder`] trait, with a built-in, download-free
//! [`HashedNgrams`]; [`vocab`] keeps the dynamic vocabulary in a store;
//! [`position`] has the sinusoidal encoding, the position kernels and the
//! ε-guarded Matryoshka prefix. (The Model2Vec embedder comes with the
//! generation layer.)

pub mod embed;
pub mod position;
pub mod tokenizer;
pub mod vocab;

pub use embed::{Embedder, HashedNgrams};
pub use tokenizer::{tokenize, Token, TokenKind};
pub use vocab::{TokenId, TokenInfo, Vocabulary};
