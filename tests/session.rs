//! What the page runs, natively: custom task parsing, the vocabulary map, and a whole session on
//! the bundled model (train, look, export, import).

mod common;

use common::{builtin, www};

use pollster::block_on;
use soft_prompt_lab::adapter::Precision;
use soft_prompt_lab::backend;
use soft_prompt_lab::error::Error;
use soft_prompt_lab::experiments::{ExperimentConfig, ExperimentName};
use soft_prompt_lab::job::Job;
use soft_prompt_lab::schedule::EvalCadence;
use soft_prompt_lab::session::{Conditioning, HandOut, JobAnswer, Role, Session, Settings};
use soft_prompt_lab::settings::InitName;
use soft_prompt_lab::tasks::Task;
use soft_prompt_lab::tasks::{Example, TaskKind, infer_kind, parse_custom, split_held_out};
use soft_prompt_lab::viz::VocabMap;

fn ex(input: &str, output: &str) -> Example {
    Example {
        input: input.into(),
        output: output.into(),
    }
}

#[test]
fn custom_examples_in_three_formats_read_alike() {
    let want = vec![ex("hot ->", " cold"), ex("big, wide ->", " small")];
    let arrows = parse_custom("hot => cold\n\n  big, wide =>  small \n").unwrap();
    let csv = parse_custom("input,output\nhot,cold\n\"big, wide\",small\n").unwrap();
    let jsonl = parse_custom(
        "{\"input\": \"hot ->\", \"output\": \" cold\"}\n{\"input\": \"big, wide ->\", \"output\": \" small\"}",
    )
    .unwrap();
    assert_eq!(arrows, want);
    assert_eq!(csv, want);
    assert_eq!(jsonl, want);
    // RFC 4180 doubled quotes inside a quoted field.
    assert_eq!(
        parse_custom("\"say \"\"hi\"\"\",hello").unwrap(),
        vec![ex("say \"hi\" ->", " hello")]
    );
}

#[test]
fn malformed_custom_examples_name_their_line() {
    let line = |text: &str| match parse_custom(text) {
        Err(Error::TaskLine { line, .. }) => line,
        other => panic!("expected a line-numbered error for {text:?}, got {other:?}"),
    };
    assert_eq!(line("hot => cold\nbig => small\nup down\n"), 3);
    assert_eq!(line("hot => cold\n =>  small\n"), 2);
    assert_eq!(line("a,b\nc,d,e\n"), 2);
    assert_eq!(line("a,b\n\"c,d\n"), 2);
    assert_eq!(line("\n\njust words\n"), 3);
    assert!(matches!(
        parse_custom("  \n\n"),
        Err(Error::TaskInvalid { .. })
    ));
}

#[test]
fn custom_tasks_get_a_kind_and_a_held_out_split() {
    let labels: Vec<Example> = (0..12)
        .map(|i| ex(&format!("w{i}"), if i % 2 == 0 { " yes" } else { " no" }))
        .collect();
    assert_eq!(
        infer_kind(&labels),
        TaskKind::Classify {
            labels: vec![" no".into(), " yes".into()]
        }
    );
    let distinct: Vec<Example> = (0..12)
        .map(|i| ex(&format!("w{i}"), &format!(" v{i}")))
        .collect();
    assert_eq!(infer_kind(&distinct), TaskKind::Generate);
    let (train, test) = split_held_out(distinct).unwrap();
    assert_eq!((train.len(), test.len()), (10, 2));
    let (train, test) = split_held_out(vec![ex("a", "b"), ex("c", "d")]).unwrap();
    assert_eq!((train.len(), test.len()), (1, 1));
    assert!(split_held_out(vec![ex("a", "b")]).is_err());
}

