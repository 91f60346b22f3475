//! Fuzz target: a LUKS magic with fuzzed version and payload offset.
#![no_main]

use formats_fuzz::{check, place, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 0, b"LUKS\xba\xbe");
    place(&mut stream, 6, input.body);
    check(&stream, &input);
});
