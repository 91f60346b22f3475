//! Property tests: no input makes the inspector panic or hold more than its cap, and the
//! answer never depends on how the stream is cut into chunks.
//!
//! Random bytes rarely reach the deeper states (descriptors, VHDX tables, footers), so most
//! cases start from a valid image of some format and then mutate, truncate and re-chunk it.

use formats::{inspect, Format, Inspector, Policy, Refusal, MAX_HELD_BYTES};
use proptest::prelude::*;

const DECLARED: [Option<&str>; 9] = [
    None,
    Some("raw"),
    Some("qcow2"),
    Some("vmdk"),
    Some("vhd"),
    Some("vhdx"),
    Some("iso"),
    Some("ami"),
    Some("aki"),
];

/// Feeds `bytes` cut by the cycle of `sizes`; stops at the first refusal, like the server.
fn feed_chunked(
    bytes: &[u8],
    declared: Option<&str>,
    sizes: &[usize],
) -> (Option<Refusal>, formats::Inspection) {
    let mut inspector = Inspector::new(declared, &Policy::default());
    let mut offset = 0;
    let mut early = None;
    for &size in sizes.iter().cycle() {
        if offset >= bytes.len() {
            break;
        }
        let end = bytes.len().min(offset + size.max(1));
        if let Err(refusal) = inspector.feed(&bytes[offset..end]) {
            early = Some(refusal);
            break;
        }
        assert!(
            inspector.held_bytes() <= MAX_HELD_BYTES,
            "held {} bytes",
            inspector.held_bytes()
        );
        offset = end;
    }
    (early, inspector.finish())
}

/// Reads `bytes` the way `glint inspect` reads a file: only the ranges the inspector asks for,
/// each in reads of at most `read_max` bytes.
fn seek_read(bytes: &[u8], declared: Option<&str>, read_max: usize) -> formats::Inspection {
    let len = bytes.len() as u64;
    let mut inspector = Inspector::new(declared, &Policy::default());
    while let Some(range) = inspector.next_read(len) {
        inspector
            .skip_to(range.start, len)
            .expect("skip to a wanted range");
        let start = usize::try_from(range.start).expect("in memory");
        let end = usize::try_from(range.end)
            .expect("in memory")
            .min(start + read_max.max(1));
        if inspector.feed(&bytes[start..end]).is_err() {
            break;
        }
    }
    inspector.skip_to(len, len).expect("nothing more is wanted");
    inspector.finish()
}

/// The invariants every stream must satisfy.
fn check(bytes: &[u8], declared: Option<&str>, sizes: &[usize]) -> Result<(), TestCaseError> {
    let one_shot = inspect(bytes, declared, &Policy::default());
    prop_assert_eq!(one_shot.bytes_seen, bytes.len() as u64);
    prop_assert!(one_shot.formats.len() <= 1 || one_shot.verdict.is_err());
    prop_assert!(!one_shot.formats.contains(&Format::Raw));
    if one_shot.verdict.is_ok() {
        prop_assert!(one_shot.formats.first().copied().unwrap_or(Format::Raw) == one_shot.format);
    }
    let (early, chunked) = feed_chunked(bytes, declared, sizes);
    match early {
        // An early refusal must be the refusal of the whole stream.
        Some(refusal) => {
            prop_assert_eq!(&Err(refusal), &one_shot.verdict);
            prop_assert_eq!(&chunked.verdict, &one_shot.verdict);
            prop_assert_eq!(chunked.format, one_shot.format);
        }
        None => prop_assert_eq!(&chunked, &one_shot),
    }
    // The seek path gives the streaming answer.
    let sought = seek_read(bytes, declared, sizes.first().copied().unwrap_or(1));
    prop_assert_eq!(&sought.verdict, &one_shot.verdict);
    prop_assert_eq!(sought.format, one_shot.format);
    if one_shot.verdict.is_ok() {
        prop_assert_eq!(&sought, &one_shot);
    }
    Ok(())
}

fn put(img: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if img.len() < at + bytes.len() {
        img.resize(at + bytes.len(), 0);
    }
    img[at..at + bytes.len()].copy_from_slice(bytes);
}

fn vhd_footer(disk_type: u32, size: u64) -> Vec<u8> {
    let mut f = vec![0u8; 512];
    put(&mut f, 0, b"conectix");
    let data_offset: u64 = if disk_type == 2 { u64::MAX } else { 512 };
    put(&mut f, 16, &data_offset.to_be_bytes());
    put(&mut f, 40, &size.to_be_bytes());
    put(&mut f, 48, &size.to_be_bytes());
    put(&mut f, 60, &disk_type.to_be_bytes());
    let sum = f.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
    put(&mut f, 64, &(!sum).to_be_bytes());
    f
}

