// Generated from src/settings.rs (by src/page_table.rs) in `cargo test --test settings` (UPDATE=1 rewrites it):
// the training settings' names, bounds, defaults and help, and the experiments, declared once in Rust.
export default {
  "numbers": [
    {
      "name": "virtualTokens",
      "url": "vt",
      "label": "Virtual tokens",
      "min": 1.0,
      "max": 32.0,
      "default": 8.0,
      "integer": true,
      "help": "How many learned vectors are prepended to every input."
    },
    {
      "name": "lr",
      "url": "lr",
      "label": "Learning rate",
      "min": 0.00001,
      "max": 1.0,
      "default": 0.03,
      "integer": false,
      "help": "Adam's step size for the prompt vectors."
    },
    {
      "name": "steps",
      "url": "steps",
      "label": "Steps",
      "min": 1.0,
      "max": 10000.0,
      "default": 200.0,
      "integer": true,
      "help": "Optimizer steps in one training run."
    },
    {
      "name": "batch",
      "url": "batch",
      "label": "Batch",
      "min": 1.0,
      "max": 128.0,
      "default": 16.0,
      "integer": true,
      "help": "Training examples per step."
    },
    {
      "name": "seed",
      "url": "seed",
      "label": "Seed",
      "min": 0.0,
      "max": 2147483647.0,
      "default": 0.0,
      "integer": true,
      "help": "Fixes the prompt's init and the order of the batches: the same seed, the same run."
    }
  ],
  "trainFields": [
    "virtualTokens",
    "init",
    "initText",
    "lr",
    "steps",
    "batch",
    "seed"
  ],
  "inits": [
    {
      "name": "class-labels",
      "label": "class labels (Lester et al.)"
    },
    {
      "name": "sample-vocab",
      "label": "sampled vocabulary"
    },
    {
      "name": "random",
      "label": "random N(0, 1)"
    },
    {
      "name": "uniform",
      "label": "random U[-0.5, 0.5]"
    },
    {
      "name": "text",
      "label": "text"
    }
  ],
  "initDefault": "class-labels",
  "experiments": [
    {
      "name": "prompt-length",
      "title": "Prompt length",
      "finding": "Lester et al. (2021, Fig. 3a): more than one token matters for small models; returns shrink past about 20.",
      "needsFamily": false
    },
    {
      "name": "init",
      "title": "Initialisation",
      "finding": "Lester et al. (2021, Fig. 3b): class-label init is best at small scale, random uniform worst; the gap closes with scale.",
      "needsFamily": false
    },
    {
      "name": "transfer",
      "title": "Transfer from another task",
      "finding": "Vu et al. (2022, SPoT): starting from a prompt trained on a related task beats starting from scratch, most early in training.",
      "needsFamily": false
    },
    {
      "name": "text-vs-soft",
      "title": "Text prompt against soft prompt",
      "finding": "A fixed text prompt cannot learn from examples; a soft prompt can.",
      "needsFamily": false
    },
    {
      "name": "ensemble",
      "title": "Prompt ensemble",
      "finding": "Lester et al. (2021, §6): a majority vote of several prompts on one frozen model beats the average prompt alone.",
      "needsFamily": false
    },
    {
      "name": "scale",
      "title": "Scale: prompt against model tuning",
      "finding": "Lester et al. (2021, Fig. 1): prompt tuning trails model tuning on small models and closes the gap as they grow (T5, 60 M to 11 B parameters).",
      "needsFamily": true
    }
  ],
  "experimentSteps": 60,
  "experimentSeeds": 3,
  "otherModelExperiment": {
    "steps": 30,
    "seeds": 1
  },
  "experimentSeedsMax": 10,
  "family": [
    "wordnet-gpt-xs",
    "wordnet-gpt-s",
    "wordnet-gpt"
  ],
  "adapterFiles": {
    "config": "adapter_config.json",
    "weights": "adapter_model.safetensors"
  }
};
