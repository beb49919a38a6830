//! The shortest complete use of the engine: load the bundled model, train a soft prompt on the
//! antonyms task, print the held-out accuracy before and after. Run:
//! `cargo run --example train_bundled` (add `-- 100` for another step count).

use pollster::block_on;
use soft_prompt_lab::backend;
use soft_prompt_lab::loader::LoadedModel;
use soft_prompt_lab::session::{Conditioning, Session, Settings};
use soft_prompt_lab::tasks::Task;

fn main() -> soft_prompt_lab::Result<()> {
    // Run by cargo (`cargo run --example train_bundled`), which tells where the checkout is.
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .ok_or_else(|| soft_prompt_lab::Error::setting("run it with cargo"))?;
    let www = std::path::Path::new(&root).join("www");
    let lm = LoadedModel::from_dir(&www.join("models/wordnet-gpt"), &backend::cpu())?;
    let mut session = block_on(Session::new(lm))?;

    let dir = www.join("tasks/antonyms");
    let read = |f: &str| soft_prompt_lab::error::read_file(&dir.join(f));
    let (train, test) = (read("train.jsonl")?, read("test.jsonl")?);
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    session.set_task(Task::builtin(
        &read("task.json")?,
        &text(train),
        &text(test),
    )?);

    let steps = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    session.lab.reset(
        &session.engine,
        Settings {
            steps,
            ..Settings::default()
        },
    )?;
    let before = block_on(
        session
            .lab
            .evaluate(&session.engine, Conditioning::SoftPrompt),
    )?
    .accuracy();
    while !session.lab.finished() {
        let p = block_on(session.lab.advance(&session.engine))?;
        if let Some(acc) = p.accuracy {
            println!(
                "step {:>4}  loss {:.4}  held-out {:.1}%",
                p.stats.step,
                p.stats.loss,
                100.0 * acc
            );
        }
    }
    let after = block_on(
        session
            .lab
            .evaluate(&session.engine, Conditioning::SoftPrompt),
    )?
    .accuracy();
    println!(
        "antonyms, held-out accuracy: {:.1}% at init -> {:.1}% after {steps} steps",
        100.0 * before,
        100.0 * after
    );
    Ok(())
}
