//! Fuzz target `raw`: see [`formats_fuzz::raw`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| formats_fuzz::raw(data));
