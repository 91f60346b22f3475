//! Fuzz target `gpt`: see [`formats_fuzz::gpt`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| formats_fuzz::gpt(data));
