//! Images made by `qemu-img` at test time, streamed through the inspector the way an upload is,
//! and compared with `qemu-img info --output=json`.
//!
//! Every file is sparse or small. `qemu-img` must be installed (CI installs `qemu-utils`);
//! ISO images additionally use `xorriso` or `genisoimage`: without either, the ISO test is
//! skipped with a message, unless `GLINT_REQUIRE_XORRISO` is set (as `scripts/test` does),
//! in which case their absence fails it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use formats::{Check, Format, Inspection, Inspector, Policy, RefusalKind};

const GIB_PLUS_MIB: u64 = (1 << 30) + (1 << 20);
/// Sizes every format is created at: tiny, odd, not a multiple of 512, and just over 1 GiB.
const SIZES: [u64; 4] = [1, 511, 1_000_003, GIB_PLUS_MIB];

fn require_qemu_img() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let ok = Command::new("qemu-img")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "these tests need qemu-img on PATH (Debian/Ubuntu: apt-get install qemu-utils)"
        );
    });
}

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        require_qemu_img();
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `qemu-img create -f FMT [ARGS] NAME SIZE` in the scratch dir.
    fn create(&self, name: &str, format: &str, args: &[&str], size: u64) -> PathBuf {
        let path = self.path(name);
        let status = Command::new("qemu-img")
            .current_dir(self.dir.path())
            .args(["create", "-q", "-f", format])
            .args(args)
            .arg(&path)
            .arg(size.to_string())
            .status()
            .expect("run qemu-img");
        assert!(
            status.success(),
            "qemu-img create -f {format} {args:?} {name} {size} failed"
        );
        path
    }
}

/// Top-level `format` and `virtual-size` of `qemu-img info` (child nodes have their own).
fn qemu_info(path: &Path, format: Option<&str>) -> (String, u64) {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["info", "--output=json"]);
    if let Some(format) = format {
        cmd.args(["-f", format]);
    }
    let out = cmd.arg(path).output().expect("run qemu-img info");
    assert!(
        out.status.success(),
        "qemu-img info {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("qemu-img info json");
    let name = info["format"].as_str().expect("format").to_owned();
    (name, info["virtual-size"].as_u64().expect("virtual-size"))
}

/// Streams the file in `chunk`-sized reads, stopping at the first refusal like the server.
fn inspect_file(path: &Path, declared: Option<&str>, policy: &Policy, chunk: usize) -> Inspection {
    let mut inspector = Inspector::new(declared, policy);
    let mut file = File::open(path).expect("open image");
    let mut buf = vec![0u8; chunk];
    loop {
        let n = file.read(&mut buf).expect("read image");
        if n == 0 || inspector.feed(&buf[..n]).is_err() {
            break;
        }
    }
    inspector.finish()
}

/// Reads only the ranges the inspector asks for, as `glint inspect` does; returns the
/// inspection and the bytes read.
fn seek_file(path: &Path, declared: Option<&str>, policy: &Policy) -> (Inspection, u64) {
    use std::os::unix::fs::FileExt;
    let file = File::open(path).expect("open image");
    let len = file.metadata().expect("stat").len();
    let mut inspector = Inspector::new(declared, policy);
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0;
    while let Some(range) = inspector.next_read(len) {
        inspector
            .skip_to(range.start, len)
            .expect("skip to a wanted range");
        let want = usize::try_from(range.end - range.start)
            .expect("a range fits in memory")
            .min(buf.len());
        let n = file
            .read_at(&mut buf[..want], range.start)
            .expect("read image");
        assert!(n > 0, "{} shrank", path.display());
        read += n as u64;
        if inspector.feed(&buf[..n]).is_err() {
            break;
        }
    }
    inspector.skip_to(len, len).expect("nothing more is wanted");
    (inspector.finish(), read)
}

