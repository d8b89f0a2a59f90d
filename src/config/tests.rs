//! Validation: every SPEC lint error names its path and fix; good configs build.

use super::*;

fn errors(yaml: &str) -> Vec<ConfigError> {
    Snapshot::from_yaml(yaml, Path::new("t.yaml"))
        .expect_err("should not validate")
        .errors
}

const P: &str = "providers:\n  - { id: oa, kind: openai, base_url: \"https://api.openai.com/v1\", secret_key_ref: { env: X } }\n";

#[test]
fn the_four_spec_errors() {
    let e = errors(&format!(
        "{P}model_groups:\n  - {{ name: g, models: [ {{ model: m, provider: nope }} ] }}\n"
    ));
    assert_eq!(e[0].path, "model_groups[0].models[0].provider");
    assert!(
        e[0].message
            .contains("unknown provider 'nope' in model group")
    );

    let e = errors(&format!(
        "{P}models: [ {{ name: a, provider: oa }}, {{ name: b, provider: oa }} ]\nmodel_groups:\n  - {{ name: g, strategy: weighted, models: [ {{ model: a, weight: 50 }}, {{ model: b, weight: 40 }} ] }}\n"
    ));
    assert!(e[0].message.starts_with("weights must sum to 100"), "{e:?}");

    let e = errors(&format!(
        "{P}models: [ {{ name: a, provider: oa }} ]\nmodel_groups:\n  - {{ name: g, models: [ {{ model: a }} ] }}\n  - {{ name: g, models: [ {{ model: a }} ] }}\n"
    ));
    assert_eq!(e[0].path, "model_groups[1].name");
    assert!(e[0].message.contains("duplicate model group name"));

    let e = errors(
        "providers:\n  - { id: an, kind: anthropic, base_url: \"https://api.anthropic.com/v1\" }\n",
    );
    assert_eq!(e[0].path, "providers[0].secret_key_ref");
    assert!(e[0].message.contains("missing secret_key_ref") && e[0].fix.contains("env"));
}

#[test]
fn all_errors_are_reported_together() {
    let e = errors(
        "providers:\n  - { id: a, kind: martian, base_url: x }\nmodels: [ { name: m, provider: zz } ]\nkeys: [ { name: k, hash: md5 } ]\n",
    );
    let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["providers[0].kind", "models[0].provider", "keys[0].hash"]
    );
}

#[test]
fn endpoints_parse() {
    let e = Endpoint::parse("https://api.openai.com/v1/").unwrap();
    assert_eq!(
        (e.tls, e.host.as_str(), e.port, e.prefix.as_str()),
        (true, "api.openai.com", 443, "/v1")
    );
    assert_eq!(e.authority(), "api.openai.com");
    let e = Endpoint::parse("http://127.0.0.1:11434/v1").unwrap();
    assert_eq!((e.port, e.authority().as_str()), (11434, "127.0.0.1:11434"));
    assert!(Endpoint::parse("ftp://x").is_err());
    assert!(Endpoint::parse("http://:80").is_err());
}

#[test]
fn pricing_is_per_million_tokens() {
    let p = Pricing {
        input_per_mtok: 2.5,
        output_per_mtok: 10.0,
        per_image: None,
    };
    assert!((p.cost(11, 7) - 0.0000975).abs() < 1e-12);
    assert_eq!(p.cost(0, 0), 0.0);
}

#[test]
fn image_pricing_takes_the_most_specific_entry() {
    use crate::translate::images::ImageOrder;
    let table = [
        ("1024x1024/hd", 0.08),
        ("1024x1024", 0.04),
        ("default", 0.5),
    ];
    let p = Pricing {
        per_image: Some(std::sync::Arc::new(
            table.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        )),
        ..Pricing::default()
    };
    let order = |n, size: &str, quality: &str| ImageOrder {
        n,
        size: size.into(),
        quality: quality.into(),
    };
    assert!((p.image_cost(&order(2, "1024x1024", "hd")) - 0.16).abs() < 1e-12);
    assert!((p.image_cost(&order(1, "1024x1024", "standard")) - 0.04).abs() < 1e-12);
    assert!((p.image_cost(&order(3, "512x512", "standard")) - 1.5).abs() < 1e-12);
    assert_eq!(
        Pricing::default().image_cost(&order(1, "1024x1024", "hd")),
        0.0
    );
}

#[test]
fn secrets_do_not_debug_print() {
    assert_eq!(format!("{:?}", Secret("sk-live".into())), "[redacted]");
}

#[test]
fn rule_errors_name_their_path() {
    let yaml = format!(
        "{P}models: [ {{ name: a, provider: oa }} ]\nkeys:\n  - name: k\n    hash: \"sha256:{}\"\n    routing:\n      active: true\n      strategy: rules\n      routes: [ {{ model: a }} ]\n      rules:\n        - {{ when: {{ tag: tier, op: equals, value: x }}, use: [ {{ model: a }} ] }}\n        - {{ when: {{ tag: tier, op: eq, value: x }}, use: [ {{ model: ghost }} ] }}\n",
        "0".repeat(64)
    );
    let e = errors(&yaml);
    assert_eq!(e[0].path, "keys[0].routing.rules[0].when.op");
    assert!(e[0].fix.contains("`eq`"), "{e:?}");
    let e = errors(&yaml.replace("op: equals", "op: eq"));
    assert_eq!(e[0].path, "keys[0].routing.rules[1].use[0].model");
    assert!(e[0].message.contains("unknown model 'ghost'"));
}

