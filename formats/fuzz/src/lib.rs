//! Shared harness for the fuzz targets: shape fuzzer bytes into a stream that reaches one
//! format's parser, then assert the inspector's invariants on it.
//!
//! Input layout (all targets): byte 0 picks the declared `disk_format`, bytes 1..5 are chunk
//! sizes (cycled; 0 means 1), byte 5 is a per-format variant flag, and the rest is the body that
//! the target places where its format looks.
//!
//! Each target is a plain function here ([`TARGETS`]), so that `formats`' own tests replay the
//! committed corpus through the same code (`formats/tests/fuzz_corpus.rs` includes this file)
//! without libFuzzer.

use formats::{inspect, Inspector, Policy, MAX_HELD_BYTES};

/// A fuzz target: takes the fuzzer's bytes, panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name: the fuzz binaries and the corpus replay call these.
pub const TARGETS: [(&str, Target); 11] = [
    ("raw", raw),
    ("qcow2", qcow2),
    ("vmdk", vmdk),
    ("vhd", vhd),
    ("vhdx", vhdx),
    ("vdi", vdi),
    ("iso", iso),
    ("gpt", gpt),
    ("luks", luks),
    ("ploop", ploop),
    ("qed", qed),
];

/// Declared formats the harness cycles through (`None`: judge the content alone).
const DECLARED: [Option<&str>; 12] = [
    None,
    Some("raw"),
    Some("qcow2"),
    Some("vmdk"),
    Some("vhd"),
    Some("vhdx"),
    Some("vdi"),
    Some("iso"),
    Some("ploop"),
    Some("ami"),
    Some("aki"),
    Some("luks"),
];

/// The parts of a fuzz input.
pub struct Input<'a> {
    /// The declared format.
    pub declared: Option<&'static str>,
    /// Chunk sizes to cut the stream with.
    pub chunks: [usize; 4],
    /// A per-format switch between layouts.
    pub variant: u8,
    /// The bytes to place.
    pub body: &'a [u8],
}

/// Splits raw fuzzer bytes into an [`Input`].
pub fn split(data: &[u8]) -> Input<'_> {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let size = |i: usize| match byte(i) {
        0 => 1,
        b if b < 128 => usize::from(b),
        b => usize::from(b) * 509, // up to ~130 KiB chunks
    };
    Input {
        declared: DECLARED[usize::from(byte(0)) % DECLARED.len()],
        chunks: [size(1), size(2), size(3), size(4)],
        variant: byte(5),
        body: data.get(6..).unwrap_or_default(),
    }
}

