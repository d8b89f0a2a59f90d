//! Route resolution as one pure function: (snapshot, principal, request attributes, seed) →
//! an ordered list of attempts plus the reason. No I/O, no clock, no randomness of its own, so
//! it is tested as a table and `route explain` can show exactly what a request would do.

pub mod complexity;
#[cfg(test)]
mod proptests;
pub mod rules;

use crate::auth::Principal;
use crate::config::{Group, MAX_CHAIN, Snapshot, Strategy, Target, target_of};

/// What routing may look at. Rules see all of it; strategies only the model and session.
#[derive(Debug, Clone, Copy)]
pub struct RequestAttrs<'a> {
    pub model: &'a str,
    pub session_id: Option<&'a str>,
    pub user: Option<&'a str>,
    /// Parsed `x-switchyard-tags`.
    pub tags: &'a [(String, String)],
    /// Request headers (lowercased names); collected only for keys that have rules.
    pub headers: &'a [(String, String)],
    pub metadata: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// Prompt size estimate (see `estimate_input_tokens`) and the client's output cap, for the
    /// cost strategies.
    pub est_input_tokens: u64,
    pub max_output_tokens: Option<u64>,
    /// Live backend statistics, for `least_latency`; `None` means no data.
    pub stats: Option<&'a dyn Stats>,
    /// The request body, for strategies that read the prompt (`intelligent`).
    pub body: Option<&'a serde_json::Value>,
}

/// Live statistics the router may consult. Passed in, so `plan` stays free of I/O and clocks.
pub trait Stats: std::fmt::Debug {
    /// EWMA time to first token of a backend, if it has served anything yet.
    fn latency_ms(&self, target: &Target) -> Option<f64>;
}

/// The affinity key of a conversation without a session id: its messages up to and including
/// the first user message, which every later turn repeats.
pub fn conversation_key(body: &serde_json::Value) -> Option<u64> {
    let messages = body.get("messages")?.as_array()?;
    let end = messages
        .iter()
        .position(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))?;
    let opening = serde_json::to_vec(&messages[..=end]).ok()?;
    Some(fnv1a(&opening))
}

/// Output tokens assumed when the client sets no cap.
pub const DEFAULT_EST_OUTPUT_TOKENS: u64 = 256;

/// A cheap prompt size estimate: about four characters per token over all message text, plus
/// a few tokens of framing per message. Good enough to rank models by cost; not billing.
pub fn estimate_input_tokens(body: &serde_json::Value) -> u64 {
    fn text_len(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::String(s) => s.len(),
            serde_json::Value::Array(parts) => parts
                .iter()
                .map(|p| p.get("text").map_or(0, text_len))
                .sum(),
            _ => 0,
        }
    }
    let messages = body.get("messages").and_then(|m| m.as_array());
    let chars: usize = messages.map_or(0, |ms| {
        ms.iter()
            .map(|m| m.get("content").map_or(0, text_len))
            .sum()
    });
    let input: usize = body.get("input").map_or(0, |i| match i {
        serde_json::Value::Array(items) => items.iter().map(text_len).sum(),
        other => text_len(other),
    });
    ((chars + input) as u64).div_ceil(4) + 4 * messages.map_or(0, |m| m.len() as u64)
}

impl<'a> RequestAttrs<'a> {
    /// Only a model (and optionally a session): what strategies need.
    pub fn model(model: &'a str, session_id: Option<&'a str>) -> RequestAttrs<'a> {
        RequestAttrs {
            model,
            session_id,
            user: None,
            tags: &[],
            headers: &[],
            metadata: None,
            est_input_tokens: 0,
            max_output_tokens: None,
            stats: None,
            body: None,
        }
    }

    /// Everything routing reads from a parsed request body (stats are added by the caller).
    pub fn from_body(
        model: &'a str,
        body: &'a serde_json::Value,
        session_id: Option<&'a str>,
        tags: &'a [(String, String)],
        headers: &'a [(String, String)],
    ) -> RequestAttrs<'a> {
        RequestAttrs {
            model,
            session_id,
            user: body.get("user").and_then(|u| u.as_str()),
            tags,
            headers,
            metadata: body.get("metadata").and_then(|m| m.as_object()),
            est_input_tokens: estimate_input_tokens(body),
            max_output_tokens: body
                .get("max_completion_tokens")
                .or_else(|| body.get("max_tokens"))
                .and_then(|v| v.as_u64()),
            stats: None,
            body: Some(body),
        }
    }

    fn view(&self) -> rules::RequestView<'a> {
        rules::RequestView {
            model: self.model,
            user: self.user,
            tags: self.tags,
            headers: self.headers,
            metadata: self.metadata,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub target: Target,
    pub timeout_ms: u64,
    pub tag: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub attempts: Vec<Attempt>,
    /// What matched: `group:<name>`, `model:<name>`, `key:<name>/<route>` or `key:<name>/rule[i]`.
    pub route: String,
    pub strategy: &'static str,
    /// The matched rule's condition, for the decision trace.
    pub rule: Option<String>,
    /// Why a cost/latency/complexity strategy chose its first model.
    pub reason: Option<String>,
    /// Candidates left out, and why (decision trace).
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub provider: usize,
    pub model: String,
    pub reason: &'static str,
}