/// Points spread along two known orthogonal directions: PCA must find them (up to sign), in
/// order, with the variance shares of the construction. Tolerance 1e-3: power iteration in f64
/// on an exactly rank-2 covariance converges far below it; the f32 inputs bound the error.
#[test]
fn vocab_map_finds_principal_directions_and_nearest_tokens() {
    let d = 6;
    let (e1, e2) = ([0.6f32, 0.8, 0., 0., 0., 0.], [0f32, 0., 0., 1., 0., 0.]);
    let mut rows = Vec::new();
    // A full grid: the two coordinates are uncorrelated, so e1 and e2 are the exact axes.
    for ia in 0..20 {
        for ib in 0..10 {
            let a = (ia as f32 - 9.5) * 0.3; // wide along e1
            let b = (ib as f32 - 4.5) * 0.2; // narrow along e2
            rows.extend((0..d).map(|k| 5.0 + a * e1[k] + b * e2[k])); // offset: PCA must centre
        }
    }
    let map = VocabMap::from_rows(rows.clone(), d, |id| format!("t{id}"));
    let proj = map.project(&[5.0 + 0.6, 5.0 + 0.8, 5.0, 5.0, 5.0, 5.0]); // mean + e1
    assert!(
        (proj[0].abs() - 1.0).abs() < 1e-3 && proj[1].abs() < 1e-3,
        "{proj:?}"
    );
    let proj = map.project(&[5.0, 5.0, 5.0, 6.0, 5.0, 5.0]); // mean + e2
    assert!(
        proj[0].abs() < 1e-3 && (proj[1].abs() - 1.0).abs() < 1e-3,
        "{proj:?}"
    );
    let total = map.explained[0] + map.explained[1];
    assert!(
        (total - 1.0).abs() < 1e-3,
        "rank 2: all variance in two components"
    );
    assert!(
        map.explained[0] > 8.0 * map.explained[1],
        "{:?}",
        map.explained
    );
    assert_eq!(map.points.len(), 2 * 200);

    // A row's nearest token is itself, at cosine 1, then the rest in falling order.
    let near = map.nearest(&rows[7 * d..8 * d], 3, |id| format!("t{id}"));
    assert_eq!(near[0][0].id, 7);
    assert!((near[0][0].cosine - 1.0).abs() < 1e-5);
    assert!(near[0][0].cosine >= near[0][1].cosine && near[0][1].cosine >= near[0][2].cosine);
    assert_eq!(near[0][0].text, "t7");
}

fn open_bundled() -> Session {
    open_bundled_as(Role::Lab)
}

fn open_bundled_as(role: Role) -> Session {
    let read = |f: &str| std::fs::read(www(&format!("models/wordnet-gpt/{f}"))).unwrap();
    block_on(Session::open(
        read("config.json"),
        read("model.safetensors"),
        read("tokenizer.json"),
        &backend::cpu(),
        role,
    ))
    .unwrap()
}

/// A helper in another engine's pool draws nothing: it holds no vocabulary map, and asking it
/// for the prompt's views is a named error, not a crash.
#[test]
fn a_helper_engine_holds_no_vocabulary_map() {
    let lab = open_bundled();
    let mut helper = open_bundled_as(Role::Helper);
    let (l, h) = (lab.engine.loaded_view(), helper.engine.loaded_view());
    assert!(!l.map_points.is_empty() && !l.map_labels.is_empty());
    assert!(h.map_points.is_empty() && h.map_labels.is_empty());
    assert_eq!(h.info.fingerprint, l.info.fingerprint);
    helper.set_task(builtin("sentiment"));
    helper
        .lab
        .reset(&helper.engine, Settings::default())
        .unwrap();
    let e = block_on(helper.lab.prompt_view(&helper.engine)).unwrap_err();
    assert!(e.to_string().contains("helper engine"), "{e}");
}

