//! Text: how generation cuts what it learns and writes into tokens.
//!
//! [`tokenizer`] splits any text into words, numbers, punctuation and
//! whitespace runs, losslessly; [`embed`] turns text into unit vectors
//! behind the [`Embedder`] trait, with a built-in, download-free
//! [`HashedNgrams`]; [`vocab`] keeps the dynamic vocabulary in a store.
//! (The Model2Vec embedder and the positional encodings come with the
//! generation layer.)

pub mod embed;
pub mod tokenizer;
pub mod vocab;

pub use embed::{Embedder, HashedNgrams};
pub use tokenizer::{tokenize, Token, TokenKind};
pub use vocab::{TokenId, TokenInfo, Vocabulary};
