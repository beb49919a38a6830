//! The command line: a short real run of train, eval and generate, and one-line errors.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::fixture_dir;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_soft-prompt-lab"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spl-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const TASK: &str = "{\"input\": \"hot ->\", \"output\": \" cold\"}\n{\"input\": \"big ->\", \"output\": \" small\"}\n{\"input\": \"up ->\", \"output\": \" down\"}\n";

#[test]
fn train_then_eval_and_generate_with_the_adapter() {
    // A GPT-2 and a Llama-family model (Qwen2: biases, grouped queries, tied head), unchanged commands.
    for name in ["tiny-a", "tiny-qwen2"] {
        train_eval_generate(name);
    }
}

fn train_eval_generate(name: &str) {
    let dir = scratch(&format!("train-{name}"));
    let task = dir.join("task.jsonl");
    std::fs::write(&task, TASK).unwrap();
    let model = fixture_dir(name);
    let (model, task, out) = (
        model.to_str().unwrap(),
        task.to_str().unwrap(),
        dir.join("adapter"),
    );
    let out_s = out.to_str().unwrap();
    let o = run(&[
        "train",
        "--model",
        model,
        "--train",
        task,
        "--out",
        out_s,
        "--steps",
        "6",
        "--batch",
        "2",
        "--virtual-tokens",
        "3",
        "--eval-every",
        "3",
    ]);
    assert!(
        o.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("base weights unchanged"), "{stdout}");
    check_figures(&stdout, 6, 2);
    assert!(
        out.join("adapter_config.json").exists() && out.join("adapter_model.safetensors").exists()
    );

    let o = run(&[
        "eval",
        "--model",
        model,
        "--data",
        task,
        "--adapter",
        out_s,
        "--labels",
        " cold, small, down",
    ]);
    assert!(
        o.status.success(),
        "eval failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("accuracy "));

    let o = run(&[
        "generate",
        "--model",
        model,
        "--adapter",
        out_s,
        "--text",
        "hot ->",
        "--max-new-tokens",
        "3",
    ]);
    assert!(
        o.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let sample = [
        "generate",
        "--model",
        model,
        "--text",
        "hot ->",
        "--temperature",
        "0.8",
        "--top-k",
        "5",
        "--seed",
        "1",
    ];
    let (o, again) = (run(&sample), run(&sample));
    assert!(o.status.success());
    assert_eq!(o.stdout, again.stdout, "sampling is seeded");
    std::fs::remove_dir_all(dir).ok();
}

/// The number right after `label` in `text`.
fn figure(text: &str, label: &str) -> f64 {
    let rest = &text[text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
        + label.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?} in {text}"))
}

/// `train` names what each figure measures: held-out accuracy only on examples kept out of
/// training, the step time without the evaluations (which are counted apart).
fn check_figures(stdout: &str, steps: usize, evaluations: usize) {
    assert!(
        stdout.contains("held-out accuracy ") && stdout.contains("every fifth example of"),
        "{stdout}"
    );
    assert!(!stdout.contains("ms/step"), "{stdout}");
    let step_ms = figure(stdout, "median step ");
    assert_eq!(figure(stdout, "ms; ") as usize, evaluations, "{stdout}");
    let eval_s = figure(stdout, "held-out evaluations took ") / 1000.0;
    let run_s = figure(stdout, "of the run's ");
    // The run is the steps plus the evaluations (and snapshots): the step figure must leave the
    // evaluations out, so steps x median step + evaluations fit in the run. Slack: the printed
    // run is rounded to 0.1 s, and a median can sit above a skewed mean.
    assert!(
        steps as f64 * step_ms / 1000.0 + eval_s <= 1.25 * run_s + 0.1,
        "{stdout}"
    );
}

fn assert_one_line_error(o: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
    assert!(
        !stderr.contains("panicked") && stderr.lines().count() <= 2,
        "{stderr}"
    );
}

#[test]
fn bad_arguments_and_files_give_one_line() {
    assert_one_line_error(&run(&["train"]), 2, "required");
    assert_one_line_error(
        &run(&["generate", "--model", "/nonexistent", "--text", "x"]),
        1,
        "cannot read /nonexistent/config.json",
    );
    let dir = scratch("bad");
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"input\": \"a\", \"output\": \"b\"}\nnot json\n").unwrap();
    let model = fixture_dir("tiny-a");
    let o = run(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        bad.to_str().unwrap(),
    ]);
    assert_one_line_error(&o, 1, "line 2");
    std::fs::remove_dir_all(dir).ok();
}

/// Issue 18's case: transformers writes GPT-2's special-token defaults (50256) into the config of
/// a model with a smaller vocabulary. `train` and `generate` work, with a note naming the field;
/// an end token the tokenizer cannot replace is a one-line named error, never a panic.
#[test]
fn special_token_ids_outside_the_vocabulary() {
    let dir = scratch("special");
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture_dir("tiny-a").join(f), model.join(f)).unwrap();
    }
    let config_path = fixture_dir("tiny-a").join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config_path).unwrap()).unwrap();
    config["bos_token_id"] = 50256.into();
    config["eos_token_id"] = 50256.into();
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    let task = dir.join("task.jsonl");
    std::fs::write(&task, TASK).unwrap();
    let (model_s, task_s) = (model.to_str().unwrap(), task.to_str().unwrap());
    let out = dir.join("adapter");
    let o = run(&[
        "train",
        "--model",
        model_s,
        "--train",
        task_s,
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "3",
        "--batch",
        "2",
        "--virtual-tokens",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("eos_token_id 50256 is outside the vocabulary")
            && stderr.contains("bos_token_id 50256"),
        "{stderr}"
    );
    let o = run(&[
        "generate",
        "--model",
        model_s,
        "--text",
        "hot ->",
        "--max-new-tokens",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A tokenizer without <|endoftext|> has nothing to stand in for the missing end token.
    let mut tok: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture_dir("tiny-a").join("tokenizer.json")).unwrap(),
    )
    .unwrap();
    tok["added_tokens"] = serde_json::json!([]);
    tok["model"]["vocab"]
        .as_object_mut()
        .unwrap()
        .remove("<|endoftext|>");
    std::fs::write(model.join("tokenizer.json"), tok.to_string()).unwrap();
    let o = run(&["generate", "--model", model_s, "--text", "hot ->"]);
    assert_one_line_error(
        &o,
        1,
        "`eos_token_id` = 50256 lies outside the model's vocabulary",
    );
    std::fs::remove_dir_all(dir).ok();
}
