//! Who may do what with metadefs: Glance's default rules (`glance/policies/metadef.py`, spec
//! §8.2), over a [`RequestContext`] and a namespace.
//!
//! Reads: `admin`, or `reader` of the namespace's owner project, or `reader` anywhere when the
//! namespace is public. Listing namespaces and resource types: `admin` or any `reader`. Every
//! write: `admin` (`metadef_admin`). A namespace the caller cannot read is reported as missing
//! (404); a rule refused on a namespace it can read is 403.

use meta::metadefs::{Namespace, NamespaceViewer, NamespaceVisibility};

use crate::app::App;
use crate::context::{RequestContext, TokenScope};
use crate::error::ApiError;

/// A metadef policy rule, named as in Glance's `policy.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadefRule {
    /// List namespaces.
    GetNamespaces,
    /// Read one namespace (and the test behind every 404).
    GetNamespace,
    /// Create a namespace.
    AddNamespace,
    /// Change a namespace's own fields.
    ModifyNamespace,
    /// Delete a namespace, or all of one kind of its content.
    DeleteNamespace,
    /// List a namespace's objects.
    GetObjects,
    /// Read one object.
    GetObject,
    /// Create an object.
    AddObject,
    /// Change an object.
    ModifyObject,
    /// Delete an object.
    DeleteObject,
    /// List resource types, or a namespace's associations.
    ListResourceTypes,
    /// Read one association (property lookups with `?resource_type=`).
    GetResourceType,
    /// Associate a resource type.
    AddResourceTypeAssociation,
    /// End an association.
    RemoveResourceTypeAssociation,
    /// List a namespace's properties.
    GetProperties,
    /// Read one property.
    GetProperty,
    /// Create a property.
    AddProperty,
    /// Change a property.
    ModifyProperty,
    /// Delete a property.
    RemoveProperty,
    /// List a namespace's tags.
    GetTags,
    /// Read one tag.
    GetTag,
    /// Create one tag.
    AddTag,
    /// Create tags in bulk.
    AddTags,
    /// Rename a tag.
    ModifyTag,
    /// Delete a tag.
    DeleteTag,
    /// Delete all tags.
    DeleteTags,
}

impl MetadefRule {
    /// The Glance rule name, e.g. `"add_metadef_namespace"`.
    pub const fn as_str(self) -> &'static str {
        use MetadefRule as R;
        match self {
            R::GetNamespaces => "get_metadef_namespaces",
            R::GetNamespace => "get_metadef_namespace",
            R::AddNamespace => "add_metadef_namespace",
            R::ModifyNamespace => "modify_metadef_namespace",
            R::DeleteNamespace => "delete_metadef_namespace",
            R::GetObjects => "get_metadef_objects",
            R::GetObject => "get_metadef_object",
            R::AddObject => "add_metadef_object",
            R::ModifyObject => "modify_metadef_object",
            R::DeleteObject => "delete_metadef_object",
            R::ListResourceTypes => "list_metadef_resource_types",
            R::GetResourceType => "get_metadef_resource_type",
            R::AddResourceTypeAssociation => "add_metadef_resource_type_association",
            R::RemoveResourceTypeAssociation => "remove_metadef_resource_type_association",
            R::GetProperties => "get_metadef_properties",
            R::GetProperty => "get_metadef_property",
            R::AddProperty => "add_metadef_property",
            R::ModifyProperty => "modify_metadef_property",
            R::RemoveProperty => "remove_metadef_property",
            R::GetTags => "get_metadef_tags",
            R::GetTag => "get_metadef_tag",
            R::AddTag => "add_metadef_tag",
            R::AddTags => "add_metadef_tags",
            R::ModifyTag => "modify_metadef_tag",
            R::DeleteTag => "delete_metadef_tag",
            R::DeleteTags => "delete_metadef_tags",
        }
    }

    /// Whether the rule is a read (`rule:metadef_default` before secure RBAC) rather than a
    /// write (`rule:metadef_admin`).
    const fn is_read(self) -> bool {
        use MetadefRule as R;
        matches!(
            self,
            R::GetNamespaces
                | R::GetNamespace
                | R::GetObjects
                | R::GetObject
                | R::ListResourceTypes
                | R::GetResourceType
                | R::GetProperties
                | R::GetProperty
                | R::GetTags
                | R::GetTag
        )
    }
}

/// Whether the caller may read `namespace` at all (data layer and `get_metadef_namespace`).
pub fn can_see(ctx: &RequestContext, namespace: &Namespace) -> bool {
    ctx.is_admin_role()
        || (ctx.is_reader_role()
            && (namespace.visibility == NamespaceVisibility::Public
                || ctx.owns(Some(namespace.owner.as_str()))))
}

/// Whether `rule` allows the caller, on `namespace` when the rule is about one.
pub fn allows(ctx: &RequestContext, rule: MetadefRule, namespace: Option<&Namespace>) -> bool {
    // Every metadef rule's scope_types is ['project']: other scopes fail it, admin or not.
    if ctx.token_scope() != TokenScope::Project {
        return false;
    }
    if ctx.is_admin_role() {
        return true;
    }
    if !rule.is_read() {
        return false;
    }
    match namespace {
        Some(namespace) => can_see(ctx, namespace),
        None => ctx.is_reader_role(),
    }
}

/// The namespaces the caller's data layer shows: all for admins, else public ones and its
/// project's.
pub fn viewer(ctx: &RequestContext) -> NamespaceViewer {
    if ctx.is_admin_role() {
        NamespaceViewer::Everything
    } else {
        NamespaceViewer::Project(ctx.project_id.clone())
    }
}

