//! Disk-image inspection for uploads: what format a stream is, its `virtual_size`, and whether
//! an upload declared as some `disk_format` must be refused.
//!
//! This crate owns the byte-level knowledge of disk formats (qcow2, VMDK, VHD, VHDX, VDI, ISO,
//! MBR/GPT, LUKS, ploop, QED, raw) and Glance's decision table on top of it. It does no I/O, has
//! no async and no runtime: the caller feeds the upload's chunks, in order, to an
//! [`Inspector`] and calls [`Inspector::finish`] at the end of the stream. The reference is
//! oslo.utils' `format_inspector` as used by Glance (`set_data`), described in the team's
//! `spec/disk-formats.md`; where we differ, the list below says so.
//!
//! # Streaming model
//!
//! Each format declares *capture regions* — byte ranges at absolute stream offsets (the head
//! sector, the ISO volume descriptor at 32 KiB, a VMDK descriptor, the VHDX tables) — and the
//! inspector keeps only those bytes plus a rolling tail of the last 1.5 KiB (for a fixed VHD's
//! footer and a VMDK stream footer). Everything is decided at the *end of a region*, a fixed
//! stream offset, never at a chunk boundary, so any chunking of the same bytes gives the same
//! [`Inspection`]. Memory held is at most [`MAX_HELD_BYTES`] (≈ 1.07 MiB) whatever the input.
//! Once the last region is done (34 KiB into most streams; ~3 MiB for a qemu-made VHDX) `feed`
//! only adds to a counter and copies at most 1.5 KiB into the tail: no per-byte work.
//!
//! [`Inspector::feed`] returns `Err` as soon as the upload is *certainly* refused (say, a qcow2
//! backing file in the first sector, or a declared `qcow2` whose first 34 KiB are no qcow2), so
//! the server can stop reading. "Certainly" means: whatever the rest of the stream holds, the
//! verdict is a refusal. The refusal reported is the one that became certain first, with the
//! detections known at that point; a mismatch against content that looks raw (or MBR/GPT) so
//! far waits until the ISO descriptor and any VMDK/VHDX structures are read, so that the
//! format it names is the right one. An early refusal and the end-of-stream verdict agree: the
//! tests check both against the table run on the whole stream.
//!
//! # Reading a file: only the bytes that decide
//!
//! A caller that can seek (`glint inspect FILE`) asks [`Inspector::next_read`] for the next
//! byte range the verdict depends on, [`Inspector::skip_to`]s its start, feeds what it reads
//! there, and repeats; the crate still does no I/O, it only names offsets. The ranges are the
//! capture regions and the tail, so the skipped bytes are ones no check reads and the
//! [`Inspection`] is exactly the one feeding every byte gives (tested on generated and
//! qemu-made images, and in the fuzz targets). For most images that is 4 KiB (135 KiB for
//! a qemu-made VHDX), whatever their size; no check needs the whole stream.
//!
//! # Decision table
//!
//! Following Glance's `set_data` for `container_format=bare`:
//!
//! 1. Detected formats: none → `raw`; ISO + MBR/GPT → `iso` (hybrid ISO); a fixed VHD footer +
//!    MBR/GPT or ISO in its data → `vhd`; any other pair → refused, *multiple formats*.
//! 2. Detected = declared → accepted, `virtual_size` from the header (raw and gpt: the byte
//!    count; LUKS: the byte count minus the payload offset).
//! 3. Declared `raw`, content another format → accepted, `virtual_size` = byte count.
//! 4. Declared a name we cannot inspect (`ami`, `ari`, `aki`, any unknown name) or `ploop`, and
//!    the content is raw or MBR/GPT → accepted, `virtual_size` unknown (`None`).
//! 5. Anything else → refused, *format mismatch* ([`Policy::require_format_match`]; when off,
//!    accepted with `virtual_size` `None`).
//! 6. The chosen format's safety checks run in every case above, including 3 and 5-when-off.
//!    A failed `mbr` check is not fatal for `aki`/`ari` or when listed in
//!    [`Policy::gpt_safety_checks_nonfatal`].
//!
//! With no declared format (`Inspector::new(None, ..)`, used by `glint inspect FILE`), steps 2–5
//! are skipped: any single detected format is fine and only safety checks and multiple formats
//! refuse.
//!
//! # Decisions on the reference's gaps
//!
//! Each is a deliberate choice; spec section numbers refer to `spec/disk-formats.md`.
//!
//! - **Declared raw, data another format (§3.2 step 4, OSSA-2024-002):** accepted as Glance
//!   does (sized by byte count), but the detected format's safety checks still run, so a qcow2
//!   with a backing file or a VMDK descriptor file declared `raw` is refused; consumers must
//!   honour `disk_format` and never probe.
//! - **Fixed VHD (§2.4):** recognised from the last 512 bytes when the footer checksums, says
//!   "fixed", and its current size + 512 equals the stream length. So `disk_format=vhd` fixed
//!   disks are accepted (Glance refuses them as raw). A fixed VHD whose data starts with another
//!   image header (qcow2, VMDK, ...) is refused (multiple formats, or a mismatch naming the
//!   inner format).
//! - **VHD size:** the footer's *original size* (offset 40), as Glance; qemu uses the current
//!   size or the CHS geometry, which agree with it for qemu-made disks (tested) and differ only
//!   for disks resized after creation.
//! - **Differencing disks:** refused — VHD type 4, VHDX with a parent locator, VDI type 4 —
//!   as are VHD disk types other than fixed/dynamic and VDI types other than dynamic/static.
//! - **qcow2 data-file bit on v2 (§2.2):** tested only for v3 (v2 has no feature fields).
//! - **qcow2 `extended_l2` (bit 4):** refused as an unknown feature, as oslo (so Glance and
//!   Nova's inspector) does, although qemu ≥ 5.2 reads it; [`Policy::qcow2_allow_extended_l2`]
//!   accepts it. Bits 5 and up are always refused as unknown features.
//! - **Encrypted qcow2:** accepted as Glance (AES and LUKS); an unknown crypt method is refused.
//! - **qcow2 size sanity:** refused unless cluster_bits is 9–21, the L1 table maps the whole
//!   size and is within qemu's 32 MiB limit (so the 2^62 case is refused), and a v3
//!   header_length is ≥ 104. Every format: a virtual size above 2^63 − 1 is refused.
//! - **qcow v1 / other versions:** refused (`version`).
//! - **VMDK descriptor files:** always refused, whatever `vmdk_allowed_types` says (their
//!   extents are other files). A stream is one when its text up to the first NUL names a
//!   `createType` (any case) and it either starts with a sector of text (oslo's test) or
//!   passes qemu's probe (comment and blank lines, then `version=N`; qemu also opens
//!   descriptors whose comments hold non-text bytes, which oslo calls raw). Without a
//!   `createType` it is raw, as oslo says and because qemu refuses to open it ("invalid VMDK
//!   image descriptor"). oslo also misses a descriptor followed by NUL padding.
//! - **VMDK sparse extents:** version 1–3 and the descriptor at sector 1 are required (oslo
//!   falls back to raw; qemu would still open them as VMDK, so we refuse); a bare extent of a
//!   multi-file VMDK (no descriptor), capacity 0 (qemu then opens the descriptor's extents),
//!   `parentFileNameHint` (a backing file) and VMware 3 `COWD` extents are refused. *Every*
//!   `createType` in the descriptor must read `createType="<allowed>"` (qemu takes the first
//!   case-sensitive match, oslo the first lower-cased one). `vmdk_allowed_types` is enforced on
//!   upload (Glance only enforces it in image conversion).
//! - **VMDK stream footer:** oslo's checks, plus the footer's capacity must equal the header's
//!   (qemu sizes the disk from the footer).
//! - **Truncation:** a stream that carries a format's magic but ends before the bytes the
//!   verdict needs (head sector, VMDK descriptor, VHDX tables, ISO descriptor, LUKS payload) is
//!   refused as truncated; oslo falls back to raw for some of them.
//! - **VHDX placement:** the metadata region must be 1 MiB-aligned and at or after 1 MiB (the
//!   VHDX spec's rule, which also keeps it ahead in the stream). Checksums and the second region
//!   table are not verified.
//! - **MBR/GPT:** oslo's `mbr` check, kept even for declared `raw` (Glance runs the detected
//!   format's checks), so a raw disk with a 55 AA signature and no partition is refused unless
//!   `mbr` is in `gpt_safety_checks_nonfatal` or the image is `aki`/`ari`.
//! - **ISO size:** `None` when the first descriptor is not a primary one or gives 0 (oslo: 0).
//! - **LUKS:** LUKS2 refused (`version`); the passphrase check is not done (no key on upload).
//! - **ploop:** recognised (header version 2 only) and sized; declared `ploop` with raw content
//!   is accepted unsized, as Glance.
//! - **QED:** always refused (`banned`), even when truncated.
//! - **`require_image_format_match = false`:** tolerates a mismatch only. Unlike Glance, which
//!   then skips the safety checks, they still run, and multiple formats are still refused.
//! - **Raw size:** the byte count (qemu rounds up to 512).
//!
//! # Example
//!
//! ```
//! use formats::{Format, Inspector, Policy, RefusalKind};
//!
//! let policy = Policy::default();
//! let disk = vec![0u8; 3 << 20]; // 3 MiB of zeros: a raw disk
//!
//! // Declared raw: accepted, sized by the byte count. Chunks can be any size.
//! let mut inspector = Inspector::new(Some("raw"), &policy);
//! for chunk in disk.chunks(256 * 1024 + 1) {
//!     inspector.feed(chunk).expect("a raw disk declared raw is never refused early");
//! }
//! let inspection = inspector.finish();
//! assert_eq!(inspection.format, Format::Raw);
//! assert_eq!(inspection.virtual_size, Some(3 << 20));
//! assert!(inspection.verdict.is_ok());
//!
//! // Declared qcow2: refused once the first 34 KiB show it cannot be qcow2.
//! let mut inspector = Inspector::new(Some("qcow2"), &policy);
//! let refusal = disk.chunks(1 << 20).find_map(|chunk| inspector.feed(chunk).err()).unwrap();
//! assert!(matches!(refusal.kind, RefusalKind::FormatMismatch { detected: Format::Raw, .. }));
//! assert_eq!(refusal.to_string(), "Image disk_format qcow2 does not match stream data raw");
//!
//! // The one-shot helper gives the same answer.
//! let inspection = formats::inspect(&disk, Some("qcow2"), &policy);
//! assert_eq!(inspection.verdict, Err(refusal));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bytes;
mod capture;
mod decide;
mod format;
mod found;
mod inspector;
mod iso;
mod luks;
mod mbr;
mod ploop;
mod policy;
mod qcow2;
mod qed;
mod refusal;
mod vdi;
mod vhd;
mod vhdx;
mod vmdk;

pub use format::{Format, UnknownFormat};
pub use inspector::{inspect, Inspection, Inspector, SkipError, MAX_HELD_BYTES};
pub use policy::Policy;
pub use refusal::{Check, Refusal, RefusalKind};
