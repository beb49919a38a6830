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
    let dir = scratch("train");
    let task = dir.join("task.jsonl");
    std::fs::write(&task, TASK).unwrap();
    let model = fixture_dir("tiny-a");
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