/// The policy 403, in Glance's words.
pub fn forbidden(rule: MetadefRule) -> ApiError {
    ApiError::forbidden(format!(
        "You are not authorized to complete {} action.",
        rule.as_str()
    ))
}

/// 404 for namespace `name`, whether it is missing or hidden from the caller.
pub fn namespace_not_found(name: &str) -> ApiError {
    ApiError::from(meta::Error::from(
        meta::metadefs::MetadefError::NamespaceNotFound(name.to_owned()),
    ))
}

/// Namespace `name` if the caller may see it and `rule` allows it: 404 when it is missing or
/// hidden, 403 when `rule` refuses.
pub async fn namespace(
    app: &App,
    ctx: &RequestContext,
    name: &str,
    rule: MetadefRule,
) -> Result<Namespace, ApiError> {
    let namespace = app
        .catalog
        .metadef_namespace(name)
        .await?
        .filter(|namespace| can_see(ctx, namespace))
        .ok_or_else(|| namespace_not_found(name))?;
    require(ctx, rule, Some(&namespace))?;
    Ok(namespace)
}

/// `rule`, or the refusal Glance gives: 403 when the caller may still read the namespace
/// (`get_metadef_namespace`, on `namespace` or, without one, on the caller's own project),
/// else 404, so that a refusal never reveals a namespace the caller cannot see.
pub fn require(
    ctx: &RequestContext,
    rule: MetadefRule,
    namespace: Option<&Namespace>,
) -> Result<(), ApiError> {
    if allows(ctx, rule, namespace) {
        Ok(())
    } else if allows(ctx, MetadefRule::GetNamespace, namespace) {
        Err(forbidden(rule))
    } else {
        Err(match namespace {
            Some(namespace) => namespace_not_found(&namespace.namespace),
            None => ApiError::not_found("The resource could not be found."),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meta::Timestamp;

    fn ctx(project: &str, roles: &[&str]) -> RequestContext {
        let mut ctx = RequestContext::noauth("req-test".into());
        ctx.is_admin = false;
        ctx.project_id = Some(project.into());
        ctx.roles = roles.iter().map(|r| r.to_string()).collect();
        ctx
    }

    fn namespace(owner: &str, visibility: NamespaceVisibility) -> Namespace {
        Namespace {
            namespace: "n".into(),
            display_name: None,
            description: None,
            visibility,
            protected: false,
            owner: owner.into(),
            created_at: Timestamp::from_unix_micros(0),
            updated_at: Timestamp::from_unix_micros(0),
        }
    }

    #[test]
    fn reads_follow_ownership_and_visibility_writes_need_admin() {
        let private = namespace("a", NamespaceVisibility::Private);
        let public = namespace("a", NamespaceVisibility::Public);
        let reader_a = ctx("a", &["reader"]);
        let member_b = ctx("b", &["member"]);
        let admin_b = ctx("b", &["admin"]);
        let no_role = ctx("a", &[]);
        assert!(can_see(&reader_a, &private));
        assert!(!can_see(&member_b, &private));
        assert!(can_see(&member_b, &public));
        assert!(can_see(&admin_b, &private));
        assert!(!can_see(&no_role, &public), "reading needs the reader role");
        for rule in [
            MetadefRule::ModifyNamespace,
            MetadefRule::AddTag,
            MetadefRule::DeleteObject,
        ] {
            assert!(!allows(&reader_a, rule, Some(&private)));
            assert!(!allows(&ctx("a", &["member"]), rule, Some(&private)));
            assert!(allows(&admin_b, rule, Some(&private)));
        }
        assert!(allows(&member_b, MetadefRule::GetNamespaces, None));
        assert!(!allows(&member_b, MetadefRule::AddNamespace, None));
        assert_eq!(viewer(&admin_b), NamespaceViewer::Everything);
        assert_eq!(
            viewer(&member_b),
            NamespaceViewer::Project(Some("b".into()))
        );
    }

    #[test]
    fn other_scopes_fail_every_rule_and_refusals_hide_what_cannot_be_read() {
        let public = namespace("a", NamespaceVisibility::Public);
        let mut system_admin = ctx("x", &["admin"]);
        system_admin.project_id = None;
        system_admin.system_scope = Some("all".into());
        let mut domain_admin = ctx("x", &["admin"]);
        domain_admin.project_id = None;
        domain_admin.domain_id = Some("default".into());
        for other in [&system_admin, &domain_admin] {
            // Glance's data layer shows an admin of any scope everything ...
            assert!(can_see(other, &public));
            // ... but no rule passes, and the refusal is a 404 (get_metadef_namespace fails).
            for rule in [MetadefRule::GetNamespace, MetadefRule::ModifyNamespace] {
                assert!(!allows(other, rule, Some(&public)));
                let err = require(other, rule, Some(&public)).unwrap_err();
                assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
            }
            let err = require(other, MetadefRule::GetNamespaces, None).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
        }
        // A project member who may read the namespace gets 403 for a write, as before.
        let member_b = ctx("b", &["member"]);
        let err = require(&member_b, MetadefRule::ModifyNamespace, Some(&public)).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
        let err = require(&member_b, MetadefRule::AddNamespace, None).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
        // No role at all: not even get_metadef_namespace, so 404.
        let err = require(&ctx("a", &[]), MetadefRule::GetNamespaces, None).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
    }
}
