//! The model's tokenizer (`tokenizer.json`), checked against the model's vocabulary.
//!
//! The same `tokenizers` build (the wasm one, fancy-regex) is used natively and in the browser,
//! so both produce the same ids; the parity test pins them to Hugging Face's.

use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::model::ModelConfig;

/// The GPT-2 tokenizers' end-of-text token: the end token when the config names none (or none
/// that fits the vocabulary).
const END_OF_TEXT: &str = "<|endoftext|>";

/// The end-of-text ids to use, and notes on what the config named outside the vocabulary.
/// transformers writes GPT-2's defaults (50256) into a config made without them, so a smaller
/// vocabulary can come with ids that name no token: the engine never adds BOS and pads with EOS,
/// so out-of-range BOS and PAD ids are ignored, and an out-of-range EOS is replaced by the
/// tokenizer's own end token (an error when it has none: generation would never stop at the end).
fn special_ids(
    config: &ModelConfig,
    tokenizer_eos: Option<u32>,
) -> Result<(Vec<u32>, Vec<String>)> {
    let vocab = config.vocab_size as u64;
    let special = &config.special;
    let mut notes = Vec::new();
    for (field, ids) in [
        ("bos_token_id", &special.bos),
        ("pad_token_id", &special.pad),
    ] {
        for id in ids.iter().filter(|&&id| id >= vocab) {
            notes.push(format!(
                "config.json's {field} {id} is outside the vocabulary ({vocab} tokens): ignored (not used here)"
            ));
        }
    }
    let (inside, outside): (Vec<u64>, Vec<u64>) = special.eos.iter().partition(|&&id| id < vocab);
    let eos: Vec<u32> = inside.into_iter().map(|id| id as u32).collect();
    if eos.is_empty() && !outside.is_empty() {
        let id = tokenizer_eos.ok_or(Error::TokenIdOutOfRange {
            field: "eos_token_id",
            id: outside[0],
            vocab: config.vocab_size,
        })?;
        notes.push(format!(
            "config.json's eos_token_id {} is outside the vocabulary ({vocab} tokens): the tokenizer's {END_OF_TEXT} (id {id}) is used instead",
            outside[0]
        ));
        return Ok((vec![id], notes));
    }
    for id in outside {
        notes.push(format!(
            "config.json's eos_token_id lists {id}, outside the vocabulary ({vocab} tokens): ignored"
        ));
    }
    Ok(match (eos.is_empty(), tokenizer_eos) {
        (true, Some(id)) => (vec![id], notes),
        _ => (eos, notes),
    })
}

/// The special ids the post-processor adds before a text (read from what it does to one word, so
/// any post-processor kind is covered; ids it adds after, such as a pair separator or an EOS, are
/// not used: an example's end is the answer-end marker).
fn start_ids(inner: &Tokenizer) -> Result<Vec<u32>> {
    let enc = inner
        .encode("a", true)
        .map_err(|e| Error::TokenizerInvalid {
            detail: format!("its post-processor fails on a plain word ({e})"),
        })?;
    Ok(enc
        .get_ids()
        .iter()
        .zip(enc.get_special_tokens_mask())
        .take_while(|&(_, &special)| special == 1)
        .map(|(&id, _)| id)
        .collect())
}

#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// End-of-text ids: generation stops at any of them; the first pads rows.
    pub eos_ids: Vec<u32>,
    /// What was decided about special-token ids the config names but the vocabulary lacks,
    /// in words for the page and the command line.
    pub notes: Vec<String>,
    /// The most text bytes one token stands for (the longest vocabulary entry), when the tokenizer
    /// does not normalise text first. A text longer than this times `max_tokens` cannot fit the
    /// model, and is refused before tokenizing it (megabytes take the tokenizer many seconds).
    bytes_per_token: Option<usize>,
    /// The model's `n_positions`.
    max_tokens: usize,
    /// The ids the tokenizer's post-processor puts before a text (a BOS for SentencePiece-style
    /// Llama tokenizers, none for GPT-2's): transformers adds them when it tokenizes an example,
    /// so every sequence the model reads starts with them, after the virtual tokens (as in PEFT).
    pub start_ids: Vec<u32>,
}

