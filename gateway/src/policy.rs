//! Authorization, in one place: Glance's default secure-RBAC rules (spec §8.2) and the
//! visibility test of §8.1, over a [`RequestContext`] and an image.
//!
//! Every image operation asks [`decide`] with its [`Rule`] and a [`Target`] (the image's owner
//! and visibility, and whether the caller's project is one of its members). The answer is
//! [`Decision::Allow`], [`Decision::Forbidden`] (403: the caller can see the image but may not
//! do this) or [`Decision::NotFound`] (404: the caller may not even see it — Glance never
//! confirms that an invisible image exists). Creation has no existing image to hide, so its
//! refusals are always 403.
//!
//! Roles are implied downwards (`admin` ⊃ `member` ⊃ `reader`); `ctx.is_admin` counts as the
//! admin role. The rules are fixed (no oslo.policy overrides yet).
//!
//! Scope, as in Glance: every image and member rule is registered with
//! `scope_types = ['project']`, and oslo.policy always enforces scope (the default since
//! 2024.2; the switch is gone in oslo.policy 6). So a system- or domain-scoped token fails
//! every [`Rule`] whatever its roles — [`allows`] is false before any role is looked at — and
//! an unscoped token (which oslo.policy counts as project scope) fails them for want of roles.
//! The admin *role* still counts where Glance asks `context_is_admin`, a rule with no scope:
//! the data layer's [`is_visible`] shows an admin of any scope every image. That is why such a
//! token gets 404 for an image (it is visible, but `get_image` fails) and, on routes that check
//! something before the policy (members of a non-`shared` image, download of a deactivated
//! image), the 403 of that check.

use meta::{Image, MemberStatus, Visibility};

use crate::context::{RequestContext, TokenScope};
use crate::error::ApiError;

/// A Glance policy rule, named as in Glance's `policy.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// List images.
    GetImages,
    /// Show an image; also the "can see it" test behind every 404.
    GetImage,
    /// Create an image (the target's owner is the new image's owner).
    AddImage,
    /// PATCH, tags.
    ModifyImage,
    /// Make an image `public`.
    PublicizeImage,
    /// Make an image `community`.
    CommunitizeImage,
    /// Delete an image.
    DeleteImage,
    /// `PUT /file`.
    UploadImage,
    /// `GET /file`.
    DownloadImage,
    /// `actions/deactivate`.
    Deactivate,
    /// `actions/reactivate`.
    Reactivate,
    /// List an image's members.
    GetMembers,
    /// Show one member.
    GetMember,
    /// Share an image with a project.
    AddMember,
    /// Stop sharing an image with a project.
    DeleteMember,
    /// Accept or reject a sharing (the member project itself).
    ModifyMember,
    /// `GET /v2/cache`.
    CacheList,
    /// `PUT /v2/cache/{id}`.
    CacheImage,
    /// `DELETE /v2/cache[/{id}]`.
    CacheDelete,
    /// `POST /v2/cache/clean`.
    CacheClean,
    /// `POST /v2/cache/prune`.
    CachePrune,
    /// `GET /v2/cache/nodes/{id}`.
    ListCachedNodes,
    /// See an image's locations (`DELETE /v2/stores/…` checks it too).
    GetImageLocation,
    /// Add or replace locations with `PATCH` (`show_multiple_locations`).
    SetImageLocation,
    /// Remove a location: `PATCH` remove, `DELETE /v2/stores/{store}/{image}`.
    DeleteImageLocation,
    /// `POST /v2/images/{id}/locations`.
    AddImageLocation,
    /// `GET /v2/images/{id}/locations`.
    FetchImageLocation,
    /// `GET /v2/info/stores/detail`.
    StoresInfoDetail,
    /// `POST /v2/images/{id}/import` with `copy-image`.
    CopyImage,
    /// Every `/v2/tasks` route (checked before the route's own rule, which allows anyone).
    TasksApiAccess,
}

