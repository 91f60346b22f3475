//! Fuzz target `vhd`: see [`formats_fuzz::vhd`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| formats_fuzz::vhd(data));
