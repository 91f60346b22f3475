//! The decision table: detections + declared `disk_format` + policy → format, size, verdict.
//!
//! Glance's order (glance/location.py `set_data`): resolve the detected format (refusing more
//! than one), match it against `disk_format`, then run the chosen format's safety checks.

use crate::found::{Found, Problem, Size};
use crate::{Format, Policy, RefusalKind};

/// The image's declared `disk_format`, as the inspector understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Declared {
    /// None given: judge the content alone.
    Nothing,
    /// A format we inspect.
    Format(Format),
    /// A name we cannot inspect (`ami`, `ari`, `aki`, or a site-specific one).
    Other(String),
}

impl Declared {
    pub(crate) fn parse(declared: Option<&str>) -> Declared {
        match declared {
            None => Declared::Nothing,
            Some(name) => match name.parse() {
                Ok(format) => Declared::Format(format),
                Err(_) => Declared::Other(name.to_owned()),
            },
        }
    }

    fn name(&self) -> String {
        match self {
            Declared::Nothing => String::new(),
            Declared::Format(format) => format.name().to_owned(),
            Declared::Other(name) => name.clone(),
        }
    }

    /// Kernel and ramdisk images may carry a boot-sector signature without a partition table:
    /// Glance never lets the `mbr` check fail them.
    fn mbr_check_nonfatal(&self) -> bool {
        matches!(self, Declared::Other(name) if name == "aki" || name == "ari")
    }

    /// Glance has no inspector for these, and accepts them when the content looks raw.
    fn accepts_raw_content(&self) -> bool {
        matches!(self, Declared::Other(_) | Declared::Format(Format::Ploop))
    }
}

/// The outcome of the table for one set of detections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    /// The format reported (the first detection when several conflict; raw when none).
    pub(crate) format: Format,
    /// Every detection that counts, in stream order (after the hybrid exceptions).
    pub(crate) formats: Vec<Format>,
    pub(crate) size: Size,
    pub(crate) verdict: Result<(), RefusalKind>,
}