impl TextTokenizer {
    pub fn from_bytes(bytes: &[u8], config: &ModelConfig) -> Result<Self> {
        // `tokenizers` panics on some syntax errors (inside components it parses in two passes)
        // instead of returning an error, and a panic kills the page's worker: check syntax first.
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| {
            Error::TokenizerInvalid {
                detail: format!("not valid JSON ({e})"),
            }
        })?;
        let inner = Tokenizer::from_bytes(bytes).map_err(|e| Error::TokenizerInvalid {
            detail: e.to_string(),
        })?;
        let tokenizer_vocab = inner.get_vocab_size(true);
        if tokenizer_vocab > config.vocab_size {
            return Err(Error::TokenizerMismatch {
                tokenizer_vocab,
                model_vocab: config.vocab_size,
            });
        }
        let (eos_ids, notes) = special_ids(config, inner.token_to_id(END_OF_TEXT))?;
        let bytes_per_token = inner.get_normalizer().is_none().then(|| {
            let longest = inner.get_vocab(true).keys().map(String::len).max();
            longest.unwrap_or(1).max(1)
        });
        let start_ids = start_ids(&inner)?;
        Ok(Self {
            inner,
            eos_ids,
            notes,
            bytes_per_token,
            max_tokens: config.n_positions,
            start_ids,
        })
    }

    /// The id used to pad rows on the right. Padding is never attended to, so any id works; EOS is
    /// the convention (GPT-2 has no pad token).
    pub fn pad_id(&self) -> u32 {
        self.eos_ids.first().copied().unwrap_or(0)
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }

    /// Token ids of `text`, without special tokens added around it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.encoding(text)?.get_ids().to_vec())
    }

    /// Token ids of `text` as the start of what the model reads: the start ids (BOS), then the text.
    pub fn encode_start(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.start_ids.clone();
        ids.extend(self.encode(text)?);
        Ok(ids)
    }

    /// `context` followed by `answer`, tokenized as one text, with the start ids first; returns the
    /// ids and how many of them are context (the tokens that end inside `context`). Tokenizing the
    /// answer alone would not give the tail of the joined text for SentencePiece-style tokenizers
    /// (Metaspace marks a word's start, so `" cold"` alone gains a second `▁`); byte-level BPE gives
    /// the same ids either way at the space before an answer. A token that spans the boundary is
    /// predicted, so the scored ids are exactly the tail of the joined text's ids.
    pub fn encode_pair(&self, context: &str, answer: &str) -> Result<(Vec<u32>, usize)> {
        let enc = self.encoding(&format!("{context}{answer}"))?;
        let inside = enc
            .get_offsets()
            .iter()
            .take_while(|&&(_, end)| end <= context.len())
            .count();
        let mut ids = self.start_ids.clone();
        ids.extend_from_slice(enc.get_ids());
        Ok((ids, self.start_ids.len() + inside))
    }

    fn encoding(&self, text: &str) -> Result<tokenizers::Encoding> {
        if let Some(per_token) = self.bytes_per_token
            && text.len() > per_token * self.max_tokens
        {
            return Err(Error::TextTooLong {
                bytes: text.len(),
                max: self.max_tokens,
            });
        }
        self.inner.encode(text, false).map_err(|e| Error::Tokenize {
            what: format!("{text:?}"),
            detail: e.to_string(),
        })
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| Error::Tokenize {
            what: format!("ids {ids:?}"),
            detail: e.to_string(),
        })
    }

    /// The text of one token as it reads in context (byte-level pieces decoded). A piece of a
    /// multi-byte character does not decode alone: it is shown as the tokenizer spells it.
    pub fn token_text(&self, id: u32) -> String {
        match self.decode(&[id]) {
            Ok(t) if !t.contains('\u{FFFD}') => t,
            _ => self
                .inner
                .id_to_token(id)
                .unwrap_or_else(|| format!("<{id}>")),
        }
    }
}
