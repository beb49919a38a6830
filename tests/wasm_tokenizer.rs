//! In wasm32 (run by wasm-bindgen-test-runner under Node): the tokenizer gives the same ids as
//! Hugging Face tokenizers, the same fixture the native parity test checks. Together they show
//! that host and browser encode alike.
#![cfg(target_arch = "wasm32")]

mod common;

use soft_prompt_lab::loader::parse_config;
use soft_prompt_lab::text::TextTokenizer;
use wasm_bindgen_test::wasm_bindgen_test;

const CONFIG: &[u8] = include_bytes!("reference/fixtures/tiny-a/config.json");
const TOKENIZER: &[u8] = include_bytes!("reference/fixtures/tiny-a/tokenizer.json");
const REFERENCE: &[u8] = include_bytes!("reference/fixtures/tiny-a/reference.json");

#[wasm_bindgen_test]
fn token_ids_match_huggingface_in_wasm() {
    let tok = TextTokenizer::from_bytes(TOKENIZER, &parse_config(CONFIG).unwrap()).unwrap();
    let reference: serde_json::Value = serde_json::from_slice(REFERENCE).unwrap();
    for (text, expected) in common::token_id_cases(&reference) {
        assert_eq!(tok.encode(&text).unwrap(), expected, "{text:?}");
    }
}
