//! The streaming inspector: capture regions, decisions at fixed stream offsets, the verdict.
//!
//! Every format's bytes of interest are capture regions at absolute offsets. `feed` cuts each
//! chunk at the end of the next pending region, so the work done when a region completes (an
//! "event": parse, maybe open the next region, maybe refuse) happens at the same stream offset
//! whatever the chunking. The state after any prefix therefore depends only on the bytes, never
//! on how they were cut — which is what makes early refusal and the final verdict identical
//! for every chunking. Once no region is pending, `feed` only counts bytes and updates the
//! tail.

use std::mem;
use std::ops::Range;

use crate::capture::{Region, Tail, TAIL_LEN};
use crate::decide::{decide, Declared};
use crate::found::{Found, Problem, Size};
use crate::{iso, luks, mbr, ploop, qcow2, qed, vdi, vhd, vhdx, vmdk};
use crate::{Format, Policy, Refusal, RefusalKind};

/// Bytes of the head sector every format looks at.
const HEAD_LEN: usize = 512;

/// Upper bound of [`Inspector::held_bytes`]: the head sector, the ISO volume descriptor, a
/// VMDK descriptor (≤ 1 MiB − 1), one VHDX table (64 KiB) and the tail (1.5 KiB): 1 118 719
/// bytes, about 1.07 MiB, whatever the stream.
pub const MAX_HELD_BYTES: usize =
    HEAD_LEN + iso::DESCRIPTOR_LEN + vmdk::DESCRIPTOR_MAX + vhdx::METADATA_TABLE_LEN + TAIL_LEN;

/// An incremental disk-image inspector: feed it the upload's chunks in order, then
/// [`finish`](Inspector::finish) it for the verdict.
#[derive(Debug)]
pub struct Inspector {
    declared: Declared,
    policy: Policy,
    /// Bytes fed so far.
    pos: u64,
    tail: Tail,
    head: Region,
    head_done: bool,
    /// The first ISO volume descriptor; `None` once judged.
    iso: Option<Region>,
    vmdk: VmdkStage,
    /// The sparse header, when its stream footer must be checked at the end.
    vmdk_footer: Option<vmdk::SparseHeader>,
    vhdx: VhdxStage,
    /// Every detection so far, in the order their events happened.
    found: Vec<Found>,
    /// End of the nearest pending region; `None` when nothing is pending (the fast path).
    next_event: Option<u64>,
    /// Set once the upload is certainly refused; nothing is parsed after that.
    refusal: Option<Refusal>,
    /// Whether to refuse before the end of the stream (always, except in the tests that check
    /// early refusals against the plain end-of-stream verdict).
    early_refusal: bool,
}

#[derive(Debug, Default)]
enum VmdkStage {
    #[default]
    Idle,
    /// The embedded descriptor of a sparse extent.
    Embedded {
        header: vmdk::SparseHeader,
        region: Region,
    },
    /// A stream that starts with text: a possible descriptor file, read from offset 0.
    Text { region: Region },
}

#[derive(Debug, Default)]
enum VhdxStage {
    #[default]
    Idle,
    RegionTable(Region),
    MetadataTable(Region),
    SizeItem(Region),
}

impl VmdkStage {
    fn region(&self) -> Option<&Region> {
        match self {
            VmdkStage::Idle => None,
            VmdkStage::Embedded { region, .. } | VmdkStage::Text { region } => Some(region),
        }
    }

    fn region_mut(&mut self) -> Option<&mut Region> {
        match self {
            VmdkStage::Idle => None,
            VmdkStage::Embedded { region, .. } | VmdkStage::Text { region } => Some(region),
        }
    }
}

impl VhdxStage {
    fn region(&self) -> Option<&Region> {
        match self {
            VhdxStage::Idle => None,
            VhdxStage::RegionTable(r) | VhdxStage::MetadataTable(r) | VhdxStage::SizeItem(r) => {
                Some(r)
            }
        }
    }

    fn region_mut(&mut self) -> Option<&mut Region> {
        match self {
            VhdxStage::Idle => None,
            VhdxStage::RegionTable(r) | VhdxStage::MetadataTable(r) | VhdxStage::SizeItem(r) => {
                Some(r)
            }
        }
    }
}

/// The inspector's verdict on a whole stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The detected format ([`Format::Raw`] when nothing was recognised; the first one found
    /// when several were).
    pub format: Format,
    /// Every format recognised, in stream order, after the hybrid exceptions (ISO + MBR/GPT is
    /// just `iso`). Empty for raw; more than one only with a `MultipleFormats` refusal.
    pub formats: Vec<Format>,
    /// The `virtual_size` to store for the image, under Glance's rules for the declared format
    /// (see the crate docs); `None` when it is not known or not to be set. On a refusal, the
    /// detected format's own size, for diagnostics.
    pub virtual_size: Option<u64>,
    /// Bytes fed to the inspector.
    pub bytes_seen: u64,
    /// `Ok` when an upload declared as the inspector's `declared` format may be accepted.
    pub verdict: Result<(), Refusal>,
}

impl Inspection {
    /// Whether the upload may be accepted.
    pub fn is_safe(&self) -> bool {
        self.verdict.is_ok()
    }

    /// Why not, in words (`None` when safe).
    pub fn reason(&self) -> Option<String> {
        self.verdict.as_ref().err().map(ToString::to_string)
    }
}

impl Inspector {
    /// An inspector for a stream declared as `declared` (a Glance `disk_format` name; `None`
    /// judges the content alone).
    pub fn new(declared: Option<&str>, policy: &Policy) -> Inspector {
        let mut inspector = Inspector {
            declared: Declared::parse(declared),
            policy: policy.clone(),
            pos: 0,
            tail: Tail::new(),
            head: Region::new(0, HEAD_LEN),
            head_done: false,
            iso: Some(Region::new(iso::DESCRIPTOR_OFFSET, iso::DESCRIPTOR_LEN)),
            vmdk: VmdkStage::Idle,
            vmdk_footer: None,
            vhdx: VhdxStage::Idle,
            found: Vec::new(),
            next_event: None,
            refusal: None,
            early_refusal: true,
        };
        inspector.next_event = inspector.nearest_region_end();
        inspector
    }

