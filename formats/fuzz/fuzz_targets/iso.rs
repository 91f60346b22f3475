//! Fuzz target: an ISO volume descriptor at 32 KiB, sometimes under another header in the
//! system area.
#![no_main]

use formats_fuzz::{check, place, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 32_768, b"\x01CD001\x01");
    place(&mut stream, 32_768 + 7, input.body);
    if input.variant & 1 == 1 {
        place(&mut stream, 0, b"QFI\xfb\0\0\0\x03");
    }
    if input.variant & 2 == 2 {
        place(&mut stream, 510, &[0x55, 0xAA]);
    }
    check(&stream, &input);
});