#[test]
fn lint_warns_about_disabled_models_and_unreachable_rules() {
    let yaml = format!(
        "{P}models: [ {{ name: a, provider: oa }}, {{ name: off, provider: oa, status: disabled }} ]\nmodel_groups:\n  - {{ name: g, models: [ {{ model: a }}, {{ model: off }} ] }}\nkeys:\n  - name: k\n    hash: \"sha256:{}\"\n    routing:\n      active: true\n      routes: [ {{ model: a }} ]\n      rules:\n        - {{ when: {{ model: {{ op: exists }} }}, use: [ {{ model: a }} ] }}\n        - {{ when: {{ tag: t, op: eq, value: x }}, use: [ {{ model: a }} ] }}\n",
        "0".repeat(64)
    );
    let snap = Snapshot::from_yaml(&yaml, Path::new("t.yaml")).unwrap();
    assert!(
        snap.warnings
            .iter()
            .any(|w| w.starts_with("model_groups[0].models[1]: model 'off' is disabled")),
        "{:?}",
        snap.warnings
    );
    assert!(
        snap.warnings
            .iter()
            .any(|w| w.starts_with("keys[0].routing.rules[1]: can never match")),
        "{:?}",
        snap.warnings
    );
}

#[test]
fn lint_warns_about_contradictory_rules() {
    let yaml = format!(
        "{P}models: [ {{ name: a, provider: oa }} ]\nkeys:\n  - name: k\n    hash: \"sha256:{}\"\n    routing:\n      active: true\n      routes: [ {{ model: a }} ]\n      rules:\n        - {{ when: {{ all: [ {{ tag: tier, op: eq, value: gold }}, {{ tag: tier, op: eq, value: bulk }} ] }}, use: [ {{ model: a }} ] }}\n        - {{ when: {{ all: [ {{ header: x-n, op: gt, value: 7 }}, {{ header: x-n, op: lt, value: 3 }} ] }}, use: [ {{ model: a }} ] }}\n        - {{ when: {{ tag: tier, op: eq, value: gold }}, use: [ {{ model: a }} ] }}\n",
        "0".repeat(64)
    );
    let snap = Snapshot::from_yaml(&yaml, Path::new("t.yaml")).unwrap();
    let flagged: Vec<&String> = snap
        .warnings
        .iter()
        .filter(|w| w.contains("contradict each other"))
        .collect();
    assert_eq!(flagged.len(), 2, "{:?}", snap.warnings);
    assert!(flagged[0].starts_with("keys[0].routing.rules[0]: can never match"));
    assert!(flagged[1].starts_with("keys[0].routing.rules[1]: can never match"));
}

#[test]
fn body_logging_is_off_by_default_and_its_cap_is_checked() {
    let snap = Snapshot::from_yaml(P, Path::new("t.yaml")).expect("valid");
    assert_eq!(snap.records.body_cap(), None);
    let on = format!("{P}records: {{ log_bodies: true }}\n");
    let snap = Snapshot::from_yaml(&on, Path::new("t.yaml")).expect("valid");
    assert_eq!(snap.records.body_cap(), Some(DEFAULT_LOG_BODY_MAX));
    let e = errors(&format!(
        "{P}records: {{ log_bodies: true, log_body_max_bytes: 0 }}\n"
    ));
    assert_eq!(e[0].path, "records.log_body_max_bytes");
    assert!(e[0].fix.contains("log_bodies: false"), "{e:?}");
}

#[test]
fn dynamic_key_routing_is_validated_once_per_snapshot_and_yaml() {
    let snap = Snapshot::from_yaml(
        &format!("{P}models: [ {{ name: a, provider: oa }} ]\n"),
        Path::new("t.yaml"),
    )
    .expect("valid");
    let good = "active: true\nroutes: [ { model: a } ]\n";
    let first = snap
        .key_routing_from_yaml("k", good)
        .expect("valid routing");
    let again = snap.key_routing_from_yaml("k", good).expect("cached");
    assert_eq!(again.group.members.len(), first.group.members.len());
    assert_eq!(snap.routing_cache.0.lock().unwrap().len(), 1);
    // Errors are cached too, and a changed YAML is validated afresh.
    let bad = "active: true\nroutes: [ { model: ghost } ]\n";
    let e = snap
        .key_routing_from_yaml("k", bad)
        .expect_err("unknown model");
    assert_eq!(snap.key_routing_from_yaml("k", bad).expect_err("cached"), e);
    assert_eq!(snap.routing_cache.0.lock().unwrap().len(), 2);
}
