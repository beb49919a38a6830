//! An allocation wasm's memory cannot grow for: std's handler aborts the instance (a trap; no
//! panic hook runs), which the worker could only call an unnamed crash. This allocator names it
//! first: it frees a reserve kept for this moment (the report itself allocates) and sends the
//! page an `OutOfMemory` error; then std aborts as before and the page restarts the engine with
//! the model it had loaded (app.js). A failure that its caller handles (`try_reserve`) is
//! reported the same way and spends the reserve, so a later one goes unnamed: nothing here asks
//! for memory that way.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::error::Error;

/// Room for the report (its JSON and the boundary's copy), freed when memory runs out.
const RESERVE: Layout = match Layout::from_size_align(1 << 20, 16) {
    Ok(layout) => layout,
    Err(_) => panic!("a valid layout"),
};

static RESERVED: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

/// The system allocator (dlmalloc over wasm's memory), reporting a failure.
pub struct Reporting;

#[global_allocator]
static ALLOCATOR: Reporting = Reporting;

unsafe impl GlobalAlloc for Reporting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        checked(unsafe { System.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        checked(unsafe { System.alloc_zeroed(layout) }, layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        checked(unsafe { System.realloc(ptr, layout, new_size) }, new_size)
    }
}

/// Sets the reserve aside (at the instance's start).
pub fn reserve() {
    let block = unsafe { System.alloc(RESERVE) };
    RESERVED.store(block, Ordering::SeqCst);
}

fn checked(block: *mut u8, requested: usize) -> *mut u8 {
    if block.is_null() {
        report(requested);
    }
    block
}

fn report(requested: usize) {
    // Once: a report whose own allocation fails finds no reserve and returns.
    let reserve = RESERVED.swap(std::ptr::null_mut(), Ordering::SeqCst);
    if reserve.is_null() {
        return;
    }
    unsafe { System.dealloc(reserve, RESERVE) };
    let held = std::arch::wasm32::memory_size(0) * 65536;
    let mb = |bytes: usize| (bytes as u64).div_ceil(1_000_000);
    super::report_fatal(&Error::OutOfMemory {
        requested_mb: mb(requested),
        held_mb: mb(held),
    });
}

/// Asks for memory 256 MB at a time, never touching it, until wasm's cannot grow: a real failed
/// allocation, to test the page's recovery (`testHook` crash-next, how 'out-of-memory').
pub fn exhaust() -> ! {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        held.push(Vec::with_capacity(256 << 20));
        std::hint::black_box(&mut held);
    }
}
