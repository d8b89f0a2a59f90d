//! The key page's Routing Configuration editor as a form (seed 000, step 2): a strategy picker,
//! backends picked from the catalog with logical names, priorities and weights, one-condition
//! rules, and the Active toggle. The form is only a way to write the key's `routing:` YAML, which
//! stays the one stored and validated form; configurations the form cannot show (nested
//! `any`/`all` conditions, timeouts, …) are edited as YAML instead.

use super::pages::esc;
use serde_yaml::{Mapping, Value};
use std::collections::HashMap;
use std::fmt::Write;

pub(crate) const STRATEGIES: [(&str, &str); 3] = [
    (
        "fallback",
        "Fallback policy: try backends in priority order",
    ),
    ("traffic_split", "Traffic split: share traffic by weight"),
    ("rules", "Advanced routing rules: match request attributes"),
];

/// What a rule condition can test (see `routing::rules`).
const ATTRS: [&str; 5] = ["header", "tag", "metadata", "model", "user"];
const OPS: [&str; 10] = [
    "eq",
    "ne",
    "in",
    "contains",
    "starts_with",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
];
/// Empty rows offered beyond the configured ones.
const SPARE_BACKENDS: usize = 2;
const SPARE_RULES: usize = 1;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Backend {
    pub model: String,
    pub name: String,
    pub priority: String,
    pub weight: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Rule {
    pub attr: String,
    pub name: String,
    pub op: String,
    pub value: String,
    pub model: String,
    pub then: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RoutingForm {
    pub active: bool,
    pub strategy: String,
    pub backends: Vec<Backend>,
    pub rules: Vec<Rule>,
}

impl Default for RoutingForm {
    /// A new configuration: active, fallback, nothing picked yet.
    fn default() -> RoutingForm {
        RoutingForm {
            active: true,
            strategy: "fallback".into(),
            backends: Vec::new(),
            rules: Vec::new(),
        }
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A mapping's keys, all of which must be among `allowed`.
fn only_keys(m: &Mapping, allowed: &[&str]) -> bool {
    m.keys()
        .all(|k| k.as_str().is_some_and(|k| allowed.contains(&k)))
}

impl RoutingForm {
    /// The form for a stored configuration, or `Err(reason)` when the form cannot show it
    /// faithfully (then only the YAML editor edits it).
    pub fn from_yaml(yaml: &str) -> Result<RoutingForm, String> {
        let v: Value = serde_yaml::from_str(yaml).map_err(|e| format!("not valid YAML: {e}"))?;
        let Value::Mapping(m) = v else {
            return Err("not a mapping".into());
        };
        if !only_keys(&m, &["active", "strategy", "routes", "rules"]) {
            return Err("it has settings the form does not show".into());
        }
        let mut form = RoutingForm {
            active: m.get("active").and_then(Value::as_bool).unwrap_or(false),
            strategy: m
                .get("strategy")
                .and_then(Value::as_str)
                .unwrap_or("fallback")
                .to_string(),
            ..RoutingForm::default()
        };
        for r in m
            .get("routes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let r = r.as_mapping().ok_or("a route is not a mapping")?;
            if !only_keys(r, &["name", "model", "priority", "weight"]) {
                return Err("a route has settings the form does not show (e.g. timeout_ms)".into());
            }
            let f = |k: &str| r.get(k).and_then(scalar).unwrap_or_default();
            form.backends.push(Backend {
                model: f("model"),
                name: f("name"),
                priority: f("priority"),
                weight: f("weight"),
            });
        }
        for r in m
            .get("rules")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            form.rules.push(
                rule_from_yaml(r).ok_or(
                    "a rule has more than one condition or a backend with more than a model",
                )?,
            );
        }
        Ok(form)
    }

    /// The form as posted: `active`, `strategy`, `b<i>_{model,name,priority,weight}`,
    /// `r<i>_{attr,name,op,value,model,then}`. Rows without a model are left out.
    pub fn from_post(form: &HashMap<String, String>) -> RoutingForm {
        let get = |k: String| {
            form.get(&k)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let rows = |prefix: &str| {
            (0..)
                .take_while(|i| form.keys().any(|k| k.starts_with(&format!("{prefix}{i}_"))))
                .collect::<Vec<usize>>()
        };
        let backends = rows("b")
            .into_iter()
            .map(|i| Backend {
                model: get(format!("b{i}_model")),
                name: get(format!("b{i}_name")),
                priority: get(format!("b{i}_priority")),
                weight: get(format!("b{i}_weight")),
            })
            .filter(|b| !b.model.is_empty())
            .collect();
        let rules = rows("r")
            .into_iter()
            .map(|i| Rule {
                attr: get(format!("r{i}_attr")),
                name: get(format!("r{i}_name")),
                op: get(format!("r{i}_op")),
                value: get(format!("r{i}_value")),
                model: get(format!("r{i}_model")),
                then: get(format!("r{i}_then")),
            })
            .filter(|r| !r.model.is_empty())
            .collect();
        RoutingForm {
            active: form.get("active").is_some_and(|v| v == "on"),
            strategy: get("strategy".into()),
            backends,
            rules,
        }
    }

    /// The `routing:` YAML the form stands for (validated by the caller like `lint`).
    pub fn to_yaml(&self) -> String {
        let mut m = Mapping::new();
        m.insert("active".into(), self.active.into());
        m.insert("strategy".into(), self.strategy.clone().into());
        let routes: Vec<Value> = self
            .backends
            .iter()
            .map(|b| {
                let mut r = Mapping::new();
                if !b.name.is_empty() {
                    r.insert("name".into(), b.name.clone().into());
                }
                r.insert("model".into(), b.model.clone().into());
                for (k, v) in [("priority", &b.priority), ("weight", &b.weight)] {
                    if !v.is_empty() {
                        r.insert(k.into(), number_or_text(v));
                    }
                }
                Value::Mapping(r)
            })
            .collect();
        m.insert("routes".into(), routes.into());
        // Rules only mean something under the rules strategy; other strategies keep none.
        if self.strategy == "rules" && !self.rules.is_empty() {
            let rules: Vec<Value> = self.rules.iter().map(rule_to_yaml).collect();
            m.insert("rules".into(), rules.into());
        }
        serde_yaml::to_string(&Value::Mapping(m)).unwrap_or_default()
    }
}

/// Whole numbers as numbers (so `priority: 0` is not the text "0"); anything else as text, for
/// validation to name.
fn number_or_text(v: &str) -> Value {
    v.parse::<u64>().map_or_else(|_| v.into(), Value::from)
}

fn rule_from_yaml(r: &Value) -> Option<Rule> {
    let r = r.as_mapping()?;
    if !only_keys(r, &["when", "use"]) {
        return None;
    }
    let models: Vec<String> = r
        .get("use")?
        .as_sequence()?
        .iter()
        .map(|u| {
            let u = u.as_mapping()?;
            only_keys(u, &["model"]).then(|| u.get("model").and_then(scalar))?
        })
        .collect::<Option<_>>()?;
    if models.is_empty() || models.len() > 2 {
        return None;
    }
    let when = r.get("when")?.as_mapping()?;
    let (attr, leaf) = ATTRS.iter().find_map(|a| when.get(*a).map(|v| (*a, v)))?;
    let (name, test) = match attr {
        // `model: { op, value }` and `user: { op, value }` carry their test inside.
        "model" | "user" if only_keys(when, &[attr]) => {
            let test = leaf.as_mapping()?;
            only_keys(test, &["op", "value"]).then_some((String::new(), test))?
        }
        _ if only_keys(when, &[attr, "op", "value"]) => (scalar(leaf)?, when),
        _ => return None,
    };
    let value = match test.get("value") {
        None => String::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()?
            .join(", "),
        Some(v) => scalar(v)?,
    };
    Some(Rule {
        attr: attr.to_string(),
        name,
        op: test.get("op").and_then(scalar).unwrap_or_default(),
        value,
        model: models[0].clone(),
        then: models.get(1).cloned().unwrap_or_default(),
    })
}

fn rule_to_yaml(r: &Rule) -> Value {
    let mut test = Mapping::new();
    test.insert("op".into(), r.op.clone().into());
    match r.op.as_str() {
        "exists" => {}
        "in" => {
            let items: Vec<Value> = r
                .value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(Value::from)
                .collect();
            test.insert("value".into(), items.into());
        }
        "gt" | "gte" | "lt" | "lte" => {
            let v = r
                .value
                .parse::<f64>()
                .map_or_else(|_| r.value.clone().into(), Value::from);
            test.insert("value".into(), v);
        }
        _ => {
            test.insert("value".into(), r.value.clone().into());
        }
    }
    let when = if r.attr == "model" || r.attr == "user" {
        let mut w = Mapping::new();
        w.insert(r.attr.clone().into(), Value::Mapping(test));
        w
    } else {
        let mut w = Mapping::new();
        w.insert(r.attr.clone().into(), r.name.clone().into());
        w.extend(test);
        w
    };
    let mut uses = vec![r.model.as_str()];
    if !r.then.is_empty() {
        uses.push(&r.then);
    }
    let uses: Vec<Value> = uses
        .into_iter()
        .map(|m| {
            let mut u = Mapping::new();
            u.insert("model".into(), m.into());
            Value::Mapping(u)
        })
        .collect();
    let mut rule = Mapping::new();
    rule.insert("when".into(), Value::Mapping(when));
    rule.insert("use".into(), uses.into());
    Value::Mapping(rule)
}

/// `<option>`s for a model picker: the catalog (name, provider, status), `current` selected.
fn model_options(catalog: &[(String, String, bool)], current: &str, empty: &str) -> String {
    let mut out = format!("<option value=\"\">{}</option>", esc(empty));
    let mut found = current.is_empty();
    for (name, provider, enabled) in catalog {
        let sel = if name == current {
            found = true;
            " selected"
        } else {
            ""
        };
        let off = if *enabled { "" } else { " (disabled)" };
        let _ = write!(
            out,
            "<option value=\"{}\"{sel}>{} · {}{off}</option>",
            esc(name),
            esc(name),
            esc(provider)
        );
    }
    if !found {
        // A name the catalog no longer has stays visible, for validation to name.
        let _ = write!(
            out,
            "<option value=\"{0}\" selected>{0} (not in the catalog)</option>",
            esc(current)
        );
    }
    out
}

fn options(values: &[&str], current: &str) -> String {
    values
        .iter()
        .map(|v| {
            let sel = if *v == current { " selected" } else { "" };
            format!("<option value=\"{v}\"{sel}>{v}</option>")
        })
        .collect()
}

/// The editor's HTML (inside the caller's `<form>`): labelled fields, usable without script.
pub(crate) fn render(form: &RoutingForm, catalog: &[(String, String, bool)]) -> String {
    let mut out = String::new();
    let checked = if form.active { " checked" } else { "" };
    let _ = write!(
        out,
        "<p><label class=\"toggle\"><input type=\"checkbox\" name=\"active\" id=\"rf-active\"{checked}> \
         Active</label> <span class=\"small\">An inactive configuration is kept but not enforced: \
         requests go to the model they name.</span></p>\
         <fieldset class=\"strategy\"><legend>Routing strategy</legend>"
    );
    for (value, label) in STRATEGIES {
        let sel = if form.strategy == value {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<label><input type=\"radio\" name=\"strategy\" value=\"{value}\"{sel}> {label}</label>"
        );
    }
    out.push_str(
        "</fieldset><table class=\"backends\"><caption>Backends (from the Model Catalog; \
         priority 0 is tried first, equal priorities share traffic by weight)</caption>\
         <thead><tr><th scope=\"col\">#</th><th scope=\"col\">Model</th>\
         <th scope=\"col\">Logical name</th><th scope=\"col\">Priority</th>\
         <th scope=\"col\">Weight</th></tr></thead><tbody>",
    );
    let spare = vec![Backend::default(); SPARE_BACKENDS];
    for (i, b) in form.backends.iter().chain(&spare).enumerate() {
        let class = if i >= form.backends.len().max(1) {
            " class=\"spare\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr{class}><td>{n}</td>\
             <td><label class=\"sr\" for=\"b{i}-model\">Backend {n} model</label>\
             <select id=\"b{i}-model\" name=\"b{i}_model\">{models}</select></td>\
             <td><label class=\"sr\" for=\"b{i}-name\">Backend {n} logical name</label>\
             <input id=\"b{i}-name\" name=\"b{i}_name\" value=\"{name}\" placeholder=\"chat-model\" maxlength=\"100\"></td>\
             <td><label class=\"sr\" for=\"b{i}-priority\">Backend {n} priority</label>\
             <input id=\"b{i}-priority\" name=\"b{i}_priority\" value=\"{priority}\" inputmode=\"numeric\" placeholder=\"{i}\" size=\"4\"></td>\
             <td><label class=\"sr\" for=\"b{i}-weight\">Backend {n} weight</label>\
             <input id=\"b{i}-weight\" name=\"b{i}_weight\" value=\"{weight}\" inputmode=\"numeric\" placeholder=\"1\" size=\"4\"></td></tr>",
            n = i + 1,
            models = model_options(catalog, &b.model, "— none —"),
            name = esc(&b.name),
            priority = esc(&b.priority),
            weight = esc(&b.weight),
        );
    }
    out.push_str(
        "</tbody></table><p><button type=\"button\" class=\"link\" data-add-row=\"backends\" hidden>\
         + Add backend</button></p>\
         <table class=\"rules\" data-strategy-only=\"rules\"><caption>Rules (used with the rules \
         strategy; the first that matches picks its backend, then its fallback; requests no rule \
         matches use the backends above)</caption><thead><tr><th scope=\"col\">#</th>\
         <th scope=\"col\">Attribute</th><th scope=\"col\">Name</th><th scope=\"col\">Test</th>\
         <th scope=\"col\">Value</th><th scope=\"col\">Use model</th><th scope=\"col\">Then</th>\
         </tr></thead><tbody>",
    );
    let spare = vec![Rule::default(); SPARE_RULES];
    for (i, r) in form.rules.iter().chain(&spare).enumerate() {
        let class = if i >= form.rules.len().max(1) {
            " class=\"spare\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr{class}><td>{n}</td>\
             <td><label class=\"sr\" for=\"r{i}-attr\">Rule {n} attribute</label>\
             <select id=\"r{i}-attr\" name=\"r{i}_attr\">{attrs}</select></td>\
             <td><label class=\"sr\" for=\"r{i}-name\">Rule {n} attribute name</label>\
             <input id=\"r{i}-name\" name=\"r{i}_name\" value=\"{name}\" placeholder=\"x-priority\" size=\"12\"></td>\
             <td><label class=\"sr\" for=\"r{i}-op\">Rule {n} test</label>\
             <select id=\"r{i}-op\" name=\"r{i}_op\">{ops}</select></td>\
             <td><label class=\"sr\" for=\"r{i}-value\">Rule {n} value</label>\
             <input id=\"r{i}-value\" name=\"r{i}_value\" value=\"{value}\" placeholder=\"low, batch\" size=\"12\"></td>\
             <td><label class=\"sr\" for=\"r{i}-model\">Rule {n} model</label>\
             <select id=\"r{i}-model\" name=\"r{i}_model\">{model}</select></td>\
             <td><label class=\"sr\" for=\"r{i}-then\">Rule {n} fallback model</label>\
             <select id=\"r{i}-then\" name=\"r{i}_then\">{then}</select></td></tr>",
            n = i + 1,
            attrs = options(&ATTRS, if r.attr.is_empty() { "header" } else { &r.attr }),
            name = esc(&r.name),
            ops = options(&OPS, if r.op.is_empty() { "eq" } else { &r.op }),
            value = esc(&r.value),
            model = model_options(catalog, &r.model, "— none —"),
            then = model_options(catalog, &r.then, "— no fallback —"),
        );
    }
    out.push_str(
        "</tbody></table><p data-strategy-only=\"rules\"><button type=\"button\" class=\"link\" \
         data-add-row=\"rules\" hidden>+ Add rule</button></p>",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULED: &str = "active: true\nstrategy: rules\nroutes:\n- name: chat-model\n  model: gpt-4o\n  priority: 0\n- model: claude-sonnet-4\n  priority: 1\n  weight: 3\nrules:\n- when:\n    header: x-priority\n    op: in\n    value:\n    - low\n    - batch\n  use:\n  - model: llama3\n- when:\n    model:\n      op: starts_with\n      value: gpt\n  use:\n  - model: claude-sonnet-4\n  - model: gpt-4o\n- when:\n    tag: tier\n    op: exists\n  use:\n  - model: llama3\n";

    #[test]
    fn a_configuration_the_form_can_show_round_trips_exactly() {
        let form = RoutingForm::from_yaml(RULED).expect("representable");
        assert_eq!(form.backends.len(), 2);
        assert_eq!(form.rules[0].value, "low, batch");
        assert_eq!(
            (form.rules[1].attr.as_str(), form.rules[1].then.as_str()),
            ("model", "gpt-4o")
        );
        assert_eq!(form.to_yaml(), RULED);
    }

    #[test]
    fn what_the_form_cannot_show_is_refused_not_dropped() {
        for yaml in [
            "routes: [ { model: a, timeout_ms: 5 } ]",
            "rules: [ { when: { any: [ { tag: t, op: exists } ] }, use: [ { model: a } ] } ]",
            "rules: [ { when: { tag: t, op: exists }, use: [ { model: a, provider: p } ] } ]",
            "rules: [ { when: { tag: t, op: exists }, use: [ { model: a }, { model: b }, { model: c } ] } ]",
            "affinity: session",
            "[1, 2]",
        ] {
            assert!(RoutingForm::from_yaml(yaml).is_err(), "{yaml}");
        }
    }

    #[test]
    fn a_post_becomes_yaml_leaving_out_empty_rows_and_off_strategy_rules() {
        let post: HashMap<String, String> = [
            ("active", "on"),
            ("strategy", "traffic_split"),
            ("b0_model", "gpt-4o"),
            ("b0_name", "chat"),
            ("b0_weight", "90"),
            ("b1_model", ""),
            ("b1_weight", "7"),
            ("b2_model", "llama3"),
            ("b2_weight", "10"),
            ("r0_model", "llama3"),
            ("r0_attr", "tag"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let form = RoutingForm::from_post(&post);
        assert_eq!(
            form.backends.len(),
            2,
            "the row without a model is left out"
        );
        assert_eq!(
            form.to_yaml(),
            "active: true\nstrategy: traffic_split\nroutes:\n- name: chat\n  model: gpt-4o\n  weight: 90\n- model: llama3\n  weight: 10\n"
        );
        let off = RoutingForm::from_post(&HashMap::new());
        assert!(!off.active && off.backends.is_empty());
    }

    #[test]
    fn the_editor_escapes_and_keeps_unknown_models_visible() {
        let form = RoutingForm {
            backends: vec![Backend {
                model: "gone\"<x>".into(),
                ..Backend::default()
            }],
            ..RoutingForm::default()
        };
        let html = render(&form, &[("gpt-4o".into(), "openai".into(), true)]);
        assert!(html.contains("gone&quot;&lt;x&gt; (not in the catalog)"));
        assert!(!html.contains("<x>"));
        assert!(html.contains("<label class=\"sr\" for=\"b0-model\">"));
    }
}
