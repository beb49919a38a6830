//! The model's tokenizer (`tokenizer.json`), checked against the model's vocabulary.
//!
//! The same `tokenizers` build (the wasm one, fancy-regex) is used natively and in the browser,
//! so both produce the same ids; the parity test pins them to Hugging Face's.

use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::model::GptConfig;

#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// End of text: generation stops at it.
    pub eos_id: Option<u32>,
    /// The most text bytes one token stands for (the longest vocabulary entry), when the tokenizer
    /// does not normalise text first. A text longer than this times `max_tokens` cannot fit the
    /// model, and is refused before tokenizing it (megabytes take the tokenizer many seconds).
    bytes_per_token: Option<usize>,
    /// The model's `n_positions`.
    max_tokens: usize,
}

impl TextTokenizer {
    pub fn from_bytes(bytes: &[u8], config: &GptConfig) -> Result<Self> {
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
        let eos_id = config
            .eos_token_id
            .or_else(|| inner.token_to_id("<|endoftext|>"));
        let bytes_per_token = inner.get_normalizer().is_none().then(|| {
            let longest = inner.get_vocab(true).keys().map(String::len).max();
            longest.unwrap_or(1).max(1)
        });
        Ok(Self {
            inner,
            eos_id,
            bytes_per_token,
            max_tokens: config.n_positions,
        })
    }

    /// The id used to pad rows on the right. Padding is never attended to, so any id works; EOS is
    /// the convention (GPT-2 has no pad token).
    pub fn pad_id(&self) -> u32 {
        self.eos_id.unwrap_or(0)
    }

    /// Token ids of `text`, without special tokens added around it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        if let Some(per_token) = self.bytes_per_token
            && text.len() > per_token * self.max_tokens
        {
            return Err(Error::TextTooLong {
                bytes: text.len(),
                max: self.max_tokens,
            });
        }
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenize {
                what: format!("{text:?}"),
                detail: e.to_string(),
            })?;
        Ok(enc.get_ids().to_vec())
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