#[test]
fn a_session_trains_shows_exports_and_imports_on_the_bundled_model() {
    let mut s = open_bundled();
    let info = s.engine.info();
    assert_eq!(info.params, 2_578_560);
    s.set_task(builtin("sentiment"));
    // lr 0.1: 30 steps reach ~79% held-out here (the CLI with the same settings measured 79.0%).
    let settings = Settings {
        steps: 30,
        lr: 0.1,
        ..Settings::default()
    };
    s.lab.reset(&s.engine, settings.clone()).unwrap();
    let before = block_on(s.lab.prompt_view(&s.engine)).unwrap();
    assert_eq!((before.n_virtual, before.d_model), (8, 192));
    assert_eq!(before.points.len(), 16);
    // Class-label init: the first two virtual tokens start on the labels " negative", " positive"
    // (single tokens in this vocabulary), so each is its own nearest token.
    assert_eq!(before.nearest[0][0].text, " negative");
    assert!((before.nearest[0][0].cosine - 1.0).abs() < 1e-5);

    let losses: Vec<f32> = (0..30)
        .map(|_| block_on(s.lab.step(&s.engine)).unwrap().loss)
        .collect();
    // Batch losses are noisy; compare means of the first and last ten steps (measured: ~4x lower).
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(
        mean(&losses[20..]) < 0.7 * mean(&losses[..10]),
        "{losses:?}"
    );
    let after = block_on(s.lab.prompt_view(&s.engine)).unwrap();
    assert_ne!(after.values, before.values, "the prompt moved");
    assert_ne!(after.points, before.points);
    assert_eq!(
        block_on(s.engine.fingerprint()).unwrap(),
        info.fingerprint,
        "base unchanged"
    );

    let soft = block_on(s.lab.evaluate(&s.engine, Conditioning::SoftPrompt)).unwrap();
    let none = block_on(s.lab.evaluate(&s.engine, Conditioning::NoPrompt)).unwrap();
    assert!(
        soft.accuracy() > none.accuracy(),
        "{} vs {}",
        soft.accuracy(),
        none.accuracy()
    );

    // Export, start over, import: the same predictions as before.
    let files = block_on(s.lab.export(&s.engine, "wordnet-gpt", Precision::F32)).unwrap();
    s.lab
        .reset(
            &s.engine,
            Settings {
                seed: 1,
                ..settings.clone()
            },
        )
        .unwrap();
    assert_eq!(s.lab.import(&s.engine, &files, settings, "").unwrap(), 8);
    let again = block_on(s.lab.evaluate(&s.engine, Conditioning::SoftPrompt)).unwrap();
    assert_eq!(again.predictions, soft.predictions);
    assert_eq!(
        block_on(s.lab.prompt_view(&s.engine)).unwrap().values,
        after.values
    );
}

/// Backend "auto" times a step on each backend: a positive figure, without a task, and the
/// user's run is left as it was.
#[test]
fn timing_a_step_leaves_the_run_alone() {
    let mut s = open_bundled();
    let ms = block_on(s.engine.time_steps(2)).unwrap();
    assert!(ms.is_finite() && ms > 0.0, "{ms}");
    s.set_task(builtin("antonyms"));
    s.lab.reset(&s.engine, Settings::default()).unwrap();
    block_on(s.lab.step(&s.engine)).unwrap();
    let before = block_on(s.lab.prompt_view(&s.engine)).unwrap().values;
    block_on(s.engine.time_steps(1)).unwrap();
    assert_eq!(
        block_on(s.lab.prompt_view(&s.engine)).unwrap().values,
        before
    );
    assert_eq!(block_on(s.lab.step(&s.engine)).unwrap().step, 2);
}

#[test]
fn training_starts_near_the_no_prompt_loss_and_falls_far_below_it() {
    // The loss near 13 at step 1 is the frozen model's own loss on the task's format (measured:
    // 12.5 with no prompt, 13.3 at the first step on sentiment), whatever the init; 30 steps take
    // it below a fifth of that.
    let mut s = open_bundled();
    s.set_task(builtin("sentiment"));
    let reference = block_on(s.engine.loss_without_prompt()).unwrap();
    assert!((10.0..16.0).contains(&reference), "{reference}");
    for init in [InitName::ClassLabels, InitName::Random] {
        s.lab
            .reset(
                &s.engine,
                Settings {
                    init,
                    lr: 0.1,
                    ..Settings::default()
                },
            )
            .unwrap();
        let losses: Vec<f32> = (0..30)
            .map(|_| block_on(s.lab.step(&s.engine)).unwrap().loss)
            .collect();
        assert!(
            (losses[0] - reference).abs() < 0.25 * reference,
            "{init:?}: {losses:?}"
        );
        assert!(
            losses[25..].iter().all(|l| *l < 0.2 * reference),
            "{init:?}: {losses:?}"
        );
    }
}

