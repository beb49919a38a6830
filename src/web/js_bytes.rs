//! A file the page holds (a `Uint8Array` in JavaScript's memory) as the engine's weight source:
//! each tensor's bytes are copied into the engine's memory when it is built, so the file itself
//! never enters wasm's heap, which never shrinks.

use std::borrow::Cow;
use std::ops::Range;

use js_sys::Uint8Array;

use crate::model::WeightBytes;

pub struct JsBytes(pub Uint8Array);

impl WeightBytes for JsBytes {
    fn size(&self) -> usize {
        self.0.length() as usize
    }

    fn read(&self, range: Range<usize>) -> Cow<'_, [u8]> {
        let mut out = vec![0; range.len()];
        self.0
            .subarray(range.start as u32, range.end as u32)
            .copy_to(&mut out);
        Cow::Owned(out)
    }
}