impl Plan {
    /// The provider sequence; its Envoy cluster chain is named after it.
    pub fn providers(&self) -> Vec<usize> {
        self.attempts.iter().map(|a| a.target.provider).collect()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error("The model `{0}` does not exist or is not configured on this gateway")]
    UnknownModel(String),
    #[error("The model `{0}` is disabled")]
    Disabled(String),
    #[error("This key is not allowed to use the model `{0}`")]
    NotAllowed(String),
}

/// Resolve a request to attempts (SPEC "Resolution"): the key's active routing, else a model
/// group, else a catalog model, else 404.
pub fn plan(
    snap: &Snapshot,
    key: &Principal,
    req: &RequestAttrs<'_>,
    seed: u64,
) -> Result<Plan, RouteError> {
    if let Some(r) = key.routing.as_ref().filter(|r| r.active) {
        // Rules first: the first match wins and its `use` list is tried in order.
        if let Some(i) = rules::first_match(&r.rules, &req.view()) {
            let rule = &r.rule_groups[i];
            let mut p = from_group(rule, req, seed, format!("key:{}/rule[{i}]", key.name))?;
            p.strategy = "rules";
            p.rule = Some(rules::describe(&r.rules[i].when));
            return Ok(p);
        }
        // Named routes answer their logical name; with no route of that name, all routes apply.
        let named: Vec<usize> = (0..r.names.len())
            .filter(|&i| r.names[i].as_deref() == Some(req.model))
            .collect();
        let group = if named.is_empty() {
            std::borrow::Cow::Borrowed(&r.group)
        } else {
            std::borrow::Cow::Owned(Group {
                name: r.group.name.clone(),
                strategy: r.group.strategy,
                session_affinity: r.group.session_affinity,
                members: named.iter().map(|&i| r.group.members[i].clone()).collect(),
            })
        };
        return from_group(&group, req, seed, format!("key:{}/{}", key.name, req.model));
    }
    if !key.may_use(req.model) {
        return Err(RouteError::NotAllowed(req.model.to_string()));
    }
    if let Some(g) = snap.groups.get(req.model) {
        return from_group(g, req, seed, format!("group:{}", g.name));
    }
    if let Some(m) = snap.models.get(req.model) {
        if !m.enabled {
            return Err(RouteError::Disabled(req.model.to_string()));
        }
        let timeout_ms = snap.limits.default_timeout_ms;
        return Ok(Plan {
            attempts: vec![Attempt {
                target: target_of(m),
                timeout_ms,
                tag: None,
            }],
            route: format!("model:{}", m.name),
            strategy: "single",
            rule: None,
            reason: None,
            skipped: Vec::new(),
        });
    }
    Err(RouteError::UnknownModel(req.model.to_string()))
}

