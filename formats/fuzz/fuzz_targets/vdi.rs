//! Fuzz target: a VDI signature at 64 with fuzzed header fields around it.
#![no_main]

use formats_fuzz::{check, place, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 0, &input.body[..input.body.len().min(64)]);
    place(&mut stream, 64, &0xBEDA_107Fu32.to_le_bytes());
    place(&mut stream, 68, input.body.get(64..).unwrap_or_default());
    check(&stream, &input);
});
