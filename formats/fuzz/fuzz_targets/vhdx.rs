//! Fuzz target: a VHDX identity with the fuzzed body split between the region table
//! (192 KiB) and the metadata region (1 MiB).
#![no_main]

use formats_fuzz::{check, place, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 0, b"vhdxfile");
    let (table, metadata) = input.body.split_at(input.body.len() / 2);
    place(&mut stream, 0x30000, b"regi");
    place(&mut stream, 0x30000 + 8, table);
    if input.variant & 1 == 0 {
        place(&mut stream, 1 << 20, b"metadata");
        place(&mut stream, (1 << 20) + 8, metadata);
    } else {
        place(&mut stream, 1 << 20, metadata);
    }
    check(&stream, &input);
});
