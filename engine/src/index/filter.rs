//! Predicates on row metadata that a search must honour.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use crate::storage::{Kind, MetaRecord, RowRef, Scope, TableView, Tier};

/// Which rows may be returned; every field set must hold (AND).
///
/// ```
/// use engram::index::Filter;
/// let f = Filter { time: Some(0..1_000), ..Filter::namespace("tenant-7") };
/// assert!(f.namespace.is_some());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Namespace equals.
    pub namespace: Option<String>,
    /// Session equals.
    pub session: Option<String>,
    /// Scope equals.
    pub scope: Option<Scope>,
    /// Kind equals.
    pub kind: Option<Kind>,
    /// Tier equals.
    pub tier: Option<Tier>,
    /// Timestamp (microseconds) within the half-open range.
    pub time: Option<Range<i64>>,
    /// Row id in the set.
    pub ids: Option<Arc<HashSet<u64>>>,
}

impl Filter {
    /// Rows of one namespace.
    pub fn namespace(ns: impl Into<String>) -> Filter {
        Filter {
            namespace: Some(ns.into()),
            ..Filter::default()
        }
    }

    /// Whether the filter admits every row.
    pub fn is_empty(&self) -> bool {
        self.namespace.is_none()
            && self.session.is_none()
            && self.scope.is_none()
            && self.kind.is_none()
            && self.tier.is_none()
            && self.time.is_none()
            && self.ids.is_none()
    }

    /// Resolve strings to the view's symbol ids. `None`: no row can match
    /// (a namespace or session no row uses).
    pub(crate) fn compile(&self, view: &TableView) -> Option<Compiled> {
        let sym = |s: &Option<String>| match s {
            None => Some(None),
            Some(s) => view.symbol(s).map(Some),
        };
        Some(Compiled {
            namespace: sym(&self.namespace)?,
            session: sym(&self.session)?,
            scope: self.scope.map(|s| s as u8),
            kind: self.kind.map(|k| k as u8),
            tier: self.tier.map(|t| t as u8),
            time: self.time.clone(),
            ids: self.ids.clone(),
        })
    }
}

/// A filter with strings resolved, checked per row.
pub(crate) struct Compiled {
    namespace: Option<u32>,
    session: Option<u32>,
    scope: Option<u8>,
    kind: Option<u8>,
    tier: Option<u8>,
    time: Option<Range<i64>>,
    ids: Option<Arc<HashSet<u64>>>,
}

impl Compiled {
    /// Whether every row passes.
    pub fn is_trivial(&self) -> bool {
        self.namespace.is_none()
            && self.session.is_none()
            && self.scope.is_none()
            && self.kind.is_none()
            && self.tier.is_none()
            && self.time.is_none()
            && self.ids.is_none()
    }

    /// The id set, if the filter has one.
    pub fn ids(&self) -> Option<&HashSet<u64>> {
        self.ids.as_deref()
    }

    pub fn matches(&self, r: &RowRef<'_>) -> bool {
        self.matches_meta(r.meta, r.id.0)
    }

    /// [`matches`](Self::matches) from a row's metadata and id alone.
    pub fn matches_meta(&self, m: &MetaRecord, id: u64) -> bool {
        self.namespace.is_none_or(|n| m.namespace == n)
            && self.session.is_none_or(|s| m.session == s)
            && self.scope.is_none_or(|s| m.scope == s)
            && self.kind.is_none_or(|k| m.kind == k)
            && self.tier.is_none_or(|t| m.tier == t)
            && self.time.as_ref().is_none_or(|t| t.contains(&m.timestamp))
            && self.ids.as_ref().is_none_or(|ids| ids.contains(&id))
    }
}