const DESCRIPTOR: &str = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
    createType=\"monolithicSparse\"\n\n# Extent description\nRW 2048 SPARSE \"d.vmdk\"\n\n\
    # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n";

fn vmdk_header(gd_at_end: bool) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    put(&mut h, 0, b"KDMV");
    put(&mut h, 4, &1u32.to_le_bytes());
    put(&mut h, 12, &2048u64.to_le_bytes());
    put(&mut h, 20, &128u64.to_le_bytes());
    put(&mut h, 28, &1u64.to_le_bytes());
    put(&mut h, 36, &20u64.to_le_bytes());
    put(
        &mut h,
        56,
        &(if gd_at_end { u64::MAX } else { 21 }).to_le_bytes(),
    );
    h
}

/// Valid images of every format, small enough to run many cases.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();

    for version in [2u32, 3] {
        let mut q = vec![0u8; 2048];
        put(&mut q, 0, b"QFI\xfb");
        put(&mut q, 4, &version.to_be_bytes());
        put(&mut q, 20, &16u32.to_be_bytes());
        put(&mut q, 24, &(1u64 << 30).to_be_bytes());
        put(&mut q, 36, &2u32.to_be_bytes());
        put(&mut q, 100, &112u32.to_be_bytes());
        seeds.push(q);
    }

    let mut sparse = vmdk_header(false);
    put(&mut sparse, 512, DESCRIPTOR.as_bytes());
    sparse.resize(21 * 512, 0);
    seeds.push(sparse);

    let mut stream = vmdk_header(true);
    put(
        &mut stream,
        512,
        DESCRIPTOR
            .replace("monolithicSparse", "streamOptimized")
            .as_bytes(),
    );
    stream.resize(24 * 512, 0);
    let mut marker = vec![0u8; 512];
    marker[12] = 3;
    stream.extend(marker);
    let mut footer = vmdk_header(false);
    put(&mut footer, 56, &21u64.to_le_bytes());
    stream.extend(footer);
    stream.extend(vec![0u8; 512]);
    seeds.push(stream);

    seeds.push(
        DESCRIPTOR
            .replace("monolithicSparse", "monolithicFlat")
            .into_bytes(),
    );

    let mut dynamic = vhd_footer(3, 1 << 30);
    dynamic.resize(2048, 0);
    dynamic.extend(vhd_footer(3, 1 << 30));
    seeds.push(dynamic);

    let mut fixed = vec![0u8; 2048];
    put(&mut fixed, 446 + 4, &[0x83]);
    put(&mut fixed, 510, &[0x55, 0xAA]);
    fixed.extend(vhd_footer(2, 2048));
    seeds.push(fixed);

    let mut vdi = vec![0u8; 1024];
    put(&mut vdi, 64, &0xBEDA_107Fu32.to_le_bytes());
    put(&mut vdi, 68, &0x0001_0001u32.to_le_bytes());
    put(&mut vdi, 76, &1u32.to_le_bytes());
    put(&mut vdi, 368, &(1u64 << 20).to_le_bytes());
    seeds.push(vdi);

    let mut luks = vec![0u8; 4096];
    put(&mut luks, 0, b"LUKS\xba\xbe");
    put(&mut luks, 6, &1u16.to_be_bytes());
    put(&mut luks, 104, &4u32.to_be_bytes());
    seeds.push(luks);

    let mut ploop = vec![0u8; 1024];
    put(&mut ploop, 0, b"WithouFreSpacExt");
    put(&mut ploop, 16, &2u32.to_le_bytes());
    put(&mut ploop, 36, &2048u64.to_le_bytes());
    seeds.push(ploop);

    let mut qed = vec![0u8; 1024];
    put(&mut qed, 0, b"QED\0");
    seeds.push(qed);

    let mut mbr = vec![0u8; 4096];
    put(&mut mbr, 446 + 1, &[0, 2, 0, 0xEE]);
    put(&mut mbr, 446 + 8, &1u32.to_le_bytes());
    put(&mut mbr, 510, &[0x55, 0xAA]);
    seeds.push(mbr);

    let mut iso = vec![0u8; 40 * 1024];
    put(&mut iso, 446, &[0x80, 0, 2, 0, 0x17]);
    put(&mut iso, 510, &[0x55, 0xAA]);
    put(&mut iso, 32_768, b"\x01CD001\x01");
    put(&mut iso, 32_768 + 80, &20u32.to_le_bytes());
    put(&mut iso, 32_768 + 128, &2048u16.to_le_bytes());
    seeds.push(iso);

    seeds
}

