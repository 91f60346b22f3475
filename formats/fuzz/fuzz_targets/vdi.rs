//! Fuzz target `vdi`: see [`formats_fuzz::vdi`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| formats_fuzz::vdi(data));
