//! One query against one segment's graph.

use std::cell::RefCell;

use super::layer::{greedy, search_level, Near, Space, Visited};
use super::layout::GraphRef;
use super::space::{Codes, FromQuery, QueryCode};

thread_local! {
    /// One visited set per thread, reused across queries: clearing is O(1).
    static VISITED: RefCell<Visited> = RefCell::new(Visited::new());
}

/// The `ef` nodes nearest to `q` (the graph's metric, on codes) that `admit` accepts,
/// nearest first, as (approximate distance, row index).
pub(crate) fn search(
    g: &GraphRef<'_>,
    codes: &[i8],
    dim: usize,
    q: &QueryCode,
    ef: usize,
    admit: &impl Fn(u32) -> bool,
) -> Vec<Near> {
    let space = Codes {
        metric: g.metric,
        dim,
        codes,
        factors: g.factors,
        sqnorms: g.sqnorms,
    };
    let dist = FromQuery { codes: space, query: q };
    let mut buf = Vec::new();
    let mut cur = Near {
        d: dist.dist(g.entry),
        node: g.entry,
    };
    for level in (1..=g.top).rev() {
        cur = greedy(g, &dist, cur, level, &mut buf);
    }
    VISITED.with(|v| search_level(g, &dist, &[cur], ef, 0, &mut v.borrow_mut(), admit))
}