/// The inspection of a file, checked to be the same for odd and server-like chunk sizes, and
/// for the seek path (`glint inspect`), which reads a few dozen KiB of it.
fn inspect_as(path: &Path, declared: Option<&str>, policy: &Policy) -> Inspection {
    let len = std::fs::metadata(path).expect("stat").len();
    let big = inspect_file(path, declared, policy, 1 << 20);
    let (sought, read) = seek_file(path, declared, policy);
    assert_eq!(sought.verdict, big.verdict, "{}: seek path", path.display());
    assert_eq!(sought.format, big.format, "{}: seek path", path.display());
    if big.verdict.is_ok() {
        assert_eq!(sought, big, "{}: seek path", path.display());
    }
    assert!(
        read <= len.min(4 << 20),
        "{}: seek path read {read} of {len} bytes",
        path.display()
    );
    if len <= 64 << 20 {
        for chunk in [4093, 65_536 + 3] {
            let small = inspect_file(path, declared, policy, chunk);
            assert_eq!(
                small.verdict,
                big.verdict,
                "{}: chunks of {chunk}",
                path.display()
            );
            assert_eq!(
                small.format,
                big.format,
                "{}: chunks of {chunk}",
                path.display()
            );
            if small.verdict.is_ok() {
                assert_eq!(small, big, "{}: chunks of {chunk}", path.display());
            }
        }
    }
    big
}

fn inspect(path: &Path, declared: Option<&str>) -> Inspection {
    inspect_as(path, declared, &Policy::default())
}

fn assert_accepted(inspection: &Inspection, format: Format, virtual_size: u64, what: &str) {
    assert_eq!(inspection.verdict, Ok(()), "{what}");
    assert_eq!(inspection.format, format, "{what}");
    assert_eq!(inspection.virtual_size, Some(virtual_size), "{what}");
}

