//! Fuzz target `qcow2`: see [`formats_fuzz::qcow2`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| formats_fuzz::qcow2(data));