impl Rule {
    /// The Glance rule name, e.g. `"modify_image"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::GetImages => "get_images",
            Rule::GetImage => "get_image",
            Rule::AddImage => "add_image",
            Rule::ModifyImage => "modify_image",
            Rule::PublicizeImage => "publicize_image",
            Rule::CommunitizeImage => "communitize_image",
            Rule::DeleteImage => "delete_image",
            Rule::UploadImage => "upload_image",
            Rule::DownloadImage => "download_image",
            Rule::Deactivate => "deactivate",
            Rule::Reactivate => "reactivate",
            Rule::GetMembers => "get_members",
            Rule::GetMember => "get_member",
            Rule::AddMember => "add_member",
            Rule::DeleteMember => "delete_member",
            Rule::ModifyMember => "modify_member",
            Rule::CacheList => "cache_list",
            Rule::CacheImage => "cache_image",
            Rule::CacheDelete => "cache_delete",
            Rule::CacheClean => "cache_clean",
            Rule::CachePrune => "cache_prune",
            Rule::ListCachedNodes => "list_cached_nodes",
            Rule::GetImageLocation => "get_image_location",
            Rule::SetImageLocation => "set_image_location",
            Rule::DeleteImageLocation => "delete_image_location",
            Rule::AddImageLocation => "add_image_location",
            Rule::FetchImageLocation => "fetch_image_location",
            Rule::StoresInfoDetail => "stores_info_detail",
            Rule::CopyImage => "copy_image",
            Rule::TasksApiAccess => "tasks_api_access",
        }
    }
}

/// What a rule is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The image's owner project.
    pub owner: Option<&'a str>,
    /// The image's visibility.
    pub visibility: Visibility,
    /// The caller's membership of the image, if its project is a member. Only counted while
    /// the image is `shared` (members of an image made private or public lose their rights).
    pub membership: Option<MemberStatus>,
    /// For `modify_member`: the member project the request is about.
    pub member_id: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// The target of an image, with the caller's membership.
    pub fn image(image: &'a Image, membership: Option<MemberStatus>) -> Target<'a> {
        Target {
            owner: image.owner.as_deref(),
            visibility: image.visibility,
            membership,
            member_id: None,
        }
    }

    /// The same target, about member `member_id`.
    pub fn about_member(self, member_id: &'a str) -> Target<'a> {
        Target {
            member_id: Some(member_id),
            ..self
        }
    }

    fn is_member(&self) -> bool {
        self.visibility == Visibility::Shared && self.membership.is_some()
    }
}

/// The outcome of a policy check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// 403: the caller can see the image but the rule refuses.
    Forbidden,
    /// 404: the caller cannot see the image.
    NotFound,
}

impl RequestContext {
    /// Whether the caller has the admin role (`context_is_admin`).
    pub fn is_admin_role(&self) -> bool {
        self.is_admin || self.roles.iter().any(|r| r == "admin")
    }

    /// Whether the caller has the member role, or one that implies it.
    pub fn is_member_role(&self) -> bool {
        self.is_admin_role() || self.roles.iter().any(|r| r == "member")
    }

    /// Whether the caller has the reader role, or one that implies it.
    pub fn is_reader_role(&self) -> bool {
        self.is_member_role() || self.roles.iter().any(|r| r == "reader")
    }

    /// Glance's `service_api` rule: the service role (Nova, Cinder acting as services), or
    /// admin.
    pub fn is_service_api(&self) -> bool {
        self.is_admin_role() || self.roles.iter().any(|r| r == "service")
    }
}

/// §8.1's visibility test: what the data layer lets the caller see at all. Glance's data
/// layer asks only `is_admin` (the admin role, whatever the token's scope) and the project.
pub fn is_visible(ctx: &RequestContext, target: &Target<'_>) -> bool {
    ctx.is_admin_role()
        || target.owner.is_none()
        || matches!(
            target.visibility,
            Visibility::Public | Visibility::Community
        )
        || ctx.owns(target.owner)
        || target.is_member()
}

