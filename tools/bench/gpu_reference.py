"""PyTorch + PEFT's prompt-tuning step on a CUDA GPU, beside our native WebGPU figures (gpu.md).

Usage (on a machine with CUDA, torch, transformers and peft; no network):
    python3 tools/bench/gpu_reference.py [STEPS]
The bundled model (www/models/wordnet-gpt) and a SmolLM2-135M-shaped Llama with random weights
(made from its config here): batch 16 rows of 20 random tokens, the last 4 scored, 8 virtual
tokens, Adam (lr 0.03) with gradient clipping, as reference.py's step. Prints a markdown table:
median ms per step after 5 warm-up steps, and the CUDA kernels one step launches (PyTorch's
profiler), eager and under torch.compile (which fuses kernels and replays CUDA graphs).
"""

import os
import statistics
import sys
import time

import torch
from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
BATCH, WIDTH, SCORED, N_VIRTUAL, WARMUP = 16, 20, 4, 8, 5
# SmolLM2-135M's shape (benches/common/mod.rs SMOLLM2_135M).
SMOLLM2_135M = LlamaConfig(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                           num_key_value_heads=3, intermediate_size=1536, vocab_size=49152,
                           tie_word_embeddings=True, rope_theta=100000.0, max_position_embeddings=2048)


def prompt_tuned(model):
    config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=N_VIRTUAL,
                                prompt_tuning_init=PromptTuningInit.RANDOM)
    return get_peft_model(model.cuda(), config)


def step_fn(peft, compiled):
    params = [p for p in peft.parameters() if p.requires_grad]
    optim = torch.optim.Adam(params, lr=0.03, eps=1e-8)
    forward = torch.compile(peft) if compiled else peft

    def step(ids, labels):
        loss = forward(input_ids=ids, labels=labels).loss
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        return loss.item()

    return step


def measure(peft, vocab, steps, compiled):
    torch.manual_seed(0)
    ids = torch.randint(0, vocab, (BATCH, WIDTH), device="cuda")
    labels = torch.full_like(ids, -100)
    labels[:, -SCORED:] = ids[:, -SCORED:]
    step = step_fn(peft, compiled)
    times = []
    for i in range(WARMUP + steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        step(ids, labels)
        if i >= WARMUP:
            times.append((time.perf_counter() - t) * 1000)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        step(ids, labels)
        torch.cuda.synchronize()
    kernels = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    return statistics.median(times), kernels


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    torch.manual_seed(0)
    models = [
        ("bundled (2.6 M parameters)",
         lambda: AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "www/models/wordnet-gpt"))),
        ("SmolLM2-135M-shaped (135 M)", lambda: AutoModelForCausalLM.from_config(SMOLLM2_135M)),
    ]
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}, f32, "
          f"batch {BATCH} x {WIDTH} tokens, {N_VIRTUAL} virtual tokens\n")
    print("| model | mode | ms / step | CUDA kernels / step |")
    print("| --- | --- | --- | --- |")
    for title, make in models:
        for compiled in (False, True):
            try:
                model = make()
                ms, kernels = measure(prompt_tuned(model), model.config.vocab_size, steps, compiled)
                print(f"| {title} | {'torch.compile' if compiled else 'eager'} | {ms:.1f} | {kernels} |")
            except Exception as e:  # torch.compile may lack a compiler there: say so, go on
                print(f"| {title} | {'torch.compile' if compiled else 'eager'} | not run: {type(e).__name__}: {e} | |")


if __name__ == "__main__":
    main()
