//! Fuzz target: a qcow2 magic followed by fuzzed header fields.
#![no_main]

use formats_fuzz::{check, place, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 0, b"QFI\xfb");
    place(&mut stream, 4, input.body);
    check(&stream, &input);
});
