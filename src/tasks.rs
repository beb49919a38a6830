//! Toy tasks: `{"input": ..., "output": ...}` examples, read from JSONL with line-numbered errors.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub input: String,
    pub output: String,
}

/// How a task is scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKind {
    /// Greedy continuation must equal the output exactly (up to surrounding whitespace).
    Generate,
    /// The label whose tokens are most probable wins (verbalizer scoring).
    Classify { labels: Vec<String> },
}

/// Parses JSONL: one `{"input": "...", "output": "..."}` object per line; blank lines are skipped.
pub fn parse_jsonl(text: &str) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |detail: String| Error::TaskLine {
            line: line_no,
            detail,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| err(format!("not valid JSON ({e})")))?;
        let field = |name: &str| -> Result<String> {
            match value.get(name) {
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
                Some(serde_json::Value::String(_)) => Err(err(format!("`{name}` is empty"))),
                Some(other) => Err(err(format!("`{name}` must be a string, found {other}"))),
                None => Err(err(format!(
                    "missing `{name}`: each line must be {{\"input\": \"...\", \"output\": \"...\"}}"
                ))),
            }
        };
        out.push(Example {
            input: field("input")?,
            output: field("output")?,
        });
    }
    if out.is_empty() {
        return Err(Error::TaskInvalid {
            detail: "no examples: add lines like {\"input\": \"hot ->\", \"output\": \" cold\"}"
                .into(),
        });
    }
    Ok(out)
}

/// Checks a label set for classification: at least two distinct, non-empty labels.
pub fn check_labels(labels: &[String]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    if labels.len() < 2
        || labels
            .iter()
            .any(|l| l.trim().is_empty() || !seen.insert(l.trim()))
    {
        return Err(Error::TaskInvalid {
            detail: format!(
                "a classification task needs at least two distinct non-empty labels, found {labels:?}"
            ),
        });
    }
    Ok(())
}