/// Whether the caller can see the image: the visibility test and `get_image`.
pub fn can_see(ctx: &RequestContext, target: &Target<'_>) -> bool {
    is_visible(ctx, target) && allows(ctx, Rule::GetImage, target)
}

/// Whether `rule` allows the caller on `target`, before any 403/404 distinction.
pub fn allows(ctx: &RequestContext, rule: Rule, target: &Target<'_>) -> bool {
    // Every rule's scope_types is ['project']: other scopes fail it, admin or not.
    if ctx.token_scope() != TokenScope::Project {
        return false;
    }
    if ctx.is_admin_role() {
        return true;
    }
    if ctx.is_service_api()
        && matches!(
            rule,
            Rule::AddImageLocation | Rule::FetchImageLocation | Rule::StoresInfoDetail
        )
    {
        return true;
    }
    let own = ctx.owns(target.owner);
    // member(P) and reader(P): the role, in the image owner's project.
    let member_of_owner = ctx.is_member_role() && own;
    let reader_of_owner = ctx.is_reader_role() && own;
    let readable = own
        || target.is_member()
        || matches!(
            target.visibility,
            Visibility::Public | Visibility::Community | Visibility::Shared
        );
    match rule {
        Rule::GetImages => ctx.is_reader_role(),
        Rule::GetImage => ctx.is_reader_role() && readable,
        Rule::DownloadImage => ctx.is_member_role() && readable,
        Rule::AddImage => member_of_owner,
        Rule::ModifyImage
        | Rule::CommunitizeImage
        | Rule::DeleteImage
        | Rule::UploadImage
        | Rule::Deactivate
        | Rule::Reactivate
        | Rule::AddMember
        | Rule::DeleteMember => member_of_owner,
        Rule::PublicizeImage => false,
        // The cache API is the operator's (admin returned above).
        Rule::CacheList
        | Rule::CacheImage
        | Rule::CacheDelete
        | Rule::CacheClean
        | Rule::CachePrune
        | Rule::ListCachedNodes => false,
        Rule::GetMembers | Rule::GetMember => {
            reader_of_owner || (ctx.is_reader_role() && target.is_member())
        }
        Rule::GetImageLocation => reader_of_owner,
        Rule::SetImageLocation | Rule::AddImageLocation => member_of_owner,
        Rule::DeleteImageLocation | Rule::FetchImageLocation | Rule::StoresInfoDetail => false,
        // Glance's defaults: `role:admin` for both.
        Rule::CopyImage | Rule::TasksApiAccess => false,
        Rule::ModifyMember => {
            ctx.is_member_role()
                && matches!(
                    (ctx.project_id.as_deref(), target.member_id),
                    (Some(p), Some(m)) if p == m
                )
        }
    }
}

/// The decision for `rule` on an existing image: allow, or 403 when the caller can see the
/// image, or 404 when it cannot.
pub fn decide(ctx: &RequestContext, rule: Rule, target: &Target<'_>) -> Decision {
    if !can_see(ctx, target) {
        Decision::NotFound
    } else if allows(ctx, rule, target) {
        Decision::Allow
    } else {
        Decision::Forbidden
    }
}

/// The message of a policy 403, in Glance's words.
pub fn forbidden(rule: Rule) -> ApiError {
    ApiError::forbidden(format!(
        "You are not authorized to complete {} action.",
        rule.as_str()
    ))
}

/// [`decide`] as a result: `Ok`, 403, or 404 naming the image.
pub fn enforce(
    ctx: &RequestContext,
    rule: Rule,
    target: &Target<'_>,
    image_id: impl std::fmt::Display,
) -> Result<(), ApiError> {
    match decide(ctx, rule, target) {
        Decision::Allow => Ok(()),
        Decision::Forbidden => Err(forbidden(rule)),
        Decision::NotFound => Err(ApiError::image_not_found(image_id)),
    }
}

