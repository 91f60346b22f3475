//! The disk formats the inspector knows, spelled as Glance spells `disk_format`.
//!
//! `gpt`, `luks` and `qed` are not in Glance's default `disk_formats`, but oslo.utils detects
//! them, so they can appear as a *detected* format (and as a declared one where a deployment
//! lists them). Names that are not formats at all (`ami`, `ari`, `aki`, site-specific ones) are
//! handled by the inspector as "not inspectable" and never become a [`Format`].

use std::fmt;
use std::str::FromStr;

/// A disk-image format, detected in the stream or declared as an image's `disk_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Format {
    /// No recognised structure: the bytes are the disk (also the fallback when nothing matches).
    Raw,
    /// QEMU copy-on-write v2/v3 (qcow v1 shares its magic and is detected as this).
    Qcow2,
    /// VMware virtual disk: a sparse extent with an embedded descriptor, or a descriptor file.
    Vmdk,
    /// Microsoft Virtual PC / Hyper-V VHD, dynamic (header at 0) or fixed (footer at the end).
    Vhd,
    /// Microsoft Hyper-V VHDX.
    Vhdx,
    /// VirtualBox disk image.
    Vdi,
    /// ISO 9660 or UDF optical-disc image.
    Iso,
    /// Virtuozzo ploop / Parallels image (`WithoutFreeSpace` header).
    Ploop,
    /// A disk with an MBR (and possibly a GPT): raw content with a partition table.
    Gpt,
    /// LUKS v1 encrypted volume.
    Luks,
    /// QEMU enhanced disk: detected only to be refused, as Glance does.
    Qed,
}

impl Format {
    /// Every format, in declaration order.
    pub const ALL: [Format; 11] = [
        Format::Raw,
        Format::Qcow2,
        Format::Vmdk,
        Format::Vhd,
        Format::Vhdx,
        Format::Vdi,
        Format::Iso,
        Format::Ploop,
        Format::Gpt,
        Format::Luks,
        Format::Qed,
    ];

    /// The Glance `disk_format` name (`"qcow2"`, `"vhd"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Vdi => "vdi",
            Format::Iso => "iso",
            Format::Ploop => "ploop",
            Format::Gpt => "gpt",
            Format::Luks => "luks",
            Format::Qed => "qed",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no [`Format`] (for example `"ami"`, which is valid for Glance but not
/// inspectable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an inspectable disk format")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    /// Parses a Glance `disk_format` name. Names are case-sensitive, as in Glance.
    fn from_str(name: &str) -> Result<Format, UnknownFormat> {
        Format::ALL
            .into_iter()
            .find(|format| format.name() == name)
            .ok_or_else(|| UnknownFormat(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str() {
        for format in Format::ALL {
            assert_eq!(format.to_string().parse::<Format>(), Ok(format));
        }
    }

    #[test]
    fn rejects_non_inspectable_and_differently_cased_names() {
        assert!("ami".parse::<Format>().is_err());
        assert!("vpc".parse::<Format>().is_err());
        assert!("QCOW2".parse::<Format>().is_err());
        assert_eq!("aki".parse::<Format>(), Err(UnknownFormat("aki".into())));
    }
}