fn from_group(
    g: &Group,
    req: &RequestAttrs<'_>,
    seed: u64,
    route: String,
) -> Result<Plan, RouteError> {
    let orders = g.orders();
    let mut reason = None;
    let order = match g.strategy {
        Strategy::Fallback => orders.into_iter().next(),
        Strategy::Weighted => {
            // Affinity: the same session always draws the same point on the weight line.
            // Without a session id, the conversation's opening is the key (hashed only here,
            // when affinity is on).
            let draw = match (g.session_affinity, req.session_id) {
                (true, Some(s)) => fnv1a(s.as_bytes()),
                (true, None) => req.body.and_then(conversation_key).unwrap_or(seed),
                _ => seed,
            };
            pick_weighted(g, &orders, draw)
        }
        Strategy::LowestCost
        | Strategy::Cost { .. }
        | Strategy::LeastLatency
        | Strategy::Intelligent { .. } => {
            let (first, why) = choose(g, req);
            reason = why;
            orders.into_iter().find(|o| Some(o[0]) == first)
        }
    };
    let mut order = order
        .filter(|o| !o.is_empty())
        .ok_or_else(|| RouteError::Disabled(req.model.to_string()))?;
    let mut skipped: Vec<Skipped> = g
        .members
        .iter()
        .filter(|m| !m.target.enabled)
        .map(|m| Skipped {
            provider: m.target.provider,
            model: m.target.provider_model.clone(),
            reason: "disabled",
        })
        .collect();
    // A model whose context window cannot hold the prompt would only fail; leave it out while
    // another remains (the estimate is rough, so never empty the plan over it).
    let needed = req.est_input_tokens + req.max_output_tokens.unwrap_or(0);
    let fits = |i: &usize| {
        g.members[*i]
            .target
            .context_window
            .is_none_or(|cw| needed <= cw)
    };
    if order.iter().any(fits) && !order.iter().all(fits) {
        for &i in order.iter().filter(|i| !fits(i)) {
            let t = &g.members[i].target;
            skipped.push(Skipped {
                provider: t.provider,
                model: t.provider_model.clone(),
                reason: "context window too small",
            });
        }
        order.retain(fits);
    }
    Ok(Plan {
        attempts: order
            .iter()
            .take(MAX_CHAIN)
            .map(|&i| {
                let m = &g.members[i];
                Attempt {
                    target: m.target.clone(),
                    timeout_ms: m.timeout_ms,
                    tag: m.tag.clone(),
                }
            })
            .collect(),
        route,
        strategy: g.strategy.as_str(),
        rule: None,
        reason,
        skipped,
    })
}

/// The member a cost, latency or complexity strategy puts first (`None`: no enabled member),
/// and why.
fn choose(g: &Group, req: &RequestAttrs<'_>) -> (Option<usize>, Option<String>) {
    let out = req.max_output_tokens.unwrap_or(DEFAULT_EST_OUTPUT_TOKENS);
    let enabled: Vec<usize> = (0..g.members.len())
        .filter(|&i| g.members[i].target.enabled)
        .collect();
    let cost = |i: usize| g.members[i].target.pricing.cost(req.est_input_tokens, out);
    // `min_by` keeps the first of equals, so ties go to config order.
    let cheapest =
        |it: &mut dyn Iterator<Item = usize>| it.min_by(|&a, &b| cost(a).total_cmp(&cost(b)));
    let priciest =
        |it: &mut dyn Iterator<Item = usize>| it.max_by(|&a, &b| cost(a).total_cmp(&cost(b)));
    let latency = |i: usize| {
        req.stats
            .and_then(|s| s.latency_ms(&g.members[i].target))
            .unwrap_or(0.0)
    };
    let fastest =
        |it: &mut dyn Iterator<Item = usize>| it.min_by(|&a, &b| latency(a).total_cmp(&latency(b)));
    match g.strategy {
        Strategy::LowestCost => {
            let c = cheapest(&mut enabled.iter().copied());
            (
                c,
                c.map(|i| format!("estimated ${:.6}, the cheapest", cost(i))),
            )
        }
        Strategy::Cost { budget_usd } => {
            // Models whose context window cannot hold the request are out.
            let fits: Vec<usize> = enabled
                .iter()
                .copied()
                .filter(|&i| {
                    g.members[i]
                        .target
                        .context_window
                        .is_none_or(|cw| req.est_input_tokens + out <= cw)
                })
                .collect();
            match cheapest(&mut fits.iter().copied().filter(|&i| cost(i) <= budget_usd)) {
                Some(i) => (
                    Some(i),
                    Some(format!(
                        "estimated ${:.6} within budget ${budget_usd}",
                        cost(i)
                    )),
                ),
                // Over budget everywhere: the more capable (pricier) model, as seed 002 describes.
                None => {
                    let c = priciest(&mut fits.iter().copied());
                    (
                        c,
                        Some(format!("no model fits budget ${budget_usd}; most capable")),
                    )
                }
            }
        }
        Strategy::LeastLatency => {
            // Unmeasured backends count as instant, so each gets tried and measured.
            let f = fastest(&mut enabled.iter().copied());
            (
                f,
                f.map(|i| format!("ttft ewma {:.1} ms, the lowest", latency(i))),
            )
        }
        Strategy::Intelligent { axis } => {
            // Capability is inferred from pricing: the priciest member is the most capable.
            let capable = priciest(&mut enabled.iter().copied());
            let Some(score) = req.body.and_then(complexity::score) else {
                return (capable, Some("no prompt to score; most capable".into()));
            };
            // Below the axis threshold a prompt is simple enough for the cheap (or fast) model;
            // the 0.4-0.6 edge band goes to the capable model except on the cost axis.
            let (threshold, simple_pick, simple_name) = match axis {
                crate::config::Axis::Cost => {
                    (0.5, cheapest(&mut enabled.iter().copied()), "cheapest")
                }
                crate::config::Axis::Performance => {
                    (0.4, fastest(&mut enabled.iter().copied()), "fastest")
                }
                crate::config::Axis::Intelligence => {
                    (0.2, cheapest(&mut enabled.iter().copied()), "cheapest")
                }
            };
            if score < threshold {
                (
                    simple_pick,
                    Some(format!(
                        "complexity {score:.2} < {threshold}: {simple_name}"
                    )),
                )
            } else {
                (
                    capable,
                    Some(format!(
                        "complexity {score:.2} >= {threshold}: most capable"
                    )),
                )
            }
        }
        Strategy::Fallback | Strategy::Weighted => (enabled.first().copied(), None),
    }
}