/// A rule without an existing image (`get_images`, `add_image`): allow or 403.
pub fn enforce_global(
    ctx: &RequestContext,
    rule: Rule,
    target: &Target<'_>,
) -> Result<(), ApiError> {
    if allows(ctx, rule, target) {
        Ok(())
    } else {
        Err(forbidden(rule))
    }
}

#[cfg(test)]
mod tests {
    //! The whole matrix, written from the spec's table (§8.1, §8.2): for each rule and
    //! visibility, one row per caller role and one column per relation of the caller's
    //! project to the image.

    use super::*;

    const OWNER: &str = "owner-project";
    const MEMBER: &str = "member-project";
    const OTHER: &str = "other-project";

    #[derive(Debug, Clone, Copy)]
    enum Role {
        None,
        Reader,
        Member,
        Admin,
    }

    const ROLES: [Role; 4] = [Role::None, Role::Reader, Role::Member, Role::Admin];

    fn ctx(role: Role, project: &str) -> RequestContext {
        let roles: &[&str] = match role {
            Role::None => &[],
            Role::Reader => &["reader"],
            Role::Member => &["member"],
            // Keystone reports implied roles too, but the policy must not depend on it.
            Role::Admin => &["admin"],
        };
        RequestContext {
            project_id: Some(project.to_owned()),
            domain_id: None,
            system_scope: None,
            project_domain_id: None,
            user_id: Some("user".into()),
            user_domain_id: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            service_roles: Vec::new(),
            is_admin: matches!(role, Role::Admin),
            request_id: "req-test".into(),
        }
    }

