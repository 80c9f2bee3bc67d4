//! SQL values <-> engine rows. Metadata travels as jsonb with a fixed set of
//! keys; it is normalized on the way in, so that the truth table and the
//! engine copy always print the same jsonb.

use engram::storage::{Kind, Meta, Row, Scope, Tier};
use pgrx::PgSqlErrorCode as Code;
use serde_json::{Map, Value};

use crate::errors::user_error;

const KEYS: &str = "namespace, session, scope, kind, tier, timestamp, order, access_count, authority, confidence, decay_rate, token_count, anchor_density";

fn bad(msg: String) -> ! {
    user_error(Code::ERRCODE_INVALID_PARAMETER_VALUE, msg)
}

fn as_u32(k: &str, v: &Value) -> u32 {
    v.as_u64()
        .and_then(|x| u32::try_from(x).ok())
        .unwrap_or_else(|| bad(format!("meta key {k:?} must be an integer between 0 and {}", u32::MAX)))
}

fn as_f32(k: &str, v: &Value) -> f32 {
    match v.as_f64() {
        Some(x) if x.is_finite() => x as f32,
        _ => bad(format!("meta key {k:?} must be a finite number")),
    }
}

fn as_str<'a>(k: &str, v: &'a Value) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| bad(format!("meta key {k:?} must be a string")))
}

fn pick<T: Copy>(k: &str, v: &Value, names: &[(&str, T)]) -> T {
    let s = as_str(k, v);
    names.iter().find(|(n, _)| *n == s).map(|(_, t)| *t).unwrap_or_else(|| {
        let allowed: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
        bad(format!("meta key {k:?} is {s:?}; allowed: {}", allowed.join(", ")))
    })
}

const SCOPES: [(&str, Scope); 3] = [
    ("global", Scope::Global),
    ("user", Scope::User),
    ("session", Scope::Session),
];
const KINDS: [(&str, Kind); 4] = [
    ("generic", Kind::Generic),
    ("turn", Kind::Turn),
    ("summary", Kind::Summary),
    ("authored", Kind::Authored),
];
const TIERS: [(&str, Tier); 3] = [
    ("variant", Tier::Variant),
    ("soft", Tier::SoftInvariant),
    ("hard", Tier::HardInvariant),
];

fn name_of<T: PartialEq + Copy>(t: T, names: &[(&'static str, T)]) -> &'static str {
    names.iter().find(|(_, x)| *x == t).map_or("?", |(n, _)| *n)
}

/// Parse a meta jsonb object; unknown keys and wrong types are ERRORs (22023).
pub fn meta_from_json(v: &Value) -> Meta {
    let obj = v
        .as_object()
        .unwrap_or_else(|| bad("meta must be a jsonb object".into()));
    let mut m = Meta::default();
    for (k, v) in obj {
        match k.as_str() {
            "namespace" => m.namespace = as_str(k, v).to_string(),
            "session" => m.session = as_str(k, v).to_string(),
            "scope" => m.scope = pick(k, v, &SCOPES),
            "kind" => m.kind = pick(k, v, &KINDS),
            "tier" => m.tier = pick(k, v, &TIERS),
            "timestamp" => {
                m.timestamp = v.as_i64().unwrap_or_else(|| {
                    bad("meta key \"timestamp\" must be an integer (microseconds since 1970)".into())
                })
            }
            "order" => m.order = as_u32(k, v),
            "access_count" => m.access_count = as_u32(k, v),
            "token_count" => m.token_count = as_u32(k, v),
            "authority" => m.authority = as_f32(k, v),
            "confidence" => m.confidence = as_f32(k, v),
            "decay_rate" => m.decay_rate = as_f32(k, v),
            "anchor_density" => m.anchor_density = as_f32(k, v),
            other => bad(format!("unknown meta key {other:?}; allowed keys: {KEYS}")),
        }
    }
    m
}

/// The normalized jsonb of `m`: only keys that differ from the default.
pub fn meta_to_json(m: &Meta) -> Value {
    let d = Meta::default();
    let mut o = Map::new();
    let mut put = |k: &str, differs: bool, v: Value| {
        if differs {
            o.insert(k.to_string(), v);
        }
    };
    put(
        "namespace",
        m.namespace != d.namespace,
        Value::from(m.namespace.clone()),
    );
    put("session", m.session != d.session, Value::from(m.session.clone()));
    put("scope", m.scope != d.scope, Value::from(name_of(m.scope, &SCOPES)));
    put("kind", m.kind != d.kind, Value::from(name_of(m.kind, &KINDS)));
    put("tier", m.tier != d.tier, Value::from(name_of(m.tier, &TIERS)));
    put("timestamp", m.timestamp != d.timestamp, Value::from(m.timestamp));
    put("order", m.order != d.order, Value::from(m.order));
    put(
        "access_count",
        m.access_count != d.access_count,
        Value::from(m.access_count),
    );
    put(
        "token_count",
        m.token_count != d.token_count,
        Value::from(m.token_count),
    );
    put("authority", m.authority != d.authority, Value::from(m.authority));
    put("confidence", m.confidence != d.confidence, Value::from(m.confidence));
    put("decay_rate", m.decay_rate != d.decay_rate, Value::from(m.decay_rate));
    put(
        "anchor_density",
        m.anchor_density != d.anchor_density,
        Value::from(m.anchor_density),
    );
    Value::Object(o)
}

/// Build the engine row for a stored truth row.
pub fn row(key: Vec<f32>, body: String, meta: &Value) -> Row {
    Row::new(key).with_text(body).with_meta(meta_from_json(meta))
}
