//! Agent memory (memory-scoring-math.md): what an agent should see before
//! a model call, within a token budget.
//!
//! So far, the laws every later part is built on, each a pure function
//! with its bounds:
//!
//! - [`score`]: the hybrid score of a memory (§1–2): cosine, per-scope
//!   recency, scope weight and the quality multiplier of summaries, mixed
//!   with clamped and renormalized weights, every output in `[0, 1]`;
//! - [`tokens`]: the script-aware token estimate and rank-order prefix
//!   packing under a budget (§3).
//!
//! Records, discovery, assembly and compaction come next (DESIGN.md "Agent
//! memory"); they depend on `index`, `text`, `derived` and `storage`, as
//! `generate` does, and nothing depends on them but the extension.

pub mod score;
pub mod tokens;

pub use score::{hybrid, Components, Kind, RecencyRates, Scope, Weights};
pub use tokens::{estimate_tokens, fit_budget};