/// Writes `bytes` at `at` in `stream`, growing it with zeros as needed.
pub fn place(stream: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if stream.len() < at + bytes.len() {
        stream.resize(at + bytes.len(), 0);
    }
    stream[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Appends a valid fixed-VHD footer sizing everything before it.
pub fn append_fixed_vhd_footer(stream: &mut Vec<u8>) {
    let mut footer = [0u8; 512];
    footer[..8].copy_from_slice(b"conectix");
    footer[16..24].copy_from_slice(&u64::MAX.to_be_bytes());
    let size = stream.len() as u64;
    footer[40..48].copy_from_slice(&size.to_be_bytes());
    footer[48..56].copy_from_slice(&size.to_be_bytes());
    footer[60..64].copy_from_slice(&2u32.to_be_bytes());
    let sum = footer
        .iter()
        .fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
    footer[64..68].copy_from_slice(&(!sum).to_be_bytes());
    stream.extend_from_slice(&footer);
}

/// The invariants: no panic, bounded memory, the same answer for any chunking, and an early
/// Refusal that is the whole stream's refusal.
pub fn check(stream: &[u8], input: &Input<'_>) {
    let policy = Policy::default();
    let one_shot = inspect(stream, input.declared, &policy);
    assert_eq!(one_shot.bytes_seen, stream.len() as u64);
    assert!(one_shot.formats.len() <= 1 || one_shot.verdict.is_err());

    // Megabyte streams (VHDX) are cut in proportionally larger chunks to keep runs fast.
    let scale = 1 + stream.len() / (256 * 1024) * 64;
    let mut inspector = Inspector::new(input.declared, &policy);
    let mut offset = 0;
    let mut early = None;
    for &size in input.chunks.iter().cycle() {
        if offset >= stream.len() {
            break;
        }
        let end = stream.len().min(offset + size.max(1) * scale);
        if let Err(refusal) = inspector.feed(&stream[offset..end]) {
            early = Some(refusal);
            break;
        }
        assert!(inspector.held_bytes() <= MAX_HELD_BYTES);
        offset = end;
    }
    let chunked = inspector.finish();
    match early {
        Some(refusal) => {
            assert_eq!(Err(refusal), one_shot.verdict);
            assert_eq!(chunked.verdict, one_shot.verdict);
            assert_eq!(chunked.format, one_shot.format);
        }
        None => assert_eq!(chunked, one_shot),
    }

    // The seek path (`glint inspect` on a file): only the ranges asked for, in reads of the
    // first chunk size, gives the streaming answer.
    let len = stream.len() as u64;
    let mut inspector = Inspector::new(input.declared, &policy);
    let read_max = input.chunks[0].max(1) * scale;
    while let Some(range) = inspector.next_read(len) {
        assert!(range.start >= inspector.bytes_seen() && range.start < range.end);
        assert!(range.end <= len);
        inspector
            .skip_to(range.start, len)
            .expect("skip to a wanted range");
        let start = usize::try_from(range.start).expect("in memory");
        let end = stream.len().min(start + read_max);
        if inspector.feed(&stream[start..end]).is_err() {
            break;
        }
        assert!(inspector.held_bytes() <= MAX_HELD_BYTES);
    }
    inspector.skip_to(len, len).expect("nothing more is wanted");
    let sought = inspector.finish();
    assert_eq!(sought.verdict, one_shot.verdict);
    assert_eq!(sought.format, one_shot.format);
    if one_shot.verdict.is_ok() {
        assert_eq!(sought, one_shot);
    }
}

/// Any bytes at all, sometimes ending in a fixed VHD footer.
pub fn raw(data: &[u8]) {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 0, input.body);
    if input.variant & 1 == 1 {
        append_fixed_vhd_footer(&mut stream);
    }
    check(&stream, &input);
}

/// A qcow2 magic followed by fuzzed header fields.
pub fn qcow2(data: &[u8]) {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 0, b"QFI\xfb");
    place(&mut stream, 4, input.body);
    check(&stream, &input);
}

/// A VMDK sparse extent (KDMV) with fuzzed header and descriptor, or a
/// descriptor file.
pub fn vmdk(data: &[u8]) {
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
}

/// A dynamic VHD header copy at offset 0, or fuzzed data before a valid fixed footer.
pub fn vhd(data: &[u8]) {
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
}

/// A VHDX identity with the fuzzed body split between the region table
/// (192 KiB) and the metadata region (1 MiB).
pub fn vhdx(data: &[u8]) {
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
}

/// A VDI signature at 64 with fuzzed header fields around it.
pub fn vdi(data: &[u8]) {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 0, &input.body[..input.body.len().min(64)]);
    place(&mut stream, 64, &0xBEDA_107Fu32.to_le_bytes());
    place(&mut stream, 68, input.body.get(64..).unwrap_or_default());
    check(&stream, &input);
}

/// An ISO volume descriptor at 32 KiB, sometimes under another header in the
/// system area.
pub fn iso(data: &[u8]) {
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
}

/// An MBR signature with fuzzed boot code and partition entries.
pub fn gpt(data: &[u8]) {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 0, &input.body[..input.body.len().min(510)]);
    place(&mut stream, 510, &[0x55, 0xAA]);
    stream.extend_from_slice(input.body.get(510..).unwrap_or_default());
    check(&stream, &input);
}

/// A LUKS magic with fuzzed version and payload offset.
pub fn luks(data: &[u8]) {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 0, b"LUKS\xba\xbe");
    place(&mut stream, 6, input.body);
    check(&stream, &input);
}

/// A ploop/Parallels magic with fuzzed header fields.
pub fn ploop(data: &[u8]) {
    let input = split(data);
    let mut stream = Vec::new();
    let magic: &[u8; 16] = if input.variant & 1 == 0 {
        b"WithouFreSpacExt"
    } else {
        b"WithoutFreeSpace"
    };
    place(&mut stream, 0, magic);
    place(&mut stream, 16, input.body);
    check(&stream, &input);
}

/// A QED magic with a fuzzed header.
pub fn qed(data: &[u8]) {
    let input = split(data);
    let mut stream = Vec::new();
    place(&mut stream, 0, b"QED\0");
    place(&mut stream, 4, input.body);
    check(&stream, &input);
}
