//! Seeded fuzzing of every file a user or a host page can hand the engine: model weights, config,
//! tokenizer, adapters and task files, mutated thousands of ways (byte flips, truncation at every
//! structural boundary, safetensors header edits, JSON edits, hostile task text). Each case must
//! end in `Ok` or a named error (any kind but `Internal`, with a message) — never a panic, an
//! abort or a hang. The seed is fixed, so a failure names a case that reproduces.
//!
//! A representative subset (with the outcome seen here) is written to
//! `tests/e2e/artifacts/fuzz-corpus/` for the page test that feeds it to the wasm build
//! (`tests/e2e/fuzz.test.mjs`): a panic there would kill the worker.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use pollster::block_on;
use serde_json::{Value, json};
use soft_prompt_lab::adapter::{self, AdapterFiles};
use soft_prompt_lab::backend;
use soft_prompt_lab::error::{Error, ErrorKind};
use soft_prompt_lab::inspect::{Step, header_length, inspect};
use soft_prompt_lab::loader::{LoadedModel, ModelFiles};
use soft_prompt_lab::model::{load_weights, parse_config};
use soft_prompt_lab::session::{Role, Session, Settings};
use soft_prompt_lab::tasks::Task;
use soft_prompt_lab::text::TextTokenizer;

/// A case slower than this counts as a hang (the slowest legitimate one, a 10 MB task line, takes
/// well under a second natively).
const HANG: Duration = Duration::from_secs(10);
/// Every how many cases one goes into the corpus for the page test.
const CORPUS_EVERY: usize = 29;

/// SplitMix64: a seeded, dependency-free generator, so the cases never change with a crate update.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The tally of a fuzz run; `failures` must stay empty.
#[derive(Default)]
struct Tally {
    cases: usize,
    ok: usize,
    named: std::collections::BTreeMap<String, usize>,
    failures: Vec<String>,
    slowest: (Duration, String),
    /// The model the current cases are for (the corpus names it).
    model: &'static str,
    corpus: Vec<Value>,
    /// Every case goes into the corpus while set (the few that must also run in the page).
    keep_all: bool,
}

/// Which file a case replaces, for the corpus.
#[derive(Clone, Copy)]
enum Slot {
    Weights,
    Config,
    Tokenizer,
    Adapter,
    AdapterConfig,
    Task,
    /// A built-in task's files: the page only reads them from its own server, so not in the corpus.
    Builtin,
}

impl Tally {
    /// Runs one case; `what` names it, `slot`/`bytes` describe it for the corpus.
    fn run<T>(
        &mut self,
        what: &str,
        slot: Slot,
        bytes: &[u8],
        f: impl FnOnce() -> Result<T, Error>,
    ) {
        self.cases += 1;
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(f));
        let took = started.elapsed();
        if took > self.slowest.0 {
            self.slowest = (took, what.to_string());
        }
        let outcome = match result {
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.failures.push(format!("{what}: panicked: {msg}"));
                return;
            }
            Ok(Ok(_)) => {
                self.ok += 1;
                "ok".to_string()
            }
            Ok(Err(e)) => {
                let kind = e.kind();
                if kind == ErrorKind::Internal || e.to_string().trim().is_empty() {
                    self.failures.push(format!("{what}: unnamed error: {e}"));
                }
                let name = format!("{kind:?}");
                *self.named.entry(name.clone()).or_default() += 1;
                name
            }
        };
        if took > HANG {
            self.failures.push(format!("{what}: took {took:?}"));
        }
        let sampled = self.keep_all || self.cases.is_multiple_of(CORPUS_EVERY);
        if let (true, Some(slot)) = (sampled, slot_name(slot)) {
            let file = format!("{:05}.bin", self.cases);
            std::fs::write(corpus_dir().join(&file), bytes).unwrap();
            self.corpus.push(json!({"case": what, "model": self.model, "slot": slot, "file": file, "outcome": outcome}));
        }
    }
}

fn slot_name(slot: Slot) -> Option<&'static str> {
    Some(match slot {
        Slot::Weights => "model.safetensors",
        Slot::Config => "config.json",
        Slot::Tokenizer => "tokenizer.json",
        Slot::Adapter => "adapter_model.safetensors",
        Slot::AdapterConfig => "adapter_config.json",
        Slot::Task => "task",
        Slot::Builtin => return None,
    })
}

