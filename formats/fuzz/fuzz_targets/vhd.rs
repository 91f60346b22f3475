//! Fuzz target: a dynamic VHD header copy at offset 0, or fuzzed data before a valid fixed footer.
#![no_main]

use formats_fuzz::{append_fixed_vhd_footer, check, place, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = split(data);
    let mut stream = Vec::new();
    if input.variant & 1 == 0 {
        place(&mut stream, 0, b"conectix");
        place(&mut stream, 8, input.body);
    } else {
        place(&mut stream, 0, input.body);
        append_fixed_vhd_footer(&mut stream);
    }
    check(&stream, &input);
});
