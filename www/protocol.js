// The messages between the page (main thread) and the lab worker, in one place.
//
// Requests (page -> worker) carry an `id`; the worker answers each with `reply` (same id, a
// `value`) or `error` (same id). Events (worker -> page) carry no id.
//
// Requests
//   init          {backend: 'webgpu' | 'cpu'}                 -> {backend, adapter}
//   inspect       {source}                                    -> {params, estimatedBytes, ...}   (config.json only)
//   load-model    {source}                                    -> {info, mapPoints, mapLabels, explained}
//                 source = {kind: 'url', base} | {kind: 'files', config, weights, tokenizer} (ArrayBuffers)
//   set-task      {builtin: name, base} | {custom: {name, text}} -> task summary
//   reset         {settings}                                  -> prompt view
//   play          {settings}                                  -> undefined (starts the loop: step/eval/done events)
//   pause         {}                                          -> undefined
//   step          {settings}                                  -> undefined (one step: step + prompt events)
//   evaluate      {}                                          -> {noPrompt, textPrompt, softPrompt} eval views
//   tokenize      {text}                                      -> [{id, text}] (what the model reads)
//   generate      {text}                                      -> continuation text
//   export        {baseModel}                                 -> {config, weights} (Uint8Array)
//   import        {config, weights, settings}                 -> number of virtual tokens
//
// Events
//   load-progress {file, loaded, total}     bytes of a model file received (total 0 when unknown)
//   ready         {info, ...}               a model is loaded (same value as load-model's reply)
//   step          {step, loss, gradNorm, msPerStep, target}
//   prompt        {step, nVirtual, dModel, values, points, nearest}
//   eval          {step, accuracy}         held-out accuracy of the soft prompt during training
//   done          {step, fingerprint}      training reached its step count (fingerprint of the base after)
//   error         {id?, kind, message, line?, fatal}
//                 fatal: the worker cannot go on (a panic or a lost GPU); the page restarts it on the CPU.

export const REQUESTS = [
  'init', 'inspect', 'load-model', 'set-task', 'reset', 'play', 'pause', 'step',
  'evaluate', 'tokenize', 'generate', 'export', 'import',
];
export const EVENTS = ['load-progress', 'ready', 'step', 'prompt', 'eval', 'done', 'error'];

export const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'];
