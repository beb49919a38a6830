//! The settings table reaches the page unchanged, and errors carry a kind programs can act on.

mod common;

use soft_prompt_lab::error::{Error, ErrorKind, ErrorView};
use soft_prompt_lab::page_table::page_module;
use soft_prompt_lab::protocol;
use soft_prompt_lab::protocol::calls::{CALLS, Call};
use soft_prompt_lab::settings::{PAGE_FIELDS, Settings};

/// `www/settings.js` and `www/protocol.js` are generated from Rust (`src/page_table.rs`,
/// `src/protocol/`); run with `UPDATE=1` to rewrite them.
#[test]
fn the_page_reads_the_settings_table_and_the_messages_from_rust() {
    for (file, want) in [
        ("settings.js", page_module()),
        ("protocol.js", protocol::page_module()),
    ] {
        let path = common::www(file);
        if std::env::var_os("UPDATE").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "www/{file} is out of date: run `UPDATE=1 cargo test --test settings`"
        );
    }
}

/// The calls table (`www/protocol.js` CALL) lists exactly `Call`'s ops: serde's refusal of an
/// unknown op names every variant it has.
#[test]
fn the_calls_table_lists_every_op_of_handle() {
    let err = serde_json::from_value::<Call>(serde_json::json!({"op": "?"}))
        .unwrap_err()
        .to_string();
    let listed = err.split("expected one of ").nth(1).expect(&err);
    let mut ops: Vec<&str> = listed
        .split(", ")
        .map(|v| v.trim_matches(|c: char| c == '`' || c.is_whitespace()))
        .collect();
    let mut table: Vec<&str> = CALLS.iter().filter(|c| !c.method).map(|c| c.name).collect();
    ops.sort_unstable();
    table.sort_unstable();
    assert_eq!(ops, table);
    // Fields arrive in camelCase, and one the op does not take is refused by name.
    let call = serde_json::json!({"op": "generate", "text": "hot ->", "maxNewTokens": 3});
    assert!(matches!(
        serde_json::from_value::<Call>(call).unwrap(),
        Call::Generate {
            max_new_tokens: 3,
            ..
        }
    ));
    let call = serde_json::json!({"op": "set-steps", "steps": 3, "step": 4});
    let err = serde_json::from_value::<Call>(call)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `step`"), "{err}");
}

/// The page sends only `PAGE_FIELDS`: they are `Settings`' own names, and with them alone the
/// engine's `Settings` deserialises to the same run (every other field has its default).
#[test]
fn the_page_fields_alone_make_the_engine_settings() {
    let full = serde_json::to_value(Settings::default()).unwrap();
    let page: serde_json::Map<String, serde_json::Value> = PAGE_FIELDS
        .iter()
        .map(|k| {
            let v = full
                .get(*k)
                .unwrap_or_else(|| panic!("{k} is not a Settings field"));
            (k.to_string(), v.clone())
        })
        .collect();
    let back: Settings = serde_json::from_value(page.into()).unwrap();
    assert_eq!(back, Settings::default());
}

#[test]
fn errors_have_kinds_and_only_a_lost_gpu_or_a_crash_is_fatal() {
    let lost = Error::GpuLost {
        reason: "Destroyed".into(),
    };
    assert_eq!(lost.kind(), ErrorKind::GpuLost);
    assert!(lost.is_fatal());
    let crash = Error::Panic {
        detail: "index out of bounds".into(),
    };
    assert_eq!(crash.kind(), ErrorKind::Panic);
    assert!(crash.is_fatal() && crash.to_string().contains("index out of bounds"));
    let line = Error::TaskLine {
        line: 3,
        detail: "no `=>`".into(),
    };
    let view = serde_json::to_value(ErrorView::from(&line)).unwrap();
    assert_eq!(
        view,
        serde_json::json!({"kind": "Task", "message": "task file line 3: no `=>`", "line": 3, "fatal": false})
    );
    for (e, kind) in [
        (Error::Device { detail: "x".into() }, ErrorKind::Device),
        (
            Error::NotReady {
                what: "the model",
                todo: "wait",
            },
            ErrorKind::NotReady,
        ),
        (Error::Internal { detail: "x".into() }, ErrorKind::Internal),
        (
            Error::LossNotFinite {
                step: 1,
                value: f32::NAN,
            },
            ErrorKind::Diverged,
        ),
    ] {
        assert_eq!(e.kind(), kind);
        assert!(!e.is_fatal(), "{e}");
        let v = serde_json::to_value(ErrorView::from(&e)).unwrap();
        assert!(v.get("line").is_none());
    }
}
