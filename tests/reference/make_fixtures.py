"""Reference fixtures for the Rust parity tests, made with Hugging Face transformers and PEFT.

Run once by hand (the outputs are committed, so tests need no Python and no network):

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/python make_fixtures.py

For each tiny random model (two GPT-2, a Llama with grouped-query attention, llama3 RoPE scaling
and an untied head, a Qwen2 with q/k/v biases and a tied head, all with a byte-level BPE tokenizer,
and a Llama with a SentencePiece-style Metaspace tokenizer that adds a BOS) it writes, under
fixtures/<name>/:
  config.json, model.safetensors, tokenizer.json   the model in Hugging Face layout
  adapter_init/                                    a PEFT prompt-tuning adapter (the fixed initial prompt)
  reference.safetensors                            tensors: logits, prompt gradient, trained prompt, and for
                                                   tiny-a and tiny-llama every weight's gradient under
                                                   model tuning (model_grad/<key>)
  reference.json                                   scalars and token ids
and, where fixtures/<name>/adapter_ours/ exists (written by the Rust test
`our_adapters_load_in_peft` with UPDATE=1), the tokens PEFT generates with that adapter.
and, under fixtures/bundled/, the logits of the bundled model (www/models/wordnet-gpt).
Everything is seeded, so a rerun gives the same files. `make_fixtures.py tiny-llama` makes only
the fixtures named.
"""

import itertools
import json
import shutil
import sys
from pathlib import Path

