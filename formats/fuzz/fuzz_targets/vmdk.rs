//! Fuzz target: a VMDK sparse extent (KDMV) with fuzzed header and descriptor, or a
//! descriptor file.
#![no_main]

use formats_fuzz::{check, place, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = split(data);
    let mut stream = Vec::new();
    match input.variant % 3 {
        0 => {
            // A plausible header prefix (version 1, descriptor at sector 1) then fuzzed bytes.
            place(&mut stream, 0, b"KDMV");
            place(&mut stream, 8, input.body);
            place(&mut stream, 4, &1u32.to_le_bytes());
            place(&mut stream, 28, &1u64.to_le_bytes());
        }
        1 => {
            place(&mut stream, 0, b"KDMV");
            place(&mut stream, 4, input.body);
        }
        _ => {
            place(&mut stream, 0, b"# Disk DescriptorFile\nversion=1\n");
            stream.extend_from_slice(input.body);
        }
    }
    check(&stream, &input);
});