fn failed_check(inspection: &Inspection) -> Option<Check> {
    match inspection.verdict.as_ref().err().map(|r| &r.kind) {
        Some(RefusalKind::Unsafe { check, .. }) => Some(*check),
        _ => None,
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

/// Creates `format` images at every size and checks format and size against qemu-img, declared
/// and undeclared.
fn check_sizes(format: &str, args: &[&str], expected: Format) {
    let scratch = Scratch::new();
    for size in SIZES {
        let path = scratch.create(&format!("img-{size}"), format, args, size);
        let (_, qemu_size) = qemu_info(&path, Some(format));
        let what = format!("{format} {args:?} {size}");
        assert_accepted(
            &inspect(&path, Some(expected.name())),
            expected,
            qemu_size,
            &what,
        );
        assert_accepted(&inspect(&path, None), expected, qemu_size, &what);
    }
}

#[test]
fn raw_is_sized_by_byte_count_where_qemu_rounds_up() {
    let scratch = Scratch::new();
    for size in SIZES {
        // qemu-img creates raw files rounded up to 512 bytes; write the exact size ourselves too.
        let made = scratch.create(&format!("raw-{size}"), "raw", &[], size);
        assert_eq!(file_len(&made), size.next_multiple_of(512));
        let exact = scratch.path(&format!("exact-{size}"));
        File::create(&exact)
            .and_then(|f| f.set_len(size))
            .expect("sparse raw file");
        for path in [made, exact] {
            let len = file_len(&path);
            let (name, qemu_size) = qemu_info(&path, None);
            assert_eq!(name, "raw");
            assert_eq!(
                qemu_size,
                len.next_multiple_of(512),
                "qemu rounds raw sizes up to 512"
            );
            assert_accepted(&inspect(&path, Some("raw")), Format::Raw, len, "raw");
            assert_accepted(&inspect(&path, None), Format::Raw, len, "raw undeclared");
            // Glance: a non-inspectable declared format with raw content has no virtual_size.
            let ami = inspect(&path, Some("ami"));
            assert_eq!(
                (ami.format, ami.virtual_size, ami.verdict),
                (Format::Raw, None, Ok(()))
            );
        }
    }
}

#[test]
fn qcow2_v2_is_sized_like_qemu() {
    check_sizes("qcow2", &["-o", "compat=0.10"], Format::Qcow2);
}

#[test]
fn qcow2_v3_is_sized_like_qemu() {
    check_sizes("qcow2", &["-o", "compat=1.1"], Format::Qcow2);
}

#[test]
fn qcow2_variants_are_accepted() {
    let scratch = Scratch::new();
    let secret = ["--object", "secret,id=sec0,data=swordfish"];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("small-clusters", vec!["-o", "cluster_size=512"]),
        ("big-clusters", vec!["-o", "cluster_size=2M"]),
        ("zstd", vec!["-o", "compression_type=zstd"]),
        ("lazy-refcounts", vec!["-o", "lazy_refcounts=on"]),
        ("refcount-bits-1", vec!["-o", "refcount_bits=1"]),
        (
            "preallocated-metadata",
            vec!["-o", "preallocation=metadata"],
        ),
        (
            "luks-encrypted",
            [
                &secret[..],
                &[
                    "-o",
                    "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10",
                ],
            ]
            .concat(),
        ),
    ];
    for (name, args) in cases {
        let path = scratch.create(name, "qcow2", &args, 1_000_003);
        let (_, qemu_size) = qemu_info(&path, None);
        assert_accepted(
            &inspect(&path, Some("qcow2")),
            Format::Qcow2,
            qemu_size,
            name,
        );
    }
    // 16 TiB virtual, still a tiny file.
    let huge = scratch.create("huge", "qcow2", &["-o", "cluster_size=2M"], 16 << 40);
    assert_accepted(
        &inspect(&huge, Some("qcow2")),
        Format::Qcow2,
        16 << 40,
        "16 TiB",
    );
}

// Issue 15: oslo's inspector (Glance, Nova) refuses incompatible feature bit 4, so an
// extended_l2 image glint accepted would then be refused by the compute node booting it.
#[test]
fn qcow2_extended_l2_is_refused_unless_the_policy_allows_it() {
    let scratch = Scratch::new();
    let path = scratch.create("extended-l2", "qcow2", &["-o", "extended_l2=on"], 1_000_003);
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&path)
        .output()
        .expect("run qemu-img info");
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        info["format-specific"]["data"]["extended-l2"],
        serde_json::Value::Bool(true),
        "qemu-img made an extended_l2 image"
    );
    for declared in [Some("qcow2"), Some("raw"), None] {
        let inspection = inspect(&path, declared);
        assert_eq!(
            failed_check(&inspection),
            Some(Check::UnknownFeatures),
            "{declared:?}"
        );
        assert!(inspection.reason().unwrap().contains("extended_l2"));
    }
    let allow = Policy {
        qcow2_allow_extended_l2: true,
        ..Policy::default()
    };
    let (_, qemu_size) = qemu_info(&path, None);
    assert_accepted(
        &inspect_as(&path, Some("qcow2"), &allow),
        Format::Qcow2,
        qemu_size,
        "extended_l2 allowed",
    );
    // The switch allows that one feature: a backing file is still refused.
    scratch.create("base", "qcow2", &[], 1 << 20);
    let child = scratch.create(
        "child",
        "qcow2",
        &["-o", "extended_l2=on", "-b", "base", "-F", "qcow2"],
        1 << 20,
    );
    assert_eq!(
        failed_check(&inspect_as(&child, Some("qcow2"), &allow)),
        Some(Check::BackingFile)
    );
}