/// A safetensors file split into its header (JSON) and data.
fn split_safetensors(bytes: &[u8]) -> (Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        serde_json::from_slice(&bytes[8..8 + n]).unwrap(),
        bytes[8 + n..].to_vec(),
    )
}

fn join_safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Mutations of a safetensors file: truncations at every boundary, the length field, header
/// edits (dtype, shape, offsets, keys, duplicates), byte flips, non-finite data.
fn safetensors_cases(bytes: &[u8], rng: &mut Rng, flips: usize) -> Vec<(String, Vec<u8>)> {
    let mut cases = Vec::new();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let (header, data) = split_safetensors(bytes);
    let tensors: Vec<String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();

    let mut cuts = vec![
        0,
        1,
        4,
        7,
        8,
        9,
        8 + n / 2,
        8 + n - 1,
        8 + n,
        bytes.len() - 1,
    ];
    for k in &tensors {
        let off = &header[k]["data_offsets"];
        let (s, e) = (
            off[0].as_u64().unwrap() as usize,
            off[1].as_u64().unwrap() as usize,
        );
        cuts.extend([8 + n + s, 8 + n + s + 1, 8 + n + e - 1]);
    }
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts.into_iter().filter(|&c| c < bytes.len()) {
        cases.push((format!("truncated at byte {cut}"), bytes[..cut].to_vec()));
    }

    for len in [
        0u64,
        1,
        n as u64 - 1,
        n as u64 + 1,
        bytes.len() as u64,
        1 << 40,
        u64::MAX,
    ] {
        let mut b = bytes.to_vec();
        b[..8].copy_from_slice(&len.to_le_bytes());
        cases.push((format!("header length {len}"), b));
    }

    let edit = |f: &dyn Fn(&mut Value)| -> Vec<u8> {
        let mut h = header.clone();
        f(&mut h);
        join_safetensors(&h.to_string(), &data)
    };
    let big = 1u64 << 40;
    for k in &tensors {
        for dtype in [
            "F64", "F32", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F8_E4M3", "Q4", "",
        ] {
            cases.push((
                format!("{k}: dtype {dtype}"),
                edit(&|h| h[k]["dtype"] = json!(dtype)),
            ));
        }
        let shape = header[k]["shape"].as_array().unwrap().clone();
        let shapes: Vec<Value> = vec![
            json!([]),
            json!(shape.iter().skip(1).collect::<Vec<_>>()),
            json!([shape.clone(), vec![json!(1)]].concat()),
            json!(
                shape
                    .iter()
                    .map(|d| d.as_u64().unwrap() + 1)
                    .collect::<Vec<_>>()
            ),
            json!(shape.iter().map(|_| 0).collect::<Vec<_>>()),
            json!(shape.iter().map(|_| big).collect::<Vec<_>>()),
            json!([-1]),
            json!("64"),
            json!([u64::MAX, 2]),
        ];
        for s in shapes {
            cases.push((
                format!("{k}: shape {s}"),
                edit(&|h| h[k]["shape"] = s.clone()),
            ));
        }
        let off = header[k]["data_offsets"].clone();
        let (s, e) = (off[0].as_u64().unwrap(), off[1].as_u64().unwrap());
        let offsets: Vec<Value> = vec![
            json!([e, s]),
            json!([s, s]),
            json!([0, e]),
            json!([s + 1, e + 1]),
            json!([s, data.len() as u64 + 4]),
            json!([big, big + 4]),
            json!([u64::MAX - 1, u64::MAX]),
            json!([s]),
            json!(["0", "4"]),
        ];
        for o in offsets {
            cases.push((
                format!("{k}: data_offsets {o}"),
                edit(&|h| h[k]["data_offsets"] = o.clone()),
            ));
        }
        cases.push((
            format!("{k}: removed"),
            edit(&|h| {
                h.as_object_mut().unwrap().remove(k);
            }),
        ));
        cases.push((
            format!("{k}: renamed"),
            edit(&|h| {
                let v = h.as_object_mut().unwrap().remove(k).unwrap();
                h[format!("{k}.renamed")] = v;
            }),
        ));
        // A duplicate key: the JSON text holds `k` twice, the second pointing elsewhere.
        let mut dup = header.clone();
        let other = json!({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]});
        dup.as_object_mut().unwrap().remove(k);
        let text = dup.to_string();
        let text = format!("{{\"{k}\":{},\"{k}\":{other},{}", header[k], &text[1..]);
        cases.push((
            format!("{k}: duplicate key"),
            join_safetensors(&text, &data),
        ));
    }
    for (name, h) in [
        ("header is an array", json!([1, 2])),
        ("header is null", Value::Null),
        ("header metadata not strings", {
            let mut h = header.clone();
            h["__metadata__"] = json!({"format": 3, "x": [1]});
            h
        }),
        ("header with an extra tensor", {
            let mut h = header.clone();
            h["extra.weight"] = json!({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]});
            h
        }),
    ] {
        cases.push((name.to_string(), join_safetensors(&h.to_string(), &data)));
    }
    cases.push(("header not UTF-8".into(), {
        let mut b = bytes.to_vec();
        b[9] = 0xff;
        b
    }));

    // Non-finite values (0xFF.. is a NaN in every float width) in each tensor.
    for k in &tensors {
        let s = header[k]["data_offsets"][0].as_u64().unwrap() as usize;
        let mut b = bytes.to_vec();
        b[8 + n + s..8 + n + s + 4].fill(0xff);
        cases.push((format!("{k}: NaN"), b));
    }

    for i in 0..flips {
        let mut b = bytes.to_vec();
        for _ in 0..1 + rng.below(8) {
            // Mostly in the header, where a flip changes structure; sometimes in the data.
            let at = if rng.below(10) < 7 {
                8 + rng.below(n)
            } else {
                rng.below(b.len())
            };
            b[at] ^= 1 << rng.below(8);
        }
        cases.push((format!("byte flips #{i}"), b));
    }
    cases
}

