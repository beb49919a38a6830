// Real models from the Hugging Face Hub: the presets the model panel offers, and how a Hub id
// (`owner/name`) or a folder URL becomes the folder a model's files are fetched from.

/** Where Hub ids resolve (`?hub=` points it elsewhere: the page tests' local Hub). */
export const HUB = 'https://huggingface.co/';

/**
 * The real models offered by name. Parameters and the `model.safetensors` size as the Hub lists
 * them, so the list can say what each costs before anything is fetched; the exact figures come
 * from the model's own config and header when one is chosen.
 */
export const PRESETS = [
  { id: 'openai-community/gpt2', params: 124.4e6, download: 548.1e6, dtype: 'F32' },
  { id: 'distilbert/distilgpt2', params: 81.9e6, download: 352.8e6, dtype: 'F32' },
  { id: 'HuggingFaceTB/SmolLM2-135M', params: 134.5e6, download: 269.1e6, dtype: 'BF16' },
  { id: 'HuggingFaceTB/SmolLM2-135M-Instruct', params: 134.5e6, download: 269.1e6, dtype: 'BF16' },
  { id: 'HuggingFaceTB/SmolLM2-360M', params: 361.8e6, download: 723.7e6, dtype: 'BF16' },
  { id: 'Qwen/Qwen2.5-0.5B', params: 494.0e6, download: 988.1e6, dtype: 'BF16' },
];

/** The real model the tour's last step teaches on (README, "Real models": its measured table). */
export const LESSON_MODEL = 'HuggingFaceTB/SmolLM2-135M-Instruct';

/** The bundled model's parameter count: a preset's step is compared with its step. */
export const BUNDLED_PARAMS = 2.6e6;

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/** Whether `s` names a Hub repository (`owner/name`). */
export const isHubId = (s) => HUB_ID.test(s);

/**
 * The source a model reference names: a Hub id (resolved under `hub`) or an http(s) folder URL.
 * `id` is kept for a Hub model: exported adapters name it as their base model.
 */
export function sourceFor(ref, hub = HUB) {
  if (isHubId(ref)) return { kind: 'url', base: new URL(`${ref}/resolve/main/`, hub).href, id: ref };
  return { kind: 'url', base: ref };
}