#[test]
fn qcow2_that_opens_other_files_is_refused() {
    let scratch = Scratch::new();
    scratch.create("base.qcow2", "qcow2", &[], 1 << 20);
    scratch.create("base.raw", "raw", &[], 1 << 20);
    let cases: [(&str, Vec<&str>, Check); 5] = [
        (
            "backing-qcow2",
            vec!["-b", "base.qcow2", "-F", "qcow2"],
            Check::BackingFile,
        ),
        (
            "backing-raw-v2",
            vec!["-o", "compat=0.10", "-b", "base.raw", "-F", "raw"],
            Check::BackingFile,
        ),
        (
            "backing-abs",
            vec!["-b", "/etc/passwd", "-F", "raw", "-u"],
            Check::BackingFile,
        ),
        (
            "data-file",
            vec!["-o", "data_file=data.raw"],
            Check::DataFile,
        ),
        (
            "data-file-raw",
            vec!["-o", "data_file=data2.raw,data_file_raw=on"],
            Check::DataFile,
        ),
    ];
    for (name, args, check) in cases {
        let path = scratch.create(name, "qcow2", &args, 1 << 20);
        for declared in [Some("qcow2"), Some("raw"), None] {
            let inspection = inspect(&path, declared);
            assert_eq!(
                failed_check(&inspection),
                Some(check),
                "{name} declared {declared:?}"
            );
            assert_eq!(inspection.format, Format::Qcow2, "{name}");
        }
        // Refused within the first 34 KiB of the stream, without reading the rest.
        let early = inspect_file(&path, Some("qcow2"), &Policy::default(), 512);
        assert!(
            early.bytes_seen <= 34_816,
            "{name}: refused after {} bytes",
            early.bytes_seen
        );
    }
}

#[test]
fn qcow_v1_is_refused() {
    let scratch = Scratch::new();
    let path = scratch.create("old.qcow", "qcow", &[], 1 << 20);
    assert_eq!(qemu_info(&path, None).0, "qcow");
    for declared in [Some("qcow2"), Some("raw"), None] {
        assert_eq!(
            failed_check(&inspect(&path, declared)),
            Some(Check::Version),
            "{declared:?}"
        );
    }
}

#[test]
fn vmdk_single_file_subformats_are_sized_like_qemu() {
    check_sizes("vmdk", &["-o", "subformat=monolithicSparse"], Format::Vmdk);
    check_sizes("vmdk", &["-o", "subformat=streamOptimized"], Format::Vmdk);
    let scratch = Scratch::new();
    for (name, opts) in [
        ("lsilogic", "adapter_type=lsilogic"),
        ("hw6", "hwversion=6"),
        ("compat6", "compat6=on"),
    ] {
        let path = scratch.create(name, "vmdk", &["-o", opts], 1_000_003);
        let (_, qemu_size) = qemu_info(&path, None);
        assert_accepted(&inspect(&path, Some("vmdk")), Format::Vmdk, qemu_size, name);
    }
}

#[test]
fn vmdk_create_type_follows_policy() {
    let scratch = Scratch::new();
    let path = scratch.create(
        "sparse.vmdk",
        "vmdk",
        &["-o", "subformat=monolithicSparse"],
        1 << 20,
    );
    let only_stream = Policy {
        vmdk_allowed_types: vec!["streamOptimized".into()],
        ..Policy::default()
    };
    assert_eq!(
        failed_check(&inspect_as(&path, Some("vmdk"), &only_stream)),
        Some(Check::Descriptor)
    );
    assert!(inspect(&path, Some("vmdk")).is_safe());
}

