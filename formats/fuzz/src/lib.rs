//! Shared harness for the fuzz targets: shape fuzzer bytes into a stream that reaches one
//! format's parser, then assert the inspector's invariants on it.
//!
//! Input layout (all targets): byte 0 picks the declared `disk_format`, bytes 1..5 are chunk
//! sizes (cycled; 0 means 1), byte 5 is a per-format variant flag, and the rest is the body that
//! the target places where its format looks.

use formats::{inspect, Inspector, Policy, MAX_HELD_BYTES};

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
/// refusal that is the whole stream's refusal.
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
}