    /// Feeds the next chunk of the stream (any size, any alignment).
    ///
    /// Returns `Err` as soon as the upload is certainly refused, whatever the rest of the
    /// stream holds; the caller should stop reading. Later calls return the same refusal.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Refusal> {
        if let Some(refusal) = &self.refusal {
            self.pos = self.pos.saturating_add(chunk.len() as u64);
            return Err(refusal.clone());
        }
        let mut rest = chunk;
        while let Some(event) = self.next_event {
            if rest.is_empty() {
                return Ok(());
            }
            // `nearest_region_end` only returns offsets past `pos`, so `take` is at least 1.
            let until_event = event.saturating_sub(self.pos);
            let take = usize::try_from(until_event).map_or(rest.len(), |n| n.min(rest.len()));
            let (piece, after) = rest.split_at(take);
            self.capture(piece);
            rest = after;
            if self.pos == event {
                self.run_events();
                if let Some(refusal) = &self.refusal {
                    self.pos = self.pos.saturating_add(rest.len() as u64);
                    return Err(refusal.clone());
                }
            }
        }
        // Fast path: every header is decided; only the counter and the tail move.
        self.pos = self.pos.saturating_add(rest.len() as u64);
        self.tail.push(rest);
        Ok(())
    }

    /// Ends the stream and returns the verdict.
    pub fn finish(mut self) -> Inspection {
        if self.refusal.is_none() {
            self.run_end_of_stream();
        }
        let decision = decide(&self.found, &self.declared, &self.policy);
        let verdict = match self.refusal {
            Some(refusal) => Err(refusal),
            None => decision.verdict.map_err(|kind| Refusal { kind }),
        };
        let virtual_size = match decision.size {
            Size::Bytes(bytes) => Some(bytes),
            Size::StreamLength => Some(self.pos),
            Size::StreamLengthMinus(header) => self.pos.checked_sub(header),
            Size::Unknown => None,
        };
        Inspection {
            format: decision.format,
            formats: decision.formats,
            virtual_size,
            bytes_seen: self.pos,
            verdict,
        }
    }

    /// Bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.pos
    }

    /// Whether every header is decided, so that `feed` is down to counting bytes and keeping
    /// the tail (or the upload is already refused).
    pub fn is_settled(&self) -> bool {
        self.next_event.is_none() || self.refusal.is_some()
    }

    /// For a stream of `stream_len` bytes that the caller can seek in (a file): the next bytes
    /// the verdict depends on, or `None` once it needs no more of them.
    ///
    /// The caller [`skip_to`](Inspector::skip_to)s the range's start, [`feed`](Inspector::feed)s
    /// what it reads there (any amount from the start on), and asks again; at `None` it skips to
    /// `stream_len` and calls [`finish`](Inspector::finish). The inspector then gives exactly
    /// the [`Inspection`] that feeding every byte would have: the skipped bytes are ones no
    /// check reads. What it asks for is the head sector, the ISO descriptor at 32 KiB, a
    /// VMDK descriptor, the VHDX tables and the last 1.5 KiB (a fixed VHD footer, a VMDK
    /// stream footer) — 4 KiB for most images (135 KiB for a qemu-made VHDX), whatever their size. No check needs the
    /// whole stream today; one that did would be asked for here, range after range.
    pub fn next_read(&self, stream_len: u64) -> Option<Range<u64>> {
        if self.refusal.is_some() || self.pos >= stream_len {
            return None;
        }
        let tail_start = stream_len.saturating_sub(TAIL_LEN as u64).max(self.pos);
        let region = self
            .pending_regions()
            .filter(|region| region.next_offset() < stream_len)
            .min_by_key(|region| region.next_offset());
        match region {
            Some(region) if region.next_offset() < tail_start => {
                Some(region.next_offset()..region.end().min(stream_len))
            }
            _ => Some(tail_start..stream_len),
        }
    }

    /// Moves to `offset` of a stream of `stream_len` bytes without looking at the bytes in
    /// between: they count towards its length (a raw image's size) and are never read.
    ///
    /// Fails, changing nothing, when a byte before `offset` is one that
    /// [`next_read`](Inspector::next_read) asks for, or when `offset` is behind the bytes
    /// already fed or past `stream_len`.
    pub fn skip_to(&mut self, offset: u64, stream_len: u64) -> Result<(), SkipError> {
        if offset == self.pos {
            return Ok(());
        }
        let wanted = self
            .next_read(stream_len)
            .map_or(stream_len, |range| range.start);
        if offset < self.pos || offset > wanted {
            return Err(SkipError {
                offset,
                wanted: wanted.max(self.pos),
            });
        }
        self.pos = offset;
        // The tail holds the last bytes *before* the gap; they no longer end the stream.
        self.tail.clear();
        self.next_event = self.nearest_region_end();
        Ok(())
    }

    /// Regions still waiting for bytes at or after `pos`.
    fn pending_regions(&self) -> impl Iterator<Item = &Region> {
        let head = (!self.head_done).then_some(&self.head);
        [
            head,
            self.iso.as_ref(),
            self.vmdk.region(),
            self.vhdx.region(),
        ]
        .into_iter()
        .flatten()
        .filter(|region| !region.is_complete() && region.next_offset() >= self.pos)
    }

    /// Bytes of the stream currently held in memory; never more than [`MAX_HELD_BYTES`].
    pub fn held_bytes(&self) -> usize {
        [
            Some(&self.head),
            self.iso.as_ref(),
            self.vmdk.region(),
            self.vhdx.region(),
        ]
        .into_iter()
        .flatten()
        .map(Region::held_bytes)
        .sum::<usize>()
            + self.tail.held_bytes()
    }

    /// Offers `piece` (the next bytes of the stream) to every pending region and the tail.
    fn capture(&mut self, piece: &[u8]) {
        let at = self.pos;
        if !self.head_done {
            self.head.offer(at, piece);
        }
        let regions = [
            self.iso.as_mut(),
            self.vmdk.region_mut(),
            self.vhdx.region_mut(),
        ];
        for region in regions.into_iter().flatten() {
            region.offer(at, piece);
        }
        self.pos = at.saturating_add(piece.len() as u64);
        self.tail.push(piece);
    }

    /// The end of the nearest pending region still ahead of `pos`.
    fn nearest_region_end(&self) -> Option<u64> {
        self.pending_regions()
            .map(Region::end)
            .filter(|&end| end > self.pos)
            .min()
    }

    /// Handles every region that is complete at `pos`, in a fixed order, then decides whether
    /// the upload is already certainly refused.
    fn run_events(&mut self) {
        let complete = |region: Option<&Region>| region.is_some_and(Region::is_complete);
        loop {
            if !self.head_done && self.head.is_complete() {
                self.on_head();
            } else if complete(self.vmdk.region()) {
                self.on_vmdk_descriptor();
            } else if complete(self.vhdx.region()) {
                self.on_vhdx_region();
            } else if complete(self.iso.as_ref()) {
                self.on_iso();
            } else {
                break;
            }
        }
        self.next_event = self.nearest_region_end();
        if self.refusal.is_none() && self.early_refusal {
            self.refusal = self.certain_refusal();
        }
    }

    /// The head sector is complete (or the stream ended inside it).
    fn on_head(&mut self) {
        self.head_done = true;
        let head_region = mem::take(&mut self.head);
        let head = head_region.bytes();
        let complete = head.len() == HEAD_LEN;
        self.found
            .extend(qcow2::probe(head, complete, &self.policy));
        self.found.extend(qed::probe(head));
        self.found.extend(vhd::probe_head(head, complete));
        self.found.extend(vdi::probe(head, complete));
        self.found.extend(luks::probe(head, complete));
        self.found.extend(ploop::probe(head, complete));
        self.found.extend(mbr::probe(head));
        match vmdk::probe_head(head, complete) {
            vmdk::HeadProbe::NotVmdk => {}
            vmdk::HeadProbe::Decided(found) => self.found.push(found),
            vmdk::HeadProbe::Embedded {
                header,
                offset,
                len,
            } => {
                if header.footer_expected {
                    self.vmdk_footer = Some(header.clone());
                }
                self.vmdk = VmdkStage::Embedded {
                    header,
                    region: Region::new(offset, len),
                };
            }
            vmdk::HeadProbe::TextContinues => {
                let mut region = Region::new(0, vmdk::DESCRIPTOR_MAX);
                region.offer(0, head);
                self.vmdk = VmdkStage::Text { region };
            }
        }
        if vhdx::has_identity(head) {
            let table = Region::new(vhdx::REGION_TABLE_OFFSET, vhdx::REGION_TABLE_LEN);
            self.vhdx = VhdxStage::RegionTable(table);
        }
    }

    fn on_vmdk_descriptor(&mut self) {
        match mem::take(&mut self.vmdk) {
            VmdkStage::Idle => {}
            VmdkStage::Embedded { header, region } => {
                self.found
                    .push(vmdk::judge_embedded(&header, region.bytes(), &self.policy));
            }
            VmdkStage::Text { region } => self.found.extend(vmdk::judge_text(region.bytes(), true)),
        }
    }

    fn on_vhdx_region(&mut self) {
        match mem::take(&mut self.vhdx) {
            VhdxStage::Idle => {}
            VhdxStage::RegionTable(table) => match vhdx::parse_region_table(table.bytes()) {
                Ok(offset) => {
                    let metadata = Region::new(offset, vhdx::METADATA_TABLE_LEN);
                    self.vhdx = VhdxStage::MetadataTable(metadata);
                }
                Err(problem) => self.found.push(found_with(Format::Vhdx, problem)),
            },
            VhdxStage::MetadataTable(table) => match vhdx::parse_metadata_table(table.bytes()) {
                Ok(item_offset) => match table.start().checked_add(item_offset) {
                    Some(start) => {
                        // The item may lie inside the table we hold: seed it from there.
                        let mut item = Region::new(start, vhdx::SIZE_ITEM_LEN);
                        item.offer(table.start(), table.bytes());
                        self.vhdx = VhdxStage::SizeItem(item);
                    }
                    None => self.found.push(found_with(
                        Format::Vhdx,
                        crate::found::fail(crate::Check::Malformed, "size item offset overflows"),
                    )),
                },
                Err(problem) => self.found.push(found_with(Format::Vhdx, problem)),
            },
            VhdxStage::SizeItem(item) => self.found.push(vhdx::judge_size(item.bytes())),
        }
    }

    fn on_iso(&mut self) {
        if let Some(region) = self.iso.take() {
            self.found.extend(iso::probe(region.bytes()));
        }
    }

    /// The stream has ended: settle pending regions as truncated, then look at the tail.
    fn run_end_of_stream(&mut self) {
        if !self.head_done {
            self.on_head();
        }
        match mem::take(&mut self.vmdk) {
            VmdkStage::Idle => {}
            VmdkStage::Embedded { .. } => self.found.push(Found::truncated(Format::Vmdk)),
            // A descriptor file simply ends with the stream.
            VmdkStage::Text { region } => self.found.extend(vmdk::judge_text(region.bytes(), true)),
        }
        if !matches!(mem::take(&mut self.vhdx), VhdxStage::Idle) {
            self.found.push(Found::truncated(Format::Vhdx));
        }
        if let Some(region) = self.iso.take() {
            self.found.extend(iso::probe_truncated(region.bytes()));
        }
        self.next_event = None;

        if !self.found.iter().any(|f| f.format == Format::Vhd) {
            self.found
                .extend(vhd::probe_tail(self.tail.bytes(), self.pos));
        }
        if let Some(header) = &self.vmdk_footer {
            let problem = vmdk::check_footer(header, self.tail.bytes());
            for found in self.found.iter_mut().filter(|f| f.format == Format::Vmdk) {
                found.problem = found.problem.take().or(problem.clone());
            }
        }
        let pos = self.pos;
        for found in &mut self.found {
            if matches!(found.size, Size::StreamLengthMinus(header) if header > pos) {
                found.problem = found.problem.take().or(Some(Problem::Truncated));
            }
        }
    }

    /// The refusal the table gives now, if no possible rest of the stream could turn it into
    /// an acceptance. What the rest can still add: a VMDK, VHDX or ISO detection from a pending
    /// region, and a fixed VHD footer at the end. Each subset of those is tried (at most 16
    /// tiny table evaluations, a handful of times per upload); added detections are assumed
    /// clean, the most favourable case.
    fn certain_refusal(&self) -> Option<Refusal> {
        if !self.head_done {
            return None;
        }
        let kind = decide(&self.found, &self.declared, &self.policy)
            .verdict
            .err()?;
        let mut possible = Vec::new();
        if self.vmdk.region().is_some() {
            possible.push(Found::ok(Format::Vmdk, Size::Unknown));
        }
        if self.vhdx.region().is_some() {
            possible.push(Found::ok(Format::Vhdx, Size::Unknown));
        }
        if self.iso.is_some() {
            possible.push(Found::ok(Format::Iso, Size::Unknown));
        }
        if !self.found.iter().any(|f| f.format == Format::Vhd) {
            possible.push(Found {
                from_tail: true,
                ..Found::ok(Format::Vhd, Size::Unknown)
            });
        }
        for subset in 1u32..(1 << possible.len()) {
            let mut found = self.found.clone();
            let added = possible
                .iter()
                .enumerate()
                .filter(|(i, _)| subset & (1 << i) != 0);
            found.extend(added.map(|(_, f)| f.clone()));
            if decide(&found, &self.declared, &self.policy).verdict.is_ok() {
                return None;
            }
        }
        // Certain. Report it now unless it would name the wrong format: "does not match stream
        // data raw" (or gpt) may still become "... iso", "... vmdk" or "... vhdx" when a
        // pending region completes, so such a mismatch waits for the last region (the ISO
        // descriptor at 34 KiB in most streams). Other refusals state facts that stay true.
        let provisional = matches!(
            kind,
            RefusalKind::FormatMismatch {
                detected: Format::Raw | Format::Gpt,
                ..
            }
        );
        let regions_pending =
            self.iso.is_some() || self.vmdk.region().is_some() || self.vhdx.region().is_some();
        if provisional && regions_pending {
            return None;
        }
        Some(Refusal { kind })
    }
}

