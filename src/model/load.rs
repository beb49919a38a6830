//! The load dispatch: a checked `model.safetensors` to the family's network. Above the families
//! and the reader, so `weights` never imports a family.

use burn::module::Module;
use burn::tensor::Device;

use super::gpt2::Gpt2;
use super::llama::Llama;
use super::weights::{WeightBytes, WeightReader};
use super::{Arch, Model, ModelConfig, Net};
use crate::error::Result;

/// Builds the frozen model from `model.safetensors`: every key, shape and dtype checked against
/// the config first, and anything left over named. On a GPU each weight matrix must fit one
/// binding (the vocabulary tables load in parts: `Table`).
pub fn load_weights(
    config: &ModelConfig,
    bytes: &dyn WeightBytes,
    device: &Device,
) -> Result<Model> {
    if let Some(limit) = crate::backend::binding_limit(device) {
        crate::backend::check_buffer_limit(config.largest_matrix_bytes(), limit)?;
    }
    let mut r = WeightReader::open(config, bytes, device)?;
    r.require_layers(config)?;
    let net = match &config.arch {
        Arch::Gpt2(g) => {
            let net = Gpt2::load(&mut r, config, g)?;
            r.tied_head(config)?;
            Net::Gpt2(net)
        }
        Arch::Llama(l) => {
            let net = Llama::load(&mut r, config, l)?;
            if l.tie_word_embeddings {
                r.tied_head(config)?;
            }
            Net::Llama(net)
        }
    };
    r.no_others(config)?;
    Ok(Model {
        net,
        config: config.clone(),
    }
    .no_grad())
}