/// A minimal VHDX: region table at 192 KiB, metadata at 1 MiB, size item after the table.
fn vhdx_seed() -> Vec<u8> {
    let meta = 1 << 20;
    let mut img = vec![0u8; meta + 65_536 + 512];
    put(&mut img, 0, b"vhdxfile");
    let rt = 0x30000;
    put(&mut img, rt, b"regi");
    put(&mut img, rt + 8, &1u32.to_le_bytes());
    put(
        &mut img,
        rt + 16,
        &[
            0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f,
            0x88, 0x6e,
        ],
    );
    put(&mut img, rt + 32, &(meta as u64).to_le_bytes());
    put(&mut img, meta, b"metadata");
    put(&mut img, meta + 10, &1u16.to_le_bytes());
    put(
        &mut img,
        meta + 32,
        &[
            0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b,
            0xf4, 0xb8,
        ],
    );
    put(&mut img, meta + 48, &65_536u32.to_le_bytes());
    put(&mut img, meta + 52, &8u32.to_le_bytes());
    put(&mut img, meta + 65_536, &(1u64 << 30).to_le_bytes());
    img
}

/// Where mutations bite: the head, the ISO descriptor, the VHDX tables and the tail.
fn hot_offsets(len: usize) -> Vec<usize> {
    let mut windows = vec![0, 64, 400, 512, 600];
    windows.extend([
        32_768,
        32_768 + 80,
        0x30000,
        0x30000 + 16,
        1 << 20,
        (1 << 20) + 32,
        (1 << 20) + 65_536,
    ]);
    windows.extend([
        len.saturating_sub(1536),
        len.saturating_sub(1024),
        len.saturating_sub(512),
    ]);
    windows.into_iter().filter(|&w| w < len).collect()
}

fn mutate(mut img: Vec<u8>, edits: &[(usize, usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let hot = hot_offsets(img.len());
    for &(window, delta, byte) in edits {
        if let Some(&base) = hot.get(window % hot.len().max(1)) {
            let at = base + delta % 256;
            if at < img.len() {
                img[at] = byte;
            }
        }
    }
    if let Some(cut) = cut {
        img.truncate(cut % (img.len() + 1));
    }
    img
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![1usize..=8, 9usize..=600, 4000usize..=70_000],
        1..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_any_chunking_same_answer(
        bytes in prop::collection::vec(any::<u8>(), 0..3000),
        declared in prop::sample::select(DECLARED.to_vec()),
        sizes in chunk_sizes(),
    ) {
        check(&bytes, declared, &sizes)?;
    }

    #[test]
    fn mutated_images_any_prefix_any_chunking_same_answer(
        seed in prop::sample::select(seeds()),
        edits in prop::collection::vec((0usize..32, 0usize..256, any::<u8>()), 0..6),
        cut in prop::option::of(any::<usize>()),
        declared in prop::sample::select(DECLARED.to_vec()),
        sizes in chunk_sizes(),
    ) {
        check(&mutate(seed, &edits, cut), declared, &sizes)?;
    }

    #[test]
    fn early_refusal_holds_for_any_continuation(
        seed in prop::sample::select(seeds()),
        edits in prop::collection::vec((0usize..32, 0usize..256, any::<u8>()), 0..4),
        cut in any::<usize>(),
        suffix in prop::collection::vec(any::<u8>(), 0..40_000),
        declared in prop::sample::select(DECLARED.to_vec()),
    ) {
        let prefix = mutate(seed, &edits, Some(cut));
        let mut inspector = Inspector::new(declared, &Policy::default());
        if let Err(refusal) = inspector.feed(&prefix) {
            let mut whole = prefix.clone();
            whole.extend(&suffix);
            prop_assert_eq!(inspect(&whole, declared, &Policy::default()).verdict, Err(refusal));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn mutated_vhdx_any_prefix_any_chunking_same_answer(
        edits in prop::collection::vec((0usize..32, 0usize..256, any::<u8>()), 0..4),
        cut in prop::option::of(any::<usize>()),
        declared in prop::sample::select(DECLARED.to_vec()),
        sizes in chunk_sizes(),
    ) {
        check(&mutate(vhdx_seed(), &edits, cut), declared, &sizes)?;
    }
}

#[test]
fn seeds_are_what_they_claim() {
    let expected = [
        Format::Qcow2,
        Format::Qcow2,
        Format::Vmdk,
        Format::Vmdk,
        Format::Vmdk,
        Format::Vhd,
        Format::Vhd,
        Format::Vdi,
        Format::Luks,
        Format::Ploop,
        Format::Qed,
        Format::Gpt,
        Format::Iso,
    ];
    for (seed, format) in seeds().iter().zip(expected) {
        assert_eq!(inspect(seed, None, &Policy::default()).format, format);
    }
    let vhdx = inspect(&vhdx_seed(), Some("vhdx"), &Policy::default());
    assert_eq!(
        (vhdx.format, vhdx.virtual_size, vhdx.verdict),
        (Format::Vhdx, Some(1 << 30), Ok(()))
    );
}
