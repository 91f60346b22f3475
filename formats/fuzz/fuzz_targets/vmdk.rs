//! Fuzz target `vmdk`: see [`formats_fuzz::vmdk`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| formats_fuzz::vmdk(data));