fn found_with(format: Format, problem: Problem) -> Found {
    Found {
        format,
        size: Size::Unknown,
        problem: Some(problem),
        from_tail: false,
    }
}

/// [`Inspector::skip_to`] was asked to pass bytes the inspector needs, or to go back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot skip to byte {offset}: the inspector is at or needs byte {wanted}")]
pub struct SkipError {
    /// Where the caller wanted to go.
    pub offset: u64,
    /// The first byte the inspector still needs (or its position, when going back).
    pub wanted: u64,
}

/// Inspects a whole stream held in memory: one `feed`, then `finish`.
pub fn inspect(bytes: &[u8], declared: Option<&str>, policy: &Policy) -> Inspection {
    let mut inspector = Inspector::new(declared, policy);
    // A refusal is also in the inspection's verdict.
    let _ = inspector.feed(bytes);
    inspector.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Check;

    /// Feeds `bytes` in chunks of `chunk`, stopping at the first refusal as a server would.
    fn run(bytes: &[u8], chunk: usize, declared: Option<&str>) -> (Option<Refusal>, Inspection) {
        let mut inspector = Inspector::new(declared, &Policy::default());
        let mut early = None;
        for piece in bytes.chunks(chunk) {
            if let Err(refusal) = inspector.feed(piece) {
                early = Some(refusal);
                break;
            }
            assert!(inspector.held_bytes() <= MAX_HELD_BYTES);
        }
        (early, inspector.finish())
    }

    /// The answer for every chunking, checked to be the same as the one-shot answer.
    fn answer(bytes: &[u8], declared: Option<&str>) -> Inspection {
        let one_shot = inspect(bytes, declared, &Policy::default());
        for chunk in [1, 7, 511, 512, 513, 4096, 65537] {
            if chunk == 1 && bytes.len() > 200_000 {
                continue;
            }
            let (early, inspection) = run(bytes, chunk, declared);
            assert_eq!(inspection.verdict, one_shot.verdict, "chunks of {chunk}");
            assert_eq!(inspection.format, one_shot.format, "chunks of {chunk}");
            if let Some(refusal) = early {
                assert_eq!(
                    Err(refusal),
                    one_shot.verdict,
                    "early refusal, chunks of {chunk}"
                );
            } else {
                assert_eq!(inspection, one_shot, "chunks of {chunk}");
            }
        }
        one_shot
    }

    fn kind(inspection: &Inspection) -> Option<&RefusalKind> {
        inspection.verdict.as_ref().err().map(|r| &r.kind)
    }

    fn check(inspection: &Inspection) -> Option<Check> {
        match kind(inspection) {
            Some(RefusalKind::Unsafe { check, .. }) => Some(*check),
            _ => None,
        }
    }

    fn qcow2_image(size: u64) -> Vec<u8> {
        let mut img = crate::qcow2::tests::header(3, size);
        img.resize(196_608, 0);
        img
    }

    #[test]
    fn empty_and_tiny_streams_are_raw() {
        for len in [0usize, 1, 3, 511, 512, 513] {
            let i = answer(&vec![0u8; len], Some("raw"));
            assert_eq!(
                (i.format, i.virtual_size, i.bytes_seen),
                (Format::Raw, Some(len as u64), len as u64)
            );
            assert!(i.is_safe());
        }
    }

    #[test]
    fn raw_settles_after_the_iso_descriptor() {
        let mut inspector = Inspector::new(Some("raw"), &Policy::default());
        inspector.feed(&vec![0u8; 34_815]).unwrap();
        assert!(!inspector.is_settled());
        inspector.feed(&[0]).unwrap();
        assert!(inspector.is_settled());
        assert_eq!(inspector.held_bytes(), TAIL_LEN, "only the tail is left");
        inspector.feed(&vec![0u8; 1 << 20]).unwrap();
        assert_eq!(inspector.finish().virtual_size, Some(34_816 + (1 << 20)));
    }

    #[test]
    fn qcow2_is_sized_from_its_header() {
        let i = answer(&qcow2_image(1_000_448), Some("qcow2"));
        assert_eq!((i.format, i.virtual_size), (Format::Qcow2, Some(1_000_448)));
        assert!(i.is_safe());
        let raw = answer(&qcow2_image(1_000_448), Some("raw"));
        assert_eq!(
            (raw.format, raw.virtual_size),
            (Format::Qcow2, Some(196_608))
        );
        assert!(raw.is_safe());
    }

    #[test]
    fn qcow2_backing_file_is_refused_at_the_first_sector() {
        let mut img = qcow2_image(1 << 30);
        img[8..16].copy_from_slice(&0x200u64.to_be_bytes());
        let mut inspector = Inspector::new(Some("raw"), &Policy::default());
        inspector.feed(&img[..511]).unwrap();
        let refusal = inspector.feed(&img[511..512]).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "Image failed safety checks: qcow2 backing file"
        );
        assert_eq!(
            inspector.feed(&img[512..]),
            Err(refusal.clone()),
            "stays refused"
        );
        assert_eq!(inspector.finish().verdict, Err(refusal));
        assert_eq!(
            check(&answer(&img, Some("qcow2"))),
            Some(Check::BackingFile)
        );
    }

    #[test]
    fn declared_qcow2_with_raw_content_is_refused_at_the_iso_descriptor() {
        let mut inspector = Inspector::new(Some("qcow2"), &Policy::default());
        inspector.feed(&vec![0u8; 34_815]).unwrap();
        let refusal = inspector.feed(&[0; 10]).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "Image disk_format qcow2 does not match stream data raw"
        );
    }

    #[test]
    fn declared_vhd_with_raw_content_is_refused_only_at_the_end() {
        let (early, i) = run(&vec![0u8; 100_000], 4096, Some("vhd"));
        assert_eq!(early, None, "a fixed VHD footer could still come");
        assert!(matches!(
            kind(&i),
            Some(RefusalKind::FormatMismatch {
                detected: Format::Raw,
                ..
            })
        ));
    }

    #[test]
    fn mbr_failure_waits_for_the_end_and_iso() {
        let mut disk = crate::mbr::tests::mbr(0, 0);
        disk.resize(100_000, 0);
        let (early, i) = run(&disk, 4096, Some("raw"));
        assert_eq!(early, None);
        assert_eq!(check(&i), Some(Check::Mbr));
        assert_eq!(answer(&disk, Some("aki")).verdict, Ok(()));
    }

    fn iso_image(blocks: u32) -> Vec<u8> {
        let mut img = vec![0u8; blocks as usize * 2048];
        img[32_768..34_816].copy_from_slice(&crate::iso::tests::primary_descriptor(blocks));
        img
    }

    #[test]
    fn hybrid_iso_is_iso() {
        let mut img = iso_image(40);
        img[..512].copy_from_slice(&crate::mbr::tests::mbr(0, 0x17));
        img[446] = 0x80;
        let i = answer(&img, Some("iso"));
        assert_eq!(
            (i.format, i.virtual_size, i.formats.clone()),
            (Format::Iso, Some(81_920), vec![Format::Iso])
        );
        assert!(i.is_safe());
        let mut broken = img.clone();
        broken[446] = 0x42; // the MBR check would fail, but the ISO wins
        assert!(answer(&broken, Some("iso")).is_safe());
        assert!(answer(&img, Some("raw")).is_safe());
        assert_eq!(answer(&img, None).format, Format::Iso);
    }

    #[test]
    fn iso_with_a_qcow2_header_is_refused_at_its_descriptor() {
        let mut img = iso_image(40);
        img[..512].copy_from_slice(&crate::qcow2::tests::header(3, 1 << 20));
        let i = answer(&img, None);
        assert_eq!(
            kind(&i),
            Some(&RefusalKind::MultipleFormats(vec![
                Format::Qcow2,
                Format::Iso
            ]))
        );
        for declared in ["qcow2", "raw"] {
            let mut inspector = Inspector::new(Some(declared), &Policy::default());
            inspector.feed(&img[..34_815]).unwrap();
            assert!(inspector.feed(&img[34_815..]).is_err(), "{declared}");
        }
        // Declared iso, the qcow2 header alone already settles it.
        let i = answer(&img, Some("iso"));
        assert!(matches!(
            kind(&i),
            Some(RefusalKind::FormatMismatch {
                detected: Format::Qcow2,
                ..
            })
        ));
        assert_eq!(i.bytes_seen, img.len() as u64);
    }

    #[test]
    fn truncated_iso_descriptor_is_refused() {
        let img = iso_image(40);
        assert!(matches!(
            kind(&answer(&img[..33_000], Some("iso"))),
            Some(RefusalKind::Truncated {
                format: Format::Iso
            })
        ));
        assert!(
            answer(&img[..32_770], Some("raw")).is_safe(),
            "identifier not reached: raw"
        );
    }

    fn fixed_vhd(data: &[u8]) -> Vec<u8> {
        let mut img = data.to_vec();
        img.extend(crate::vhd::tests::footer(2, data.len() as u64));
        img
    }

    #[test]
    fn fixed_vhd_is_found_in_the_tail() {
        let img = fixed_vhd(&vec![0u8; 1 << 20]);
        let i = answer(&img, Some("vhd"));
        assert_eq!((i.format, i.virtual_size), (Format::Vhd, Some(1 << 20)));
        assert!(i.is_safe());
        let raw = answer(&img, Some("raw"));
        assert_eq!(
            (raw.format, raw.virtual_size, raw.verdict),
            (Format::Vhd, Some(img.len() as u64), Ok(()))
        );
        assert!(answer(&img, Some("qcow2")).verdict.is_err());
    }

    #[test]
    fn fixed_vhd_of_a_partitioned_disk_is_vhd_but_of_a_qcow2_is_refused() {
        let mut disk = crate::mbr::tests::mbr(0, 0x83);
        disk.resize(1 << 20, 0);
        assert_eq!(answer(&fixed_vhd(&disk), Some("vhd")).verdict, Ok(()));
        let i = answer(&fixed_vhd(&qcow2_image(1 << 20)), None);
        assert_eq!(
            kind(&i),
            Some(&RefusalKind::MultipleFormats(vec![
                Format::Qcow2,
                Format::Vhd
            ]))
        );
        assert!(answer(&fixed_vhd(&qcow2_image(1 << 20)), Some("vhd"))
            .verdict
            .is_err());
    }

    #[test]
    fn dynamic_vhd_header_is_sized() {
        let mut img = crate::vhd::tests::footer(3, 1 << 30);
        img.resize(4096, 0);
        img.extend(crate::vhd::tests::footer(3, 1 << 30));
        let i = answer(&img, Some("vhd"));
        assert_eq!(
            (i.format, i.virtual_size, i.verdict),
            (Format::Vhd, Some(1 << 30), Ok(()))
        );
    }

    #[test]
    fn vhdx_is_sized_through_its_tables() {
        let img = crate::vhdx::tests::image(1_000_448);
        let i = answer(&img, Some("vhdx"));
        assert_eq!(
            (i.format, i.virtual_size, i.verdict),
            (Format::Vhdx, Some(1_000_448), Ok(()))
        );
    }

    #[test]
    fn vhdx_size_item_inside_the_table_is_read() {
        let mut img = crate::vhdx::tests::image(0);
        let meta = 1 << 20;
        img[meta + 48..meta + 52].copy_from_slice(&65_528u32.to_le_bytes());
        img[meta + 65_528..meta + 65_536].copy_from_slice(&4096u64.to_le_bytes());
        assert_eq!(answer(&img, Some("vhdx")).virtual_size, Some(4096));
        img[meta + 48..meta + 52].copy_from_slice(&65_532u32.to_le_bytes());
        img[meta + 65_536..meta + 65_540].copy_from_slice(&[0; 4]);
        assert_eq!(
            answer(&img, Some("vhdx")).virtual_size,
            Some(0),
            "straddles the table end"
        );
    }

    #[test]
    fn truncated_vhdx_is_refused() {
        let img = crate::vhdx::tests::image(1 << 30);
        for len in [8, 512, 200_000, 262_143, 1 << 20, (1 << 20) + 65_000] {
            let i = answer(&img[..len], Some("vhdx"));
            assert!(
                matches!(
                    kind(&i),
                    Some(RefusalKind::Truncated {
                        format: Format::Vhdx
                    })
                ),
                "{len}"
            );
        }
    }

    #[test]
    fn vmdk_sparse_is_sized_and_its_descriptor_checked() {
        let img = crate::vmdk::tests::image(2048, crate::vmdk::tests::DESCRIPTOR);
        let i = answer(&img, Some("vmdk"));
        assert_eq!(
            (i.format, i.virtual_size, i.verdict),
            (Format::Vmdk, Some(1 << 20), Ok(()))
        );
        let flat = crate::vmdk::tests::DESCRIPTOR.replace("monolithicSparse", "vmfs");
        let bad = crate::vmdk::tests::image(2048, &flat);
        assert_eq!(check(&answer(&bad, Some("vmdk"))), Some(Check::Descriptor));
        assert!(matches!(
            kind(&answer(&img[..4000], Some("vmdk"))),
            Some(RefusalKind::Truncated { .. })
        ));
    }

    #[test]
    fn vmdk_stream_footer_is_checked_at_the_end() {
        let mut img = crate::vmdk::tests::header(2048, true);
        let mut desc = crate::vmdk::tests::DESCRIPTOR
            .replace("monolithicSparse", "streamOptimized")
            .into_bytes();
        desc.resize(20 * 512, 0);
        img.extend(desc);
        img.resize(64 * 1024, 0);
        let mut marker = vec![0u8; 512];
        marker[12] = 3;
        let mut footer = crate::vmdk::tests::header(2048, false);
        footer[56..64].copy_from_slice(&150u64.to_le_bytes());
        let mut good = img.clone();
        good.extend(&marker);
        good.extend(&footer);
        good.extend(vec![0u8; 512]);
        let i = answer(&good, Some("vmdk"));
        assert_eq!((i.virtual_size, i.verdict), (Some(1 << 20), Ok(())));
        let mut bad = good.clone();
        bad.truncate(bad.len() - 512);
        assert_eq!(check(&answer(&bad, Some("vmdk"))), Some(Check::Footer));
    }

    #[test]
    fn vmdk_descriptor_file_is_refused_whatever_its_length() {
        let short = "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n\
                     RW 2048 FLAT \"a-flat.vmdk\" 0\n";
        assert_eq!(
            check(&answer(short.as_bytes(), Some("raw"))),
            Some(Check::Descriptor)
        );
        let mut long = short.as_bytes().to_vec();
        long.extend(std::iter::repeat_n(b"# padding comment line\n".as_slice(), 100).flatten());
        assert!(long.len() > 2000);
        assert_eq!(check(&answer(&long, None)), Some(Check::Descriptor));
        long.resize(8192, 0);
        assert_eq!(check(&answer(&long, Some("vmdk"))), Some(Check::Descriptor));
        let text = b"just some text that is long enough to be more than one sector. ".repeat(20);
        assert!(answer(&text, Some("raw")).is_safe());
    }

    #[test]
    fn luks_is_sized_by_stream_minus_payload() {
        let mut img = vec![0u8; 3 << 20];
        img[..6].copy_from_slice(b"LUKS\xba\xbe");
        img[6..8].copy_from_slice(&1u16.to_be_bytes());
        img[104..108].copy_from_slice(&4096u32.to_be_bytes());
        let i = answer(&img, Some("luks"));
        assert_eq!(
            (i.virtual_size, i.verdict),
            (Some((3 << 20) - (2 << 20)), Ok(()))
        );
        let cut = answer(&img[..(1 << 20)], Some("luks"));
        assert!(matches!(
            kind(&cut),
            Some(RefusalKind::Truncated {
                format: Format::Luks
            })
        ));
    }

    #[test]
    fn truncated_headers_are_refused_even_declared_raw() {
        let img = qcow2_image(1 << 20);
        assert!(matches!(
            kind(&answer(&img[..100], Some("raw"))),
            Some(RefusalKind::Truncated {
                format: Format::Qcow2
            })
        ));
        assert!(
            answer(&img[..3], Some("raw")).is_safe(),
            "magic incomplete: raw"
        );
    }

    #[test]
    fn non_inspectable_declared_formats_accept_raw_unsized() {
        let i = answer(&vec![7u8; 50_000], Some("ami"));
        assert_eq!(
            (i.format, i.virtual_size, i.verdict),
            (Format::Raw, None, Ok(()))
        );
        assert!(matches!(
            kind(&answer(&qcow2_image(1 << 20), Some("ami"))),
            Some(RefusalKind::FormatMismatch { .. })
        ));
    }

    #[test]
    fn lax_policy_tolerates_mismatch_but_not_unsafe_content() {
        let lax = Policy {
            require_format_match: false,
            ..Policy::default()
        };
        let i = inspect(&qcow2_image(1 << 20), Some("vmdk"), &lax);
        assert_eq!(
            (i.format, i.virtual_size, i.verdict),
            (Format::Qcow2, None, Ok(()))
        );
        let mut backing = qcow2_image(1 << 20);
        backing[15] = 1;
        assert!(inspect(&backing, Some("vmdk"), &lax).verdict.is_err());
    }

    #[test]
    fn qed_is_banned() {
        let mut img = b"QED\0".to_vec();
        img.resize(4096, 0);
        assert_eq!(check(&answer(&img, Some("qed"))), Some(Check::Banned));
        assert_eq!(check(&answer(&img, Some("raw"))), Some(Check::Banned));
    }

    #[test]
    fn held_bytes_stay_bounded_for_the_largest_captures() {
        // A text start (1 MiB descriptor capture) that is also a VHDX (64 KiB tables).
        let mut img = crate::vhdx::tests::image(1 << 20);
        img[8..512].fill(b'a');
        let mut inspector = Inspector::new(None, &Policy::default());
        let mut most = 0;
        for piece in img.chunks(4096) {
            inspector.feed(piece).unwrap();
            most = most.max(inspector.held_bytes());
        }
        assert!(
            most > vmdk::DESCRIPTOR_MAX + vhdx::METADATA_TABLE_LEN,
            "both captures at once"
        );
        assert!(most <= MAX_HELD_BYTES);
        let i = inspector.finish();
        assert_eq!((i.format, i.virtual_size), (Format::Vhdx, Some(1 << 20)));
    }

    /// Inspects `bytes` the way a reader that can seek does: only the ranges `next_read` asks
    /// for, in reads of at most `read_max` bytes. Returns the inspection and the bytes read.
    pub(crate) fn seek_inspect(
        bytes: &[u8],
        declared: Option<&str>,
        policy: &Policy,
        read_max: usize,
    ) -> (Inspection, u64) {
        let len = bytes.len() as u64;
        let mut inspector = Inspector::new(declared, policy);
        let mut read = 0;
        while let Some(range) = inspector.next_read(len) {
            assert!(range.start < range.end && range.end <= len, "{range:?}");
            inspector
                .skip_to(range.start, len)
                .expect("skip to a wanted range");
            let start = range.start as usize;
            let end = (range.end as usize).min(start + read_max.max(1));
            read += (end - start) as u64;
            if inspector.feed(&bytes[start..end]).is_err() {
                break;
            }
        }
        inspector.skip_to(len, len).expect("nothing more is wanted");
        (inspector.finish(), read)
    }

    /// The seek path's answer is the streaming one (same verdict and format; the same
    /// inspection whenever it is accepted).
    fn assert_seek_matches(bytes: &[u8], declared: Option<&str>, read_max: usize) -> u64 {
        let policy = Policy::default();
        let streamed = inspect(bytes, declared, &policy);
        let (sought, read) = seek_inspect(bytes, declared, &policy, read_max);
        assert_eq!(sought.verdict, streamed.verdict, "{declared:?}");
        assert_eq!(sought.format, streamed.format, "{declared:?}");
        assert_eq!(sought, streamed, "{declared:?}");
        read
    }

    #[test]
    fn seek_reads_the_head_the_iso_descriptor_and_the_tail() {
        let disk = vec![0u8; 8 << 20];
        for read_max in [1 << 20, 4096, 511] {
            let read = assert_seek_matches(&disk, Some("raw"), read_max);
            assert_eq!(read, 512 + 2048 + TAIL_LEN as u64, "reads of {read_max}");
        }
        // A small file is read whole, once.
        assert_eq!(assert_seek_matches(&[7u8; 2000], None, 1 << 20), 2000);
        assert_eq!(assert_seek_matches(&[], None, 1 << 20), 0);
    }

    #[test]
    fn seek_follows_the_tables_of_every_format() {
        let policy = Policy::default();
        let vhdx = crate::vhdx::tests::image(1 << 30);
        let (i, read) = seek_inspect(&vhdx, Some("vhdx"), &policy, 1 << 20);
        assert_eq!((i.format, i.virtual_size), (Format::Vhdx, Some(1 << 30)));
        assert!(read < 200_000, "{read} bytes read");
        let mut fixed = vec![0u8; 4 << 20];
        fixed[..512].copy_from_slice(&crate::mbr::tests::mbr(0, 0x83));
        let data_len = fixed.len() as u64;
        fixed.extend(crate::vhd::tests::footer(2, data_len));
        let mut backing = qcow2_image(1 << 20);
        backing[15] = 1;
        for img in [
            vhdx,
            fixed,
            backing,
            qcow2_image(1 << 30),
            iso_image(4000),
            crate::vmdk::tests::image(2048, crate::vmdk::tests::DESCRIPTOR),
        ] {
            for declared in [None, Some("raw"), Some("qcow2"), Some("vhd"), Some("vmdk")] {
                assert_seek_matches(&img, declared, 1 << 20);
                assert_seek_matches(&img, declared, 700);
            }
        }
    }

    #[test]
    fn skip_to_refuses_to_pass_wanted_bytes_or_go_back() {
        let len = 1 << 20;
        let mut inspector = Inspector::new(None, &Policy::default());
        assert_eq!(
            inspector.skip_to(600, len),
            Err(SkipError {
                offset: 600,
                wanted: 0
            })
        );
        inspector.feed(&[0u8; 512]).unwrap();
        assert_eq!(inspector.next_read(len), Some(32_768..34_816));
        inspector.skip_to(32_768, len).unwrap();
        assert!(inspector.skip_to(100, len).is_err(), "backwards");
        assert!(
            inspector.skip_to(40_000, len).is_err(),
            "over the ISO descriptor"
        );
        inspector.feed(&[0u8; 2048]).unwrap();
        let tail = len - TAIL_LEN as u64;
        assert_eq!(inspector.next_read(len), Some(tail..len));
        assert!(inspector.skip_to(len, len).is_err(), "over the tail");
        inspector.skip_to(tail, len).unwrap();
        inspector.feed(&vec![0u8; TAIL_LEN]).unwrap();
        assert_eq!(inspector.next_read(len), None);
        assert!(inspector.skip_to(len + 1, len).is_err(), "past the end");
        let i = inspector.finish();
        assert_eq!((i.format, i.virtual_size), (Format::Raw, Some(len)));
    }

    /// The verdict with early refusal switched off: only the end-of-stream table decides.
    fn reference(bytes: &[u8], declared: Option<&str>) -> Inspection {
        let mut inspector = Inspector::new(declared, &Policy::default());
        inspector.early_refusal = false;
        inspector.feed(bytes).unwrap();
        inspector.finish()
    }

    fn seeds() -> Vec<Vec<u8>> {
        let mut backing = qcow2_image(1 << 20);
        backing[15] = 1;
        let mut bad_mbr = crate::mbr::tests::mbr(0, 0);
        bad_mbr[446 + 4] = 0;
        let flat = crate::vmdk::tests::DESCRIPTOR.replace("monolithicSparse", "monolithicFlat");
        vec![
            Vec::new(),
            vec![0u8; 600],
            qcow2_image(1 << 20)[..4096].to_vec(),
            backing[..4096].to_vec(),
            crate::mbr::tests::mbr(0, 0x83),
            bad_mbr,
            crate::vmdk::tests::image(2048, crate::vmdk::tests::DESCRIPTOR),
            crate::vmdk::tests::image(2048, &flat),
            flat.into_bytes(),
            iso_image(20)[..33_000].to_vec(),
            crate::vhd::tests::footer(3, 1 << 20),
            vec![0u8; 36_000],
            [crate::mbr::tests::mbr(0, 0x83), vec![0u8; 36_000]].concat(),
            [
                crate::vmdk::tests::image(2048, crate::vmdk::tests::DESCRIPTOR),
                vec![0u8; 30_000],
            ]
            .concat(),
        ]
    }

    /// A continuation: random bytes, optionally an ISO descriptor at 32 KiB and a fixed VHD
    /// footer sizing the whole stream, so that every "what could still come" is exercised.
    fn continue_stream(prefix: &[u8], noise: &[u8], iso: bool, vhd: bool) -> Vec<u8> {
        let mut whole = prefix.to_vec();
        whole.extend(noise);
        if iso {
            if whole.len() < 34_816 {
                whole.resize(34_816, 0);
            }
            if prefix.len() <= 32_768 {
                whole[32_768..34_816].copy_from_slice(&crate::iso::tests::primary_descriptor(40));
            }
        }
        if vhd {
            let data_len = whole.len() as u64;
            whole.extend(crate::vhd::tests::footer(2, data_len));
        }
        whole
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

        /// An early refusal is only ever raised when no continuation of the stream could be
        /// accepted by the end-of-stream table, and without one the answer is unchanged.
        /// Every declared format and every kind of continuation is tried for each prefix.
        #[test]
        fn early_refusal_is_certain_for_every_continuation(
            seed in proptest::sample::select(seeds()),
            cut in proptest::option::of(proptest::prelude::any::<usize>()),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        ) {
            let prefix = &seed[..cut.map_or(seed.len(), |cut| cut % (seed.len() + 1))];
            let declared_formats = [
                None, Some("raw"), Some("qcow2"), Some("vmdk"), Some("vhd"), Some("iso"),
                Some("ami"), Some("aki"), Some("ploop"),
            ];
            for declared in declared_formats {
                let mut inspector = Inspector::new(declared, &Policy::default());
                let refused_early = inspector.feed(prefix).is_err();
                for (iso, vhd) in [(false, false), (true, false), (false, true), (true, true)] {
                    let whole = continue_stream(prefix, &noise, iso, vhd);
                    let plain = reference(&whole, declared);
                    if refused_early {
                        proptest::prop_assert!(
                            plain.verdict.is_err(),
                            "{declared:?} refused early, yet iso={iso} vhd={vhd} gives {plain:?}"
                        );
                    }
                    let latched = inspect(&whole, declared, &Policy::default());
                    proptest::prop_assert_eq!(latched.verdict.is_ok(), plain.verdict.is_ok());
                    // The seek path (glint inspect on a file) gives the streaming answer.
                    let read_max = 1 + noise.len() * 37;
                    let (sought, _) = seek_inspect(&whole, declared, &Policy::default(), read_max);
                    proptest::prop_assert_eq!(&sought.verdict, &latched.verdict);
                    proptest::prop_assert_eq!(sought.format, latched.format);
                    if latched.verdict.is_ok() {
                        proptest::prop_assert_eq!(&sought, &latched);
                        proptest::prop_assert_eq!(latched, plain);
                    }
                }
            }
        }
    }
}