import torch
from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from transformers import (AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

HERE = Path(__file__).resolve().parent
OUT = HERE / "fixtures"
EOS = "<|endoftext|>"
# The SentencePiece-style tokenizer's specials, as Llama's tokenizers name them.
SP_UNK, SP_BOS, SP_EOS = "<unk>", "<s>", "</s>"

# Text for the byte-level BPE merges: a few plain sentences in the style of the toy tasks.
CORPUS = [
    "the opposite of hot is cold. the opposite of big is small. up and down, fast and slow.",
    "a salmon is a kind of animal. an apple is a kind of food. the cat sat on the mat.",
    "'wonderful' is a positive word. 'terrible' is a negative word. hello world!",
    "hot -> cold\nbig -> small\nup -> down\nfast -> slow\n",
] * 4

# Strings whose token ids the Rust tokenizer must reproduce exactly.
ID_STRINGS = [
    "hello world",
    " leading space",
    "two  spaces and trailing ",
    "new\nline\n\n",
    "unicode: naïve café – ☕ 日本語",
    "tabs\tand\r\nCRLF",
    f"text{EOS}more",
    "",
]

# Prompt-tuning batch: (input, output) pairs as the trainer formats them.
# The second input ends with a space: its token joins the answer's first word, so the scored ids
# are the tail of the joined text's ids only if input and answer are tokenized as one text.
EXAMPLES = [("hot ->", " cold"), ("big -> ", "small"), ("up ->", " down"), ("fast ->", " slow")]
LOGIT_TEXTS = ["hello world", "the cat sat on the mat.\n", "naïve café ☕"]
GEN_PROMPT = "hot ->"
N_VIRTUAL = 5
STEPS = 20
ADAM_LR = 0.05
SGD_LR = 0.5
GEN_TOKENS = 10
# The fixtures whose every weight's gradient is recorded (model tuning's parity: one per family).
MODEL_TUNING = ("tiny-a", "tiny-llama")

MODELS = {
    # f32, keys without the "transformer." prefix and with the old causal-mask buffers, like the
    # original GPT-2 checkpoints.
    "tiny-a": dict(n_embd=64, n_head=4, n_layer=2, n_positions=64, vocab_size=320, dtype=torch.float32,
                   prefix=False, seed=0),
    # f16, saved by save_pretrained ("transformer." prefix, lm_head tied and absent); head size 9 (odd).
    "tiny-b": dict(n_embd=36, n_head=4, n_layer=3, n_positions=48, vocab_size=300, dtype=torch.float16,
                   prefix=True, seed=1),
    # Llama: 4 query heads over 2 key/value heads, llama3 RoPE scaling (short original context so
    # every frequency band is hit), untied lm_head, f32.
    "tiny-llama": dict(family="llama", d=64, n_head=4, n_kv_head=2, n_layer=2, ffn=96, n_positions=64,
                       vocab_size=320, dtype=torch.float32, seed=2, tie=False, rope_theta=1000.0,
                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    # Qwen2: q/k/v biases, 4 query heads over 1 key/value head (head size 12), tied head, bf16.
    "tiny-qwen2": dict(family="qwen2", d=48, n_head=4, n_kv_head=1, n_layer=2, ffn=80, n_positions=64,
                       vocab_size=300, dtype=torch.bfloat16, seed=3, tie=True, rope_theta=1e6, rope_scaling=None),
    # Llama with a Metaspace (SentencePiece-style) tokenizer that adds <s>: the joined-text rule
    # and the BOS; default RoPE, tied head, 2 query heads per key/value head, f16.
    "tiny-llama-sp": dict(family="llama", d=32, n_head=4, n_kv_head=2, n_layer=2, ffn=64, n_positions=64,
                          vocab_size=320, dtype=torch.float16, seed=4, tie=True, rope_theta=10000.0,
                          rope_scaling=None, tokenizer="metaspace"),
}


def make_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def make_metaspace_tokenizer() -> Tokenizer:
    """BPE over Metaspace pieces ("▁" marks a word's start), adding <s> like Llama's tokenizers."""
    tok = Tokenizer(models.BPE(unk_token=SP_UNK))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=[SP_UNK, SP_BOS, SP_EOS], show_progress=False)
    tok.train_from_iterator(CORPUS + ID_STRINGS, trainer)  # every character of the test strings known
    bos = tok.token_to_id(SP_BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{SP_BOS} $A", pair=f"{SP_BOS} $A {SP_BOS} $B",
                                                       special_tokens=[(SP_BOS, bos)])
    return tok


def start_ids(tok):
    """The special ids the post-processor puts before a text (the Rust engine reads them the same way)."""
    enc = tok.encode("a")
    return [i for i, _ in itertools.takewhile(lambda p: p[1] == 1, zip(enc.ids, enc.special_tokens_mask))]


def encode_example(tok, inp, out):
    """Same rule as the Rust trainer: the start ids, then input + output + "\\n" tokenized as one
    text; the tokens that end inside the input are read, the rest scored (loss only on those)."""
    enc = tok.encode(inp + out + "\n", add_special_tokens=False)
    n_ctx = sum(1 for _ in itertools.takewhile(lambda o: o[1] <= len(inp), enc.offsets))
    start = start_ids(tok)
    ids = start + enc.ids
    n_read = len(start) + n_ctx
    return ids, [-100] * n_read + ids[n_read:]


def pad_batch(rows, pad_id):
    """Right padding: positions stay 0..len for the real tokens."""
    width = max(len(ids) for ids, _ in rows)
    ids = [r[0] + [pad_id] * (width - len(r[0])) for r in rows]
    labels = [r[1] + [-100] * (width - len(r[1])) for r in rows]
    mask = [[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows]
    return torch.tensor(ids), torch.tensor(labels), torch.tensor(mask)


def save_model(model, spec, d):
    model.config.save_pretrained(d)
    if spec.get("family") or spec["prefix"]:
        model.to(spec["dtype"]).save_pretrained(d, safe_serialization=True)
        model.to(torch.float32)
        return
    n_pos = spec["n_positions"]
    sd = {k.removeprefix("transformer."): v.contiguous() for k, v in model.state_dict().items()
          if k != "lm_head.weight"}
    for i in range(spec["n_layer"]):
        sd[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n_pos, n_pos)).view(1, 1, n_pos, n_pos)
    save_file({k: v.to(spec["dtype"]) for k, v in sd.items()}, str(d / "model.safetensors"),
              metadata={"format": "pt"})


def greedy_manual(model, prompt, ids):
    """Greedy decoding by full recomputation: the ground truth PEFT's cached generate must match."""
    ids = list(ids)
    out = []
    for _ in range(GEN_TOKENS):
        x = torch.tensor([ids])
        emb = model.get_input_embeddings()(x)
        if prompt is not None:
            emb = torch.cat([prompt.unsqueeze(0), emb], dim=1)
        nxt = int(model(inputs_embeds=emb).logits[0, -1].argmax())
        ids.append(nxt)
        out.append(nxt)
    return out


def new_model(spec, bos_id, eos_id):
    """A randomly initialised model of the spec's family (weights wide enough to give varied logits)."""
    if "family" not in spec:
        return GPT2LMHeadModel(GPT2Config(
            vocab_size=spec["vocab_size"], n_positions=spec["n_positions"], n_embd=spec["n_embd"],
            n_layer=spec["n_layer"], n_head=spec["n_head"], activation_function="gelu_new",
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
            initializer_range=0.1, bos_token_id=bos_id, eos_token_id=eos_id,
        ))
    rope = {"rope_type": "default", "rope_theta": spec["rope_theta"]}
    if spec["rope_scaling"]:
        rope = {**spec["rope_scaling"], "rope_theta": spec["rope_theta"]}
    common = dict(vocab_size=spec["vocab_size"], hidden_size=spec["d"], intermediate_size=spec["ffn"],
                  num_hidden_layers=spec["n_layer"], num_attention_heads=spec["n_head"],
                  num_key_value_heads=spec["n_kv_head"], max_position_embeddings=spec["n_positions"],
                  rms_norm_eps=1e-5, rope_parameters=rope, initializer_range=0.1,
                  tie_word_embeddings=spec["tie"], bos_token_id=bos_id, eos_token_id=eos_id)
    if spec["family"] == "llama":
        return LlamaForCausalLM(LlamaConfig(**common))
    model = Qwen2ForCausalLM(Qwen2Config(**common))
    with torch.no_grad():  # biases start at zero: make them matter
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0.0, 0.1)
    return model