#[test]
fn vmdk_descriptor_files_and_their_extents_are_refused() {
    let scratch = Scratch::new();
    // 3 GiB makes the twoGbMaxExtent* descriptors list two extents.
    let cases = [
        ("monolithicFlat", 1 << 20),
        ("twoGbMaxExtentSparse", 3 << 30),
        ("twoGbMaxExtentFlat", 3 << 30),
    ];
    for (subformat, size) in cases {
        let name = format!("{subformat}.vmdk");
        let path = scratch.create(
            &name,
            "vmdk",
            &["-o", &format!("subformat={subformat}")],
            size,
        );
        assert_eq!(qemu_info(&path, None).0, "vmdk");
        for declared in [Some("vmdk"), Some("raw"), None] {
            let inspection = inspect(&path, declared);
            assert_eq!(
                failed_check(&inspection),
                Some(Check::Descriptor),
                "{subformat} as {declared:?}"
            );
            assert!(
                inspection.reason().unwrap().contains(subformat),
                "{subformat}: {:?}",
                inspection.reason()
            );
        }
    }
    // The flat extent alone is a raw disk.
    let flat = scratch.path("monolithicFlat-flat.vmdk");
    assert_accepted(
        &inspect(&flat, Some("raw")),
        Format::Raw,
        1 << 20,
        "flat extent",
    );
    // A sparse extent alone (no descriptor) is a VMDK that cannot stand on its own.
    let extent = scratch.path("twoGbMaxExtentSparse-s001.vmdk");
    let inspection = inspect(&extent, Some("vmdk"));
    assert_eq!(
        (inspection.format, failed_check(&inspection)),
        (Format::Vmdk, Some(Check::Descriptor))
    );
}

