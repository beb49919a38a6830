"""The reference side of `./build.sh bench`: the same prompt-tuning step with PyTorch + PEFT.

Usage: reference.py SPEC.json THREADS  (SPEC is written by benches/step.rs: the model folder, the
token batches and the scored split). Prints one JSON line: {"step_ms", "eval_per_s", "peak_mb"}
(eval_per_s null when the spec has no evaluation rows; peak_mb the process's peak resident set).
The step is what a PEFT user writes: PromptTuningConfig, the model's loss on -100-masked labels,
gradient clipping to norm 1, Adam (lr 0.03, eps 1e-8, as ours).
"""

import json
import resource
import statistics
import sys
import time

import torch
from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model
from transformers import AutoModelForCausalLM

EVAL_ROWS = 32  # rows per forward pass, as src/eval.rs


def padded(rows, pad_id, scored):
    """Right-padded ids, attention mask, and labels (-100 except the answer tokens when scored)."""
    width = max(len(r["ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["ids"])
        ids[i, :n] = torch.tensor(r["ids"])
        mask[i, :n] = 1
        if scored:
            labels[i, r["n_context"]:n] = ids[i, r["n_context"]:n]
    return ids, mask, labels


def main():
    spec = json.load(open(sys.argv[1]))
    torch.set_num_threads(int(sys.argv[2]))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=spec["n_virtual"],
                                prompt_tuning_init=PromptTuningInit.RANDOM)
    peft = get_peft_model(model, config)
    params = [p for p in peft.parameters() if p.requires_grad]
    optim = torch.optim.Adam(params, lr=0.03, eps=1e-8)
    batches = [padded(b, spec["pad_id"], True) for b in spec["batches"]]

    times = []
    for i in range(spec["warmup"] + spec["steps"]):
        ids, mask, labels = batches[i % len(batches)]
        t = time.perf_counter()
        loss = peft(input_ids=ids, attention_mask=mask, labels=labels).loss
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        loss.item()
        if i >= spec["warmup"]:
            times.append((time.perf_counter() - t) * 1000)

    rows = spec["eval_rows"]
    rates = []
    with torch.no_grad():
        for _ in range(5 if rows else 0):
            t = time.perf_counter()
            for k in range(0, len(rows), EVAL_ROWS):
                ids, mask, labels = padded(rows[k:k + EVAL_ROWS], spec["pad_id"], True)
                logits = peft(input_ids=ids, attention_mask=mask).logits
                torch.log_softmax(logits, dim=-1)
            rates.append(spec["eval_examples"] / (time.perf_counter() - t))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"step_ms": statistics.median(times),
                      "eval_per_s": statistics.median(rates) if rates else None, "peak_mb": peak_mb}))


if __name__ == "__main__":
    main()