/// JSON edits of an object file: each key set to hostile values or removed, and byte flips.
fn json_cases(bytes: &[u8], keys: &[&str], rng: &mut Rng, flips: usize) -> Vec<(String, Vec<u8>)> {
    let base: Value = serde_json::from_slice(bytes).unwrap();
    let values = [
        json!(0),
        json!(-1),
        json!(1_000_000_000u64),
        json!(u64::MAX),
        json!(1.5),
        json!(f64::MAX),
        json!("12"),
        Value::Null,
        json!([]),
        json!({}),
        json!(true),
        json!("<script>alert(1)</script>"),
    ];
    let mut cases = Vec::new();
    for key in keys {
        for v in &values {
            let mut c = base.clone();
            c[*key] = v.clone();
            cases.push((format!("{key} = {v}"), serde_json::to_vec(&c).unwrap()));
        }
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(*key);
        cases.push((format!("{key} removed"), serde_json::to_vec(&c).unwrap()));
    }
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        cases.push((format!("truncated at byte {cut}"), bytes[..cut].to_vec()));
    }
    cases.push(("not an object".into(), b"[1, 2, 3]".to_vec()));
    cases.push((
        "UTF-8 BOM".into(),
        [&[0xEF, 0xBB, 0xBF][..], bytes].concat(),
    ));
    for i in 0..flips {
        let mut b = bytes.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len());
            b[at] ^= 1 << rng.below(8);
        }
        cases.push((format!("byte flips #{i}"), b));
    }
    cases
}

/// The `config.json` fields each family reads (and a few it must ignore or refuse).
fn config_keys(name: &str) -> Vec<&'static str> {
    let special = [
        "model_type",
        "tie_word_embeddings",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
    ];
    let own: &[&str] = if GPT2_MODELS.contains(&name) {
        &[
            "n_layer",
            "n_head",
            "n_embd",
            "vocab_size",
            "n_positions",
            "n_ctx",
            "n_inner",
            "layer_norm_epsilon",
            "activation_function",
        ]
    } else {
        &[
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "hidden_size",
            "head_dim",
            "intermediate_size",
            "vocab_size",
            "max_position_embeddings",
            "rms_norm_eps",
            "rope_parameters",
            "rope_theta",
            "rope_scaling",
            "hidden_act",
            "use_sliding_window",
            "layer_types",
            "attention_bias",
            "mlp_bias",
        ]
    };
    own.iter().chain(&special).copied().collect()
}