#[test]
fn experiments_train_their_own_prompts_and_summarise_every_arm() {
    let mut s = open_bundled();
    s.set_task(builtin("sentiment"));
    s.lab.reset(&s.engine, Settings::default()).unwrap();
    let before = block_on(s.lab.prompt_view(&s.engine)).unwrap().values;
    // (experiment, arms): text against soft has sentiment's own prompt, "Answer: " and the labels.
    for (name, arms) in [
        (ExperimentName::PromptLength, 5),
        (ExperimentName::Init, 5),
        (ExperimentName::Transfer, 3),
        (ExperimentName::TextVsSoft, 4),
        (ExperimentName::Ensemble, 3),
    ] {
        let config = ExperimentConfig {
            steps: 4,
            seeds: 2,
            ..ExperimentConfig::new(name, Settings::default())
        };
        s.host
            .start(&mut s.engine, config, Some(builtin("antonyms")))
            .unwrap();
        let summary = loop {
            let p = block_on(s.host.step(&mut s.engine)).unwrap();
            assert!(p.steps_done <= p.steps_total && p.runs_done <= p.runs);
            if let Some(done) = p.done {
                break done;
            }
        };
        assert_eq!(summary.arms.len(), arms, "{name:?}");
        for a in &summary.arms {
            assert!(
                a.runs >= 1 && (0.0..=1.0).contains(&a.mean) && a.min <= a.max,
                "{name:?}: {a:?}"
            );
        }
        if name == ExperimentName::Transfer {
            // Accuracy by step for the two arms on the task (not for the source's own runs).
            let curves: Vec<usize> = summary.runs.iter().map(|r| r.curve.len()).collect();
            assert_eq!(curves, [0, 0, 4, 4, 4, 4], "{curves:?}");
        }
    }
    assert_eq!(
        block_on(s.lab.prompt_view(&s.engine)).unwrap().values,
        before,
        "the session's prompt is untouched"
    );
    let same_task = s.host.start(
        &mut s.engine,
        ExperimentConfig::new(ExperimentName::Transfer, Settings::default()),
        Some(builtin("sentiment")),
    );
    assert!(matches!(same_task, Err(Error::Setting { .. })));
    // Your own examples have no text prompt: the init experiment leaves text init out.
    let examples = "hot => cold\nbig => small\nup => down\nwet => dry\nold => new\n";
    s.set_task(Task::custom("custom", examples).unwrap());
    let config = ExperimentConfig {
        steps: 1,
        seeds: 1,
        ..ExperimentConfig::new(ExperimentName::Init, Settings::default())
    };
    s.host.start(&mut s.engine, config, None).unwrap();
    let summary = loop {
        if let Some(done) = block_on(s.host.step(&mut s.engine)).unwrap().done {
            break done;
        }
    };
    assert_eq!(summary.arms.len(), 4, "{:?}", summary.arms);
}

