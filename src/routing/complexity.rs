//! Prompt complexity in [0, 1] for the `intelligent` strategy (seed 004): a handful of cheap
//! lexical signals over the last user message (and the system prompt), combined linearly and
//! squashed. One pass over the text, no allocation beyond lowercasing: a few microseconds.
//!
//! Signals: length (log-scaled), reasoning/analysis vocabulary, code, math, explicit structure
//! (numbered constraints, several questions), and conversation depth; short greetings and
//! look-up phrasing pull the score down. Below 0.4 is simple, above 0.6 complex.

/// Words that ask for reasoning, design or analysis.
const COMPLEX_TERMS: &[&str] = &[
    "prove",
    "proof",
    "derive",
    "analy",
    "design",
    "architect",
    "optimi",
    "trade-off",
    "tradeoff",
    "trade off",
    "compare",
    "contrast",
    "step by step",
    "explain why",
    "algorithm",
    "complexity",
    "refactor",
    "debug",
    "diagnose",
    "implement",
    "theorem",
    "induction",
    "strategy",
    "evaluate",
    "critique",
    "reason",
    "justify",
    "root cause",
    "plan",
    "consistency",
    "concurren",
    "security",
    "experiment",
    "model",
    "integral",
];

/// Phrasings of look-ups, greetings and one-liners.
const SIMPLE_TERMS: &[&str] = &[
    "hello",
    "thanks",
    "what is",
    "what's",
    "who wrote",
    "define",
    "translate",
    "spell",
    "convert",
    "capital of",
    "synonym",
    "plural",
    "one word",
    "one sentence",
    "yes or no",
    "tell me a",
    "name a",
];

fn text_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Score the request body (OpenAI chat shape). `None` when there is no text to score; the
/// caller then routes as for a complex prompt (the scorer never lowers quality by failing).
pub fn score(body: &serde_json::Value) -> Option<f64> {
    let messages = body.get("messages")?.as_array()?;
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))?;
    let text = text_of(last_user.get("content")?);
    if text.trim().is_empty() {
        return None;
    }
    let system_len = messages
        .iter()
        .filter(|m| m.get("role").and_then(|r| r.as_str()) == Some("system"))
        .map(|m| m.get("content").map_or(0, |c| text_of(c).len()))
        .sum::<usize>();
    Some(score_text(&text, system_len, messages.len()))
}

pub fn score_text(text: &str, system_len: usize, turns: usize) -> f64 {
    let lower = text.to_lowercase();
    let words = lower.split_whitespace().count() as f64;
    let count = |terms: &[&str]| terms.iter().filter(|t| lower.contains(*t)).count() as f64;

    let length = ((1.0 + words).ln() / (1.0 + 120.0f64).ln()).min(1.0);
    let complex_terms = (count(COMPLEX_TERMS) / 3.0).min(1.0);
    let simple_terms = (count(SIMPLE_TERMS) / 2.0).min(1.0);
    let code = if lower.contains("```")
        || lower.contains("fn ")
        || lower.contains("def ")
        || lower.contains("select ")
    {
        1.0
    } else {
        0.0
    };
    let math = (lower.chars().filter(|c| "=^∫∑√".contains(*c)).count() as f64 / 3.0).min(1.0);
    let questions = lower.matches('?').count() as f64;
    let numbered = ["1)", "2)", "3)", "1.", "2.", "3."]
        .iter()
        .filter(|n| lower.contains(*n))
        .count() as f64;
    let structure = ((questions - 1.0).max(0.0) / 2.0 + numbered / 3.0).min(1.0);
    let depth = ((turns.saturating_sub(1) as f64) / 10.0 + (system_len as f64) / 4000.0).min(1.0);

    let raw = 0.45 * length
        + 0.35 * complex_terms
        + 0.25 * code
        + 0.15 * math
        + 0.15 * structure
        + 0.1 * depth
        - 0.3 * simple_terms;
    // Centre the linear score and squash it into (0, 1).
    1.0 / (1.0 + (-(raw - 0.35) * 9.0).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Labeled {
        prompt: String,
        label: String,
    }

    /// Accuracy on the labeled prompts shipped in tests/data (reported in the README).
    #[test]
    fn labeled_prompts_accuracy() {
        let data = include_str!("../../tests/data/complexity_prompts.jsonl");
        let (mut right, mut total, mut edge) = (0, 0, 0);
        for line in data.lines() {
            let l: Labeled = serde_json::from_str(line).unwrap();
            let s = score_text(&l.prompt, 0, 1);
            assert!((0.0..=1.0).contains(&s));
            if (0.4..=0.6).contains(&s) {
                edge += 1;
            }
            let predicted = if s >= 0.5 { "complex" } else { "simple" };
            if predicted == l.label {
                right += 1;
            } else {
                eprintln!(
                    "miss ({s:.2}, {}): {}",
                    l.label,
                    l.prompt.chars().take(60).collect::<String>()
                );
            }
            total += 1;
        }
        let accuracy = right as f64 / total as f64;
        eprintln!("complexity accuracy {right}/{total} = {accuracy:.3}, edge band {edge}");
        assert!(accuracy >= 0.9, "accuracy {accuracy}");
    }

    #[test]
    fn no_text_is_none_and_scores_are_bounded() {
        assert_eq!(score(&serde_json::json!({ "messages": [] })), None);
        assert_eq!(
            score(&serde_json::json!({ "messages": [{ "role": "user", "content": "  " }] })),
            None
        );
        let huge = "prove design analyze ```".repeat(10_000);
        let s = score_text(&huge, 100_000, 500);
        assert!((0.0..=1.0).contains(&s));
    }
}