/// Special-token ids as configs give them: transformers' GPT-2 defaults past a small vocabulary,
/// lists (newer configs list several end tokens), ids at the vocabulary's edge.
fn special_id_cases(bytes: &[u8], vocab: usize) -> Vec<(String, Vec<u8>)> {
    let base: Value = serde_json::from_slice(bytes).unwrap();
    let values = [
        json!(50256),
        json!(vocab),
        json!(vocab - 1),
        json!([0, 50256]),
        json!([50256, 50257]),
        json!([0, -1]),
        json!([[0]]),
    ];
    let mut cases = Vec::new();
    for key in ["bos_token_id", "eos_token_id", "pad_token_id"] {
        for v in &values {
            let mut c = base.clone();
            c[key] = v.clone();
            cases.push((format!("{key} = {v}"), serde_json::to_vec(&c).unwrap()));
        }
    }
    let mut c = base;
    for key in ["bos_token_id", "eos_token_id", "pad_token_id"] {
        c[key] = json!(50256);
    }
    cases.push((
        "every special token_id = 50256 (transformers' defaults)".into(),
        serde_json::to_vec(&c).unwrap(),
    ));
    cases
}

/// Settings for a training turn on a fuzzed input: few virtual tokens, a small batch, one step
/// (the run's end: its held-out evaluation is due).
fn tiny_run() -> Settings {
    Settings {
        virtual_tokens: 2,
        batch: 4,
        steps: 1,
        ..Settings::default()
    }
}

/// A loaded model as a user goes on with it: one turn of training (a step and the held-out
/// evaluation at the run's end) on a few examples, and a greedy
/// continuation (which pads with and stops at the end token).
fn train_and_generate(lm: LoadedModel) -> Result<(), Error> {
    let mut session = block_on(Session::new(lm))?;
    let examples = "hot => cold\nbig => small\nup => down\nwet => dry\nold => new\n";
    session.set_task(Task::custom("custom", examples)?);
    session.lab.reset(&session.engine, tiny_run())?;
    block_on(session.lab.advance(&session.engine))?;
    block_on(session.lab.generate(&session.engine, "hot ->", 3))?;
    Ok(())
}

/// Task texts as a careless or hostile source could hand them over.
fn task_texts(rng: &mut Rng) -> Vec<(String, String)> {
    let arrows = "hot => cold\nbig => small\nup => down\nfast => slow\nwet => dry\nold => new\n";
    let csv =
        "input,output\nhot,cold\n\"big, wide\",small\n\"say \"\"hi\"\"\",bye\nup,down\nwet,dry\n";
    let jsonl = "{\"input\": \"hot ->\", \"output\": \" cold\"}\n{\"input\": \"up ->\", \"output\": \" down\"}\n\
                 {\"input\": \"wet ->\", \"output\": \" dry\"}\n{\"input\": \"big ->\", \"output\": \" small\"}\n\
                 {\"input\": \"old ->\", \"output\": \" new\"}\n";
    let mut t: Vec<(String, String)> = vec![
        ("empty".into(), String::new()),
        ("blank lines".into(), "\n\n  \n\t\n".into()),
        ("BOM arrows".into(), format!("\u{feff}{arrows}")),
        ("BOM csv".into(), format!("\u{feff}{csv}")),
        ("BOM jsonl".into(), format!("\u{feff}{jsonl}")),
        ("CRLF arrows".into(), arrows.replace('\n', "\r\n")),
        ("CRLF csv".into(), csv.replace('\n', "\r\n")),
        ("CRLF jsonl".into(), jsonl.replace('\n', "\r\n")),
        ("CR only".into(), arrows.replace('\n', "\r")),
        (
            "quoted newline in csv".into(),
            "a,b\n\"x\ny\",z\n\"unterminated,q\n".into(),
        ),
        ("empty fields csv".into(), "a,b\n,x\ny,\n,\n".into()),
        ("empty arrow sides".into(), " => cold\nhot => \n=>\n".into()),
        ("three columns".into(), "a,b,c\n1,2,3\n".into()),
        (
            "jsonl numbers".into(),
            "{\"input\": 1, \"output\": 2}\n".into(),
        ),
        (
            "jsonl nested".into(),
            "{\"input\": {\"a\": 1}, \"output\": [\"b\"]}\n".into(),
        ),
        ("jsonl array".into(), "[1, 2]\n".into()),
        (
            "jsonl deep".into(),
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
        ),
        (
            "control characters".into(),
            "a\u{0}b => c\u{7}d\nx\u{1b}[31m => y\n".repeat(5),
        ),
        (
            "markup".into(),
            "<img src=x onerror=alert(1)> => <script>alert(2)</script>\n".repeat(6),
        ),
        (
            "right-to-left and emoji".into(),
            "\u{202e}abc => 😀\nשלום => עולם\n".repeat(5),
        ),
        ("one example".into(), "hot => cold\n".into()),
        ("one label many times".into(), "a => yes\n".repeat(50)),
    ];
    // A 10 MB line, and 10,000 lines.
    t.push((
        "10 MB line".into(),
        format!(
            "{} => x\nhot => cold\nup => down\nwet => dry\nold => new\n",
            "w".repeat(10 << 20)
        ),
    ));
    t.push((
        "10 MB answer".into(),
        format!(
            "hot => {}\nup => down\nwet => dry\nold => new\nbig => small\n",
            "w ".repeat(5 << 20)
        ),
    ));
    t.push((
        "10,000 lines".into(),
        (0..10_000)
            .map(|i| format!("w{i} => v{}\n", i % 7))
            .collect(),
    ));
    // Random printable and unprintable soup built from the formats' own characters.
    let alphabet = [
        "a", "b", " ", ",", "\"", "=>", "\n", "\r\n", "{", "}", ":", "\t", "é", "\u{0}", "\\", "'",
    ];
    for i in 0..300 {
        let s: String = (0..rng.below(200)).map(|_| *rng.pick(&alphabet)).collect();
        t.push((format!("soup #{i}"), s));
    }
    t
}

