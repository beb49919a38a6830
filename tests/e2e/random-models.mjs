// Models of real shapes with seeded random weights, made at test time (nothing downloaded), and
// one too large to load: for the Hub tests (hub.test.mjs) and the page's figures (measure.mjs).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

/** A safetensors file of the given tensors, values from a seeded generator (bf16: the top half of an f32). */
function safetensors(tensors, seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return ((state >>> 8) / 2 ** 24) * 0.04 - 0.02;
  };
  const header = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, shape, norm] of tensors) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes], norm };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header, (k, v) => (k === 'norm' ? undefined : v)));
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  const f32 = new Float32Array(1);
  const u16 = new Uint16Array(f32.buffer);
  let at = 8 + json.length;
  for (const [, shape, norm] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1);
    for (let i = 0; i < n; i += 1) {
      f32[0] = norm ? 1 : next();
      out.writeUInt16LE(u16[1], at); // little-endian: the high half of the f32 is its bf16
      at += 2;
    }
  }
  return out;
}

/** SmolLM2's shapes (`HuggingFaceTB/SmolLM2-135M`'s and `-360M`'s config.json): d, layers, heads, kv heads, ffn. */
const SMOLLM2 = { '135m': [576, 30, 9, 3, 1536], '360m': [960, 32, 15, 5, 2560] };

/** A SmolLM2-shaped Llama's tensors (name, shape, is a norm) and config.json (`size` '135m' or '360m'). */
function smollm2Layout(size) {
  const [d, layers, heads, kvHeads, ffn] = SMOLLM2[size];
  const vocab = 49152;
  const kv = (d / heads) * kvHeads;
  const tensors = [['model.embed_tokens.weight', [vocab, d]], ['model.norm.weight', [d], true]];
  for (let i = 0; i < layers; i += 1) {
    const p = `model.layers.${i}.`;
    tensors.push([`${p}input_layernorm.weight`, [d], true], [`${p}post_attention_layernorm.weight`, [d], true],
      [`${p}self_attn.q_proj.weight`, [d, d]], [`${p}self_attn.k_proj.weight`, [kv, d]],
      [`${p}self_attn.v_proj.weight`, [kv, d]], [`${p}self_attn.o_proj.weight`, [d, d]],
      [`${p}mlp.gate_proj.weight`, [ffn, d]], [`${p}mlp.up_proj.weight`, [ffn, d]], [`${p}mlp.down_proj.weight`, [d, ffn]]);
  }
  const config = {
    model_type: 'llama', architectures: ['LlamaForCausalLM'], vocab_size: vocab, max_position_embeddings: 8192,
    hidden_size: d, intermediate_size: ffn, num_hidden_layers: layers, num_attention_heads: heads,
    num_key_value_heads: kvHeads, rms_norm_eps: 1e-5, rope_theta: 100000, hidden_act: 'silu',
    tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 0,
  };
  return { tensors, config };
}

/** Parameters of a SmolLM2-shaped model (its head tied to the embedding). */
export function smollm2Params(size = '135m') {
  return smollm2Layout(size).tensors.reduce((n, [, shape]) => n + shape.reduce((a, b) => a * b, 1), 0);
}

/** A SmolLM2-shaped Llama (`size` '135m' or '360m') with random bf16 weights, seeded. */
export function smollm2Shaped(size = '135m') {
  const { tensors, config } = smollm2Layout(size);
  return {
    'config.json': Buffer.from(JSON.stringify(config)),
    'model.safetensors': safetensors(tensors, 135),
    // The bundled tokenizer (4,096 tokens) fits the 49,152-row embedding.
    'tokenizer.json': readFileSync(join(ROOT, 'www/models/wordnet-gpt/tokenizer.json')),
  };
}

/** Qwen2.5-7B's shape (30 GB in f32): a config and a weights header, no weights behind it. */
export function tooLarge() {
  const config = {
    model_type: 'qwen2', vocab_size: 152064, max_position_embeddings: 32768, hidden_size: 3584,
    intermediate_size: 18944, num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4,
    rope_theta: 1e6, tie_word_embeddings: false,
  };
  const header = Buffer.from(JSON.stringify({ 'model.embed_tokens.weight': { dtype: 'BF16', shape: [152064, 3584], data_offsets: [0, 1089404928] } }));
  const weights = Buffer.alloc(8 + header.length + 1024);
  weights.writeBigUInt64LE(BigInt(header.length), 0);
  header.copy(weights, 8);
  return { 'config.json': Buffer.from(JSON.stringify(config)), 'model.safetensors': weights, 'tokenizer.json': Buffer.from('{}') };
}