/// Weighted orders start with each enabled member in turn; pick the one whose first member the
/// draw lands on, in proportion to weight.
fn pick_weighted(g: &Group, orders: &[Vec<usize>], draw: u64) -> Option<Vec<usize>> {
    let total: u64 = orders
        .iter()
        .map(|o| u64::from(g.members[o[0]].weight))
        .sum();
    if total == 0 {
        return orders.first().cloned();
    }
    let mut point = draw % total;
    for o in orders {
        let w = u64::from(g.members[o[0]].weight);
        if point < w {
            return Some(o.clone());
        }
        point -= w;
    }
    orders.last().cloned()
}

/// Stable across processes and releases (unlike `DefaultHasher`), so affinity survives restarts.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Mix so that nearby session ids spread across the weight line.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KeyHash;
    use std::path::Path;

    const CFG: &str = r#"
providers:
  - { id: a, kind: openai_compatible, base_url: "http://127.0.0.1:1/v1" }
  - { id: b, kind: openai_compatible, base_url: "http://127.0.0.1:2/v1" }
models:
  - { name: m1, provider: a, pricing: { input_per_mtok: 1, output_per_mtok: 2 } }
  - { name: m2, provider: b }
  - { name: off, provider: b, status: disabled }
  - { name: cheap, provider: b, context_window: 8000, pricing: { input_per_mtok: 0.1, output_per_mtok: 0.2 } }
  - { name: big, provider: a, context_window: 200000, pricing: { input_per_mtok: 10, output_per_mtok: 30 } }
model_groups:
  - name: thrifty
    strategy: lowest_cost
    models: [ { model: m1 }, { model: cheap }, { model: off } ]
  - name: budget
    strategy: cost
    budget_per_request_usd: 0.001
    models: [ { model: big }, { model: cheap } ]
  - name: quick
    strategy: least_latency
    models: [ { model: m1 }, { model: m2 } ]
  - name: smart
    strategy: intelligent
    axis: cost
    models: [ { model: big }, { model: cheap } ]
  - name: chain
    strategy: fallback
    models: [ { model: m1, timeout_ms: 100 }, { model: m2 } ]
  - name: split
    strategy: weighted
    session_affinity: true
    models: [ { model: m1, weight: 70 }, { model: m2, weight: 30 } ]
keys:
  - { name: k, hash: "sha256:0000000000000000000000000000000000000000000000000000000000000000" }
  - name: limited
    hash: "sha256:1111111111111111111111111111111111111111111111111111111111111111"
    allowed_models: [m1]
  - name: routed
    hash: "sha256:2222222222222222222222222222222222222222222222222222222222222222"
    routing:
      active: true
      strategy: fallback
      routes:
        - { name: chat-model, model: m2, priority: 1 }
        - { name: chat-model, model: m1, priority: 0, timeout_ms: 50 }
  - name: parked
    hash: "sha256:3333333333333333333333333333333333333333333333333333333333333333"
    routing:
      active: false
      routes: [ { name: chat-model, model: m2 } ]
