//! Toy tasks: `{"input": ..., "output": ...}` examples, read from JSONL with line-numbered errors.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub input: String,
    pub output: String,
}

/// How a task is scored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// How a pasted or uploaded pair is shown to the model: the same `word -> answer` shape as the
/// built-in tasks, so a custom task reads like them.
fn pair(input: &str, output: &str) -> Example {
    Example {
        input: format!("{} ->", input.trim()),
        output: format!(" {}", output.trim()),
    }
}

/// Parses examples typed or uploaded by a user, in any of three formats, chosen by the first
/// non-blank line: JSONL (`{"input": ..., "output": ...}`), `input => output` lines, or CSV with
/// two columns (an `input,output` header is optional). Errors name the line.
pub fn parse_custom(text: &str) -> Result<Vec<Example>> {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.trim_start().starts_with('{') {
        parse_jsonl(text)
    } else if first.contains("=>") {
        parse_arrows(text)
    } else if first.contains(',') {
        parse_csv(text)
    } else if first.is_empty() {
        Err(no_examples())
    } else {
        Err(Error::TaskLine {
            line: text.lines().position(|l| l == first).unwrap_or(0) + 1,
            detail: "expected `input => output`, a CSV row `input,output`, or a JSON object".into(),
        })
    }
}

fn no_examples() -> Error {
    Error::TaskInvalid {
        detail: "no examples: type one per line, like `hot => cold`".into(),
    }
}

/// One example per non-blank line: `split` gives a line's input and output (`None`: a line to
/// skip, such as a header; the flag says no example came before), or what is wrong with it.
fn parse_pairs(
    text: &str,
    split: impl Fn(&str, bool) -> std::result::Result<Option<(String, String)>, String>,
) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |detail: String| Error::TaskLine {
            line: i + 1,
            detail,
        };
        let Some((input, output)) = split(line, out.is_empty()).map_err(err)? else {
            continue;
        };
        for (name, v) in [("input", &input), ("output", &output)] {
            if v.trim().is_empty() {
                return Err(err(format!("the {name} is empty")));
            }
        }
        out.push(pair(&input, &output));
    }
    if out.is_empty() {
        return Err(no_examples());
    }
    Ok(out)
}

fn parse_arrows(text: &str) -> Result<Vec<Example>> {
    parse_pairs(text, |line, _| match line.split_once("=>") {
        Some((input, output)) => Ok(Some((input.into(), output.into()))),
        None => Err(format!("no `=>` in {line:?}: write `input => output`")),
    })
}

/// Two-column CSV (RFC 4180 quoting, one record per line).
fn parse_csv(text: &str) -> Result<Vec<Example>> {
    parse_pairs(text, |line, first| {
        let fields = csv_fields(line)?;
        let [input, output] = fields.as_slice() else {
            return Err(format!(
                "expected 2 columns (input,output), found {}; quote fields that contain commas",
                fields.len()
            ));
        };
        if first && input.trim() == "input" && output.trim() == "output" {
            return Ok(None); // the header
        }
        Ok(Some((input.clone(), output.clone())))
    })
}

fn csv_fields(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("one field at least");
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (',', false) => fields.push(String::new()),
            _ => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed (missing `\"`)".into());
    }
    Ok(fields)
}

/// How a set of examples is scored when the user did not say: classification when a few
/// distinct answers repeat (a label set), exact-match generation otherwise.
pub fn infer_kind(examples: &[Example]) -> TaskKind {
    let mut labels: Vec<String> = examples.iter().map(|e| e.output.clone()).collect();
    labels.sort();
    labels.dedup();
    if (2..=10).contains(&labels.len()) && labels.len() * 3 <= examples.len() {
        TaskKind::Classify { labels }
    } else {
        TaskKind::Generate
    }
}