/// The page's pool runs an experiment's trainings on helper engines (the host's `tick` hands
/// them out; a helper's session runs the job step by step) while this engine steps its own: the
/// summary must be the one a single engine makes, exactly (the same seeds on the same model),
/// whatever order the runs finish in; a job whose helper failed runs here instead. Transfer and
/// the ensemble are the experiments whose runs depend on others (a source prompt by seed, the
/// vote on all); scale sends jobs on family members (each engine loads the member it needs)
/// that measure footprints. The loop is the worker's (www/engine/experiment.js), message for
/// message: what crosses to the helper and back crosses as JSON.
#[test]
fn an_experiment_gives_the_same_summary_with_its_trainings_on_a_helper() {
    let mut here = open_bundled();
    let mut helper = open_bundled();
    here.set_task(builtin("sentiment"));
    let family = ["tiny-a", "tiny-b"];
    let hold = |s: &mut Session, k: Option<usize>| {
        if let Some(k) = k {
            s.engine.hold_family_member(None);
            s.engine
                .hold_family_member(Some((k, common::load(family[k]))));
        }
    };
    fn crossed<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
        serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
    }
    let summary_of = |s: &mut Session, mut helper: Option<&mut Session>| {
        let mut answers = Vec::new();
        let mut away: Option<usize> = None;
        let mut failed_one = false;
        let mut helped = 0;
        loop {
            let idle = usize::from(helper.is_some() && away.is_none());
            let mut turn = s.host.tick(&s.engine, answers.split_off(0), idle).unwrap();
            if turn.done {
                break (turn.reports.pop().unwrap().done.unwrap(), helped);
            }
            for HandOut { job, task } in turn.jobs {
                let h = helper.as_deref_mut().unwrap();
                let (job, task): (Job, Task) = (crossed(&job), crossed(&task));
                if !failed_one {
                    // The first helper "dies" before answering: the run comes back here.
                    failed_one = true;
                    answers.push(JobAnswer {
                        index: job.index,
                        result: None,
                    });
                } else {
                    away = Some(job.index);
                    hold(h, h.helper.model_needed(&h.engine, &job));
                    h.helper.start_job(&mut h.engine, task, job).unwrap();
                }
            }
            hold(s, turn.load_member);
            let p = block_on(s.host.step(&mut s.engine)).unwrap();
            if let Some(done) = p.done {
                break (done, helped);
            }
            // One helper step per step here; all of the job when nothing is left here.
            if let (Some(h), Some(index)) = (helper.as_deref_mut(), away) {
                loop {
                    if let Some(result) = block_on(h.helper.job_step(&h.engine)).unwrap() {
                        answers.push(JobAnswer {
                            index,
                            result: Some(crossed(&result)),
                        });
                        away = None;
                        helped += 1;
                        break;
                    }
                    if !p.waiting {
                        break;
                    }
                }
            }
        }
    };
    for name in [
        ExperimentName::Transfer,
        ExperimentName::Ensemble,
        ExperimentName::Scale,
    ] {
        let config = ExperimentConfig {
            steps: 3,
            seeds: 2,
            models: match name {
                ExperimentName::Scale => family.map(String::from).to_vec(),
                _ => Vec::new(),
            },
            ..ExperimentConfig::new(name, Settings::default())
        };
        let mut summaries = Vec::new();
        for with_helper in [false, true] {
            here.host
                .start(&mut here.engine, config.clone(), Some(builtin("antonyms")))
                .unwrap();
            let h = with_helper.then_some(&mut helper);
            let (summary, helped) = summary_of(&mut here, h);
            assert!(
                !with_helper || helped >= 1,
                "{name:?}: no run on the helper"
            );
            summaries.push(serde_json::to_value(summary).unwrap());
        }
        assert_eq!(summaries[0], summaries[1], "{name:?}");
        if name == ExperimentName::Scale {
            let runs = summaries[1]["runs"].as_array().unwrap();
            let kept = runs
                .iter()
                .filter(|r| r["footprint"]["baseUnchanged"] == true);
            assert_eq!(
                kept.count(),
                8,
                "2 models × 2 trainings × 2 seeds: {runs:?}"
            );
        }
    }
}

