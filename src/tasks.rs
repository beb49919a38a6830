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

/// A task's side file (`task.json`): its name, how it is scored, and the hand-written text prompt
/// used as the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub name: String,
    /// `generate` or `classify`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub text_prompt: String,
    /// File names of the splits, relative to the task's folder.
    pub train: String,
    pub test: String,
}

impl TaskSpec {
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let spec: TaskSpec = serde_json::from_slice(bytes).map_err(|e| Error::TaskInvalid {
            detail: format!("task.json: {e}"),
        })?;
        spec.kind()?;
        Ok(spec)
    }

    pub fn kind(&self) -> Result<TaskKind> {
        match self.kind.as_str() {
            "generate" => Ok(TaskKind::Generate),
            "classify" => {
                check_labels(&self.labels)?;
                Ok(TaskKind::Classify {
                    labels: self.labels.clone(),
                })
            }
            other => Err(Error::TaskInvalid {
                detail: format!(
                    "task.json: type {other:?} is neither \"generate\" nor \"classify\""
                ),
            }),
        }
    }
}

/// Accuracy of always answering the most common output: what a model that ignores the input gets.
pub fn chance_level(examples: &[Example]) -> f32 {
    let mut counts = std::collections::HashMap::new();
    for ex in examples {
        *counts.entry(ex.output.trim()).or_insert(0usize) += 1;
    }
    counts.values().copied().max().unwrap_or(0) as f32 / examples.len().max(1) as f32
}
