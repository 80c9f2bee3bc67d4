//! How to search one segment: walk its graph, or scan its rows.
//!
//! A graph walk that must skip rows the filter rejects visits about
//! `ef / selectivity` nodes, so it loses to a plain scan when the filter is
//! selective; a scan costs one metadata check per row plus one distance per
//! admitted row. The selectivity is estimated on an even sample of the
//! segment's rows, and the cheaper plan is taken. Either way every returned
//! row passes the filter; the choice only trades speed, and the scan is
//! exact on codes, so recall holds at any selectivity.

use super::hnsw::GraphRef;
use crate::kernels::distance::Metric;
use crate::storage::Segment;

/// Rows sampled to estimate a filter's selectivity on a segment.
const SAMPLE: usize = 256;
/// Cost of checking one row's metadata, in units of one scored row (an int8
/// distance and a pool offer). Measured on 384-d rows: about 8 ns against
/// 150 ns (`make bench-ann`, forcing each plan).
const CHECK_COST: f64 = 0.05;
/// Cost of expanding one node of a graph walk in the same units: its
/// neighbours' distances (about two thirds of M0 are new to the walk) and
/// the heap work. Measured: 3.4 us against 150 ns.
const EXPAND_COST: f64 = 22.0;

pub(crate) enum Plan<'a> {
    /// Walk the graph, keeping the best `ef` admitted rows.
    Graph { graph: GraphRef<'a>, ef: usize },
    /// Check every row.
    Scan,
}

/// Choose for segment `s`. `ef` is the list size the caller wants from a
/// walk; `filtered` says whether `admit` can reject anything.
pub(crate) fn choose<'a>(
    s: &'a Segment,
    metric: Metric,
    ef: usize,
    filtered: bool,
    admit: &impl Fn(u32) -> bool,
) -> Plan<'a> {
    // Graphs are built for cosine; other metrics rank differently.
    if metric != Metric::Cosine {
        return Plan::Scan;
    }
    let Some(graph) = GraphRef::parse(s.index_bytes(), s.rows) else {
        return Plan::Scan;
    };
    let n = s.rows;
    let ef = ef.min(n);
    if !filtered {
        return Plan::Graph { graph, ef };
    }
    let sel = selectivity(n, admit);
    if sel == 0.0 {
        return Plan::Scan;
    }
    // A walk with a filter admits a `sel` share of what it visits: widen the
    // list so the admitted rows it keeps are as well chosen as unfiltered.
    let wide = ((ef as f64 / sel.sqrt()).ceil() as usize).min(n);
    let walk = wide as f64 / sel * EXPAND_COST;
    let scan = n as f64 * CHECK_COST + sel * n as f64;
    if walk < scan {
        Plan::Graph { graph, ef: wide }
    } else {
        Plan::Scan
    }
}

/// Share of `n` rows admitted, on an even sample.
fn selectivity(n: usize, admit: &impl Fn(u32) -> bool) -> f64 {
    let take = n.min(SAMPLE);
    let hits = (0..take).filter(|j| admit((j * n / take) as u32)).count();
    hits as f64 / take as f64
}
