//! Property tests of the pure decision function: weights converge, affinity is stable,
//! fallback order follows priorities, rules evaluate per the operator table, and no input
//! makes `plan` fail for a configured name. Configs are generated as YAML so every case also
//! goes through validation, as a real file would.

use super::*;
use crate::auth::KeyHash;
use proptest::prelude::*;
use std::path::Path;

const KEY: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn providers_and_models(n: usize) -> String {
    let mut y = String::from("providers:\n");
    for i in 0..n {
        y += &format!(
            "  - {{ id: p{i}, kind: openai_compatible, base_url: \"http://127.0.0.1:{}/v1\" }}\n",
            1000 + i
        );
    }
    y += "models:\n";
    for i in 0..n {
        y += &format!("  - {{ name: m{i}, provider: p{i} }}\n");
    }
    y
}

/// Scales arbitrary positive weights to integers summing to 100 (groups must declare that).
fn percent(raw: &[u32]) -> Vec<u32> {
    let sum: u32 = raw.iter().sum();
    let mut w: Vec<u32> = raw.iter().map(|r| (r * 100 / sum).max(1)).collect();
    let total: u32 = w.iter().sum();
    let largest = (0..w.len()).max_by_key(|&i| w[i]).unwrap();
    w[largest] = w[largest] + 100 - total;
    w
}

fn build(yaml: &str) -> Snapshot {
    Snapshot::from_yaml(yaml, Path::new("prop.yaml")).expect("generated config is valid")
}

fn principal(s: &Snapshot) -> &Principal {
    &s.keys[&KeyHash::parse(KEY).unwrap()]
}

fn first_model(p: &Plan) -> &str {
    &p.attempts[0].target.provider_model
}