fn model_files(name: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    (
        read(name, "config.json"),
        read(name, "model.safetensors"),
        read(name, "tokenizer.json"),
    )
}

fn corpus_dir() -> PathBuf {
    root().join("tests/e2e/artifacts/fuzz-corpus")
}

#[test]
fn every_mutated_input_ends_in_ok_or_a_named_error() {
    // Panics are caught per case and reported below; their default message would only be noise.
    std::panic::set_hook(Box::new(|_| {}));
    let device = backend::cpu();
    let mut rng = Rng(0x5EED_F00D);
    let mut tally = Tally::default();
    let _ = std::fs::remove_dir_all(corpus_dir());
    std::fs::create_dir_all(corpus_dir()).unwrap();

    for name in MODELS {
        tally.model = name;
        let (config, weights, tokenizer) = model_files(name);
        let cfg = parse_config(&config).unwrap();
        for (what, bytes) in safetensors_cases(&weights, &mut rng, 400) {
            tally.run(
                &format!("{name} weights: {what}"),
                Slot::Weights,
                &bytes,
                || {
                    // As the page reads it before the download: the length, then the header.
                    let n = header_length(&bytes)? as usize;
                    let header = bytes.get(8..8 + n).ok_or_else(|| Error::WeightsCorrupt {
                        detail: "the header runs past the file's end".into(),
                    })?;
                    inspect(
                        &config,
                        Some(header),
                        bytes.len() as u64,
                        Step::typical(16, 8),
                    )?;
                    load_weights(&cfg, &bytes, &device)
                },
            );
        }
        let keys = config_keys(name);
        let mut config_cases = json_cases(&config, &keys, &mut rng, 60);
        let generic = config_cases.len();
        config_cases.extend(special_id_cases(&config, cfg.vocab_size));
        for (i, (what, bytes)) in config_cases.into_iter().enumerate() {
            // A config that loads must also train and generate: special-token ids are only used
            // there (an id outside the vocabulary once loaded, then panicked in a gather). The
            // special-id cases all go to the page test too.
            tally.keep_all = i >= generic;
            tally.run(
                &format!("{name} config: {what}"),
                Slot::Config,
                &bytes,
                || {
                    inspect(&bytes, None, weights.len() as u64, Step::typical(16, 8))?;
                    let files = ModelFiles {
                        config_json: &bytes,
                        safetensors: &weights,
                        tokenizer_json: &tokenizer,
                    };
                    let lm = LoadedModel::from_bytes(files, &device)?;
                    train_and_generate(lm)
                },
            );
            tally.keep_all = false;
        }
        let tok_keys = [
            "model",
            "added_tokens",
            "pre_tokenizer",
            "normalizer",
            "decoder",
            "post_processor",
            "truncation",
            "padding",
        ];
        let mut tok_cases = json_cases(&tokenizer, &tok_keys, &mut rng, 150);
        let tok: Value = serde_json::from_slice(&tokenizer).unwrap();
        for (what, edit) in [
            ("vocab emptied", json!({})),
            (
                "vocab with an id past the model's",
                json!({"a": 0, "b": 100_000}),
            ),
            ("vocab with negative id", json!({"a": -1})),
        ] {
            let mut t = tok.clone();
            t["model"]["vocab"] = edit;
            tok_cases.push((what.into(), serde_json::to_vec(&t).unwrap()));
        }
        let mut t = tok.clone();
        t["model"]["merges"] = json!([["a"], "x y z", 7]);
        tok_cases.push(("merges garbage".into(), serde_json::to_vec(&t).unwrap()));
        let mut t = tok.clone();
        t["added_tokens"] = json!([{"id": 4_000_000_000u64, "content": "<x>", "special": true}]);
        tok_cases.push((
            "added token id huge".into(),
            serde_json::to_vec(&t).unwrap(),
        ));
        for (what, bytes) in tok_cases {
            tally.run(
                &format!("{name} tokenizer: {what}"),
                Slot::Tokenizer,
                &bytes,
                || {
                    let t = TextTokenizer::from_bytes(&bytes, &cfg)?;
                    for text in ["hot -> cold", "", "\u{0}é😀 <|endoftext|>"] {
                        let ids = t.encode(text)?;
                        t.decode(&ids)?;
                    }
                    t.decode(&[u32::MAX, cfg.vocab_size as u32])?;
                    Ok(())
                },
            );
        }

        // Adapters against the model they were made for.
        let lm = load(name);
        let dir = fixture_dir(name).join("adapter_init");
        let a_config = std::fs::read(dir.join("adapter_config.json")).unwrap();
        let a_weights = std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
        for (what, bytes) in safetensors_cases(&a_weights, &mut rng, 150) {
            let files = AdapterFiles {
                config_json: a_config.clone(),
                safetensors: bytes.clone(),
            };
            tally.run(
                &format!("{name} adapter weights: {what}"),
                Slot::Adapter,
                &bytes,
                || adapter::load(&files, &lm.model),
            );
        }
        let a_keys = [
            "num_virtual_tokens",
            "token_dim",
            "peft_type",
            "task_type",
            "prompt_tuning_init",
            "prompt_tuning_init_text",
            "num_layers",
        ];
        for (what, bytes) in json_cases(&a_config, &a_keys, &mut rng, 60) {
            let files = AdapterFiles {
                config_json: bytes.clone(),
                safetensors: a_weights.clone(),
            };
            tally.run(
                &format!("{name} adapter config: {what}"),
                Slot::AdapterConfig,
                &bytes,
                || adapter::load(&files, &lm.model),
            );
        }
    }

    // Task files, parsed as the page does, and every task that parses is trained one step on
    // tiny-a (tokenizing every example: overlong sequences must be named, not truncated wrongly).
    let (c, w, t) = model_files("tiny-a");
    let mut session = block_on(Session::open(c, w, t, &device, Role::Lab)).unwrap();
    tally.model = "tiny-a";
    let spec = std::fs::read(www("tasks/antonyms/task.json")).unwrap();
    for (what, text) in task_texts(&mut rng) {
        tally.run(
            &format!("custom task: {what}"),
            Slot::Task,
            text.as_bytes(),
            || {
                let task = Task::custom("custom", &text)?;
                session.set_task(task);
                session.lab.reset(&session.engine, tiny_run())?;
                block_on(session.lab.step(&session.engine))
            },
        );
        tally.run(
            &format!("built-in task files: {what}"),
            Slot::Builtin,
            text.as_bytes(),
            || Task::builtin(&spec, &text, &text),
        );
    }
    for (what, bytes) in json_cases(
        &spec,
        &["name", "type", "labels", "text_prompt", "init_text"],
        &mut rng,
        40,
    ) {
        tally.run(&format!("task.json: {what}"), Slot::Builtin, &bytes, || {
            Task::builtin(
                &bytes,
                "{\"input\": \"a ->\", \"output\": \" b\"}",
                "{\"input\": \"c ->\", \"output\": \" d\"}",
            )
        });
    }

    let _ = std::panic::take_hook();
    println!(
        "{} cases: {} ok, named errors {:?}; slowest {:?} ({})",
        tally.cases, tally.ok, tally.named, tally.slowest.0, tally.slowest.1
    );
    std::fs::write(
        corpus_dir().join("corpus.json"),
        serde_json::to_vec(&tally.corpus).unwrap(),
    )
    .unwrap();
    assert!(tally.cases > 3000, "only {} cases", tally.cases);
    assert!(
        tally.failures.is_empty(),
        "{} of {} cases failed:\n{}",
        tally.failures.len(),
        tally.cases,
        tally.failures.join("\n")
    );
}
