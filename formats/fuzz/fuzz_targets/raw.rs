//! Fuzz target: any bytes at all, sometimes ending in a fixed VHD footer.
#![no_main]

use formats_fuzz::{append_fixed_vhd_footer, check, place, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 0, input.body);
    if input.variant & 1 == 1 {
        append_fixed_vhd_footer(&mut stream);
    }
    check(&stream, &input);
});
