//! Fuzz target `luks`: see [`formats_fuzz::luks`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| formats_fuzz::luks(data));
