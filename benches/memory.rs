//! The engine's memory as the page's WebAssembly heap holds it, measured natively: this bench's
//! global allocator is the one Rust's wasm32 std uses (dlmalloc) over a region that grows in
//! 64 KiB pages and is never given back, as wasm's linear memory does, so "memory" here is what
//! the page's `WebAssembly.Memory` would have grown to. Each model runs in its own process (a
//! heap never shrinks), opens the model as the page's engine does (the file held outside the
//! heap, as JavaScript holds it, read one tensor at a time), trains 5 steps
//! (antonyms, batch 16, 8 virtual tokens) and evaluates the held-out set once; printed beside
//! the estimate the page shows before the download (`inspect`).
//!
//! `cargo bench --profile dev --bench memory [-- --models bundled,gpt2-small,smollm2-135m,smollm2-360m]`

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{
    BATCH, GPT2_SMALL, N_VIRTUAL, SMOLLM2_135M, SMOLLM2_360M, arg, batches, bundled_dir,
    fresh_trainer, task,
};
use dlmalloc::{Allocator, Dlmalloc};
use soft_prompt_lab::backend;
use soft_prompt_lab::batch::typical_width;
use soft_prompt_lab::eval::evaluate;
use soft_prompt_lab::generate::Prompting;
use soft_prompt_lab::inspect::{Step, header_length, inspect};
use soft_prompt_lab::session::{Engine, Role};

const PAGE: usize = 64 * 1024;
/// Address space reserved for the heap (lazily backed): more than wasm32's 4 GiB, so a model
/// that would not fit shows its true size instead of failing.
const RESERVED: usize = 8 << 30;
const STEPS: usize = 5;

/// wasm's `memory.grow`: pages handed out from the reserved region, never returned.
struct LinearMemory {
    base: usize,
}

static PAGES: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK_LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl Allocator for LinearMemory {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let pages = size.div_ceil(PAGE);
        let before = PAGES.fetch_add(pages, Ordering::SeqCst);
        if (before + pages) * PAGE > RESERVED {
            return (std::ptr::null_mut(), 0, 0);
        }
        ((self.base + before * PAGE) as *mut u8, pages * PAGE, 0)
    }
    fn remap(&self, _: *mut u8, _: usize, _: usize, _: bool) -> *mut u8 {
        std::ptr::null_mut()
    }
    fn free_part(&self, _: *mut u8, _: usize, _: usize) -> bool {
        false
    }
    fn free(&self, _: *mut u8, _: usize) -> bool {
        false
    }
    fn can_release_part(&self, _: u32) -> bool {
        false
    }
    fn allocates_zeros(&self) -> bool {
        true
    }
    fn page_size(&self) -> usize {
        PAGE
    }
}

struct WasmHeap(Mutex<Option<Dlmalloc<LinearMemory>>>);

unsafe impl GlobalAlloc for WasmHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.0.lock().unwrap();
        let heap = heap.get_or_insert_with(|| {
            // calloc'd, so the pages are backed only when touched, zeroed as wasm's are.
            let region = Layout::from_size_align(RESERVED + PAGE, 16).unwrap();
            let raw = unsafe { System.alloc_zeroed(region) };
            assert!(!raw.is_null(), "could not reserve the heap's address space");
            Dlmalloc::new_with_allocator(LinearMemory {
                base: (raw as usize).next_multiple_of(PAGE),
            })
        });
        let p = unsafe { heap.malloc(layout.size(), layout.align()) };
        let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK_LIVE.fetch_max(live, Ordering::SeqCst);
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        let mut heap = self.0.lock().unwrap();
        unsafe {
            heap.as_mut()
                .unwrap()
                .free(p, layout.size(), layout.align())
        };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static HEAP: WasmHeap = WasmHeap(Mutex::new(None));

/// The weights file outside the heap, as the page's worker holds it in JavaScript's memory.
struct OutsideHeap {
    bytes: *mut u8,
    layout: Layout,
}

impl OutsideHeap {
    fn read(path: &std::path::Path) -> Self {
        use std::io::Read;
        let mut file = std::fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        let layout = Layout::from_size_align(len.max(1), 8).unwrap();
        let bytes = unsafe { System.alloc(layout) };
        assert!(!bytes.is_null());
        let out = Self { bytes, layout };
        file.read_exact(unsafe { std::slice::from_raw_parts_mut(bytes, len) })
            .unwrap();
        out
    }
}

impl AsRef<[u8]> for OutsideHeap {
    fn as_ref(&self) -> &[u8] {
        unsafe { std::slice::from_raw_parts(self.bytes, self.layout.size()) }
    }
}

impl Drop for OutsideHeap {
    fn drop(&mut self) {
        unsafe { System.dealloc(self.bytes, self.layout) }
    }
}