/// Writes `bytes` as a file in the scratch dir.
fn write_file(scratch: &Scratch, name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch.path(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

// Issue 15: text that starts like a descriptor but names no createType is raw for oslo, and
// qemu will not open it as VMDK ("invalid VMDK image descriptor"): no extent is ever opened.
#[test]
fn descriptor_like_text_without_create_type_is_raw() {
    let scratch = Scratch::new();
    scratch.create("data.img", "raw", &[], 1 << 20);
    let texts: [&[u8]; 3] = [
        b"# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
          RW 2048 FLAT \"data.img\" 0\n",
        b"# Disk DescriptorFile\nversion=1\n",
        b"# Disk DescriptorFile\nthese are release notes, not a disk\n",
    ];
    for (n, text) in texts.into_iter().enumerate() {
        let mut bytes = text.to_vec();
        bytes.resize(64 * 1024, 0);
        for (name, bytes) in [
            (format!("text-{n}"), text.to_vec()),
            (format!("padded-{n}"), bytes),
        ] {
            let path = write_file(&scratch, &name, &bytes);
            let probed = Command::new("qemu-img")
                .args(["info", "--output=json"])
                .arg(&path)
                .output()
                .expect("run qemu-img info");
            if probed.status.success() {
                let info: serde_json::Value = serde_json::from_slice(&probed.stdout).unwrap();
                assert_eq!(info["format"], "raw", "{name}: qemu probes raw");
            } else {
                let err = String::from_utf8_lossy(&probed.stderr);
                assert!(
                    err.contains("invalid VMDK image descriptor"),
                    "{name}: {err}"
                );
            }
            assert_eq!(qemu_info(&path, Some("raw")).0, "raw");
            let len = file_len(&path);
            assert_accepted(&inspect(&path, Some("raw")), Format::Raw, len, &name);
            assert_accepted(&inspect(&path, None), Format::Raw, len, &name);
        }
    }
}

// A descriptor file whose comment line holds non-text bytes: oslo reads it as raw, but qemu
// probes it as VMDK and opens its extent, so it is refused.
#[test]
fn descriptor_file_with_binary_comment_is_refused() {
    let scratch = Scratch::new();
    scratch.create("data.img", "raw", &[], 1 << 20);
    let text = b"# Disk DescriptorFile \x80\x01\xff\nversion=1\nCID=fffffffe\n\
                 parentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"data.img\" 0\n";
    let path = write_file(&scratch, "binary-comment.vmdk", text);
    assert_eq!(qemu_info(&path, None), ("vmdk".to_owned(), 1 << 20));
    for declared in [Some("raw"), Some("vmdk"), None] {
        assert_eq!(
            failed_check(&inspect(&path, declared)),
            Some(Check::Descriptor),
            "{declared:?}"
        );
    }
}

#[test]
fn vmdk_with_a_parent_is_refused() {
    let scratch = Scratch::new();
    scratch.create("base.vmdk", "vmdk", &[], 1 << 20);
    let child = scratch.create(
        "child.vmdk",
        "vmdk",
        &["-b", "base.vmdk", "-F", "vmdk"],
        1 << 20,
    );
    assert_eq!(
        failed_check(&inspect(&child, Some("vmdk"))),
        Some(Check::BackingFile)
    );
}

#[test]
fn vhd_dynamic_is_sized_like_qemu() {
    check_sizes("vpc", &[], Format::Vhd);
    check_sizes("vpc", &["-o", "force_size=on"], Format::Vhd);
}

#[test]
fn vhd_fixed_is_found_by_its_footer() {
    check_sizes("vpc", &["-o", "subformat=fixed"], Format::Vhd);
    check_sizes("vpc", &["-o", "subformat=fixed,force_size=on"], Format::Vhd);
    let scratch = Scratch::new();
    let path = scratch.create("fixed.vhd", "vpc", &["-o", "subformat=fixed"], 1_000_003);
    // qemu's probe (and Glance) see raw; declared raw it is accepted, sized by byte count.
    assert_eq!(qemu_info(&path, None).0, "raw");
    assert_accepted(
        &inspect(&path, Some("raw")),
        Format::Vhd,
        file_len(&path),
        "fixed vhd as raw",
    );
}

#[test]
fn vhdx_is_sized_like_qemu() {
    check_sizes("vhdx", &[], Format::Vhdx);
    let scratch = Scratch::new();
    for (name, opts) in [
        ("fixed", "subformat=fixed"),
        ("block-1m", "block_size=1M"),
        ("log-1m", "log_size=1M"),
    ] {
        let path = scratch.create(name, "vhdx", &["-o", opts], 1_000_003);
        let (_, qemu_size) = qemu_info(&path, None);
        assert_accepted(&inspect(&path, Some("vhdx")), Format::Vhdx, qemu_size, name);
    }
}

#[test]
fn vdi_is_sized_like_qemu() {
    check_sizes("vdi", &[], Format::Vdi);
    check_sizes("vdi", &["-o", "static=on"], Format::Vdi);
}

#[test]
fn ploop_is_sized_like_qemu() {
    check_sizes("parallels", &[], Format::Ploop);
}

#[test]
fn qed_is_refused() {
    let scratch = Scratch::new();
    let path = scratch.create("old.qed", "qed", &[], 1 << 20);
    for declared in [Some("qed"), Some("raw"), None] {
        assert_eq!(
            failed_check(&inspect(&path, declared)),
            Some(Check::Banned),
            "{declared:?}"
        );
    }
}

#[test]
fn luks_is_sized_by_payload_where_qemu_rounds_up() {
    let scratch = Scratch::new();
    let args = [
        "--object",
        "secret,id=sec0,data=swordfish",
        "-o",
        "key-secret=sec0,iter-time=10",
    ];
    for size in [1, 511, 1_000_003] {
        let path = scratch.create(&format!("luks-{size}"), "luks", &args, size);
        let (_, qemu_size) = qemu_info(&path, None);
        let inspection = inspect(&path, Some("luks"));
        assert_eq!(
            (inspection.format, inspection.verdict.clone()),
            (Format::Luks, Ok(()))
        );
        let ours = inspection.virtual_size.expect("luks size");
        assert_eq!(ours, size, "payload is exactly the requested size");
        assert_eq!(
            qemu_size,
            ours.next_multiple_of(512),
            "qemu rounds up to 512"
        );
        // Not in Glance's default disk_formats: declared raw it is accepted, sized by bytes.
        assert_accepted(
            &inspect(&path, Some("raw")),
            Format::Luks,
            file_len(&path),
            "luks as raw",
        );
    }
}

#[test]
fn declared_format_must_match_content() {
    let scratch = Scratch::new();
    let qcow2 = scratch.create("disk.qcow2", "qcow2", &[], 1 << 30);
    let vmdk = scratch.create("disk.vmdk", "vmdk", &[], 1 << 30);
    let raw = scratch.create("disk.raw", "raw", &[], 4 << 20);
    let cases = [
        (&qcow2, "vmdk", Format::Qcow2),
        (&qcow2, "vhd", Format::Qcow2),
        (&qcow2, "iso", Format::Qcow2),
        (&qcow2, "ami", Format::Qcow2),
        (&vmdk, "qcow2", Format::Vmdk),
        (&raw, "qcow2", Format::Raw),
        (&raw, "vhdx", Format::Raw),
        (&raw, "vhd", Format::Raw),
    ];
    for (path, declared, detected) in cases {
        let inspection = inspect(path, Some(declared));
        let expected = RefusalKind::FormatMismatch {
            declared: declared.into(),
            detected,
        };
        assert_eq!(
            inspection.verdict.map_err(|r| r.kind),
            Err(expected),
            "{declared}"
        );
    }
    // Declared raw: any single safe format is accepted, sized by the byte count.
    assert_accepted(
        &inspect(&qcow2, Some("raw")),
        Format::Qcow2,
        file_len(&qcow2),
        "qcow2 as raw",
    );
    // Lax policy: mismatch tolerated, size unknown.
    let lax = Policy {
        require_format_match: false,
        ..Policy::default()
    };
    let inspection = inspect_as(&qcow2, Some("vmdk"), &lax);
    assert_eq!(
        (inspection.verdict, inspection.virtual_size),
        (Ok(()), None)
    );
}

#[test]
fn truncated_headers_are_refused() {
    let scratch = Scratch::new();
    let cases = [
        ("qcow2", vec![], 100usize),
        ("vmdk", vec!["-o", "subformat=monolithicSparse"], 600),
        ("vmdk", vec!["-o", "subformat=streamOptimized"], 300),
        ("vhdx", vec![], 200 * 1024),
        ("vdi", vec![], 300),
        ("vpc", vec![], 200),
    ];
    for (format, args, keep) in cases {
        let full = scratch.create(&format!("full.{format}"), format, &args, 1 << 30);
        let bytes = std::fs::read(&full).expect("read image");
        let cut = scratch.path(&format!("cut.{format}"));
        std::fs::write(&cut, &bytes[..keep]).expect("write cut image");
        for declared in [Some(format), Some("raw"), None] {
            let inspection = inspect(&cut, declared.map(|d| if d == "vpc" { "vhd" } else { d }));
            assert!(
                matches!(
                    inspection.verdict.as_ref().map_err(|r| &r.kind),
                    Err(RefusalKind::Truncated { .. })
                ),
                "{format} cut at {keep} declared {declared:?}: {:?}",
                inspection.verdict
            );
        }
    }
}

#[test]
fn a_second_header_in_the_same_stream_is_refused() {
    let scratch = Scratch::new();
    // A qcow2 image dressed as a fixed VHD: qcow2 header at 0, valid fixed footer at the end.
    let qcow2 = std::fs::read(scratch.create("inner.qcow2", "qcow2", &[], 1 << 20)).expect("read");
    let vhd_path = scratch.create(
        "outer.vhd",
        "vpc",
        &["-o", "subformat=fixed,force_size=on"],
        1 << 20,
    );
    let mut vhd = std::fs::read(&vhd_path).expect("read");
    vhd[..qcow2.len()].copy_from_slice(&qcow2);
    let polyglot = scratch.path("polyglot.vhd");
    std::fs::write(&polyglot, &vhd).expect("write");
    let inspection = inspect(&polyglot, None);
    let kind = inspection.verdict.map_err(|r| r.kind);
    assert_eq!(
        kind,
        Err(RefusalKind::MultipleFormats(vec![
            Format::Qcow2,
            Format::Vhd
        ]))
    );
    // A VMDK whose data area starts with an ISO descriptor at 32 KiB.
    let mut vmdk = std::fs::read(scratch.create(
        "x.vmdk",
        "vmdk",
        &["-o", "subformat=monolithicSparse"],
        1 << 20,
    ))
    .expect("read");
    vmdk.resize(64 * 1024, 0);
    vmdk[32_769..32_774].copy_from_slice(b"CD001");
    let both = scratch.path("both.vmdk");
    std::fs::write(&both, &vmdk).expect("write");
    let kind = inspect(&both, None).verdict.map_err(|r| r.kind);
    assert_eq!(
        kind,
        Err(RefusalKind::MultipleFormats(vec![
            Format::Vmdk,
            Format::Iso
        ]))
    );
}

/// An ISO from xorriso or genisoimage when one is installed.
fn make_iso(scratch: &Scratch) -> Option<PathBuf> {
    let content = scratch.path("content");
    std::fs::create_dir_all(&content).expect("mkdir");
    std::fs::write(content.join("hello.txt"), vec![b'x'; 300_000]).expect("write");
    let iso = scratch.path("disc.iso");
    let tries: [(&str, Vec<&str>); 2] = [
        ("xorriso", vec!["-as", "mkisofs", "-quiet", "-o"]),
        ("genisoimage", vec!["-quiet", "-o"]),
    ];
    for (tool, args) in tries {
        let ran = Command::new(tool)
            .args(&args)
            .arg(&iso)
            .arg(&content)
            .output();
        if ran.is_ok_and(|o| o.status.success()) {
            return Some(iso);
        }
    }
    None
}

#[test]
fn iso_from_a_mastering_tool_is_sized_by_its_volume() {
    let scratch = Scratch::new();
    let Some(iso) = make_iso(&scratch) else {
        assert!(
            std::env::var_os("GLINT_REQUIRE_XORRISO").is_none(),
            "neither xorriso nor genisoimage could make an ISO, but GLINT_REQUIRE_XORRISO is set \
             (apt-get install xorriso)"
        );
        eprintln!("NOTE: neither xorriso nor genisoimage is installed; ISO mastering test skipped");
        return;
    };
    let len = file_len(&iso);
    assert_accepted(&inspect(&iso, Some("iso")), Format::Iso, len, "iso");
    assert_accepted(&inspect(&iso, Some("raw")), Format::Iso, len, "iso as raw");
    assert!(inspect(&iso, Some("qcow2")).verdict.is_err());
    // A hybrid ISO: an MBR with one bootable partition in the system area. Still an ISO.
    let mut hybrid = std::fs::read(&iso).expect("read");
    hybrid[446] = 0x80;
    hybrid[446 + 4] = 0x17;
    hybrid[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    hybrid[510..512].copy_from_slice(&[0x55, 0xAA]);
    let hybrid_path = scratch.path("hybrid.iso");
    std::fs::write(&hybrid_path, &hybrid).expect("write");
    let inspection = inspect(&hybrid_path, Some("iso"));
    assert_accepted(&inspection, Format::Iso, len, "hybrid iso");
    assert_eq!(inspection.formats, vec![Format::Iso]);
    // The same ISO with a qcow2 header in its system area: a polyglot.
    let mut bytes = std::fs::read(&iso).expect("read");
    let qcow2 = std::fs::read(scratch.create("small.qcow2", "qcow2", &[], 1 << 20)).expect("read");
    bytes[..512].copy_from_slice(&qcow2[..512]);
    let polyglot = scratch.path("polyglot.iso");
    std::fs::write(&polyglot, &bytes).expect("write");
    let kind = inspect(&polyglot, None).verdict.map_err(|r| r.kind);
    assert_eq!(
        kind,
        Err(RefusalKind::MultipleFormats(vec![
            Format::Qcow2,
            Format::Iso
        ]))
    );
}
