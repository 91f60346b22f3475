//! What an operator can tune: Glance's `[image_format]` options that bear on inspection.

/// Inspection policy: the subset of Glance's `[image_format]` options that affect a verdict.
///
/// Construct it with struct-update syntax over [`Policy::default`], which has Glance's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Glance `require_image_format_match` (default `true`): refuse an upload whose content
    /// is not the declared `disk_format`. When `false` a mismatch is tolerated (and
    /// `virtual_size` is left unknown), but the detected format's safety checks still apply
    /// and more than one detected format is still refused.
    pub require_format_match: bool,
    /// Glance `vmdk_allowed_types` (default `streamOptimized`, `monolithicSparse`): the
    /// `createType` values a single-file VMDK may declare, compared case-insensitively.
    /// Descriptor files (`monolithicFlat`, `twoGbMaxExtent*`, `vmfs`, ...) are refused
    /// whatever this list says, because their extents are other files.
    pub vmdk_allowed_types: Vec<String>,
    /// Glance `gpt_safety_checks_nonfatal` (default empty): names of the `gpt` checks that only
    /// warn. The one check is `mbr` (Glance documents it also as `gptmbr`; both are accepted).
    pub gpt_safety_checks_nonfatal: Vec<String>,
    /// Accept qcow2 images with the `extended_l2` incompatible feature (subcluster
    /// allocation, qemu >= 5.2). Default `false`, as Glance and Nova: oslo.utils' inspector
    /// refuses every incompatible feature above bit 3, so such an image would be refused by
    /// the compute node that boots it. No Glance option; glint's own.
    pub qcow2_allow_extended_l2: bool,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            require_format_match: true,
            vmdk_allowed_types: vec!["streamOptimized".into(), "monolithicSparse".into()],
            gpt_safety_checks_nonfatal: Vec::new(),
            qcow2_allow_extended_l2: false,
        }
    }
}

impl Policy {
    pub(crate) fn vmdk_type_allowed(&self, create_type: &str) -> bool {
        self.vmdk_allowed_types
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(create_type))
    }

    pub(crate) fn mbr_check_nonfatal(&self) -> bool {
        self.gpt_safety_checks_nonfatal
            .iter()
            .any(|name| name.eq_ignore_ascii_case("mbr") || name.eq_ignore_ascii_case("gptmbr"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_glance() {
        let policy = Policy::default();
        assert!(policy.require_format_match);
        assert!(policy.vmdk_type_allowed("streamOptimized"));
        assert!(policy.vmdk_type_allowed("monolithicsparse"));
        assert!(!policy.vmdk_type_allowed("monolithicFlat"));
        assert!(!policy.mbr_check_nonfatal());
        assert!(!policy.qcow2_allow_extended_l2);
    }

    #[test]
    fn mbr_nonfatal_accepts_both_documented_names() {
        for name in ["mbr", "gptmbr", "MBR"] {
            let policy = Policy {
                gpt_safety_checks_nonfatal: vec![name.into()],
                ..Policy::default()
            };
            assert!(policy.mbr_check_nonfatal(), "{name}");
        }
    }
}
