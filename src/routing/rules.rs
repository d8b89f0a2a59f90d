//! Per-key routing rules for Switchyard.
//!
//! A key's `routing.rules` is an ordered list of `{ when, use }` entries:
//! the **first** rule whose `when` condition matches the request decides the
//! ordered fallback list of models (`use`); when nothing matches, the caller
//! falls back to the configuration's strategy.
//!
//! The module has three parts:
//!
//! * **Building** ([`build`]): turns the raw YAML values written under
//!   `rules:` into typed [`Rule`]s. Validation is exhaustive: every problem
//!   is reported (not just the first) with its exact config path, what is
//!   wrong, and how to fix it.
//! * **Matching** ([`first_match`], [`Condition::matches`]): evaluates
//!   conditions against a borrowed [`RequestView`] built once per request.
//!   Pure, allocation-light, and total: no input can make it panic.
//! * **Describing** ([`describe`]): a one-line rendering of a condition for
//!   the decision trace.
//!
//! Comparison semantics:
//!
//! * `gt`/`gte`/`lt`/`lte` compare numerically when both sides parse as
//!   finite `f64`, otherwise lexicographically as strings.
//! * `eq`/`ne`/`in` compare numerically only when the rule's value was
//!   written as a YAML number (`value: 1`) and the attribute parses as one,
//!   so `1` matches metadata `1.0`; a quoted value (`value: "1.10"`) is always
//!   an exact string match, so version-like strings are not mangled.
//! * `contains`/`starts_with` are case-sensitive substring/prefix tests.
//! * A missing attribute fails every operator except `ne`, which is true.
//!   Metadata values that are `null`, arrays or objects count as missing:
//!   only strings, numbers and booleans are comparable.
//! * `tag` names match exactly; `header` names match case-insensitively.
//!   Duplicate tags or headers: the first occurrence wins.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde_yaml::Value as Yaml;

/// Deepest condition nesting accepted by [`build`]; a bare leaf is depth 1.
/// Bounding it keeps recursion in matching/describing stack-safe.
pub const MAX_DEPTH: usize = 32;

/// The request attributes rules can test, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The model the client asked for.
    pub model: &'a str,
    /// Body `user`, if any.
    pub user: Option<&'a str>,
    /// Parsed `x-switchyard-tags` (see [`parse_tags`]).
    pub tags: &'a [(String, String)],
    /// Request headers; names are expected lowercased.
    pub headers: &'a [(String, String)],
    /// Body `metadata` object, if any.
    pub metadata: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// Parses an `x-switchyard-tags` header (`"k=v, k2=v2"`) into pairs.
///
/// Whitespace around keys and values is trimmed; items without `=` or with an
/// empty key are skipped rather than rejected, because a client typo in one tag
/// should not drop the request's other tags. An empty value (`k=`) is kept.
pub fn parse_tags(header: &str) -> Vec<(String, String)> {
    header
        .split(',')
        .filter_map(|item| {
            let (k, v) = item.split_once('=')?;
            let k = k.trim();
            if k.is_empty() {
                return None;
            }
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// One routing rule: if `when` matches, try `use_models` in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub when: Condition,
    pub use_models: Vec<UseModel>,
}

/// One entry of a rule's ordered fallback list.
#[derive(Debug, Clone, PartialEq)]
pub struct UseModel {
    pub model: String,
    pub timeout_ms: Option<u64>,
}

/// A boolean condition over request attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    /// `value` is `None` only for [`Op::Exists`] in built rules.
    Leaf {
        attr: Attr,
        op: Op,
        value: Option<Value>,
    },
}

/// The attribute a leaf tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    /// A key from the `x-switchyard-tags` header.
    Tag(String),
    /// A request header; the name is stored lowercased.
    Header(String),
    /// A key of the body's `metadata` object.
    Metadata(String),
    /// The requested model.
    Model,
    /// Body `user`.
    User,
}

/// Leaf operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Contains,
    StartsWith,
    Exists,
}

/// A rule-side comparison value. `List` holds scalars only (for `in`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
    List(Vec<Value>),
}

/// A validation problem at `path`, with a suggested `fix`.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{path}: {message}")]
pub struct RuleError {
    pub path: String,
    pub message: String,
    pub fix: String,
}

// ---------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------

/// Index of the first rule whose condition matches `req`, or `None`.
pub fn first_match(rules: &[Rule], req: &RequestView<'_>) -> Option<usize> {
    rules.iter().position(|r| r.when.matches(req))
}

impl Condition {
    /// True for every request (e.g. `model exists`): rules after one such rule can never match.
    pub fn always_true(&self) -> bool {
        match self {
            Condition::All(cs) => cs.iter().all(Condition::always_true),
            Condition::Any(cs) => cs.iter().any(Condition::always_true),
            Condition::Not(_) => false,
            Condition::Leaf { attr, op, .. } => *attr == Attr::Model && *op == Op::Exists,
        }
    }

    /// True when no request can satisfy this condition (e.g. `all: [tier eq a, tier eq b]`,
    /// `n gt 10` with `n lt 5`, `not exists` beside a test of the same attribute). Sound, not
    /// complete: a `true` is a proof, a `false` only means no contradiction was found.
    pub fn never_true(&self) -> bool {
        match self {
            Condition::All(cs) => {
                cs.iter().any(Condition::never_true) || conjunction_contradicts(cs)
            }
            Condition::Any(cs) => cs.iter().all(Condition::never_true),
            Condition::Not(c) => c.always_true(),
            Condition::Leaf { op, value, .. } => {
                *op == Op::In && matches!(value, Some(Value::List(items)) if items.is_empty())
            }
        }
    }

    /// Whether this condition holds for `req`.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        match self {
            Condition::All(cs) => cs.iter().all(|c| c.matches(req)),
            Condition::Any(cs) => cs.iter().any(|c| c.matches(req)),
            Condition::Not(c) => !c.matches(req),
            Condition::Leaf { attr, op, value } => {
                eval_leaf(attr.resolve(req), *op, value.as_ref())
            }
        }
    }
}

impl Attr {
    /// The attribute's value as text, or `None` when absent.
    fn resolve<'r>(&self, req: &RequestView<'r>) -> Option<Cow<'r, str>> {
        let tags = req.tags;
        let headers = req.headers;
        match self {
            Attr::Tag(name) => tags
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| Cow::Borrowed(v.as_str())),
            // Names are lowercased on both sides in practice; comparing
            // case-insensitively anyway keeps a sloppy caller correct.
            Attr::Header(name) => headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| Cow::Borrowed(v.as_str())),
            Attr::Metadata(name) => match req.metadata?.get(name)? {
                serde_json::Value::String(s) => Some(Cow::Borrowed(s.as_str())),
                serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
                serde_json::Value::Bool(b) => {
                    Some(Cow::Borrowed(if *b { "true" } else { "false" }))
                }
                _ => None,
            },
            Attr::Model => Some(Cow::Borrowed(req.model)),
            Attr::User => req.user.map(Cow::Borrowed),
        }
    }
}

/// A leaf of a conjunction, possibly negated: `(attr, op, value, negated)`.
type Literal<'c> = (&'c Attr, Op, Option<&'c Value>, bool);

