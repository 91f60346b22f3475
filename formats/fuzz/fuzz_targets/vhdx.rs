//! Fuzz target `vhdx`: see [`formats_fuzz::vhdx`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| formats_fuzz::vhdx(data));