"#;

    fn snap() -> Snapshot {
        Snapshot::from_yaml(CFG, Path::new("t.yaml")).unwrap()
    }

    fn key(s: &Snapshot, hex: char) -> &Principal {
        let h = KeyHash::parse(&format!("sha256:{}", hex.to_string().repeat(64))).unwrap();
        &s.keys[&h]
    }

    fn attrs(model: &str) -> RequestAttrs<'_> {
        RequestAttrs::model(model, None)
    }

    /// The plan an unrestricted key gets.
    fn route(s: &Snapshot, req: RequestAttrs<'_>) -> Plan {
        plan(s, key(s, '0'), &req, 0).unwrap()
    }

    fn models_of(p: &Plan) -> Vec<&str> {
        p.attempts
            .iter()
            .map(|a| a.target.provider_model.as_str())
            .collect()
    }

    #[test]
    fn fallback_group_orders_all_members() {
        let s = snap();
        let p = plan(&s, key(&s, '0'), &attrs("chain"), 7).unwrap();
        let models = models_of(&p);
        assert_eq!(models, ["m1", "m2"]);
        assert_eq!(p.attempts[0].timeout_ms, 100);
        assert_eq!(p.strategy, "fallback");
        assert_eq!(p.route, "group:chain");
    }

    #[test]
    fn catalog_model_is_single_and_unknown_is_404() {
        let s = snap();
        let p = plan(&s, key(&s, '0'), &attrs("m2"), 0).unwrap();
        assert_eq!(p.attempts.len(), 1);
        assert_eq!(
            plan(&s, key(&s, '0'), &attrs("nope"), 0).unwrap_err(),
            RouteError::UnknownModel("nope".into())
        );
        assert_eq!(
            plan(&s, key(&s, '0'), &attrs("off"), 0).unwrap_err(),
            RouteError::Disabled("off".into())
        );
        assert_eq!(
            plan(&s, key(&s, '1'), &attrs("m2"), 0).unwrap_err(),
            RouteError::NotAllowed("m2".into())
        );
    }

    #[test]
    fn weighted_split_follows_weights_and_falls_back_to_the_rest() {
        let s = snap();
        let mut first_m1 = 0;
        for seed in 0..1000u64 {
            let p = plan(
                &s,
                key(&s, '0'),
                &attrs("split"),
                fnv1a(&seed.to_le_bytes()),
            )
            .unwrap();
            assert_eq!(p.attempts.len(), 2);
            assert_ne!(
                p.attempts[0].target.provider_model,
                p.attempts[1].target.provider_model
            );
            if p.attempts[0].target.provider_model == "m1" {
                first_m1 += 1;
            }
        }
        assert!((650..750).contains(&first_m1), "m1 first {first_m1}/1000");
    }

    #[test]
    fn affinity_is_sticky_per_session() {
        let s = snap();
        let req = RequestAttrs::model("split", Some("conv-42"));
        let first = plan(&s, key(&s, '0'), &req, 1).unwrap().attempts[0]
            .target
            .provider_model
            .clone();
        for seed in 0..50 {
            assert_eq!(
                plan(&s, key(&s, '0'), &req, seed).unwrap().attempts[0]
                    .target
                    .provider_model,
                first
            );
        }
    }

    #[test]
    fn active_key_routes_resolve_logical_names_by_priority() {
        let s = snap();
        let p = plan(&s, key(&s, '2'), &attrs("chat-model"), 0).unwrap();
        let models = models_of(&p);
        assert_eq!(models, ["m1", "m2"]);
        assert_eq!(p.attempts[0].timeout_ms, 50);
        assert_eq!(p.route, "key:routed/chat-model");
        // Inactive routing is kept but not enforced: the model field is used as sent.
        assert_eq!(
            plan(&s, key(&s, '3'), &attrs("chat-model"), 0).unwrap_err(),
            RouteError::UnknownModel("chat-model".into())
        );
        assert_eq!(
            plan(&s, key(&s, '3'), &attrs("m2"), 0).unwrap().attempts[0]
                .target
                .provider_model,
            "m2"
        );
    }

    fn first(p: &Plan) -> &str {
        &p.attempts[0].target.provider_model
    }

    #[test]
    fn lowest_cost_picks_the_cheapest_and_keeps_the_rest_as_fallback() {
        let s = snap();
        let p = route(
            &s,
            RequestAttrs {
                est_input_tokens: 500,
                ..attrs("thrifty")
            },
        );
        assert_eq!(first(&p), "cheap");
        assert_eq!(p.attempts.len(), 2);
        assert_eq!(p.strategy, "lowest_cost");
        assert_eq!(
            p.skipped,
            [Skipped {
                provider: 1,
                model: "off".into(),
                reason: "disabled"
            }]
        );
    }

    #[test]
    fn cost_budget_short_prompt_cheap_long_prompt_capable() {
        let s = snap();
        let short = RequestAttrs {
            est_input_tokens: 50,
            max_output_tokens: Some(100),
            ..attrs("budget")
        };
        assert_eq!(first(&plan(&s, key(&s, '0'), &short, 0).unwrap()), "cheap");
        // Too big for cheap's context window and over budget everywhere: the capable model.
        let long = RequestAttrs {
            est_input_tokens: 50_000,
            ..attrs("budget")
        };
        assert_eq!(first(&plan(&s, key(&s, '0'), &long, 0).unwrap()), "big");
    }

    #[derive(Debug)]
    struct FakeStats;
    impl Stats for FakeStats {
        fn latency_ms(&self, t: &Target) -> Option<f64> {
            match t.provider_model.as_str() {
                "m1" => Some(300.0),
                "m2" => Some(40.0),
                _ => None,
            }
        }
    }

    #[test]
    fn least_latency_prefers_the_faster_backend_and_explores_unmeasured_ones() {
        let s = snap();
        let fast = RequestAttrs {
            stats: Some(&FakeStats),
            ..attrs("quick")
        };
        assert_eq!(first(&plan(&s, key(&s, '0'), &fast, 0).unwrap()), "m2");
        // No data yet: config order.
        assert_eq!(first(&route(&s, attrs("quick"))), "m1");
    }

    #[test]
    fn intelligent_sends_simple_prompts_cheap_and_complex_ones_capable() {
        let s = snap();
        let simple = serde_json::json!({ "messages": [{ "role": "user", "content": "What is the capital of France?" }] });
        let hard = serde_json::json!({ "messages": [{ "role": "user", "content":
            "Design a distributed rate limiter; analyze consistency trade-offs and prove it never over-admits." }] });
        let p = route(
            &s,
            RequestAttrs {
                body: Some(&simple),
                ..attrs("smart")
            },
        );
        assert_eq!(first(&p), "cheap");
        assert!(p.reason.as_deref().unwrap().starts_with("complexity"));
        let p = route(
            &s,
            RequestAttrs {
                body: Some(&hard),
                ..attrs("smart")
            },
        );
        assert_eq!(first(&p), "big");
        // Scorer has nothing to go on: the most capable model.
        assert_eq!(first(&route(&s, attrs("smart"))), "big");
    }

    #[test]
    fn models_too_small_for_the_prompt_are_skipped_with_a_reason() {
        let s = snap();
        let long = RequestAttrs {
            est_input_tokens: 20_000,
            ..attrs("thrifty")
        };
        let p = plan(&s, key(&s, '0'), &long, 0).unwrap();
        let models = models_of(&p);
        assert_eq!(models, ["m1"]);
        assert!(p.skipped.contains(&Skipped {
            provider: 1,
            model: "cheap".into(),
            reason: "context window too small"
        }));
    }

    #[test]
    fn token_estimate_counts_message_text() {
        let body = serde_json::json!({ "messages": [
            { "role": "user", "content": "x".repeat(400) },
            { "role": "user", "content": [ { "type": "text", "text": "y".repeat(40) } ] }
        ]});
        assert_eq!(estimate_input_tokens(&body), 110 + 8);
    }

    #[test]
    fn every_plan_has_an_envoy_chain() {
        let s = snap();
        let chains = s.chains();
        for seed in 0..100 {
            for (k, m) in [
                ('0', "chain"),
                ('0', "split"),
                ('0', "m1"),
                ('0', "m2"),
                ('2', "chat-model"),
                ('0', "thrifty"),
                ('0', "budget"),
                ('0', "quick"),
                ('0', "smart"),
            ] {
                let p = plan(
                    &s,
                    key(&s, k),
                    &RequestAttrs {
                        est_input_tokens: seed * 1000,
                        ..attrs(m)
                    },
                    seed,
                )
                .unwrap();
                assert!(chains.contains(&p.providers()), "{m}: {:?}", p.providers());
            }
        }
    }
}
