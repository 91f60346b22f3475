//! Fuzz target `qed`: see [`formats_fuzz::qed`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| formats_fuzz::qed(data));
