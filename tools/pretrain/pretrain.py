"""Pretrains the bundled frozen model, a small GPT-2 on the WordNet/AFINN corpus, and its family of
sizes for the scale experiment. Seeded.

    cd tools/data && npm ci && python3 make_data.py
    cd ../pretrain && python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/python pretrain.py --minutes 25               # the bundled model (size m)
    .venv/bin/python pretrain.py --size xs --steps 4706     # a family member: the bundled model's steps

Writes www/models/<folder>/{config.json, model.safetensors (f16), tokenizer.json, training.json}.
The model card (www/models/wordnet-gpt/README.md) quotes training.json. The family shares the bundled
model's tokenizer file, corpus, batch and schedule; only the architecture differs.
"""

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "data" / "out" / "corpus.txt"
EOS = "<|endoftext|>"
SEED = 1234
VOCAB = 4096
MODELS = HERE.parent.parent / "www" / "models"
# name: (folder under www/models, architecture). m is the bundled model; head size 32 throughout.
SIZES = {
    "xs": ("wordnet-gpt-xs", dict(n_embd=64, n_layer=2, n_head=2, n_positions=64)),
    "s": ("wordnet-gpt-s", dict(n_embd=128, n_layer=3, n_head=4, n_positions=64)),
    "m": ("wordnet-gpt", dict(n_embd=192, n_layer=4, n_head=6, n_positions=64)),
}
SEQ = 64
BATCH = 32
LR = 3e-3
WARMUP = 200


def make_tokenizer(lines):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[EOS], min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    # Lines are stored as they are read at inference: each fact starts after a newline, with a leading space
    # on the words that follow it ("hot -> cold" tokenizes " cold").
    tok.train_from_iterator(lines, trainer)
    return tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=SIZES, default="m")
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=40.0, help="wall-clock training budget")
    budget.add_argument("--steps", type=int, help="a step budget instead (the family: the bundled model's steps)")
    args = ap.parse_args()
    folder, arch = SIZES[args.size]
    out = MODELS / folder
    random.seed(SEED)
    torch.manual_seed(SEED)
    lines = CORPUS.read_text().splitlines()
    # The family reads the bundled model's tokenizer: the same ids in every size.
    tok = make_tokenizer(lines) if args.size == "m" else Tokenizer.from_file(str(MODELS / "wordnet-gpt" / "tokenizer.json"))
    eos_id = tok.token_to_id(EOS)
    # One stream: every line ends in a newline (the answer end the soft prompt learns to emit).
    ids = []
    for enc in tok.encode_batch([l + "\n" for l in lines]):
        ids += enc.ids
    data = torch.tensor(ids, dtype=torch.long)
    print(f"corpus {len(lines)} lines, {len(ids)} tokens, vocab {tok.get_vocab_size()}")

    cfg = GPT2Config(vocab_size=VOCAB, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=eos_id, eos_token_id=eos_id, **arch)
    model = GPT2LMHeadModel(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), weight_decay=0.1)
    seconds = args.minutes * 60
    start = time.time()
    step, losses = 0, []
    model.train()
    # Cosine decay over the budget: the fraction of the time or of the steps spent.
    progress = (lambda: step / args.steps) if args.steps else (lambda: (time.time() - start) / seconds)
    while progress() < 1.0:
        frac = progress()
        lr = LR * min(1.0, (step + 1) / WARMUP) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(data) - SEQ - 1, (BATCH,))
        x = torch.stack([data[s:s + SEQ] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {sum(losses[-100:]) / 100:.3f} lr {lr:.2e} {time.time() - start:.0f}s", flush=True)
    wall = time.time() - start

    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)
    tok.save(str(out / "tokenizer.json"))
    stats = {"parameters": n_params, "vocab_size": VOCAB, **arch, "steps": step, "batch": BATCH, "seq_len": SEQ,
             "tokens_seen": step * BATCH * SEQ, "corpus_tokens": len(ids), "final_loss": sum(losses[-100:]) / min(100, len(losses)),
             "wall_time_s": round(wall), "seed": SEED, "torch_threads": torch.get_num_threads()}
    (out / "training.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
