//! What a format parser reports: a detection, how its size is known, and its first problem.
//!
//! Parsers never decide the verdict; they say "this stream carries format F, sized so, with
//! this problem". The decision table (`decide`) weighs detections against the declared format.

use crate::{Check, Format};

/// Largest virtual size accepted for any format: Glance's `virtual_size` column and most
/// consumers hold a signed 64-bit integer.
pub(crate) const MAX_VIRTUAL_SIZE: u64 = i64::MAX as u64;

/// How a detection's virtual size is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    /// Read from the header.
    Bytes(u64),
    /// The number of bytes streamed (raw, gpt).
    StreamLength,
    /// Bytes streamed minus a header of this many bytes (LUKS payload offset).
    StreamLengthMinus(u64),
    /// Not known.
    Unknown,
}

/// Why a detected format cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// A failed safety check.
    Unsafe { check: Check, detail: String },
    /// The stream ended inside a structure the verdict needs.
    Truncated,
}

/// One format whose structure was found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) format: Format,
    pub(crate) size: Size,
    pub(crate) problem: Option<Problem>,
    /// Found only in the last bytes of the stream (a fixed VHD's footer): the content before it
    /// is a raw disk, which may legitimately carry a partition table or an ISO.
    pub(crate) from_tail: bool,
}

impl Found {
    pub(crate) fn ok(format: Format, size: Size) -> Found {
        Found {
            format,
            size,
            problem: None,
            from_tail: false,
        }
    }

    pub(crate) fn problem(format: Format, size: Size, check: Check, detail: String) -> Found {
        Found {
            format,
            size,
            problem: Some(Problem::Unsafe { check, detail }),
            from_tail: false,
        }
    }

    pub(crate) fn truncated(format: Format) -> Found {
        Found {
            format,
            size: Size::Unknown,
            problem: Some(Problem::Truncated),
            from_tail: false,
        }
    }

    /// A detection whose header gives `size` bytes, refused when the size cannot be right.
    pub(crate) fn sized(format: Format, size: u64) -> Found {
        if size > MAX_VIRTUAL_SIZE {
            let detail = format!("virtual size {size} exceeds 2^63 - 1 bytes");
            return Found::problem(format, Size::Unknown, Check::Size, detail);
        }
        Found::ok(format, Size::Bytes(size))
    }

    /// Attaches `problem` unless there already is one (the first problem is the one reported).
    pub(crate) fn or_problem(mut self, problem: Option<Problem>) -> Found {
        if self.problem.is_none() {
            self.problem = problem;
        }
        self
    }
}

/// Shorthand for a failed check.
pub(crate) fn fail(check: Check, detail: impl Into<String>) -> Problem {
    Problem::Unsafe {
        check,
        detail: detail.into(),
    }
}
