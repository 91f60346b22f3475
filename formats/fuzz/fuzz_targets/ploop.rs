//! Fuzz target `ploop`: see [`formats_fuzz::ploop`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| formats_fuzz::ploop(data));