fn literals(cs: &[Condition]) -> Vec<Literal<'_>> {
    cs.iter()
        .filter_map(|c| match c {
            Condition::Leaf { attr, op, value } => Some((attr, *op, value.as_ref(), false)),
            Condition::Not(inner) => match inner.as_ref() {
                Condition::Leaf { attr, op, value } => Some((attr, *op, value.as_ref(), true)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn literal_holds(actual: Option<&str>, (_, op, value, negated): &Literal<'_>) -> bool {
    eval_leaf(actual.map(Cow::Borrowed), *op, *value) != *negated
}

/// Whether the leaves of one `all` list contradict each other on some attribute.
fn conjunction_contradicts(cs: &[Condition]) -> bool {
    let lits = literals(cs);
    lits.iter().any(|lit @ (attr, ..)| {
        let same: Vec<&Literal<'_>> = lits.iter().filter(|l| l.0 == *attr).collect();
        // Every value this literal admits, when it admits only listed texts (`eq "a"`,
        // `in [a, b]`; numbers are left out since "1" and "1.0" both equal 1).
        let candidates: Option<Vec<Cow<'_, str>>> = match lit {
            (_, Op::Eq, Some(v @ (Value::Str(_) | Value::Bool(_))), false) => {
                v.scalar_text().map(|t| vec![t])
            }
            (_, Op::In, Some(Value::List(items)), false)
                if items
                    .iter()
                    .all(|v| matches!(v, Value::Str(_) | Value::Bool(_))) =>
            {
                items.iter().map(Value::scalar_text).collect()
            }
            _ => None,
        };
        if let Some(candidates) = candidates {
            // Also covers a missing attribute: none of the candidates is "absent".
            return candidates
                .iter()
                .all(|c| same.iter().any(|l| !literal_holds(Some(c), l)));
        }
        // `not exists` beside anything that needs the attribute present.
        if matches!(lit, (_, Op::Exists, _, true)) {
            return same.iter().any(|l| !literal_holds(None, l));
        }
        // A lower bound above an upper bound, both numerically and as text (which of the two
        // orders applies depends on whether the actual value is a number).
        let lower = matches!(lit, (_, Op::Gt | Op::Gte, Some(Value::Num(_)), false));
        lower
            && same.iter().any(|up| {
                if !matches!(up, (_, Op::Lt | Op::Lte, Some(Value::Num(_)), false)) {
                    return false;
                }
                let (Some(Value::Num(lo)), Some(Value::Num(hi))) = (lit.2, up.2) else {
                    return false;
                };
                let strict = lit.1 == Op::Gt || up.1 == Op::Lt;
                let empty_num = lo > hi || (lo == hi && strict);
                let (lo_t, hi_t) = (lo.to_string(), hi.to_string());
                let empty_text = lo_t > hi_t || (lo_t == hi_t && strict);
                empty_num && empty_text
            })
    })
}

fn eval_leaf(actual: Option<Cow<'_, str>>, op: Op, value: Option<&Value>) -> bool {
    let Some(actual) = actual else {
        // Spec: `ne` on a missing attribute is true, everything else false.
        return op == Op::Ne;
    };
    let actual = actual.as_ref();
    if op == Op::Exists {
        return true;
    }
    // Hand-built conditions may lack a value; treat that as "never equal".
    let Some(value) = value else {
        return op == Op::Ne;
    };
    match op {
        Op::Eq => value_eq(actual, value),
        Op::Ne => !value_eq(actual, value),
        Op::In => match value {
            Value::List(items) => items.iter().any(|v| value_eq(actual, v)),
            scalar => value_eq(actual, scalar),
        },
        Op::Gt => ordering(actual, value) == Some(Ordering::Greater),
        Op::Gte => matches!(
            ordering(actual, value),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Op::Lt => ordering(actual, value) == Some(Ordering::Less),
        Op::Lte => matches!(
            ordering(actual, value),
            Some(Ordering::Less | Ordering::Equal)
        ),
        Op::Contains => value
            .scalar_text()
            .is_some_and(|t| actual.contains(t.as_ref())),
        Op::StartsWith => value
            .scalar_text()
            .is_some_and(|t| actual.starts_with(t.as_ref())),
        Op::Exists => true,
    }
}

/// `eq` semantics: numeric only when the rule value is a YAML number.
fn value_eq(actual: &str, value: &Value) -> bool {
    match value {
        Value::Num(n) => match parse_num(actual) {
            Some(a) => a == *n,
            None => value.scalar_text().is_some_and(|t| actual == t),
        },
        Value::List(_) => false,
        _ => value.scalar_text().is_some_and(|t| actual == t),
    }
}

/// Ordering for `gt`/`gte`/`lt`/`lte`: numeric if both sides are numbers.
fn ordering(actual: &str, value: &Value) -> Option<Ordering> {
    let expected = value.scalar_text()?;
    let expected_num = match value {
        Value::Num(n) if n.is_finite() => Some(*n),
        _ => parse_num(&expected),
    };
    match (parse_num(actual), expected_num) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => Some(actual.cmp(expected.as_ref())),
    }
}

/// Finite numbers only: `f64::from_str` accepts "nan"/"inf", which would
/// make a tag literally named "nan" unequal to itself.
fn parse_num(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

impl Value {
    /// Text form of a scalar; `None` for lists.
    fn scalar_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Str(s) => Some(Cow::Borrowed(s.as_str())),
            Value::Num(n) => Some(Cow::Owned(n.to_string())),
            Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Value::List(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Describing
// ---------------------------------------------------------------------------

/// One-line description of a condition for the decision trace, e.g.
/// `any(tag tier eq "bulk", header x-priority in ["low","batch"])`.
pub fn describe(c: &Condition) -> String {
    c.to_string()
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::All(cs) => write_call(f, "all", cs),
            Condition::Any(cs) => write_call(f, "any", cs),
            Condition::Not(c) => write!(f, "not({c})"),
            Condition::Leaf { attr, op, value } => {
                write!(f, "{attr} {op}")?;
                match value {
                    Some(v) => write!(f, " {v}"),
                    None => Ok(()),
                }
            }
        }
    }
}

fn write_call(f: &mut fmt::Formatter<'_>, name: &str, cs: &[Condition]) -> fmt::Result {
    write!(f, "{name}(")?;
    for (i, c) in cs.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str(")")
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Tag(n) => write!(f, "tag {n}"),
            Attr::Header(n) => write!(f, "header {n}"),
            Attr::Metadata(n) => write!(f, "metadata {n}"),
            Attr::Model => f.write_str("model"),
            Attr::User => f.write_str("user"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Debug quoting escapes quotes/newlines so the trace stays one line.
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Num(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

const OPS: [(&str, Op); 10] = [
    ("eq", Op::Eq),
    ("ne", Op::Ne),
    ("gt", Op::Gt),
    ("gte", Op::Gte),
    ("lt", Op::Lt),
    ("lte", Op::Lte),
    ("in", Op::In),
    ("contains", Op::Contains),
    ("starts_with", Op::StartsWith),
    ("exists", Op::Exists),
];

const OP_LIST: &str = "eq, ne, gt, gte, lt, lte, in, contains, starts_with, exists";

impl Op {
    /// The operator's YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::In => "in",
            Op::Contains => "contains",
            Op::StartsWith => "starts_with",
            Op::Exists => "exists",
        }
    }

    /// Exact (case-sensitive) parse of the YAML spelling.
    pub fn parse(s: &str) -> Option<Op> {
        OPS.iter().find(|(name, _)| *name == s).map(|(_, op)| *op)
    }
}

/// Fix text for an unknown operator, with a "did you mean" when a common
/// spelling from other rule languages is recognised.
fn unknown_op_fix(s: &str) -> String {
    let norm: String = s
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    let negated = |inner: &str| {
        format!("there is no negated operator; wrap the leaf in `not: {{ ..., op: {inner} }}`")
    };
    let suggestion = match norm.as_str() {
        "notin" | "nin" => return negated("in"),
        "notcontains" => return negated("contains"),
        "notexists" | "missing" | "absent" => return negated("exists"),
        "==" | "=" | "equals" | "equal" | "is" => Some(Op::Eq),
        "!=" | "<>" | "noteq" | "notequal" | "neq" => Some(Op::Ne),
        ">" | "greaterthan" => Some(Op::Gt),
        ">=" | "ge" => Some(Op::Gte),
        "<" | "lessthan" => Some(Op::Lt),
        "<=" | "le" => Some(Op::Lte),
        "oneof" | "isin" => Some(Op::In),
        "has" | "includes" | "substring" => Some(Op::Contains),
        "prefix" | "beginswith" => Some(Op::StartsWith),
        "present" | "isset" | "exist" => Some(Op::Exists),
        other => OPS
            .iter()
            .find(|(name, _)| name.replace('_', "") == other)
            .map(|(_, op)| *op),
    };
    match suggestion {
        Some(op) => format!("did you mean `{op}`? (operators: {OP_LIST})"),
        None => format!("use one of: {OP_LIST}"),
    }
}

// ---------------------------------------------------------------------------
// Building / validation
// ---------------------------------------------------------------------------

/// Validates and builds rules from the YAML values written under `rules:`.
///
/// `path` prefixes every error path, e.g. `"keys[0].routing.rules"` yields
/// errors like `keys[0].routing.rules[1].when.any[0].op`. All errors are
/// returned, not just the first.
pub fn build(path: &str, raw: &[Yaml]) -> Result<Vec<Rule>, Vec<RuleError>> {
    let base = if path.is_empty() { "rules" } else { path };
    let mut b = Builder { errors: Vec::new() };
    let mut rules = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        if let Some(rule) = b.rule(&format!("{base}[{i}]"), r) {
            rules.push(rule);
        }
    }
    if b.errors.is_empty() {
        Ok(rules)
    } else {
        Err(b.errors)
    }
}

const ATTR_KEYS: [&str; 5] = ["tag", "header", "metadata", "model", "user"];
const COMBINATORS: [&str; 3] = ["all", "any", "not"];
const LEAF_EXAMPLE: &str = "write a leaf like `{ tag: tier, op: eq, value: bulk }` or `{ model: { op: starts_with, value: \"gpt-4\" } }`";

struct Builder {
    errors: Vec<RuleError>,
}

/// Human name of a YAML node's kind, for messages.
fn kind(v: &Yaml) -> &'static str {
    match v {
        Yaml::Null => "null",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}

/// A mapping key as it should appear in a path.
fn key_text(k: &Yaml) -> String {
    match k {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Null => "~".to_string(),
        other => format!("<{}>", kind(other)),
    }
}

impl Builder {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) {
        self.errors.push(RuleError {
            path: path.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }

    fn rule(&mut self, path: &str, raw: &Yaml) -> Option<Rule> {
        let Yaml::Mapping(map) = raw else {
            self.err(
                path,
                format!(
                    "a rule must be a mapping with `when` and `use`, found {}",
                    kind(raw)
                ),
                "write `- when: { ... }` followed by `use: [ { model: NAME } ]`",
            );
            return None;
        };
        let mut when = None;
        let mut use_ = None;
        for (k, v) in map {
            match k.as_str() {
                Some("when") => when = Some(v),
                Some("use") => use_ = Some(v),
                _ => self.err(
                    format!("{path}.{}", key_text(k)),
                    format!("unknown rule key `{}`", key_text(k)),
                    "a rule has only `when` and `use`; remove or rename this key",
                ),
            }
        }
        // Validate both halves even if one is missing, to report everything.
        let cond = match when {
            Some(w) => self.condition(&format!("{path}.when"), w, 1),
            None => {
                self.err(
                    format!("{path}.when"),
                    "rule has no `when`",
                    "add `when: { ... }`; for a catch-all use `when: { model: { op: exists } }`",
                );
                None
            }
        };
        let models = match use_ {
            Some(u) => self.use_list(&format!("{path}.use"), u),
            None => {
                self.err(
                    format!("{path}.use"),
                    "rule has no `use`",
                    "add `use: [ { model: NAME } ]`",
                );
                None
            }
        };
        Some(Rule {
            when: cond?,
            use_models: models?,
        })
    }

    fn use_list(&mut self, path: &str, raw: &Yaml) -> Option<Vec<UseModel>> {
        let Yaml::Sequence(items) = raw else {
            let fix = match raw {
                Yaml::String(s) => format!("write `use: [ {{ model: {s:?} }} ]`"),
                _ => "write `use: [ { model: NAME } ]`".to_string(),
            };
            self.err(
                path,
                format!("`use` must be a list, found {}", kind(raw)),
                fix,
            );
            return None;
        };
        if items.is_empty() {
            self.err(
                path,
                "`use` is empty",
                "list at least one model, e.g. `use: [ { model: NAME } ]`",
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.use_model(&format!("{path}[{i}]"), item) {
                Some(m) => out.push(m),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn use_model(&mut self, path: &str, raw: &Yaml) -> Option<UseModel> {
        let Yaml::Mapping(map) = raw else {
            let fix = match raw {
                Yaml::String(s) => format!("write `{{ model: {s:?} }}`"),
                _ => "write `{ model: NAME }` or `{ model: NAME, timeout_ms: 5000 }`".to_string(),
            };
            self.err(
                path,
                format!("a `use` entry must be a mapping, found {}", kind(raw)),
                fix,
            );
            return None;
        };
        let mut model = None;
        let mut timeout_ms = None;
        let mut ok = true;
        for (k, v) in map {
            match k.as_str() {
                Some("model") => match v {
                    Yaml::String(s) if !s.trim().is_empty() => model = Some(s.trim().to_string()),
                    Yaml::String(_) => {
                        self.err(
                            format!("{path}.model"),
                            "`model` is empty",
                            "name a model, e.g. `model: gpt-4o`",
                        );
                        ok = false;
                    }
                    other => {
                        self.err(
                            format!("{path}.model"),
                            format!("`model` must be a string, found {}", kind(other)),
                            "name a model, e.g. `model: gpt-4o` (quote names YAML would read as numbers)",
                        );
                        ok = false;
                    }
                },
                Some("timeout_ms") => match v.as_u64() {
                    Some(t) if t > 0 => timeout_ms = Some(t),
                    _ => {
                        self.err(
                            format!("{path}.timeout_ms"),
                            format!(
                                "`timeout_ms` must be a positive whole number of milliseconds, found {}",
                                scalar_preview(v)
                            ),
                            "write e.g. `timeout_ms: 5000`, or remove it to use the default",
                        );
                        ok = false;
                    }
                },
                _ => {
                    self.err(
                        format!("{path}.{}", key_text(k)),
                        format!("unknown key `{}` in `use` entry", key_text(k)),
                        "a `use` entry has only `model` and `timeout_ms`",
                    );
                    ok = false;
                }
            }
        }
        if model.is_none() && !map.contains_key("model") {
            self.err(
                format!("{path}.model"),
                "`use` entry has no `model`",
                "add `model: NAME`",
            );
        }
        let model = model?;
        ok.then_some(UseModel { model, timeout_ms })
    }

    fn condition(&mut self, path: &str, raw: &Yaml, depth: usize) -> Option<Condition> {
        if depth > MAX_DEPTH {
            self.err(
                path,
                format!("conditions are nested deeper than {MAX_DEPTH} levels"),
                "flatten the condition: merge nested `all`s/`any`s, or split it into several rules",
            );
            return None;
        }
        let Yaml::Mapping(map) = raw else {
            let fix = if matches!(raw, Yaml::Sequence(_)) {
                "wrap the list in `all: [ ... ]` or `any: [ ... ]`"
            } else {
                LEAF_EXAMPLE
            };
            self.err(
                path,
                format!("a condition must be a mapping, found {}", kind(raw)),
                fix,
            );
            return None;
        };
        if map.is_empty() {
            self.err(path, "empty condition", LEAF_EXAMPLE);
            return None;
        }

        // Sort the keys into roles first, so shape errors can name them all.
        let mut combinators: Vec<(&str, &Yaml)> = Vec::new();
        let mut attrs: Vec<(&str, &Yaml)> = Vec::new();
        let mut op = None;
        let mut value = None;
        let mut unknown = false;
        for (k, v) in map {
            match k.as_str() {
                Some(s) if COMBINATORS.contains(&s) => combinators.push((s, v)),
                Some(s) if ATTR_KEYS.contains(&s) => attrs.push((s, v)),
                Some("op") => op = Some(v),
                Some("value") => value = Some(v),
                _ => {
                    unknown = true;
                    self.err(
                        format!("{path}.{}", key_text(k)),
                        format!("unknown condition key `{}`", key_text(k)),
                        "use `all`, `any`, `not`, or a leaf with one of `tag`, `header`, `metadata`, `model`, `user` plus `op`/`value`",
                    );
                }
            }
        }

        if let Some(&(comb, inner)) = combinators.first() {
            let mut others: Vec<&str> = combinators.iter().skip(1).map(|(k, _)| *k).collect();
            others.extend(attrs.iter().map(|(k, _)| *k));
            if op.is_some() {
                others.push("op");
            }
            if value.is_some() {
                others.push("value");
            }
            if !others.is_empty() {
                self.err(
                    path,
                    format!(
                        "`{comb}` must be the only key in its condition, found also {}",
                        backticked(&others)
                    ),
                    "put each condition in its own mapping inside an `all: [ ... ]` or `any: [ ... ]` list",
                );
                return None;
            }
            if unknown {
                return None;
            }
            return self.combinator(path, comb, inner, depth);
        }

        let (attr_key, attr_val) = match attrs.as_slice() {
            [] => {
                if !unknown {
                    self.err(
                        path,
                        "condition names no attribute",
                        "add one of `tag: NAME`, `header: NAME`, `metadata: NAME`, `model: { op, value }`, `user: { op, value }`",
                    );
                }
                return None;
            }
            [one] => *one,
            many => {
                let names: Vec<&str> = many.iter().map(|(k, _)| *k).collect();
                self.err(
                    path,
                    format!("leaf tests more than one attribute: {}", backticked(&names)),
                    "a leaf tests one attribute; combine several leaves with `all: [ ... ]` or `any: [ ... ]`",
                );
                return None;
            }
        };

        match attr_key {
            "model" | "user" => {
                let attr = if attr_key == "model" {
                    Attr::Model
                } else {
                    Attr::User
                };
                let leaf_path = format!("{path}.{attr_key}");
                for (stray, present) in [("op", op.is_some()), ("value", value.is_some())] {
                    if present {
                        self.err(
                            format!("{path}.{stray}"),
                            format!("`{stray}` belongs inside `{attr_key}: {{ op, value }}`"),
                            format!("write `{attr_key}: {{ op: eq, value: ... }}`"),
                        );
                    }
                }
                let Yaml::Mapping(inner) = attr_val else {
                    let fix = match attr_val {
                        Yaml::String(s) => {
                            format!("write `{attr_key}: {{ op: eq, value: {s:?} }}`")
                        }
                        _ => format!("write `{attr_key}: {{ op: eq, value: ... }}`"),
                    };
                    self.err(
                        &leaf_path,
                        format!(
                            "`{attr_key}` needs a mapping `{{ op, value }}`, found {}",
                            kind(attr_val)
                        ),
                        fix,
                    );
                    return None;
                };
                let mut iop = None;
                let mut ivalue = None;
                let mut bad = op.is_some() || value.is_some() || unknown;
                for (k, v) in inner {
                    match k.as_str() {
                        Some("op") => iop = Some(v),
                        Some("value") => ivalue = Some(v),
                        _ => {
                            bad = true;
                            self.err(
                                format!("{leaf_path}.{}", key_text(k)),
                                format!("unknown key `{}` in `{attr_key}` leaf", key_text(k)),
                                format!("`{attr_key}: {{ ... }}` takes only `op` and `value`"),
                            );
                        }
                    }
                }
                let (op, value) = self.op_value(&leaf_path, iop, ivalue)?;
                if bad {
                    return None;
                }
                Some(Condition::Leaf { attr, op, value })
            }
            _ => {
                let name_path = format!("{path}.{attr_key}");
                let name = match attr_val {
                    Yaml::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                    Yaml::String(_) => {
                        self.err(
                            &name_path,
                            format!("`{attr_key}` name is empty"),
                            format!("name the {attr_key} to test, e.g. `{attr_key}: tier`"),
                        );
                        None
                    }
                    Yaml::Mapping(_) => {
                        self.err(
                            &name_path,
                            format!("`{attr_key}` takes the {attr_key} name, found a mapping"),
                            format!("write `{{ {attr_key}: NAME, op: eq, value: ... }}` with `op`/`value` beside it"),
                        );
                        None
                    }
                    other => {
                        self.err(
                            &name_path,
                            format!("`{attr_key}` name must be a string, found {}", kind(other)),
                            format!(
                                "write `{attr_key}: NAME` (quote names YAML would read as numbers)"
                            ),
                        );
                        None
                    }
                };
                let attr = name.map(|n| match attr_key {
                    "tag" => Attr::Tag(n),
                    "header" => Attr::Header(n.to_ascii_lowercase()),
                    _ => Attr::Metadata(n),
                });
                // `tag: { op, value }` is the model/user shape used by mistake;
                // the name error says it all, so skip the follow-on "no op".
                if matches!(attr_val, Yaml::Mapping(_)) && op.is_none() && value.is_none() {
                    return None;
                }
                // Validate op/value even when the name is bad, so all errors surface.
                let built = self.op_value(path, op, value);
                if unknown {
                    return None;
                }
                let (op, value) = built?;
                Some(Condition::Leaf {
                    attr: attr?,
                    op,
                    value,
                })
            }
        }
    }

    fn combinator(
        &mut self,
        path: &str,
        comb: &str,
        inner: &Yaml,
        depth: usize,
    ) -> Option<Condition> {
        let child_path = format!("{path}.{comb}");
        if comb == "not" {
            if matches!(inner, Yaml::Sequence(_)) {
                self.err(
                    &child_path,
                    "`not` takes a single condition, found a list",
                    "write `not: { any: [ ... ] }` to negate several conditions",
                );
                return None;
            }
            return self
                .condition(&child_path, inner, depth + 1)
                .map(|c| Condition::Not(Box::new(c)));
        }
        let Yaml::Sequence(items) = inner else {
            self.err(
                &child_path,
                format!(
                    "`{comb}` must be a list of conditions, found {}",
                    kind(inner)
                ),
                format!("write `{comb}: [ {{ ... }}, {{ ... }} ]`"),
            );
            return None;
        };
        if items.is_empty() {
            self.err(
                &child_path,
                format!("`{comb}` has no conditions"),
                format!("add at least one condition to `{comb}`, or remove it"),
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.condition(&format!("{child_path}[{i}]"), item, depth + 1) {
                Some(c) => out.push(c),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        Some(if comb == "all" {
            Condition::All(out)
        } else {
            Condition::Any(out)
        })
    }

    /// Validates a leaf's `op` and `value`; `path` is the mapping holding them.
    fn op_value(
        &mut self,
        path: &str,
        op: Option<&Yaml>,
        value: Option<&Yaml>,
    ) -> Option<(Op, Option<Value>)> {
        let op_path = format!("{path}.op");
        let value_path = format!("{path}.value");
        let op = match op {
            None => {
                self.err(
                    &op_path,
                    "leaf has no `op`",
                    format!("add `op:` with one of: {OP_LIST}"),
                );
                return None;
            }
            Some(Yaml::String(s)) => match Op::parse(s) {
                Some(op) => op,
                None => {
                    self.err(
                        &op_path,
                        format!("unknown operator `{s}`"),
                        unknown_op_fix(s),
                    );
                    return None;
                }
            },
            Some(other) => {
                self.err(
                    &op_path,
                    format!("`op` must be a string, found {}", kind(other)),
                    format!("use one of: {OP_LIST}"),
                );
                return None;
            }
        };

        let value = match (op, value) {
            (Op::Exists, None) => None,
            (Op::Exists, Some(_)) => {
                self.err(
                    &value_path,
                    "`exists` takes no `value`",
                    "remove `value`, or use `op: eq` to compare against it",
                );
                return None;
            }
            (_, None) => {
                self.err(
                    &value_path,
                    format!("operator `{op}` needs a `value`"),
                    format!(
                        "add `value: ...`{}",
                        if op == Op::In { " with a list" } else { "" }
                    ),
                );
                return None;
            }
            (Op::In, Some(Yaml::Sequence(items))) => {
                if items.is_empty() {
                    self.err(
                        &value_path,
                        "`in` list is empty, so the leaf could never match",
                        "list at least one value, e.g. `value: [low, batch]`",
                    );
                    return None;
                }
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(v) = self.scalar(&format!("{value_path}[{i}]"), item, op) {
                        out.push(v);
                    }
                }
                if out.len() != items.len() {
                    return None;
                }
                Some(Value::List(out))
            }
            (Op::In, Some(other)) => {
                self.err(
                    &value_path,
                    format!("`in` needs a list value, found {}", kind(other)),
                    match other {
                        Yaml::String(s) => {
                            format!("write `value: [{s:?}]`, or use `op: eq` for a single value")
                        }
                        _ => {
                            "write `value: [a, b]`, or use `op: eq` for a single value".to_string()
                        }
                    },
                );
                return None;
            }
            (_, Some(Yaml::Sequence(_))) => {
                self.err(
                    &value_path,
                    format!("`{op}` takes a single value, found a list"),
                    "use `op: in` to match any of several values",
                );
                return None;
            }
            (_, Some(v)) => Some(self.scalar(&value_path, v, op)?),
        };
        Some((op, value))
    }

    fn scalar(&mut self, path: &str, raw: &Yaml, op: Op) -> Option<Value> {
        match raw {
            Yaml::String(s) => Some(Value::Str(s.clone())),
            Yaml::Bool(b) => Some(Value::Bool(*b)),
            Yaml::Number(n) => match n.as_f64().filter(|f| f.is_finite()) {
                Some(f) => Some(Value::Num(f)),
                None => {
                    self.err(
                        path,
                        format!("value must be a finite number, found {n}"),
                        "use a finite number, or quote it to compare as a string",
                    );
                    None
                }
            },
            Yaml::Null => {
                let fix = if op == Op::Ne {
                    "to match a missing attribute use `not: { ..., op: exists }`"
                } else {
                    "give a value, or use `op: exists` to test presence"
                };
                self.err(path, "value is null", fix);
                None
            }
            other => {
                self.err(
                    path,
                    format!(
                        "value must be a string, number or boolean, found {}",
                        kind(other)
                    ),
                    "use a plain scalar value; quote it if needed",
                );
                None
            }
        }
    }
}

fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Short rendering of a YAML node for messages (scalars shown, others named).
fn scalar_preview(v: &Yaml) -> String {
    match v {
        Yaml::Number(n) => n.to_string(),
        Yaml::String(s) => format!("{s:?}"),
        Yaml::Bool(b) => b.to_string(),
        other => kind(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: &str = "keys[0].routing.rules";

    fn yaml_rules(src: &str) -> Vec<Yaml> {
        let doc: Yaml = serde_yaml::from_str(src).expect("test YAML parses");
        match doc.get("rules") {
            Some(Yaml::Sequence(s)) => s.clone(),
            _ => panic!("test YAML needs a `rules:` list"),
        }
    }

    fn ok(src: &str) -> Vec<Rule> {
        match build(P, &yaml_rules(src)) {
            Ok(r) => r,
            Err(e) => panic!("expected valid rules, got {e:#?}"),
        }
    }

    fn errs(src: &str) -> Vec<RuleError> {
        match build(P, &yaml_rules(src)) {
            Ok(r) => panic!("expected errors, got {r:#?}"),
            Err(e) => e,
        }
    }

    /// Builds one condition from a YAML flow mapping.
    fn cond(when: &str) -> Condition {
        let mut rules = ok(&format!(
            "rules:\n  - when: {when}\n    use: [ {{ model: m }} ]\n"
        ));
        rules.remove(0).when
    }

    /// Owned request data for building a [`RequestView`].
    #[derive(Default)]
    struct Req {
        model: String,
        user: Option<String>,
        tags: Vec<(String, String)>,
        headers: Vec<(String, String)>,
        metadata: Option<serde_json::Map<String, serde_json::Value>>,
    }

    impl Req {
        fn new(model: &str) -> Self {
            Req {
                model: model.to_string(),
                ..Req::default()
            }
        }
        fn user(mut self, u: &str) -> Self {
            self.user = Some(u.to_string());
            self
        }
        fn tags(mut self, h: &str) -> Self {
            self.tags = parse_tags(h);
            self
        }
        fn header(mut self, k: &str, v: &str) -> Self {
            self.headers.push((k.to_string(), v.to_string()));
            self
        }
        fn meta(mut self, v: serde_json::Value) -> Self {
            self.metadata = v.as_object().cloned();
            self
        }
        fn view(&self) -> RequestView<'_> {
            RequestView {
                model: &self.model,
                user: self.user.as_deref(),
                tags: &self.tags,
                headers: &self.headers,
                metadata: self.metadata.as_ref(),
            }
        }
    }

    fn check(when: &str, req: &Req, expect: bool) {
        let c = cond(when);
        assert_eq!(c.matches(&req.view()), expect, "{when} => {c}");
    }

    #[test]
    fn operators_table() {
        let req = Req::new("gpt-4o-mini")
            .user("alice@acme.com")
            .tags("tier=bulk, n=10, v=1.10, empty=")
            .header("x-priority", "low")
            .meta(json!({"team": "ml", "cost": 2.5, "count": 7, "flag": true, "nul": null, "obj": {"a": 1}, "arr": [1]}));
        let cases: &[(&str, bool)] = &[
            // eq / ne
            ("{ tag: tier, op: eq, value: bulk }", true),
            ("{ tag: tier, op: eq, value: Bulk }", false),
            ("{ tag: tier, op: ne, value: bulk }", false),
            ("{ tag: tier, op: ne, value: x }", true),
            ("{ tag: n, op: eq, value: 10.0 }", true), // YAML number: numeric eq
            ("{ tag: n, op: eq, value: \"10.0\" }", false), // quoted: exact string
            ("{ tag: v, op: eq, value: \"1.10\" }", true),
            ("{ tag: v, op: eq, value: \"1.1\" }", false),
            ("{ tag: empty, op: eq, value: \"\" }", true),
            ("{ metadata: cost, op: eq, value: 2.5 }", true),
            ("{ metadata: count, op: eq, value: 7 }", true),
            ("{ metadata: count, op: eq, value: \"7\" }", true),
            ("{ metadata: flag, op: eq, value: true }", true),
            ("{ metadata: flag, op: eq, value: \"true\" }", true),
            ("{ metadata: flag, op: ne, value: false }", true),
            // gt / gte / lt / lte: numeric when both parse
            ("{ tag: n, op: gt, value: 9 }", true),
            ("{ tag: n, op: gt, value: \"9\" }", true), // numeric even when quoted
            ("{ tag: n, op: gt, value: 10 }", false),
            ("{ tag: n, op: gte, value: 10 }", true),
            ("{ tag: n, op: lt, value: 100 }", true), // lexicographic would say "10" < "100" too
            ("{ tag: n, op: lt, value: 9 }", false),  // lexicographic would say "10" < "9"
            ("{ tag: n, op: lte, value: 10 }", true),
            ("{ metadata: cost, op: gt, value: 2 }", true),
            ("{ metadata: cost, op: lte, value: 2.4 }", false),
            // lexicographic when either side is not numeric
            ("{ tag: tier, op: gt, value: alpha }", true),
            ("{ tag: tier, op: lt, value: c }", true),
            ("{ tag: tier, op: gte, value: bulk }", true),
            ("{ tag: tier, op: lte, value: bulj }", false),
            ("{ tag: n, op: gt, value: abc }", false), // "10" < "abc"
            // in
            ("{ header: x-priority, op: in, value: [low, batch] }", true),
            ("{ header: x-priority, op: in, value: [high] }", false),
            ("{ tag: n, op: in, value: [1, 10] }", true),
            ("{ metadata: flag, op: in, value: [true] }", true),
            // contains / starts_with
            ("{ user: { op: contains, value: \"@acme.com\" } }", true),
            ("{ user: { op: contains, value: \"@ACME.com\" } }", false),
            ("{ model: { op: starts_with, value: gpt-4 } }", true),
            ("{ model: { op: starts_with, value: 4o } }", false),
            ("{ model: { op: contains, value: 4o } }", true),
            ("{ tag: n, op: starts_with, value: 1 }", true),
            // exists
            ("{ metadata: team, op: exists }", true),
            ("{ tag: empty, op: exists }", true),
            ("{ user: { op: exists } }", true),
            ("{ model: { op: exists } }", true),
            // header names are case-insensitive
            ("{ header: X-Priority, op: eq, value: low }", true),
        ];
        for (when, expect) in cases {
            check(when, &req, *expect);
        }
    }

    #[test]
    fn missing_attributes() {
        let req = Req::new("m").meta(json!({"nul": null, "obj": {"a": 1}, "arr": [1]}));
        for attr in [
            "tag: t",
            "header: h",
            "metadata: absent",
            "metadata: nul",
            "metadata: obj",
            "metadata: arr",
        ] {
            for (op, expect) in [
                ("op: eq, value: x", false),
                ("op: ne, value: x", true),
                ("op: gt, value: 1", false),
                ("op: gte, value: 1", false),
                ("op: lt, value: 1", false),
                ("op: lte, value: 1", false),
                ("op: in, value: [x]", false),
                ("op: contains, value: x", false),
                ("op: starts_with, value: x", false),
                ("op: exists", false),
            ] {
                check(&format!("{{ {attr}, {op} }}"), &req, expect);
            }
        }
        check("{ user: { op: ne, value: x } }", &req, true);
        check("{ user: { op: eq, value: x } }", &req, false);
        check("{ user: { op: exists } }", &req, false);
        // No metadata object at all.
        let bare = Req::new("m");
        check("{ metadata: team, op: ne, value: x }", &bare, true);
        check("{ metadata: team, op: exists }", &bare, false);
    }

    #[test]
    fn nan_and_inf_strings_compare_as_strings() {
        let req = Req::new("m").tags("a=nan,b=inf");
        check("{ tag: a, op: eq, value: nan }", &req, true);
        check("{ tag: a, op: gte, value: nan }", &req, true);
        check("{ tag: b, op: lt, value: j }", &req, true);
    }

    #[test]
    fn combinators_and_nesting() {
        let req = Req::new("gpt-4o").tags("a=1,b=2");
        check(
            "{ all: [ { tag: a, op: eq, value: 1 }, { tag: b, op: eq, value: 2 } ] }",
            &req,
            true,
        );
        check(
            "{ all: [ { tag: a, op: eq, value: 1 }, { tag: b, op: eq, value: 3 } ] }",
            &req,
            false,
        );
        check(
            "{ any: [ { tag: a, op: eq, value: 9 }, { tag: b, op: eq, value: 2 } ] }",
            &req,
            true,
        );
        check(
            "{ any: [ { tag: a, op: eq, value: 9 }, { tag: b, op: eq, value: 9 } ] }",
            &req,
            false,
        );
        check("{ not: { tag: a, op: eq, value: 1 } }", &req, false);
        check("{ not: { not: { tag: a, op: eq, value: 1 } } }", &req, true);
        check(
            "{ all: [ { any: [ { tag: x, op: exists }, { not: { tag: a, op: gt, value: 5 } } ] }, { model: { op: eq, value: gpt-4o } } ] }",
            &req,
            true,
        );
        // Maximum allowed depth: a leaf inside 31 `not`s is depth 32.
        let mut deep = "{ tag: a, op: exists }".to_string();
        for _ in 0..31 {
            deep = format!("{{ not: {deep} }}");
        }
        check(&deep, &req, false); // 31 negations of true
    }

    #[test]
    fn first_match_wins_in_order() {
        let rules = ok("
rules:
  - when: { tag: a, op: eq, value: 1 }
    use: [ { model: first } ]
  - when: { tag: a, op: exists }
    use: [ { model: second } ]
  - when: { model: { op: exists } }
    use: [ { model: catch_all } ]
");
        assert_eq!(
            first_match(&rules, &Req::new("m").tags("a=1").view()),
            Some(0)
        );
        assert_eq!(
            first_match(&rules, &Req::new("m").tags("a=2").view()),
            Some(1)
        );
        assert_eq!(first_match(&rules, &Req::new("m").view()), Some(2));
        let no_catch_all = rules.get(..2).unwrap_or_default();
        assert_eq!(first_match(no_catch_all, &Req::new("m").view()), None);
        assert_eq!(first_match(&[], &Req::new("m").view()), None);
    }

    #[test]
    fn parse_tags_edge_cases() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("   ", &[]),
            (",,,", &[]),
            ("k=v", &[("k", "v")]),
            ("k=v,k2=v2", &[("k", "v"), ("k2", "v2")]),
            ("  k = v ,  k2=v2  ", &[("k", "v"), ("k2", "v2")]),
            ("novalue, =v, k=v", &[("k", "v")]),
            ("k=", &[("k", "")]),
            ("k=a=b", &[("k", "a=b")]),
            ("k=1,k=2", &[("k", "1"), ("k", "2")]),
            ("k=v,,", &[("k", "v")]),
            ("ü=ß", &[("ü", "ß")]),
        ];
        for (input, expect) in cases {
            assert_eq!(parse_tags(input), pairs(expect), "input {input:?}");
        }
        // Duplicate tag: first occurrence wins.
        check(
            "{ tag: k, op: eq, value: 1 }",
            &Req::new("m").tags("k=1,k=2"),
            true,
        );
    }

    const EXAMPLES: &str = r#"
rules:
  - when: { any: [ { tag: tier, op: eq, value: bulk }, { header: x-priority, op: in, value: [low, batch] } ] }
    use: [ { model: gpt-4o-mini } ]
  - when: { all: [ { model: { op: starts_with, value: "gpt-4" } }, { not: { metadata: team, op: exists } } ] }
    use: [ { model: gpt-4o, timeout_ms: 5000 }, { model: claude-sonnet-4 } ]
  - when: { user: { op: contains, value: "@acme.com" } }
    use: [ { model: claude-sonnet-4 } ]
"#;

    #[test]
    fn spec_examples_build() {
        let rules = ok(EXAMPLES);
        let leaf = |attr: Attr, op: Op, value: Option<Value>| Condition::Leaf { attr, op, value };
        let s = |x: &str| Value::Str(x.to_string());
        let um = |m: &str, t: Option<u64>| UseModel {
            model: m.to_string(),
            timeout_ms: t,
        };
        let expected = vec![
            Rule {
                when: Condition::Any(vec![
                    leaf(Attr::Tag("tier".into()), Op::Eq, Some(s("bulk"))),
                    leaf(
                        Attr::Header("x-priority".into()),
                        Op::In,
                        Some(Value::List(vec![s("low"), s("batch")])),
                    ),
                ]),
                use_models: vec![um("gpt-4o-mini", None)],
            },
            Rule {
                when: Condition::All(vec![
                    leaf(Attr::Model, Op::StartsWith, Some(s("gpt-4"))),
                    Condition::Not(Box::new(leaf(
                        Attr::Metadata("team".into()),
                        Op::Exists,
                        None,
                    ))),
                ]),
                use_models: vec![um("gpt-4o", Some(5000)), um("claude-sonnet-4", None)],
            },
            Rule {
                when: leaf(Attr::User, Op::Contains, Some(s("@acme.com"))),
                use_models: vec![um("claude-sonnet-4", None)],
            },
        ];
        assert_eq!(rules, expected);
    }

    #[test]
    fn spec_examples_match() {
        let rules = ok(EXAMPLES);
        let cases: Vec<(Req, Option<usize>)> = vec![
            (Req::new("gpt-4o").tags("tier=bulk"), Some(0)),
            (Req::new("claude").header("x-priority", "batch"), Some(0)),
            (Req::new("gpt-4o"), Some(1)),
            (Req::new("gpt-4o").meta(json!({"team": "ml"})), None),
            (
                Req::new("gpt-4o")
                    .meta(json!({"team": "ml"}))
                    .user("bob@acme.com"),
                Some(2),
            ),
            (Req::new("gpt-3.5").user("bob@acme.com"), Some(2)),
            (Req::new("gpt-3.5").user("bob@example.com"), None),
            // First match wins: rule 0 shadows rule 2.
            (
                Req::new("x").tags("tier=bulk").user("bob@acme.com"),
                Some(0),
            ),
        ];
        for (req, expect) in cases {
            assert_eq!(
                first_match(&rules, &req.view()),
                expect,
                "model {}",
                req.model
            );
        }
    }

    #[test]
    fn describe_examples() {
        let rules = ok(EXAMPLES);
        let described: Vec<String> = rules.iter().map(|r| describe(&r.when)).collect();
        assert_eq!(
            described,
            vec![
                r#"any(tag tier eq "bulk", header x-priority in ["low","batch"])"#,
                r#"all(model starts_with "gpt-4", not(metadata team exists))"#,
                r#"user contains "@acme.com""#,
            ]
        );
        assert_eq!(
            describe(&cond("{ metadata: cost, op: gte, value: 2.5 }")),
            "metadata cost gte 2.5"
        );
        assert_eq!(
            describe(&cond("{ tag: a, op: in, value: [1, true, \"q\\\"x\"] }")),
            r#"tag a in [1,true,"q\"x"]"#
        );
        assert_eq!(
            describe(&cond("{ header: X-Up, op: ne, value: \"a\\nb\" }")),
            r#"header x-up ne "a\nb""#
        );
    }

    /// Builds a single rule whose `when` is `when` and returns its errors.
    fn when_errs(when: &str) -> Vec<(String, String)> {
        errs(&format!(
            "rules:\n  - when: {when}\n    use: [ {{ model: m }} ]\n"
        ))
        .into_iter()
        .map(|e| {
            assert!(!e.fix.is_empty(), "error without fix: {e:?}");
            (e.path, e.message)
        })
        .collect()
    }

    fn one(path: &str, msg: &str) -> Vec<(String, String)> {
        vec![(format!("{P}[0]{path}"), msg.to_string())]
    }

    #[test]
    fn condition_validation_errors() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "{ tag: t, op: equals, value: x }",
                ".when.op",
                "unknown operator `equals`",
            ),
            (
                "{ tag: t, op: 5, value: x }",
                ".when.op",
                "`op` must be a string, found a number",
            ),
            ("{ tag: t, value: x }", ".when.op", "leaf has no `op`"),
            (
                "{ tag: t, op: eq }",
                ".when.value",
                "operator `eq` needs a `value`",
            ),
            (
                "{ tag: t, op: in, value: low }",
                ".when.value",
                "`in` needs a list value, found a string",
            ),
            (
                "{ tag: t, op: in, value: [] }",
                ".when.value",
                "`in` list is empty, so the leaf could never match",
            ),
            (
                "{ tag: t, op: in, value: [a, [b]] }",
                ".when.value[1]",
                "value must be a string, number or boolean, found a list",
            ),
            (
                "{ tag: t, op: eq, value: [a] }",
                ".when.value",
                "`eq` takes a single value, found a list",
            ),
            (
                "{ tag: t, op: eq, value: { a: 1 } }",
                ".when.value",
                "value must be a string, number or boolean, found a mapping",
            ),
            (
                "{ tag: t, op: eq, value: ~ }",
                ".when.value",
                "value is null",
            ),
            (
                "{ tag: t, op: gt, value: .nan }",
                ".when.value",
                "value must be a finite number, found .nan",
            ),
            (
                "{ tag: t, op: exists, value: x }",
                ".when.value",
                "`exists` takes no `value`",
            ),
            (
                "{ tag: t, header: h, op: eq, value: x }",
                ".when",
                "leaf tests more than one attribute: `tag`, `header`",
            ),
            (
                "{ op: eq, value: x }",
                ".when",
                "condition names no attribute",
            ),
            (
                "{ tag: \"\", op: eq, value: x }",
                ".when.tag",
                "`tag` name is empty",
            ),
            (
                "{ metadata: 5, op: eq, value: x }",
                ".when.metadata",
                "`metadata` name must be a string, found a number",
            ),
            (
                "{ header: { op: eq, value: x } }",
                ".when.header",
                "`header` takes the header name, found a mapping",
            ),
            (
                "{ model: gpt-4o }",
                ".when.model",
                "`model` needs a mapping `{ op, value }`, found a string",
            ),
            (
                "{ model: { op: eq, value: x, extra: 1 } }",
                ".when.model.extra",
                "unknown key `extra` in `model` leaf",
            ),
            (
                "{ user: { op: eq } }",
                ".when.user.value",
                "operator `eq` needs a `value`",
            ),
            (
                "{ user: { value: x } }",
                ".when.user.op",
                "leaf has no `op`",
            ),
            (
                "{ tag: t, op: eq, value: x, colour: red }",
                ".when.colour",
                "unknown condition key `colour`",
            ),
            ("{}", ".when", "empty condition"),
            (
                "[ { tag: t, op: exists } ]",
                ".when",
                "a condition must be a mapping, found a list",
            ),
            (
                "just-a-string",
                ".when",
                "a condition must be a mapping, found a string",
            ),
            ("{ all: [] }", ".when.all", "`all` has no conditions"),
            ("{ any: [] }", ".when.any", "`any` has no conditions"),
            (
                "{ all: { tag: t, op: exists } }",
                ".when.all",
                "`all` must be a list of conditions, found a mapping",
            ),
            (
                "{ not: [ { tag: t, op: exists } ] }",
                ".when.not",
                "`not` takes a single condition, found a list",
            ),
            ("{ not: {} }", ".when.not", "empty condition"),
            (
                "{ all: [ { tag: t, op: exists } ], any: [ { tag: t, op: exists } ] }",
                ".when",
                "`all` must be the only key in its condition, found also `any`",
            ),
            (
                "{ any: [ { tag: t, op: exists } ], tag: x, op: eq }",
                ".when",
                "`any` must be the only key in its condition, found also `tag`, `op`",
            ),
            (
                "{ any: [ { tag: t, op: eq, value: x }, { header: h, op: bogus, value: y } ] }",
                ".when.any[1].op",
                "unknown operator `bogus`",
            ),
            (
                "{ all: [ { not: { any: [ { tag: t, op: gt } ] } } ] }",
                ".when.all[0].not.any[0].value",
                "operator `gt` needs a `value`",
            ),
        ];
        for (when, path, msg) in cases {
            assert_eq!(when_errs(when), one(path, msg), "when: {when}");
        }
    }

    #[test]
    fn model_leaf_with_outer_op_value() {
        let got = when_errs("{ model: { op: eq, value: a }, op: eq, value: b }");
        assert_eq!(
            got,
            vec![
                (
                    format!("{P}[0].when.op"),
                    "`op` belongs inside `model: { op, value }`".to_string()
                ),
                (
                    format!("{P}[0].when.value"),
                    "`value` belongs inside `model: { op, value }`".to_string()
                ),
            ]
        );
    }

    #[test]
    fn unknown_operator_fixes() {
        let fix = |op: &str| {
            errs(&format!("rules:\n  - when: {{ tag: t, op: \"{op}\", value: x }}\n    use: [ {{ model: m }} ]\n"))
                .remove(0)
                .fix
        };
        assert!(
            fix("startsWith").starts_with("did you mean `starts_with`?"),
            "{}",
            fix("startsWith")
        );
        assert!(fix("==").starts_with("did you mean `eq`?"));
        assert!(fix(">=").starts_with("did you mean `gte`?"));
        assert!(fix("EQ").starts_with("did you mean `eq`?"));
        assert!(fix("not_in").contains("not: { ..., op: in }"));
        assert!(fix("zzz").starts_with("use one of: eq, ne"));
    }

    #[test]
    fn depth_limit() {
        let leaf = "{ tag: a, op: exists }";
        let nest = |n: usize| {
            let mut s = leaf.to_string();
            for _ in 0..n {
                s = format!("{{ not: {s} }}");
            }
            s
        };
        // 31 nots + leaf = depth 32: fine (checked in combinators_and_nesting).
        let got = when_errs(&nest(32));
        let path = format!("{P}[0].when{}", ".not".repeat(32));
        assert_eq!(
            got,
            vec![(
                path,
                "conditions are nested deeper than 32 levels".to_string()
            )]
        );

        // Far deeper than serde_yaml would parse: built programmatically,
        // must stop at the limit without recursing further.
        let mut v: Yaml = serde_yaml::from_str(leaf).expect("leaf parses");
        for i in 0..2000 {
            let mut m = serde_yaml::Mapping::new();
            let key = if i % 2 == 0 { "not" } else { "all" };
            let inner = if key == "all" {
                Yaml::Sequence(vec![v])
            } else {
                v
            };
            m.insert(Yaml::String(key.into()), inner);
            v = Yaml::Mapping(m);
        }
        let mut rule = serde_yaml::Mapping::new();
        rule.insert("when".into(), v);
        rule.insert(
            "use".into(),
            serde_yaml::from_str("[ { model: m } ]").expect("use parses"),
        );
        let e = build(P, &[Yaml::Mapping(rule)]).expect_err("too deep");
        assert_eq!(e.len(), 1);
        assert!(e.iter().all(|e| e.message.contains("deeper than 32")));
    }

    #[test]
    fn rule_and_use_validation_errors() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "rules:\n  - 5\n",
                &[(
                    "[0]",
                    "a rule must be a mapping with `when` and `use`, found a number",
                )],
            ),
            (
                "rules:\n  - use: [ { model: m } ]\n",
                &[("[0].when", "rule has no `when`")],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n",
                &[("[0].use", "rule has no `use`")],
            ),
            (
                "rules:\n  - {}\n",
                &[
                    ("[0].when", "rule has no `when`"),
                    ("[0].use", "rule has no `use`"),
                ],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: []\n",
                &[("[0].use", "`use` is empty")],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: gpt-4o\n",
                &[("[0].use", "`use` must be a list, found a string")],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: { model: m }\n",
                &[("[0].use", "`use` must be a list, found a mapping")],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: [ gpt-4o ]\n",
                &[(
                    "[0].use[0]",
                    "a `use` entry must be a mapping, found a string",
                )],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: [ { timeout_ms: 5 } ]\n",
                &[("[0].use[0].model", "`use` entry has no `model`")],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: [ { model: \" \" } ]\n",
                &[("[0].use[0].model", "`model` is empty")],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: [ { model: 4 } ]\n",
                &[(
                    "[0].use[0].model",
                    "`model` must be a string, found a number",
                )],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: [ { model: m, timeout_ms: -1 } ]\n",
                &[(
                    "[0].use[0].timeout_ms",
                    "`timeout_ms` must be a positive whole number of milliseconds, found -1",
                )],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: [ { model: m, timeout_ms: 0 } ]\n",
                &[(
                    "[0].use[0].timeout_ms",
                    "`timeout_ms` must be a positive whole number of milliseconds, found 0",
                )],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: [ { model: m, timeout_ms: 1.5 } ]\n",
                &[(
                    "[0].use[0].timeout_ms",
                    "`timeout_ms` must be a positive whole number of milliseconds, found 1.5",
                )],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: [ { model: m, timeout_ms: \"5s\" } ]\n",
                &[(
                    "[0].use[0].timeout_ms",
                    "`timeout_ms` must be a positive whole number of milliseconds, found \"5s\"",
                )],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: [ { model: m, retries: 2 } ]\n",
                &[("[0].use[0].retries", "unknown key `retries` in `use` entry")],
            ),
            (
                "rules:\n  - when: { tag: t, op: exists }\n    use: [ { model: m } ]\n    name: x\n",
                &[("[0].name", "unknown rule key `name`")],
            ),
        ];
        for (src, expect) in cases {
            let got: Vec<(String, String)> =
                errs(src).into_iter().map(|e| (e.path, e.message)).collect();
            let want: Vec<(String, String)> = expect
                .iter()
                .map(|(p, m)| (format!("{P}{p}"), m.to_string()))
                .collect();
            assert_eq!(got, want, "src: {src}");
        }
    }

    #[test]
    fn all_errors_are_reported() {
        let e = errs(
            "
rules:
  - when: { any: [ { tag: t, op: nope, value: x }, { header: h, op: in, value: x } ] }
    use: []
  - when: { tag: ok, op: exists }
    use: [ { model: m } ]
  - when: { all: [] }
    use: [ { model: m, timeout_ms: 0 } ]
",
        );
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "keys[0].routing.rules[0].when.any[0].op",
                "keys[0].routing.rules[0].when.any[1].value",
                "keys[0].routing.rules[0].use",
                "keys[0].routing.rules[2].when.all",
                "keys[0].routing.rules[2].use[0].timeout_ms",
            ]
        );
        let first = e.first().map(ToString::to_string);
        assert_eq!(
            first.as_deref(),
            Some("keys[0].routing.rules[0].when.any[0].op: unknown operator `nope`")
        );
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(build(P, &[]), Ok(vec![]));
        let e = build("", &[Yaml::Null]).expect_err("null rule");
        assert_eq!(e.first().map(|e| e.path.as_str()), Some("rules[0]"));
    }

    #[test]
    fn hand_built_conditions_do_not_panic() {
        let req = Req::new("m").tags("a=1");
        let weird = [
            Condition::All(vec![]),
            Condition::Any(vec![]),
            Condition::Leaf {
                attr: Attr::Tag("a".into()),
                op: Op::Eq,
                value: None,
            },
            Condition::Leaf {
                attr: Attr::Tag("a".into()),
                op: Op::Ne,
                value: None,
            },
            Condition::Leaf {
                attr: Attr::Tag("a".into()),
                op: Op::In,
                value: Some(Value::Num(1.0)),
            },
            Condition::Leaf {
                attr: Attr::Tag("a".into()),
                op: Op::Gt,
                value: Some(Value::List(vec![])),
            },
            Condition::Leaf {
                attr: Attr::Tag("a".into()),
                op: Op::Eq,
                value: Some(Value::Num(f64::NAN)),
            },
            Condition::Leaf {
                attr: Attr::Tag("a".into()),
                op: Op::Lt,
                value: Some(Value::Num(f64::INFINITY)),
            },
        ];
        let got: Vec<bool> = weird.iter().map(|c| c.matches(&req.view())).collect();
        assert_eq!(
            got,
            vec![true, false, false, true, true, false, false, true]
        );
        for c in &weird {
            let _ = describe(c);
        }
    }

    // -- Deterministic fuzzing: arbitrary YAML must never make `build` panic.

    /// SplitMix64: tiny, deterministic, good enough to shake the validator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            let i = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
            items.get(i).copied().unwrap_or("")
        }
    }

    const WORDS: &[&str] = &[
        "when",
        "use",
        "all",
        "any",
        "not",
        "tag",
        "header",
        "metadata",
        "model",
        "user",
        "op",
        "value",
        "timeout_ms",
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "contains",
        "starts_with",
        "exists",
        "",
        " ",
        "tier",
        "bulk",
        "x-priority",
        "nan",
        "inf",
        "1.5",
        "-3",
        "é",
        "=",
        ",",
    ];

    fn random_yaml(rng: &mut Rng, depth: u32) -> Yaml {
        let leafy = depth >= 40;
        match rng.below(if leafy { 5 } else { 9 }) {
            0 => Yaml::Null,
            1 => Yaml::Bool(rng.below(2) == 0),
            2 => match rng.below(5) {
                0 => Yaml::Number(f64::NAN.into()),
                1 => Yaml::Number(f64::NEG_INFINITY.into()),
                2 => Yaml::Number((rng.next() as f64 / 7.0).into()),
                3 => Yaml::Number((rng.next() as i64).into()),
                _ => Yaml::Number(rng.next().into()),
            },
            3 | 4 => Yaml::String(rng.pick(WORDS).to_string()),
            5 | 6 => {
                let mut m = serde_yaml::Mapping::new();
                for _ in 0..rng.below(4) {
                    let k = if rng.below(8) == 0 {
                        random_yaml(rng, 40)
                    } else {
                        Yaml::String(rng.pick(WORDS).to_string())
                    };
                    m.insert(k, random_yaml(rng, depth + 1));
                }
                Yaml::Mapping(m)
            }
            7 => Yaml::Sequence(
                (0..rng.below(4))
                    .map(|_| random_yaml(rng, depth + 1))
                    .collect(),
            ),
            _ => Yaml::Tagged(Box::new(serde_yaml::value::TaggedValue {
                tag: serde_yaml::value::Tag::new("weird"),
                value: random_yaml(rng, depth + 1),
            })),
        }
    }

    /// Replaces, inserts or removes something at a random spot in `v`.
    fn mutate(rng: &mut Rng, v: &mut Yaml, depth: u32) {
        if rng.below(4) == 0 || depth > 20 {
            *v = random_yaml(rng, 30);
            return;
        }
        match v {
            Yaml::Mapping(m) => match rng.below(6) {
                0 => {
                    m.insert(
                        Yaml::String(rng.pick(WORDS).to_string()),
                        random_yaml(rng, 35),
                    );
                }
                1 => {
                    let n = m.len() as u64;
                    let idx = usize::try_from(rng.below(n)).unwrap_or(0);
                    if let Some(k) = m.keys().nth(idx).cloned() {
                        m.remove(&k);
                    }
                }
                _ => {
                    let n = m.len() as u64;
                    let idx = usize::try_from(rng.below(n)).unwrap_or(0);
                    if let Some(child) = m.values_mut().nth(idx) {
                        mutate(rng, child, depth + 1);
                    }
                }
            },
            Yaml::Sequence(s) => {
                let n = s.len() as u64;
                let idx = usize::try_from(rng.below(n)).unwrap_or(0);
                match rng.below(5) {
                    0 => s.push(random_yaml(rng, 35)),
                    1 if idx < s.len() => {
                        s.remove(idx);
                    }
                    _ => {
                        if let Some(child) = s.get_mut(idx) {
                            mutate(rng, child, depth + 1);
                        }
                    }
                }
            }
            _ => *v = random_yaml(rng, 30),
        }
    }

    #[test]
    fn arbitrary_yaml_never_panics() {
        let seeds = yaml_rules(EXAMPLES);
        let reqs = [
            Req::new("gpt-4o").tags("tier=bulk,n=3").user("a@acme.com"),
            Req::new("")
                .header("x-priority", "low")
                .meta(json!({"team": 1.5, "x": [1]})),
            Req::new("claude").tags("=,,nan=nan"),
        ];
        let mut rng = Rng(0x5EED_0F57_17C4);
        let (mut valid, mut invalid) = (0u32, 0u32);
        for i in 0..6000 {
            let raw: Vec<Yaml> = if i % 3 == 0 {
                (0..rng.below(3))
                    .map(|_| random_yaml(&mut rng, 0))
                    .collect()
            } else {
                let mut v = seeds.clone();
                for _ in 0..=rng.below(3) {
                    let idx = usize::try_from(rng.below(v.len() as u64)).unwrap_or(0);
                    if let Some(rule) = v.get_mut(idx) {
                        mutate(&mut rng, rule, 0);
                    }
                }
                v
            };
            match build(P, &raw) {
                Ok(rules) => {
                    valid += 1;
                    for req in &reqs {
                        let _ = first_match(&rules, &req.view());
                    }
                    for r in &rules {
                        let _ = describe(&r.when);
                    }
                }
                Err(errors) => {
                    invalid += 1;
                    assert!(!errors.is_empty());
                    for e in &errors {
                        assert!(e.path.starts_with(P), "{e:?}");
                        assert!(!e.message.is_empty() && !e.fix.is_empty(), "{e:?}");
                    }
                }
            }
        }
        // The fuzzer should exercise both outcomes, not just one.
        assert!(
            valid > 100 && invalid > 100,
            "valid {valid}, invalid {invalid}"
        );
    }
}