/// Splits examples into training and held-out sets: every fifth example (at least one) is held
/// out, so the split is the same on every run without a seed.
pub fn split_held_out(examples: Vec<Example>) -> Result<(Vec<Example>, Vec<Example>)> {
    if examples.len() < 2 {
        return Err(Error::TaskInvalid {
            detail: format!(
                "{} example(s): at least 2 are needed, one to train on and one to test",
                examples.len()
            ),
        });
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, ex) in examples.into_iter().enumerate() {
        if i % 5 == 4 {
            test.push(ex)
        } else {
            train.push(ex)
        }
    }
    if test.is_empty() {
        test.push(train.pop().expect("2 examples at least"));
    }
    Ok((train, test))
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

/// A JSONL task file's examples; a bad line is named with the file (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_examples(path: &std::path::Path) -> Result<Vec<Example>> {
    let bytes = crate::error::read_file(path)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::TaskInvalid {
        detail: format!("{} is not UTF-8 text", path.display()),
    })?;
    parse_jsonl(&text).map_err(|e| match e {
        Error::TaskLine { line, detail } => Error::TaskInvalid {
            detail: format!("{} line {line}: {detail}", path.display()),
        },
        other => other,
    })
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

/// A task as the session uses it: examples split into training and held-out sets (serialized:
/// to hand an experiment's training to another engine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub name: String,
    pub kind: TaskKind,
    pub train: Vec<Example>,
    pub test: Vec<Example>,
    /// The hand-written prompt the soft prompt is compared with.
    pub text_prompt: String,
}

impl Task {
    /// A built-in task: its `task.json` and the two JSONL splits.
    pub fn builtin(spec_json: &[u8], train_jsonl: &str, test_jsonl: &str) -> Result<Self> {
        let spec = TaskSpec::parse(spec_json)?;
        Self::from_spec(spec, parse_jsonl(train_jsonl)?, parse_jsonl(test_jsonl)?)
    }

    fn from_spec(spec: TaskSpec, train: Vec<Example>, test: Vec<Example>) -> Result<Self> {
        Ok(Self {
            kind: spec.kind()?,
            name: spec.name,
            train,
            test,
            text_prompt: spec.text_prompt,
        })
    }

    /// Every task of a folder, in its order: `index.json` lists them, each `<task>/task.json`
    /// names its splits (native only: the page fetches the same files by URL).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_folder(dir: &std::path::Path) -> Result<Vec<Self>> {
        let index: serde_json::Value = serde_json::from_slice(&crate::error::read_file(
            &dir.join("index.json"),
        )?)
        .map_err(|e| Error::TaskInvalid {
            detail: format!("index.json: {e}"),
        })?;
        let names: Vec<&str> = index["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        if names.is_empty() {
            return Err(Error::TaskInvalid {
                detail: format!("{}/index.json lists no tasks", dir.display()),
            });
        }
        let load = |name: &str| {
            let task_dir = dir.join(name);
            let spec = TaskSpec::parse(&crate::error::read_file(&task_dir.join("task.json"))?)?;
            let train = read_examples(&task_dir.join(&spec.train))?;
            let test = read_examples(&task_dir.join(&spec.test))?;
            Self::from_spec(spec, train, test)
        };
        names.into_iter().map(load).collect()
    }

    /// Examples a user pasted or uploaded (any format `tasks::parse_custom` reads).
    pub fn custom(name: &str, text: &str) -> Result<Self> {
        let examples = parse_custom(text)?;
        let kind = infer_kind(&examples);
        let (train, test) = split_held_out(examples)?;
        Ok(Self {
            name: name.into(),
            kind,
            train,
            test,
            text_prompt: String::new(),
        })
    }

    pub fn labels(&self) -> &[String] {
        match &self.kind {
            TaskKind::Classify { labels } => labels,
            TaskKind::Generate => &[],
        }
    }
}

/// A task as the page lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSummary {
    pub name: String,
    /// `generate` or `classify`.
    pub kind: &'static str,
    pub labels: Vec<String>,
    pub train_size: usize,
    pub test_size: usize,
    pub text_prompt: String,
    pub chance: f32,
}

impl From<&Task> for TaskSummary {
    fn from(t: &Task) -> Self {
        Self {
            name: t.name.clone(),
            kind: match t.kind {
                TaskKind::Generate => "generate",
                TaskKind::Classify { .. } => "classify",
            },
            labels: t.labels().to_vec(),
            train_size: t.train.len(),
            test_size: t.test.len(),
            text_prompt: t.text_prompt.clone(),
            chance: chance_level(&t.test),
        }
    }
}