/// MiB, as the page shows memory.
fn mib(bytes: usize) -> u64 {
    (bytes as f64 / (1u64 << 20) as f64).round() as u64
}

/// The heap's size now (wasm's memory) and the most it held at once since the last call.
fn phase() -> serde_json::Value {
    let peak = PEAK_LIVE.swap(LIVE.load(Ordering::SeqCst), Ordering::SeqCst);
    serde_json::json!({"memory": mib(PAGES.load(Ordering::SeqCst) * PAGE), "peak_live": mib(peak)})
}

/// One model in this process: the phases' figures and the estimate, printed as JSON.
fn measure(dir: &std::path::Path) {
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let (config, tokenizer) = (read("config.json"), read("tokenizer.json"));
    let weights = OutsideHeap::read(&dir.join("model.safetensors"));
    let file = weights.as_ref();
    let header = file[8..8 + header_length(file).unwrap() as usize].to_vec();
    let file_len = file.len() as u64;
    // As the page's engine opens a model: the tensors read from the file one at a time, then the
    // weights' fingerprint and the vocabulary map (its own copy of the embedding).
    let engine = pollster::block_on(Engine::open(
        config.clone(),
        weights,
        tokenizer,
        &backend::cpu(),
        Role::Lab,
    ))
    .unwrap();
    let load = phase();
    let lm = engine.loaded();

    let (train, test, spec) = task("antonyms");
    // The page estimates with the task's rows as its engine tokenizes them.
    let step = Step {
        row_tokens: typical_width(&lm.tokenizer, &train, BATCH).unwrap(),
        ..Step::typical(BATCH, N_VIRTUAL)
    };
    let summary = inspect(&config, Some(&header), file_len, step).unwrap();
    let mut trainer = fresh_trainer(lm);
    for batch in batches(lm, STEPS) {
        pollster::block_on(trainer.step(&lm.model, &batch).unwrap().read()).unwrap();
    }
    let steps = phase();
    let prompting = Prompting::soft(trainer.prompt.values());
    pollster::block_on(evaluate(lm, &prompting, &test, &spec.kind().unwrap())).unwrap();
    let evaluation = phase();
    println!(
        "{}",
        serde_json::json!({
            "estimate": mib(summary.memory.engine as usize),
            "row_tokens": step.row_tokens,
            "f32_weights": mib(summary.memory.weights as usize),
            "load": load, "steps": steps, "evaluation": evaluation,
        })
    );
}

fn main() {
    if let Some(dir) = arg("--measure") {
        return measure(std::path::Path::new(&dir));
    }
    let wanted = arg("--models").unwrap_or("bundled,gpt2-small,smollm2-135m,smollm2-360m".into());
    println!(
        "### The engine's memory as the page's wasm heap holds it (native, wasm's allocator; one engine)"
    );
    println!();
    println!(
        "`cargo bench --profile dev --bench memory`: wasm's memory (MiB) after opening the model, after {STEPS} \
         steps (antonyms, batch {BATCH}, {N_VIRTUAL} virtual tokens) and after one held-out evaluation, against the \
         estimate the page shows before the download (its rows as long as the task's typical batch's, by the \
         engine's tokenizer); in brackets the most the heap held at once in that phase. \
         Random weights of each shape (BF16 for the Llama family, F32 for GPT-2, as on the Hub)."
    );
    println!();
    println!(
        "| model | weights (as the engine keeps them) | row tokens | estimate | after load | after steps | after evaluation | measured / estimate |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for name in wanted.split(',') {
        let shape = match name {
            "bundled" => None,
            "gpt2-small" => Some(GPT2_SMALL),
            "smollm2-135m" => Some(SMOLLM2_135M),
            "smollm2-360m" => Some(SMOLLM2_360M),
            other => panic!("no model {other:?}: bundled, gpt2-small, smollm2-135m, smollm2-360m"),
        };
        let dir = shape.as_ref().map_or_else(bundled_dir, |s| s.write(name));
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--measure", dir.to_str().unwrap()])
            .env(backend::THREADS_VAR, "1")
            .output()
            .unwrap();
        if shape.is_some() {
            std::fs::remove_dir_all(&dir).ok();
        }
        if !out.status.success() {
            println!(
                "| {name} | failed: {} |",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let cell = |p: &str| format!("{} ({})", v[p]["memory"], v[p]["peak_live"]);
        let measured = v["evaluation"]["memory"].as_f64().unwrap();
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {:.2} |",
            v["f32_weights"],
            v["row_tokens"],
            v["estimate"],
            cell("load"),
            cell("steps"),
            cell("evaluation"),
            measured / v["estimate"].as_f64().unwrap()
        );
    }
}
