//! Why an upload is refused: the one error type of this crate.
//!
//! Every refusal maps to the same HTTP answer (415 in the gateway); the variants exist so
//! that logs, metrics and `glint inspect` can say which rule fired. The `Display` texts start
//! with Glance's own phrases ("Image disk_format X does not match stream data Y", "Image failed
//! safety checks") and never quote bytes from the image.

use std::fmt;

use crate::Format;

/// An upload that must not be accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct Refusal {
    /// The rule that fired.
    pub kind: RefusalKind,
}

impl Refusal {
    /// A short stable code for logs, metrics and the CLI: the oslo.utils check name for failed
    /// safety checks (`backing_file`, `data_file`, `descriptor`, ...), else `format-mismatch`,
    /// `multiple-formats` or `incomplete`.
    pub fn code(&self) -> &'static str {
        match &self.kind {
            RefusalKind::FormatMismatch { .. } => "format-mismatch",
            RefusalKind::MultipleFormats(_) => "multiple-formats",
            RefusalKind::Unsafe { check, .. } => check.name(),
            RefusalKind::Truncated { .. } => "incomplete",
        }
    }
}

/// The rule behind a [`Refusal`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// The content is not the declared `disk_format` (only with
    /// [`Policy::require_format_match`](crate::Policy::require_format_match)).
    FormatMismatch {
        /// The declared `disk_format`, as given.
        declared: String,
        /// What the content is.
        detected: Format,
    },
    /// More than one format's structures are present (a polyglot): no single set of checks can
    /// vouch for it. Hybrid ISOs (ISO + MBR/GPT) and fixed VHDs holding a partitioned or ISO
    /// disk are the exceptions and are not reported here.
    MultipleFormats(Vec<Format>),
    /// The detected format failed a safety check.
    Unsafe {
        /// The format whose check failed.
        format: Format,
        /// Which check.
        check: Check,
        /// What exactly, for humans.
        detail: String,
    },
    /// The stream ended inside a structure the verdict depends on (a header, an embedded
    /// descriptor, a VHDX metadata table, ...): the file is cut short or lies about its layout.
    Truncated {
        /// The format whose structure is incomplete.
        format: Format,
    },
}

impl fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalKind::FormatMismatch { declared, detected } => {
                write!(
                    f,
                    "Image disk_format {declared} does not match stream data {detected}"
                )
            }
            RefusalKind::MultipleFormats(formats) => {
                f.write_str("Image format inspection failed: multiple formats detected:")?;
                for (i, format) in formats.iter().enumerate() {
                    f.write_str(if i == 0 { " " } else { ", " })?;
                    f.write_str(format.name())?;
                }
                Ok(())
            }
            RefusalKind::Unsafe { format, detail, .. } => {
                write!(f, "Image failed safety checks: {format} {detail}")
            }
            RefusalKind::Truncated { format } => {
                write!(
                    f,
                    "Image format inspection failed: truncated {format} image"
                )
            }
        }
    }
}

/// A safety check that can fail. Names follow oslo.utils where it has the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// qcow2 backing file; VMDK `parentFileNameHint`.
    BackingFile,
    /// qcow2 external data file.
    DataFile,
    /// qcow2 incompatible feature bits we do not know; VHDX required regions/items we do not
    /// know.
    UnknownFeatures,
    /// A format version nothing downstream opens (qcow v1, LUKS2, VMDK COWD, ...).
    Version,
    /// The VMDK descriptor: create type, extents, descriptor files.
    Descriptor,
    /// The VMDK stream-optimized footer and end-of-stream marker.
    Footer,
    /// The MBR partition table of a `gpt` image.
    Mbr,
    /// A format that is never accepted (QED).
    Banned,
    /// A differencing disk (VHD type 4, VHDX parent locator, VDI differencing): it needs a
    /// parent image that lives elsewhere.
    Differencing,
    /// Header fields that no reader accepts (bad cluster size, bad region table, ...).
    Malformed,
    /// A virtual size that cannot be right (beyond what the format addresses or 2^63 − 1).
    Size,
}

impl Check {
    /// The check's short name (`backing_file`, `mbr`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Check::BackingFile => "backing_file",
            Check::DataFile => "data_file",
            Check::UnknownFeatures => "unknown_features",
            Check::Version => "version",
            Check::Descriptor => "descriptor",
            Check::Footer => "footer",
            Check::Mbr => "mbr",
            Check::Banned => "banned",
            Check::Differencing => "differencing",
            Check::Malformed => "malformed",
            Check::Size => "size",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_message_is_glances() {
        let refusal = Refusal {
            kind: RefusalKind::FormatMismatch {
                declared: "qcow2".into(),
                detected: Format::Raw,
            },
        };
        assert_eq!(
            refusal.to_string(),
            "Image disk_format qcow2 does not match stream data raw"
        );
        assert_eq!(refusal.code(), "format-mismatch");
    }

    #[test]
    fn unsafe_message_names_format_and_detail() {
        let refusal = Refusal {
            kind: RefusalKind::Unsafe {
                format: Format::Qcow2,
                check: Check::BackingFile,
                detail: "backing file".into(),
            },
        };
        assert_eq!(
            refusal.to_string(),
            "Image failed safety checks: qcow2 backing file"
        );
        assert_eq!(refusal.code(), "backing_file");
    }

    #[test]
    fn multiple_formats_lists_them() {
        let refusal = Refusal {
            kind: RefusalKind::MultipleFormats(vec![Format::Qcow2, Format::Iso]),
        };
        assert_eq!(
            refusal.to_string(),
            "Image format inspection failed: multiple formats detected: qcow2, iso"
        );
    }
}
