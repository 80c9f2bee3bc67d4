//! How to search one segment: walk its graph, scan the rows a posting list
//! (or an id set) names, or scan every row.
//!
//! A graph walk that must skip rows the filter rejects visits about
//! `ef / selectivity` nodes, so it loses to a scan when the filter is
//! selective. A scan of posting-list candidates costs one distance per
//! candidate; a scan of every row costs one filter check per row plus one
//! distance per admitted row. The selectivity is known from the posting
//! lists when they bound the filter, and estimated on an even sample of
//! the rows otherwise; the cheaper plan is taken. Either way every returned
//! row passes the filter; the choice only trades speed, and scans are exact
//! on codes, so recall holds at any selectivity.

use super::hnsw::GraphRef;

/// Rows sampled to estimate a filter's selectivity on a segment.
const SAMPLE: usize = 256;
/// Cost of checking one row's filter, in units of one scored row (an int8
/// distance and a pool offer). Measured on 384-d rows: about 8 ns against
/// 150 ns (`make bench-ann`, forcing each plan).
const CHECK_COST: f64 = 0.05;
/// Cost of expanding one node of a graph walk in the same units: its
/// neighbours' distances (about two thirds of M0 are new to the walk) and
/// the heap work. Measured: 3.4 us against 150 ns.
const EXPAND_COST: f64 = 22.0;

/// A caller's choice of plan, for tests and benchmarks; `Auto` otherwise.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum PlanChoice {
    /// The cheaper plan by the cost model.
    #[default]
    Auto,
    /// Walk the graph wherever a segment has one of the search's metric.
    Graph,
    /// Scan (posting-list candidates where they bound the filter).
    Scan,
}

pub(crate) enum Plan<'a> {
    /// Walk the graph, keeping the best `ef` admitted rows.
    Graph { graph: GraphRef<'a>, ef: usize },
    /// Check the listed rows.
    Candidates,
    /// Check every row.
    Scan,
}

/// Choose for a segment of `n` rows. `ef` is the list size the caller wants
/// from a walk; `filtered` says whether `admit` can reject anything;
/// `candidates` are the rows posting lists allow, if they bound the filter.
pub(crate) fn choose<'a>(
    n: usize,
    graph: Option<GraphRef<'a>>,
    ef: usize,
    filtered: bool,
    candidates: Option<&[u32]>,
    admit: &impl Fn(u32) -> bool,
    forced: PlanChoice,
) -> Plan<'a> {
    let scan = || {
        if candidates.is_some() {
            Plan::Candidates
        } else {
            Plan::Scan
        }
    };
    let Some(graph) = graph else { return scan() };
    let ef = ef.min(n);
    if forced == PlanChoice::Scan {
        return scan();
    }
    if !filtered {
        return Plan::Graph { graph, ef };
    }
    let sel = match candidates {
        Some(c) => (c.len() as f64 / n as f64) * admitted_share(c.len(), |j| admit(c[j])),
        None => admitted_share(n, |j| admit(j as u32)),
    };
    // A walk with a filter admits a `sel` share of what it visits: widen the
    // list so the admitted rows it keeps are as well chosen as unfiltered.
    let wide = ((ef as f64 / sel.max(1e-6).sqrt()).ceil() as usize).min(n).max(ef);
    if forced == PlanChoice::Graph {
        return Plan::Graph { graph, ef: wide };
    }
    if sel == 0.0 {
        return scan();
    }
    let walk = wide as f64 / sel * EXPAND_COST;
    let scan_cost = match candidates {
        Some(c) => c.len() as f64,
        None => n as f64 * CHECK_COST + sel * n as f64,
    };
    if walk < scan_cost {
        Plan::Graph { graph, ef: wide }
    } else {
        scan()
    }
}

/// Share of `n` items admitted, on an even sample of at most [`SAMPLE`].
fn admitted_share(n: usize, admit: impl Fn(usize) -> bool) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let take = n.min(SAMPLE);
    let hits = (0..take).filter(|j| admit(j * n / take)).count();
    hits as f64 / take as f64
}
