//! Image members (sharing, Glance API 2.1): a project an image is shared with, and whether it
//! accepted. An engine answers both "members of this image" (the members API) and "images
//! shared with this project" (listings) without scanning every image.

use std::fmt;
use std::str::FromStr;

use crate::types::{ImageId, ParseError, Timestamp};

/// A member's answer to the sharing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    /// Added, not answered yet (the initial status).
    Pending,
    /// Accepted: the image appears in the member's default list.
    Accepted,
    /// Rejected: the member can still read the image, but does not list it by default.
    Rejected,
}

impl MemberStatus {
    /// Every status, in Glance's order.
    pub const ALL: [MemberStatus; 3] = [
        MemberStatus::Pending,
        MemberStatus::Accepted,
        MemberStatus::Rejected,
    ];

    /// The Glance name, e.g. `"accepted"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Pending => "pending",
            MemberStatus::Accepted => "accepted",
            MemberStatus::Rejected => "rejected",
        }
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MemberStatus {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<MemberStatus, ParseError> {
        MemberStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| ParseError::new("member status", text))
    }
}

/// One project an image is shared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The shared image.
    pub image_id: ImageId,
    /// The project it is shared with (not checked against Keystone, as in Glance).
    pub member_id: String,
    /// The member's answer.
    pub status: MemberStatus,
    /// When the member was added.
    pub created_at: Timestamp,
    /// When the status last changed.
    pub updated_at: Timestamp,
}
