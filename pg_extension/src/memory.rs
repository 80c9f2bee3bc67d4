//! The SQL functions of agent memory. So far the scalar laws, usable in any
//! query over ordinary tables: the hybrid score, recency, the token
//! estimate and budget packing (engine: `engram::memory`).

use engram::memory::{self, Kind, RecencyRates, Scope, Weights};
use pgrx::prelude::*;

use crate::errors::OrRaise;
use crate::gucs;

/// The recency rates the session's settings give.
fn rates() -> RecencyRates {
    RecencyRates {
        session: gucs::RECENCY_SESSION.get(),
        namespace: gucs::RECENCY_NAMESPACE.get(),
        global: gucs::RECENCY_GLOBAL.get(),
    }
}

/// The hybrid score of a memory: `(alpha cos + beta R + gamma S) Q`.
/// Stable, not immutable: R reads the `engram.recency_*` settings.
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments)]
fn hybrid_score(
    cosine: f64,
    age_seconds: f64,
    scope: &str,
    kind: default!(&str, "'turn'"),
    decay_rate: default!(f64, 0),
    alpha: default!(f64, 0.7),
    beta: default!(f64, 0.2),
    gamma: default!(f64, 0.1),
    delta: default!(f64, 0.5),
) -> f64 {
    let scope: Scope = scope.parse().or_raise();
    let kind: Kind = kind.parse().or_raise();
    let w = Weights {
        alpha,
        beta,
        gamma,
        delta,
    };
    memory::hybrid(cosine, age_seconds, scope, kind, decay_rate, &w, &rates())
        .or_raise()
        .score
}

/// `exp(-lambda_scope age)`.
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn recency(age_seconds: f64, scope: &str) -> f64 {
    let scope: Scope = scope.parse().or_raise();
    rates().recency(age_seconds, scope).or_raise()
}

/// The estimated model tokens of `body`.
#[pg_extern(immutable, parallel_safe, strict)]
#[search_path(pg_catalog, pg_temp)]
fn estimate_tokens(body: &str) -> i32 {
    i32::try_from(memory::estimate_tokens(body)).unwrap_or(i32::MAX)
}

/// How many leading items of `bodies` fit in `budget` estimated tokens.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn fit_budget(bodies: Vec<Option<String>>, budget: i32) -> i32 {
    if budget < 0 {
        crate::errors::user_error(
            pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("budget must be non-negative, not {budget}"),
        );
    }
    let costs = bodies.iter().map(|b| b.as_deref().map_or(0, memory::estimate_tokens));
    memory::fit_budget(costs, budget as u64) as i32
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn one(q: &str) -> f64 {
        Spi::get_one::<f64>(q).unwrap().unwrap()
    }

    #[pg_test]
    fn hybrid_score_and_recency_follow_the_formula() {
        // 0.7 x 0.8 + 0.2 x 1 + 0.1 x 1, a summary losing 0.5 x 0.4.
        assert!((one("SELECT engram.hybrid_score(0.8, 0, 'session')") - 0.86).abs() < 1e-12);
        assert!(
            (one("SELECT engram.hybrid_score(0.8, 0, 'session', kind => 'summary', decay_rate => 0.4)") - 0.86 * 0.8)
                .abs()
                < 1e-12
        );
        let r = (-1e-5f64 * 3600.0).exp();
        assert!((one("SELECT engram.recency(3600, 'namespace')") - r).abs() < 1e-15);
        // Weights are renormalized: (1, 1, 0) scores as (0.5, 0.5, 0).
        let w = one("SELECT engram.hybrid_score(0.2, 3600, 'namespace', alpha => 1, beta => 1, gamma => 0)");
        assert!((w - (0.1 + 0.5 * r)).abs() < 1e-12);
        // The session's rates are settings.
        Spi::run("SET engram.recency_global = 0").unwrap();
        assert_eq!(one("SELECT engram.recency(1e9, 'global')"), 1.0);
    }

    #[pg_test]
    fn tokens_and_budgets() {
        let n = |q: &str| Spi::get_one::<i32>(q).unwrap().unwrap();
        assert_eq!(n("SELECT engram.estimate_tokens('hello world')"), 3);
        assert_eq!(n("SELECT engram.estimate_tokens('記憶')"), 2);
        assert_eq!(n("SELECT engram.fit_budget(ARRAY['aaaa', 'bbbbbbbb', 'c'], 3)"), 2);
        assert_eq!(n("SELECT engram.fit_budget(ARRAY['aaaaaaaaaaaaa', 'c'], 3)"), 0);
        assert_eq!(n("SELECT engram.fit_budget(ARRAY[]::text[], 0)"), 0);
    }

    #[pg_test(error = "engram: invalid argument: scope \"user\": use session, namespace or global")]
    fn an_unknown_scope_is_an_error() {
        Spi::get_one::<f64>("SELECT engram.hybrid_score(0.5, 0, 'user')").unwrap();
    }

    #[pg_test(error = "engram: invalid argument: cosine must be a finite number, not NaN")]
    fn a_nan_is_an_error() {
        Spi::get_one::<f64>("SELECT engram.hybrid_score('NaN', 0, 'session')").unwrap();
    }

    #[pg_test(error = "budget must be non-negative, not -1")]
    fn a_negative_budget_is_an_error() {
        Spi::get_one::<i32>("SELECT engram.fit_budget(ARRAY['a'], -1)").unwrap();
    }
}