def build(name, spec, tok):
    d = OUT / name
    ours = d / "adapter_ours"
    kept = {f.name: f.read_bytes() for f in ours.iterdir()} if ours.exists() else {}
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    metaspace = spec.get("tokenizer") == "metaspace"
    bos_id = tok.token_to_id(SP_BOS if metaspace else EOS)
    eos_id = tok.token_to_id(SP_EOS if metaspace else EOS)
    tok.save(str(d / "tokenizer.json"))

    torch.manual_seed(spec["seed"])
    model = new_model(spec, bos_id, eos_id).eval()
    save_model(model, spec, d)
    # The reference computes in f32 from the weights as stored (f16/bf16 rounding included).
    model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()
    hidden = model.get_input_embeddings().weight.shape[1]

    ref_json = {"eos_id": eos_id, "n_virtual": N_VIRTUAL, "examples": EXAMPLES,
                "logit_texts": LOGIT_TEXTS, "gen_prompt": GEN_PROMPT, "adam_lr": ADAM_LR, "sgd_lr": SGD_LR}
    tensors = {}

    ref_json["token_ids"] = []
    for text in ID_STRINGS:
        ids = tok.encode(text, add_special_tokens=False).ids
        # Metaspace decoding drops a leading space: the round trip is compared with this.
        ref_json["token_ids"].append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})

    ids, _, mask = pad_batch([(tok.encode(t).ids, []) for t in LOGIT_TEXTS], eos_id)
    with torch.no_grad():
        tensors["logits"] = model(input_ids=ids, attention_mask=mask).logits.contiguous()
    tensors["logits_mask"] = mask.to(torch.int32)

    # PEFT prompt tuning with a fixed, seeded initial prompt.
    pcfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=N_VIRTUAL,
                              prompt_tuning_init=PromptTuningInit.RANDOM)
    model.name_or_path = name  # recorded as base_model_name_or_path in the adapter config
    peft_model = get_peft_model(model, pcfg)
    prompt_param = peft_model.prompt_encoder["default"].embedding.weight
    g = torch.Generator().manual_seed(spec["seed"] + 100)
    init = torch.randn(N_VIRTUAL, hidden, generator=g) * 0.5
    with torch.no_grad():
        prompt_param.copy_(init)
    peft_model.save_pretrained(d / "adapter_init")
    (d / "adapter_init" / "README.md").unlink()  # PEFT's generated model-card template

    ids, labels, mask = pad_batch([encode_example(tok, i, o) for i, o in EXAMPLES], eos_id)
    ref_json["batch_ids"] = ids.tolist()
    ref_json["batch_labels"] = labels.tolist()
    if name in MODEL_TUNING:
        ref_json["model_tuning_loss"] = model_tuning_grads(model, ids, mask, labels, tensors)

    out = peft_model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    ref_json["loss"] = out.loss.item()
    tensors["prompt_grad"] = prompt_param.grad.detach().clone()
    base_grads = [n for n, p in peft_model.named_parameters() if p.grad is not None and p is not prompt_param]
    assert not base_grads, base_grads

    # Generation with the initial prompt. PEFT 0.21.2 + transformers 5.24 with the KV cache diverge
    # from the second new token on (the cached positions ignore the virtual tokens); without the
    # cache PEFT agrees with a plain greedy loop, which is what the Rust generator must match.
    gen_ids = tok.encode(GEN_PROMPT).ids
    peft_model.generation_config.eos_token_id = None
    peft_model.generation_config.pad_token_id = eos_id
    outputs = {}
    with torch.no_grad():
        for use_cache in (False, True):
            try:
                gen = peft_model.generate(input_ids=torch.tensor([gen_ids]), attention_mask=torch.ones(1, len(gen_ids)),
                                          max_new_tokens=GEN_TOKENS, do_sample=False, use_cache=use_cache)
                outputs[use_cache] = gen[0, -GEN_TOKENS:].tolist()
            except IndexError as e:  # the cached path can also index past the cache (seen on tiny-b)
                outputs[use_cache] = f"error: {e}"
        manual = greedy_manual(model, prompt_param.detach(), gen_ids)
        manual_no_prompt = greedy_manual(model, None, gen_ids)
    assert outputs[False] == manual, (outputs[False], manual)
    ref_json["peft_generate_with_cache"] = outputs[True]
    ref_json["greedy_with_prompt"] = manual
    ref_json["greedy_no_prompt"] = manual_no_prompt

    for opt_name, make_opt in [("adam", lambda p: torch.optim.Adam([p], lr=ADAM_LR)),
                               ("sgd", lambda p: torch.optim.SGD([p], lr=SGD_LR))]:
        with torch.no_grad():
            prompt_param.copy_(init)
        opt = make_opt(prompt_param)
        losses = []
        for _ in range(STEPS):
            opt.zero_grad()
            loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            opt.step()
            losses.append(loss.item())
        ref_json[f"{opt_name}_losses"] = losses
        tensors[f"{opt_name}_final_prompt"] = prompt_param.detach().clone()

    if kept:
        ref_json["peft_greedy_with_ours"] = greedy_with_our_adapter(model, d, ours, kept, gen_ids)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(d / "reference.safetensors"))
    (d / "reference.json").write_text(json.dumps(ref_json, indent=1, ensure_ascii=False) + "\n")
    print(name, "loss", ref_json["loss"], "adam", ref_json["adam_losses"][0], "->", ref_json["adam_losses"][-1])