/// A seed stream that is fixed for the run (reproducible) but well spread.
fn seeds(n: usize, mut x: u64) -> impl Iterator<Item = u64> {
    (0..n).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Over many requests each member is chosen first in proportion to its weight.
    #[test]
    fn weighted_choice_converges_to_the_weights(raw in prop::collection::vec(1u32..100, 2..5), start in 1u64..u64::MAX) {
        let weights = percent(&raw);
        let n = weights.len();
        let mut y = providers_and_models(n);
        y += "model_groups:\n  - name: g\n    strategy: weighted\n    models:\n";
        for (i, w) in weights.iter().enumerate() {
            y += &format!("      - {{ model: m{i}, weight: {w} }}\n");
        }
        y += &format!("keys:\n  - {{ name: k, hash: \"{KEY}\" }}\n");
        let s = build(&y);
        const DRAWS: usize = 10_000;
        let mut counts = vec![0usize; n];
        for seed in seeds(DRAWS, start) {
            let p = plan(&s, principal(&s), &RequestAttrs::model("g", None), seed).unwrap();
            prop_assert_eq!(p.attempts.len(), n, "every member stays in the plan as a fallback");
            let i: usize = first_model(&p)[1..].parse().unwrap();
            counts[i] += 1;
        }
        let total: u32 = weights.iter().sum();
        for i in 0..n {
            let expected = f64::from(weights[i]) / f64::from(total);
            let got = counts[i] as f64 / DRAWS as f64;
            // Five standard deviations of a binomial share over DRAWS draws.
            let tolerance = 5.0 * (expected * (1.0 - expected) / DRAWS as f64).sqrt() + 1e-3;
            prop_assert!((got - expected).abs() <= tolerance,
                "member {} weight {}/{}: expected {:.4}, got {:.4}", i, weights[i], total, expected, got);
        }
    }

    /// With affinity on, a session id always gets the same first choice whatever the seed,
    /// and a reload that keeps the backend set keeps the choice.
    #[test]
    fn affinity_is_stable_per_session_and_across_reloads(raw in prop::collection::vec(1u32..100, 2..5), session in "[a-zA-Z0-9-]{1,40}", start in 1u64..u64::MAX) {
        let weights = percent(&raw);
        let n = weights.len();
        let mut y = providers_and_models(n);
        y += "model_groups:\n  - name: g\n    strategy: weighted\n    session_affinity: true\n    models:\n";
        for (i, w) in weights.iter().enumerate() {
            y += &format!("      - {{ model: m{i}, weight: {w} }}\n");
        }
        y += &format!("keys:\n  - {{ name: k, hash: \"{KEY}\" }}\n");
        let s = build(&y);
        let reloaded = build(&format!("# reloaded\n{y}"));
        let req = RequestAttrs::model("g", Some(&session));
        let want = first_model(&plan(&s, principal(&s), &req, 0).unwrap()).to_string();
        for seed in seeds(50, start) {
            let now = plan(&s, principal(&s), &req, seed).unwrap();
            let after_reload = plan(&reloaded, principal(&reloaded), &req, seed).unwrap();
            prop_assert_eq!(first_model(&now), want.as_str());
            prop_assert_eq!(first_model(&after_reload), want.as_str());
        }
    }

    /// A key's fallback routes are tried by ascending priority, ties in file order, and every
    /// enabled route appears exactly once.
    #[test]
    fn fallback_order_follows_priorities(priorities in prop::collection::vec(0u32..4, 1..5)) {
        let n = priorities.len();
        let mut y = providers_and_models(n);
        y += &format!("keys:\n  - name: k\n    hash: \"{KEY}\"\n    routing:\n      active: true\n      strategy: fallback\n      routes:\n");
        for (i, p) in priorities.iter().enumerate() {
            y += &format!("        - {{ name: chat, model: m{i}, priority: {p} }}\n");
        }
        let s = build(&y);
        let p = plan(&s, principal(&s), &RequestAttrs::model("chat", None), 0).unwrap();
        let mut want: Vec<usize> = (0..n).collect();
        want.sort_by_key(|&i| (priorities[i], i));
        let want: Vec<String> = want.iter().map(|i| format!("m{i}")).take(MAX_CHAIN).collect();
        let got: Vec<String> = p.attempts.iter().map(|a| a.target.provider_model.clone()).collect();
        prop_assert_eq!(got, want);
    }

    /// Comparison leaves on a tag behave as the operator table says, for any value pair.
    #[test]
    fn rule_operators_match_the_table(tag in -50i64..50, bound in -50i64..50, text in "[a-z]{0,6}", prefix in "[a-z]{0,3}") {
        let cases: Vec<(String, bool)> = vec![
            (format!("{{ tag: n, op: eq, value: \"{bound}\" }}"), tag == bound),
            (format!("{{ tag: n, op: ne, value: \"{bound}\" }}"), tag != bound),
            (format!("{{ tag: n, op: gt, value: {bound} }}"), tag > bound),
            (format!("{{ tag: n, op: gte, value: {bound} }}"), tag >= bound),
            (format!("{{ tag: n, op: lt, value: {bound} }}"), tag < bound),
            (format!("{{ tag: n, op: lte, value: {bound} }}"), tag <= bound),
            (format!("{{ tag: n, op: in, value: [\"{bound}\", \"{}\"] }}", bound + 1), tag == bound || tag == bound + 1),
            (format!("{{ tag: s, op: starts_with, value: \"{prefix}\" }}"), text.starts_with(&prefix)),
            (format!("{{ tag: s, op: contains, value: \"{prefix}\" }}"), text.contains(&prefix)),
            ("{ tag: s, op: exists }".to_string(), true),
            ("{ tag: missing, op: exists }".to_string(), false),
            (format!("{{ not: {{ tag: n, op: gt, value: {bound} }} }}"), tag <= bound),
            (format!("{{ all: [ {{ tag: n, op: gte, value: {bound} }}, {{ tag: s, op: starts_with, value: \"{prefix}\" }} ] }}"), tag >= bound && text.starts_with(&prefix)),
            (format!("{{ any: [ {{ tag: n, op: lt, value: {bound} }}, {{ tag: s, op: eq, value: \"{prefix}\" }} ] }}"), tag < bound || text == prefix),
        ];
        let tags = vec![("n".to_string(), tag.to_string()), ("s".to_string(), text.clone())];
        for (when, expected) in cases {
            let mut y = providers_and_models(2);
            y += &format!("keys:\n  - name: k\n    hash: \"{KEY}\"\n    routing:\n      active: true\n      strategy: fallback\n      routes: [ {{ model: m0 }} ]\n      rules:\n        - when: {when}\n          use: [ {{ model: m1 }} ]\n");
            let s = Snapshot::from_yaml(&y, Path::new("prop.yaml"));
            let s = match s {
                Ok(s) => s,
                // A rule that can never match is rejected by validation; it must be one we
                // expected never to match.
                Err(e) => { prop_assert!(!expected, "{when} rejected: {e}"); continue; }
            };
            let mut req = RequestAttrs::model("chat", None);
            req.tags = &tags;
            let p = plan(&s, principal(&s), &req, 0).unwrap();
            prop_assert_eq!(first_model(&p) == "m1", expected, "{} with n={} s={:?}", when, tag, text);
        }
    }

    /// Whatever the request looks like, a configured name always yields a non-empty plan no
    /// longer than the chain limit, and the strategy never loses a member twice.
    #[test]
    fn plans_are_never_empty_or_duplicated(strategy in prop::sample::select(vec!["fallback", "weighted", "lowest_cost", "least_latency"]), n in 1usize..6, prompt in ".{0,200}", max_tokens in prop::option::of(0u64..100_000), seed in any::<u64>()) {
        let mut y = providers_and_models(n);
        y += &format!("model_groups:\n  - name: g\n    strategy: {strategy}\n    models:\n");
        for i in 0..n {
            y += &format!("      - {{ model: m{i} }}\n");
        }
        y += &format!("keys:\n  - {{ name: k, hash: \"{KEY}\" }}\n");
        let s = build(&y);
        let body = serde_json::json!({"model": "g", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens});
        let req = RequestAttrs::from_body("g", &body, None, &[], &[]);
        let p = plan(&s, principal(&s), &req, seed).unwrap();
        prop_assert!(!p.attempts.is_empty() && p.attempts.len() <= MAX_CHAIN.min(n));
        let mut seen: Vec<&str> = p.attempts.iter().map(|a| a.target.provider_model.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        prop_assert_eq!(seen.len(), p.attempts.len());
    }
}

mod contradictions {
    use super::super::rules::{Attr, Condition, Op, RequestView, Value};
    use proptest::prelude::*;

    fn leaf(op: Op, value: Option<Value>) -> Condition {
        Condition::Leaf {
            attr: Attr::Tag("t".into()),
            op,
            value,
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            prop::sample::select(vec!["a", "b", "1", "10", "9"]).prop_map(|s| Value::Str(s.into())),
            (-2i32..12).prop_map(|n| Value::Num(f64::from(n))),
            prop::collection::vec(prop::sample::select(vec!["a", "b", "1"]), 1..3)
                .prop_map(|v| Value::List(v.into_iter().map(|s| Value::Str(s.into())).collect())),
        ]
    }

    fn literal() -> impl Strategy<Value = Condition> {
        let ops = vec![
            Op::Eq,
            Op::Ne,
            Op::Gt,
            Op::Gte,
            Op::Lt,
            Op::Lte,
            Op::In,
            Op::Contains,
            Op::StartsWith,
            Op::Exists,
        ];
        (prop::sample::select(ops), value(), any::<bool>()).prop_map(|(op, v, negated)| {
            let l = leaf(op, if op == Op::Exists { None } else { Some(v) });
            if negated {
                Condition::Not(Box::new(l))
            } else {
                l
            }
        })
    }

    fn holds(c: &Condition, tag: Option<&str>) -> bool {
        let tags: Vec<(String, String)> = tag
            .map(|t| vec![("t".to_string(), t.to_string())])
            .unwrap_or_default();
        c.matches(&RequestView {
            model: "m",
            user: None,
            tags: &tags,
            headers: &[],
            metadata: None,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// A condition flagged as never true matches no value of the attribute, nor its absence.
        #[test]
        fn flagged_contradictions_never_match(lits in prop::collection::vec(literal(), 1..4)) {
            let c = Condition::All(lits);
            if c.never_true() {
                let probes = ["a", "b", "1", "1.0", "10", "9", "5", "5x", "-1", "", "zz"];
                prop_assert!(!holds(&c, None), "{c} matched an absent tag");
                for p in probes {
                    prop_assert!(!holds(&c, Some(p)), "{c} matched t={p}");
                }
            }
        }
    }

    #[test]
    fn typical_contradictions_are_found() {
        let s = |t: &str| Some(Value::Str(t.into()));
        let n = |x: f64| Some(Value::Num(x));
        let never = [
            vec![leaf(Op::Eq, s("a")), leaf(Op::Eq, s("b"))],
            vec![
                leaf(Op::Eq, s("a")),
                Condition::Not(Box::new(leaf(Op::Eq, s("a")))),
            ],
            vec![leaf(Op::Eq, s("a")), leaf(Op::Ne, s("a"))],
            vec![
                leaf(
                    Op::In,
                    Some(Value::List(vec![
                        Value::Str("a".into()),
                        Value::Str("b".into()),
                    ])),
                ),
                leaf(Op::Eq, s("c")),
            ],
            vec![leaf(Op::Gt, n(7.0)), leaf(Op::Lt, n(3.0))],
            vec![leaf(Op::Gte, n(5.0)), leaf(Op::Lt, n(5.0))],
            vec![
                Condition::Not(Box::new(leaf(Op::Exists, None))),
                leaf(Op::StartsWith, s("x")),
            ],
        ];
        for cs in never {
            let c = Condition::All(cs);
            assert!(c.never_true(), "{c} should be flagged");
        }
        let satisfiable = [
            vec![leaf(Op::Eq, s("a")), leaf(Op::StartsWith, s("a"))],
            vec![leaf(Op::Gt, n(3.0)), leaf(Op::Lt, n(7.0))],
            // Numerically empty but "5x" is above "10" and below "9" as text.
            vec![leaf(Op::Gt, n(10.0)), leaf(Op::Lt, n(9.0))],
            vec![
                Condition::Not(Box::new(leaf(Op::Exists, None))),
                leaf(Op::Ne, s("a")),
            ],
        ];
        for cs in satisfiable {
            let c = Condition::All(cs);
            assert!(!c.never_true(), "{c} is satisfiable");
        }
    }
}