/// Scale runs the text prompt, prompt tuning and model tuning on each model of a family, one
/// model after the other, counts each model's parameters, and changes no base model.
#[test]
fn scale_runs_three_methods_on_each_model_of_a_family() {
    use burn::module::Module;
    use soft_prompt_lab::experiments::Experiment;
    use soft_prompt_lab::loader::LoadedModel;
    let bundled = LoadedModel::from_dir(&www("models/wordnet-gpt"), &backend::cpu()).unwrap();
    let family = [common::load("tiny-a"), bundled];
    let fingerprints = |f: &[LoadedModel]| -> Vec<u64> {
        f.iter()
            .map(|lm| block_on(lm.model.fingerprint()).unwrap())
            .collect()
    };
    let before = fingerprints(&family);
    let config = ExperimentConfig {
        steps: 3,
        seeds: 2,
        models: vec!["tiny-a".into(), "wordnet-gpt".into()],
        ..ExperimentConfig::new(ExperimentName::Scale, Settings::default())
    };
    let mut e = Experiment::new(config, builtin("sentiment"), None).unwrap();
    let mut needed = Vec::new();
    let summary = loop {
        let k = e.model_needed().unwrap();
        needed.push(k);
        let p = block_on(e.step(&family[k], None)).unwrap();
        // 2 models × (2 prompt tunings + 2 model tunings) × 3 steps.
        assert_eq!(p.steps_total, 24);
        if let Some(done) = p.done {
            break done;
        }
    };
    assert!(needed.is_sorted(), "one model after the other: {needed:?}");
    let arms: Vec<(String, usize, usize)> = summary
        .arms
        .iter()
        .map(|a| (summary.label(a), a.model, a.runs))
        .collect();
    let want = |m: &str, k| {
        [
            (format!("{m}: text prompt"), k, 1),
            (format!("{m}: prompt tuning"), k, 2),
            (format!("{m}: model tuning"), k, 2),
        ]
    };
    assert_eq!(arms, [want("tiny-a", 0), want("wordnet-gpt", 1)].concat());
    for (size, lm) in summary.models.iter().zip(&family) {
        assert_eq!(
            size.parameters,
            lm.model.num_params() as u64,
            "{}",
            size.name
        );
    }
    assert_eq!(fingerprints(&family), before, "every base is bit-identical");
    let no_family = ExperimentConfig::new(ExperimentName::Scale, Settings::default());
    assert!(matches!(
        Experiment::new(no_family, builtin("sentiment"), None),
        Err(Error::Setting { .. })
    ));
}

/// The page's way through scale: the session names the family member each step needs, holds
/// one at a time, and refuses a step on a model it was not given.
#[test]
fn a_session_steps_scale_through_the_family_members_it_is_given() {
    use soft_prompt_lab::loader::LoadedModel;
    let family = ["tiny-a", "tiny-b"];
    let config = ExperimentConfig {
        steps: 2,
        seeds: 1,
        models: family.map(String::from).to_vec(),
        ..ExperimentConfig::new(ExperimentName::Scale, Settings::default())
    };
    let mut s = open_bundled();
    s.set_task(builtin("sentiment"));
    s.host.start(&mut s.engine, config, None).unwrap();
    let before = block_on(s.host.step(&mut s.engine)).unwrap_err();
    assert!(matches!(before, Error::NotReady { .. }), "{before}");
    let mut loaded = Vec::new();
    let summary = loop {
        if let Some(k) = s.host.model_needed(&s.engine) {
            loaded.push(k);
            s.engine.hold_family_member(None);
            let lm: LoadedModel = common::load(family[k]);
            s.engine.hold_family_member(Some((k, lm)));
        }
        if let Some(done) = block_on(s.host.step(&mut s.engine)).unwrap().done {
            break done;
        }
    };
    assert_eq!(loaded, [0, 1], "each member loaded once, in order");
    assert_eq!(s.host.model_needed(&s.engine), None, "nothing more to load");
    let names: Vec<&str> = summary.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, family);
    // The tables the command line prints and the page draws.
    let tables = soft_prompt_lab::report::tables(&summary);
    assert_eq!(
        tables.len(),
        3,
        "the arms, Figure 1's, what each method changed"
    );
    assert_eq!(
        tables[1].header[2..],
        ["text prompt", "prompt tuning", "model tuning"]
    );
    assert_eq!(tables[1].rows.len(), 2);
    // tiny-b: 8 virtual tokens × d_model 36 learnt; model tuning changes its copy, not the base.
    assert_eq!(
        tables[2].rows[2][..4],
        ["tiny-b", "prompt tuning", "288", "0 of 60,660"]
    );
    assert_eq!(tables[2].rows[2][5], "bit-identical");
    let changed = &tables[2].rows[3];
    assert_eq!(
        (changed[1].as_str(), changed[5].as_str()),
        ("model tuning", "bit-identical")
    );
    assert!(!changed[3].starts_with("0 of"), "{changed:?}");
}