pub(crate) fn decide(found: &[Found], declared: &Declared, policy: &Policy) -> Decision {
    // Hybrids that are one disk, not a polyglot: a bootable ISO carries an MBR/GPT in its
    // system area (Glance's exception), and a fixed VHD's data is a raw disk, which may itself
    // be partitioned or an ISO (our exception: Glance cannot see fixed VHDs).
    let has = |format| found.iter().any(|f| f.format == format);
    let fixed_vhd = found.iter().any(|f| f.format == Format::Vhd && f.from_tail);
    let kept: Vec<&Found> = found
        .iter()
        .filter(|f| match f.format {
            Format::Gpt => !has(Format::Iso) && !fixed_vhd,
            Format::Iso => !fixed_vhd,
            _ => true,
        })
        .collect();
    let formats: Vec<Format> = kept.iter().map(|f| f.format).collect();
    let raw = Found::ok(Format::Raw, Size::StreamLength);
    let chosen = *kept.first().unwrap_or(&&raw);
    if kept.len() > 1 {
        return Decision {
            format: chosen.format,
            verdict: Err(RefusalKind::MultipleFormats(formats.clone())),
            formats,
            size: Size::Unknown,
        };
    }
    let detected = chosen.format;
    let mut decision = Decision {
        format: detected,
        formats,
        size: chosen.size,
        verdict: Ok(()),
    };

    match declared {
        Declared::Nothing => {}
        Declared::Format(format) if *format == detected => {}
        // Glance: declared raw but the content is something else → accepted with a warning,
        // sized by the byte count; the detected format's safety checks still apply below.
        Declared::Format(Format::Raw) => decision.size = Size::StreamLength,
        other if other.accepts_raw_content() && matches!(detected, Format::Raw | Format::Gpt) => {
            decision.size = Size::Unknown;
        }
        other => {
            if policy.require_format_match {
                decision.verdict = Err(RefusalKind::FormatMismatch {
                    declared: other.name(),
                    detected,
                });
                return decision;
            }
            decision.size = Size::Unknown;
        }
    }

    match &chosen.problem {
        None => {}
        Some(Problem::Truncated) => {
            decision.verdict = Err(RefusalKind::Truncated { format: detected })
        }
        Some(Problem::Unsafe { check, detail }) => {
            let nonfatal = detected == Format::Gpt
                && *check == crate::Check::Mbr
                && (declared.mbr_check_nonfatal() || policy.mbr_check_nonfatal());
            if !nonfatal {
                decision.verdict = Err(RefusalKind::Unsafe {
                    format: detected,
                    check: *check,
                    detail: detail.clone(),
                });
            }
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Check;

    fn decide_for(found: &[Found], declared: Option<&str>) -> Decision {
        decide(found, &Declared::parse(declared), &Policy::default())
    }

    fn qcow2() -> Found {
        Found::ok(Format::Qcow2, Size::Bytes(1 << 30))
    }

    fn bad_mbr() -> Found {
        Found::problem(
            Format::Gpt,
            Size::StreamLength,
            Check::Mbr,
            "no partitions".into(),
        )
    }

    fn fixed_vhd() -> Found {
        Found {
            from_tail: true,
            ..Found::ok(Format::Vhd, Size::Bytes(4096))
        }
    }

    #[test]
    fn matching_format_keeps_header_size() {
        let d = decide_for(&[qcow2()], Some("qcow2"));
        assert_eq!(
            (d.format, d.size, d.verdict),
            (Format::Qcow2, Size::Bytes(1 << 30), Ok(()))
        );
    }

    #[test]
    fn nothing_detected_is_raw_sized_by_stream() {
        let d = decide_for(&[], Some("raw"));
        assert_eq!(
            (d.format, d.size, d.verdict),
            (Format::Raw, Size::StreamLength, Ok(()))
        );
    }

    #[test]
    fn declared_raw_accepts_other_content_sized_by_stream_but_checks_it() {
        let d = decide_for(&[qcow2()], Some("raw"));
        assert_eq!(
            (d.format, d.size, d.verdict),
            (Format::Qcow2, Size::StreamLength, Ok(()))
        );
        let unsafe_qcow2 = qcow2().or_problem(Some(crate::found::fail(Check::BackingFile, "b")));
        assert!(decide_for(&[unsafe_qcow2], Some("raw")).verdict.is_err());
    }

    #[test]
    fn mismatch_is_refused_or_tolerated_by_policy() {
        let d = decide_for(&[qcow2()], Some("vmdk"));
        assert_eq!(
            d.verdict,
            Err(RefusalKind::FormatMismatch {
                declared: "vmdk".into(),
                detected: Format::Qcow2
            })
        );
        let lax = Policy {
            require_format_match: false,
            ..Policy::default()
        };
        let d = decide(&[qcow2()], &Declared::parse(Some("vmdk")), &lax);
        assert_eq!((d.size, d.verdict), (Size::Unknown, Ok(())));
        let d = decide(&[], &Declared::parse(Some("qcow2")), &lax);
        assert_eq!(d.verdict, Ok(()));
    }

    #[test]
    fn non_inspectable_names_accept_raw_without_size() {
        for name in ["ami", "aki", "ari", "ploop", "something"] {
            let d = decide_for(&[], Some(name));
            assert_eq!((d.size, d.verdict), (Size::Unknown, Ok(())), "{name}");
            assert!(
                decide_for(&[qcow2()], Some(name)).verdict.is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn mbr_failure_is_nonfatal_for_kernels_and_by_policy() {
        assert!(decide_for(&[bad_mbr()], Some("raw")).verdict.is_err());
        assert!(decide_for(&[bad_mbr()], Some("ami")).verdict.is_err());
        assert_eq!(decide_for(&[bad_mbr()], Some("aki")).verdict, Ok(()));
        assert_eq!(decide_for(&[bad_mbr()], Some("ari")).verdict, Ok(()));
        let lax = Policy {
            gpt_safety_checks_nonfatal: vec!["mbr".into()],
            ..Policy::default()
        };
        assert_eq!(
            decide(&[bad_mbr()], &Declared::parse(Some("raw")), &lax).verdict,
            Ok(())
        );
    }

    #[test]
    fn iso_absorbs_gpt_and_fixed_vhd_absorbs_both() {
        let iso = Found::ok(Format::Iso, Size::Bytes(358_400));
        let d = decide_for(&[bad_mbr(), iso.clone()], Some("iso"));
        assert_eq!((d.format, d.verdict), (Format::Iso, Ok(())));
        let d = decide_for(&[bad_mbr(), iso, fixed_vhd()], Some("vhd"));
        assert_eq!(
            (d.format, d.size, d.verdict),
            (Format::Vhd, Size::Bytes(4096), Ok(()))
        );
    }

    #[test]
    fn two_formats_are_refused() {
        let iso = Found::ok(Format::Iso, Size::Bytes(358_400));
        let d = decide_for(&[qcow2(), iso], None);
        assert_eq!(
            d.verdict,
            Err(RefusalKind::MultipleFormats(vec![
                Format::Qcow2,
                Format::Iso
            ]))
        );
        assert!(decide_for(&[qcow2(), fixed_vhd()], Some("vhd"))
            .verdict
            .is_err());
        let lax = Policy {
            require_format_match: false,
            ..Policy::default()
        };
        assert!(decide(&[qcow2(), fixed_vhd()], &Declared::Nothing, &lax)
            .verdict
            .is_err());
    }

    #[test]
    fn truncated_detection_is_refused_even_as_raw() {
        let d = decide_for(&[Found::truncated(Format::Qcow2)], Some("raw"));
        assert_eq!(
            d.verdict,
            Err(RefusalKind::Truncated {
                format: Format::Qcow2
            })
        );
    }
}
