//! Text: how generation cuts what it learns and writes into tokens.
//!
//! [`tokenizer`] splits any text into words, numbers, punctuation and
//! whitespace runs, losslessly; [`embed`] turns text into unit vectors
//! behind the [`Embedder`] trait, with a built-in, download-free
//! [`HashedNgrams`]; [`model2vec`] loads a Model2Vec static model from a
//! directory ([`Model2Vec`]); [`vocab`] keeps the dynamic vocabulary in a
//! store; [`position`] has the sinusoidal encoding, the position kernels
//! and the ε-guarded Matryoshka prefix.

pub mod embed;
pub mod model2vec;
pub mod position;
pub mod tokenizer;
pub mod vocab;

pub use embed::{Embedder, HashedNgrams};
pub use model2vec::Model2Vec;
pub use tokenizer::{tokenize, Token, TokenKind};
pub use vocab::{TokenId, TokenInfo, Vocabulary};