#[test]
fn session_settings_and_order_errors_are_named() {
    let mut s = open_bundled();
    assert!(matches!(
        s.lab.reset(&s.engine, Settings::default()),
        Err(Error::NotReady {
            what: "the task",
            ..
        })
    ));
    s.set_task(Task::custom("mine", "hot => cold\nbig => small\nup => down").unwrap());
    for bad in [
        Settings {
            virtual_tokens: 33,
            ..Settings::default()
        },
        Settings {
            lr: f64::NAN,
            ..Settings::default()
        },
        Settings {
            init: InitName::Text,
            ..Settings::default()
        },
        Settings {
            batch: 0,
            ..Settings::default()
        },
    ] {
        assert!(matches!(
            s.lab.reset(&s.engine, bad),
            Err(Error::Setting { .. })
        ));
    }
    assert!(
        matches!(
            block_on(s.lab.step(&s.engine)),
            Err(Error::NotReady {
                what: "the soft prompt",
                ..
            })
        ),
        "no prompt yet"
    );
    // Class labels on a generation task fall back to sampled vocabulary.
    s.lab.reset(&s.engine, Settings::default()).unwrap();
    assert!(block_on(s.lab.step(&s.engine)).is_ok());
}

/// The session's one schedule: what each `advance` returns, when the run ends, a step past the
/// end, and the baselines computed once per task.
#[test]
fn the_schedule_advances_snapshots_evaluates_and_ends() {
    let mut s = open_bundled();
    s.set_task(builtin("sentiment"));
    s.lab.set_eval_cadence(EvalCadence::Every(4));
    s.lab
        .reset(
            &s.engine,
            Settings {
                steps: 6,
                batch: 4,
                ..Settings::default()
            },
        )
        .unwrap();
    let mut seen = Vec::new();
    while !s.lab.finished() {
        let p = block_on(s.lab.advance(&s.engine)).unwrap();
        assert_eq!(p.target, 6);
        assert!(p.stats.loss.is_finite() && p.ms_per_step > 0.0);
        seen.push((
            p.stats.step,
            p.prompt.is_some(),
            p.accuracy.is_some(),
            p.done.map(|d| d.unchanged),
        ));
    }
    assert_eq!(
        seen,
        [
            (1, false, false, None),
            (2, false, false, None),
            (3, false, false, None),
            (4, false, true, None),
            (5, true, false, None),
            (6, true, true, Some(true)),
        ]
    );
    // The Step button past the end: one more step, the end moves with it.
    let p = block_on(s.lab.advance(&s.engine)).unwrap();
    assert_eq!((p.stats.step, p.target), (7, 7));
    assert!(p.done.is_some());
    // Going on to 10 steps resumes the same prompt.
    s.lab.set_steps(10).unwrap();
    assert!(!s.lab.finished());
    assert!(s.lab.set_steps(0).is_err());

    let first = block_on(s.lab.compare(&s.engine)).unwrap();
    let again = block_on(s.lab.compare(&s.engine)).unwrap();
    assert_eq!(first.no_prompt, again.no_prompt);
    assert_eq!(
        first.text_prompt.predictions.len(),
        first.soft_prompt.predictions.len()
    );
    assert_eq!(first.soft_prompt, again.soft_prompt);
    // The soft prompt's column is the schedule's evaluation of this step, reused: the same as a
    // fresh one.
    let fresh = block_on(s.lab.evaluate(&s.engine, Conditioning::SoftPrompt)).unwrap();
    assert_eq!(first.soft_prompt.predictions, fresh.predictions);
}

/// Settings arrive from the page as JSON: unknown names are refused, missing optional fields
/// take the table's defaults.
#[test]
fn settings_from_the_page_use_the_table() {
    let page = r#"{"virtualTokens": 4, "init": "uniform", "initText": "", "lr": 0.05, "steps": 7, "batch": 3, "seed": 42}"#;
    let s: Settings = serde_json::from_str(page).unwrap();
    assert_eq!(s.init, InitName::Uniform);
    assert_eq!(s.max_grad_norm, Settings::default().max_grad_norm);
    assert!(serde_json::from_str::<Settings>(&page.replace("uniform", "zeros")).is_err());
    assert_eq!(InitName::from_name("auto"), Some(InitName::ClassLabels));
}