    /// `MEMBER` is a member (pending) of every image, which only counts when it is shared.
    fn target(visibility: Visibility, caller: &str) -> Target<'static> {
        Target {
            owner: Some(OWNER),
            visibility,
            membership: (caller == MEMBER).then_some(MemberStatus::Pending),
            member_id: None,
        }
    }

    fn code(d: Decision) -> char {
        match d {
            Decision::Allow => 'A',
            Decision::Forbidden => 'F',
            Decision::NotFound => 'N',
        }
    }

    /// Checks `rule` against a grid: per visibility (public, community, shared, private), four
    /// rows (no role, reader, member, admin) of three letters (caller in the owner project, in
    /// a member project, in another project). A = allow, F = 403, N = 404.
    fn check(rule: Rule, grid: [[&str; 4]; 4]) {
        let visibilities = [
            Visibility::Public,
            Visibility::Community,
            Visibility::Shared,
            Visibility::Private,
        ];
        let mut wrong = Vec::new();
        for (visibility, rows) in visibilities.into_iter().zip(grid) {
            for (role, row) in ROLES.into_iter().zip(rows) {
                for (caller, want) in [OWNER, MEMBER, OTHER].into_iter().zip(row.chars()) {
                    let got = code(decide(
                        &ctx(role, caller),
                        rule,
                        &target(visibility, caller),
                    ));
                    if got != want {
                        wrong.push(format!(
                            "{} {visibility} {role:?} {caller}: want {want} got {got}",
                            rule.as_str()
                        ));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    // Who can see what (get_image): readers see public and community images, shared images
    // of their project or that they are members of, private images of their project; admins
    // see everything; callers without a role see nothing.
    const GET_IMAGE: [[&str; 4]; 4] = [
        ["NNN", "AAA", "AAA", "AAA"], // public
        ["NNN", "AAA", "AAA", "AAA"], // community
        ["NNN", "AAN", "AAN", "AAA"], // shared
        ["NNN", "ANN", "ANN", "AAA"], // private
    ];

    /// "admin or member(P)": the owner project's members and admins; visible others get 403.
    const OWNER_MEMBER: [[&str; 4]; 4] = [
        ["NNN", "FFF", "AFF", "AAA"],
        ["NNN", "FFF", "AFF", "AAA"],
        ["NNN", "FFN", "AFN", "AAA"],
        ["NNN", "FNN", "ANN", "AAA"],
    ];

    #[test]
    fn get_image_is_the_visibility_matrix() {
        check(Rule::GetImage, GET_IMAGE);
    }

    #[test]
    fn owner_member_rules() {
        for rule in [
            Rule::ModifyImage,
            Rule::CommunitizeImage,
            Rule::DeleteImage,
            Rule::UploadImage,
            Rule::Deactivate,
            Rule::Reactivate,
            Rule::AddMember,
            Rule::DeleteMember,
        ] {
            check(rule, OWNER_MEMBER);
        }
    }

    #[test]
    fn location_rules_follow_glance() {
        let owner_reader = [
            ["NNN", "AFF", "AFF", "AAA"],
            ["NNN", "AFF", "AFF", "AAA"],
            ["NNN", "AFN", "AFN", "AAA"],
            ["NNN", "ANN", "ANN", "AAA"],
        ];
        check(Rule::GetImageLocation, owner_reader);
        let owner_member = [
            ["NNN", "FFF", "AFF", "AAA"],
            ["NNN", "FFF", "AFF", "AAA"],
            ["NNN", "FFN", "AFN", "AAA"],
            ["NNN", "FNN", "ANN", "AAA"],
        ];
        check(Rule::SetImageLocation, owner_member);
        check(Rule::AddImageLocation, owner_member);
        let admin_only = [
            ["NNN", "FFF", "FFF", "AAA"],
            ["NNN", "FFF", "FFF", "AAA"],
            ["NNN", "FFN", "FFN", "AAA"],
            ["NNN", "FNN", "FNN", "AAA"],
        ];
        check(Rule::DeleteImageLocation, admin_only);
        check(Rule::FetchImageLocation, admin_only);
        // The service role: add and fetch locations of images it can see, stores detail.
        let mut service = ctx(Role::Reader, OTHER);
        service.roles.push("service".into());
        let public = target(Visibility::Public, OTHER);
        assert_eq!(
            decide(&service, Rule::AddImageLocation, &public),
            Decision::Allow
        );
        assert_eq!(
            decide(&service, Rule::FetchImageLocation, &public),
            Decision::Allow
        );
        assert!(allows(&service, Rule::StoresInfoDetail, &public));
        assert_eq!(
            decide(&service, Rule::DeleteImageLocation, &public),
            Decision::Forbidden
        );
        assert!(!allows(
            &ctx(Role::Member, OWNER),
            Rule::StoresInfoDetail,
            &public
        ));
    }

    #[test]
    fn publicize_is_admin_only() {
        check(
            Rule::PublicizeImage,
            [
                ["NNN", "FFF", "FFF", "AAA"],
                ["NNN", "FFF", "FFF", "AAA"],
                ["NNN", "FFN", "FFN", "AAA"],
                ["NNN", "FNN", "FNN", "AAA"],
            ],
        );
    }

    #[test]
    fn download_needs_the_member_role_readers_get_403() {
        check(
            Rule::DownloadImage,
            [
                ["NNN", "FFF", "AAA", "AAA"],
                ["NNN", "FFF", "AAA", "AAA"],
                ["NNN", "FFN", "AAN", "AAA"],
                ["NNN", "FNN", "ANN", "AAA"],
            ],
        );
    }

    #[test]
    fn members_are_listed_by_the_owner_project_and_the_members() {
        // The policy lets the owner project in whatever the visibility; the members handlers
        // then refuse non-shared images themselves ("Only shared images have members.").
        let grid = [
            ["NNN", "AFF", "AFF", "AAA"],
            ["NNN", "AFF", "AFF", "AAA"],
            ["NNN", "AAN", "AAN", "AAA"],
            ["NNN", "ANN", "ANN", "AAA"],
        ];
        check(Rule::GetMembers, grid);
        check(Rule::GetMember, grid);
    }

    #[test]
    fn modify_member_is_the_member_project_itself() {
        // About the member project's own membership.
        let about = |visibility, role, caller| {
            code(decide(
                &ctx(role, caller),
                Rule::ModifyMember,
                &target(visibility, caller).about_member(MEMBER),
            ))
        };
        let row = |visibility, role| -> String {
            [OWNER, MEMBER, OTHER]
                .into_iter()
                .map(|caller| about(visibility, role, caller))
                .collect()
        };
        // The owner gets 403; a reader of the member project too (member role needed).
        assert_eq!(row(Visibility::Shared, Role::Member), "FAN");
        assert_eq!(row(Visibility::Shared, Role::Reader), "FFN");
        assert_eq!(row(Visibility::Shared, Role::Admin), "AAA");
        assert_eq!(row(Visibility::Shared, Role::None), "NNN");
        // Not shared: the membership no longer shows the image.
        assert_eq!(row(Visibility::Private, Role::Member), "FNN");
    }

    #[test]
    fn list_and_create_are_project_rules() {
        let images = |role| {
            allows(
                &ctx(role, OTHER),
                Rule::GetImages,
                &target(Visibility::Public, OTHER),
            )
        };
        assert!(!images(Role::None));
        assert!(images(Role::Reader) && images(Role::Member) && images(Role::Admin));
        let create = |role, caller: &str| {
            enforce_global(
                &ctx(role, caller),
                Rule::AddImage,
                &Target {
                    owner: Some(OWNER),
                    visibility: Visibility::Shared,
                    membership: None,
                    member_id: None,
                },
            )
            .map_err(|e| e.status().as_u16())
        };
        assert_eq!(create(Role::Member, OWNER), Ok(()));
        assert_eq!(create(Role::Admin, OTHER), Ok(()));
        assert_eq!(create(Role::Reader, OWNER), Err(403));
        assert_eq!(create(Role::Member, OTHER), Err(403));
        assert_eq!(create(Role::None, OWNER), Err(403));
    }

    #[test]
    fn images_without_owner_are_visible_to_readers() {
        let target = Target {
            owner: None,
            visibility: Visibility::Public,
            membership: None,
            member_id: None,
        };
        assert_eq!(
            decide(&ctx(Role::Reader, OTHER), Rule::GetImage, &target),
            Decision::Allow
        );
        assert_eq!(
            decide(&ctx(Role::Member, OTHER), Rule::ModifyImage, &target),
            Decision::Forbidden
        );
        assert_eq!(
            decide(&ctx(Role::Admin, OTHER), Rule::ModifyImage, &target),
            Decision::Allow
        );
    }

    /// An anonymous context is also what an unscoped token makes: no project, no roles.
    #[test]
    fn anonymous_context_sees_and_changes_nothing() {
        let anonymous = RequestContext {
            project_id: None,
            roles: Vec::new(),
            is_admin: false,
            ..ctx(Role::None, OTHER)
        };
        for visibility in Visibility::ALL {
            let t = target(visibility, OTHER);
            assert_eq!(decide(&anonymous, Rule::GetImage, &t), Decision::NotFound);
            assert_eq!(
                decide(&anonymous, Rule::ModifyImage, &t),
                Decision::NotFound
            );
        }
        assert!(!allows(
            &anonymous,
            Rule::GetImages,
            &target(Visibility::Public, OTHER)
        ));
    }

    const ALL_RULES: [Rule; 16] = [
        Rule::GetImages,
        Rule::GetImage,
        Rule::AddImage,
        Rule::ModifyImage,
        Rule::PublicizeImage,
        Rule::CommunitizeImage,
        Rule::DeleteImage,
        Rule::UploadImage,
        Rule::DownloadImage,
        Rule::Deactivate,
        Rule::Reactivate,
        Rule::GetMembers,
        Rule::GetMember,
        Rule::AddMember,
        Rule::DeleteMember,
        Rule::ModifyMember,
    ];

    /// A token scoped to the system (`all`) or to the domain `default`, with `role`, as the
    /// auth layer builds it: no project, `is_admin` from the admin role.
    fn scoped(scope: TokenScope, role: Role) -> RequestContext {
        RequestContext {
            project_id: None,
            domain_id: (scope == TokenScope::Domain).then(|| "default".to_owned()),
            system_scope: (scope == TokenScope::System).then(|| "all".to_owned()),
            ..ctx(role, OTHER)
        }
    }

    #[test]
    fn token_scope_is_told_apart_as_oslo_policy_does() {
        assert_eq!(ctx(Role::Member, OWNER).token_scope(), TokenScope::Project);
        assert_eq!(
            scoped(TokenScope::System, Role::Admin).token_scope(),
            TokenScope::System
        );
        assert_eq!(
            scoped(TokenScope::Domain, Role::Admin).token_scope(),
            TokenScope::Domain
        );
        let unscoped = RequestContext {
            project_id: None,
            ..ctx(Role::None, OTHER)
        };
        assert_eq!(unscoped.token_scope(), TokenScope::Project);
    }

    #[test]
    fn system_and_domain_tokens_fail_every_rule_even_as_admin() {
        let mut wrong = Vec::new();
        for scope in [TokenScope::System, TokenScope::Domain] {
            for role in ROLES {
                let caller = scoped(scope, role);
                for owner in [Some(OWNER), None] {
                    for visibility in Visibility::ALL {
                        let t = Target {
                            owner,
                            visibility,
                            membership: None,
                            member_id: Some(OWNER),
                        };
                        // The data layer still shows an admin (of any scope) everything, and
                        // anybody public, community and ownerless images.
                        let visible = matches!(role, Role::Admin)
                            || owner.is_none()
                            || matches!(visibility, Visibility::Public | Visibility::Community);
                        if is_visible(&caller, &t) != visible {
                            wrong.push(format!(
                                "{scope:?} {role:?} {owner:?} {visibility}: visible"
                            ));
                        }
                        for rule in ALL_RULES {
                            if allows(&caller, rule, &t)
                                || decide(&caller, rule, &t) != Decision::NotFound
                            {
                                wrong.push(format!(
                                    "{scope:?} {role:?} {owner:?} {visibility}: {}",
                                    rule.as_str()
                                ));
                            }
                        }
                    }
                }
                // No image to hide: listing and creating are 403.
                for rule in [Rule::GetImages, Rule::AddImage] {
                    let t = Target {
                        owner: None,
                        visibility: Visibility::Private,
                        membership: None,
                        member_id: None,
                    };
                    let status = enforce_global(&caller, rule, &t).map_err(|e| e.status());
                    if status != Err(http::StatusCode::FORBIDDEN) {
                        wrong.push(format!("{scope:?} {role:?}: {} {status:?}", rule.as_str()));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    #[test]
    fn noauth_context_is_allowed_everything() {
        let noauth = RequestContext::noauth("req-x".into());
        for visibility in Visibility::ALL {
            let t = target(visibility, OTHER);
            for rule in [
                Rule::GetImage,
                Rule::ModifyImage,
                Rule::PublicizeImage,
                Rule::DownloadImage,
            ] {
                assert_eq!(decide(&noauth, rule, &t), Decision::Allow);
            }
        }
    }

    #[test]
    fn rejected_and_accepted_members_have_the_same_rights() {
        for status in MemberStatus::ALL {
            let t = Target {
                membership: Some(status),
                ..target(Visibility::Shared, MEMBER)
            };
            let member = ctx(Role::Member, MEMBER);
            assert_eq!(decide(&member, Rule::GetImage, &t), Decision::Allow);
            assert_eq!(decide(&member, Rule::DownloadImage, &t), Decision::Allow);
            assert_eq!(decide(&member, Rule::ModifyImage, &t), Decision::Forbidden);
        }
    }
}