def model_tuning_grads(model, ids, mask, labels, tensors):
    """Model tuning's loss (no prompt, every weight trained) and every weight's gradient, by key."""
    model.zero_grad()
    for p in model.parameters():
        p.requires_grad_(True)
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    for key, p in model.named_parameters():
        tensors[f"model_grad/{key}"] = p.grad.detach().clone()
        p.grad = None
        p.requires_grad_(False)
    return loss.item()


def greedy_with_our_adapter(model, d, ours, kept, gen_ids):
    """Loads the adapter the Rust engine wrote with PEFT and generates greedily (no cache, as above)."""
    from peft import PeftModel
    ours.mkdir()
    for file_name, data in kept.items():
        (ours / file_name).write_bytes(data)
    peft_model = PeftModel.from_pretrained(model, ours)
    peft_model.generation_config.eos_token_id = None
    peft_model.generation_config.pad_token_id = model.config.eos_token_id
    with torch.no_grad():
        gen = peft_model.generate(input_ids=torch.tensor([gen_ids]), attention_mask=torch.ones(1, len(gen_ids)),
                                  max_new_tokens=GEN_TOKENS, do_sample=False, use_cache=False)
    return gen[0, -GEN_TOKENS:].tolist()


BUNDLED = HERE.parent.parent / "www" / "models" / "wordnet-gpt"
BUNDLED_TEXTS = ["the opposite of hot is cold.", "hot ->", "'superb' is a positive word.\n"]


def bundled():
    """Logits of the bundled model (www/models/wordnet-gpt) as transformers computes them."""
    tok = Tokenizer.from_file(str(BUNDLED / "tokenizer.json"))
    model = GPT2LMHeadModel.from_pretrained(BUNDLED, torch_dtype=torch.float32, attn_implementation="eager").eval()
    ids, _, mask = pad_batch([(tok.encode(t).ids, []) for t in BUNDLED_TEXTS], tok.token_to_id(EOS))
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.contiguous()
    d = OUT / "bundled"
    d.mkdir(parents=True, exist_ok=True)
    save_file({"logits": logits, "logits_mask": mask.to(torch.int32)}, str(d / "reference.safetensors"))
    (d / "reference.json").write_text(json.dumps({"logit_texts": BUNDLED_TEXTS}, indent=1) + "\n")


def main():
    torch.use_deterministic_algorithms(True)
    tokenizers = {"bytelevel": make_tokenizer(), "metaspace": make_metaspace_tokenizer()}
    only = sys.argv[1:]
    for name, spec in MODELS.items():
        if not only or name in only:
            build(name, spec, tokenizers[spec.get("tokenizer", "bytelevel")])
    if not only or "bundled" in only:
        bundled()


if __name__ == "__main__":
    main()
