//! Fuzz target `iso`: see [`formats_fuzz::iso`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| formats_fuzz::iso(data));
