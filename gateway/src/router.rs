//! Routing: `(method, path)` → an entry of a route table (`routes::ROUTES`) and its path
//! parameters, or the error Glance gives for it. This module knows how templates match, not
//! which routes exist.
//!
//! A template is `/`-separated literal segments and `{name}` parameters. A leading `v2`
//! segment stands for every version prefix the API advertises (`/v2`, `/v2.N`); a path under
//! any other first segment is outside the API ([`Routed::OutsideApi`]: Glance answers it with
//! the versions document). Path parameters are kept as strings: an image id that is not a
//! UUID is answered by the handler with 404, as Glance does. Names (`{tag}`, `{member_id}`,
//! and the metadef names such as `{namespace}`) are percent-decoded (400 when that is not
//! UTF-8), before the method is looked at, as Glance's router does.

use http::Method;

use crate::error::ApiError;

/// The template segment that stands for every advertised version prefix.
const VERSION_SEGMENT: &str = "v2";

/// Parameters decoded from `%XX` escapes, and the 400 explanation when the result is not
/// UTF-8.
const DECODED: &[(&str, &str)] = &[
    ("tag", "Tag is not valid UTF-8."),
    ("member_id", "Member id is not valid UTF-8."),
    ("namespace", "Namespace is not valid UTF-8."),
    ("object_name", "Object name is not valid UTF-8."),
    ("property_name", "Property name is not valid UTF-8."),
    ("tag_name", "Tag is not valid UTF-8."),
    ("resource_type", "Resource type is not valid UTF-8."),
];

/// What the router needs of a table entry.
pub trait RouteSpec {
    /// The methods it answers.
    fn methods(&self) -> &[Method];
    /// Its path template.
    fn template(&self) -> &'static str;
}

/// The path parameters of a matched route, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    /// The parameter `name` of the template (empty, and a debug assertion, when the template
    /// has none such: a table error).
    pub fn get(&self, name: &str) -> &str {
        let found = self.0.iter().find(|(n, _)| *n == name);
        debug_assert!(
            found.is_some(),
            "no path parameter {{{name}}} in this route"
        );
        found.map_or("", |(_, value)| value.as_str())
    }

    /// The parameter `name`, owned.
    pub fn take(&mut self, name: &str) -> String {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, value)) => std::mem::take(value),
            None => {
                debug_assert!(false, "no path parameter {{{name}}} in this route");
                String::new()
            }
        }
    }
}

/// Where a request goes.
#[derive(Debug)]
pub enum Routed<'t, R> {
    /// Entry `index` of the table, with the path's parameters.
    Found {
        /// The entry's position in the table.
        index: usize,
        /// The entry.
        route: &'t R,
        /// The path parameters.
        params: Params,
    },
    /// A path outside the API's version prefixes.
    OutsideApi,
}

/// Finds the entry of `table` for `method` and `path`; `is_version` says which first
/// segments are advertised version prefixes. A path that matches a template but not its
/// methods is 405 (naming the methods allowed); an unknown path under a version prefix, 404.
pub fn route<'t, R: RouteSpec>(
    table: &'t [R],
    method: &Method,
    path: &str,
    is_version: impl Fn(&str) -> bool,
) -> Result<Routed<'t, R>, ApiError> {
    let segments = split(path);
    let mut allowed: Vec<&str> = Vec::new();
    let mut matched = false;
    for (index, route) in table.iter().enumerate() {
        let Some(params) = matches(route.template(), &segments, &is_version)? else {
            continue;
        };
        matched = true;
        if route.methods().contains(method) {
            return Ok(Routed::Found {
                index,
                route,
                params,
            });
        }
        allowed.extend(route.methods().iter().map(Method::as_str));
    }
    if matched {
        return Err(ApiError::method_not_allowed(&allowed));
    }
    match segments.first() {
        Some(first) if is_version(first) => {
            Err(ApiError::not_found("The resource could not be found."))
        }
        // Glance sends any other prefix to the versions application.
        _ => Ok(Routed::OutsideApi),
    }
}

/// A path's segments; `/` has none.
fn split(path: &str) -> Vec<&str> {
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

/// The parameters of `segments` under `template`, if it matches. Every entry of the table is
/// tried per request, so a template that does not match costs no allocation.
fn matches(
    template: &'static str,
    segments: &[&str],
    is_version: &impl Fn(&str) -> bool,
) -> Result<Option<Params>, ApiError> {
    let pattern = template.trim_start_matches('/');
    let pattern = || pattern.split('/').filter(|_| !pattern.is_empty());
    if pattern().count() != segments.len() {
        return Ok(None);
    }
    let param = |want: &'static str| want.strip_prefix('{').and_then(|w| w.strip_suffix('}'));
    for (i, (want, got)) in pattern().zip(segments).enumerate() {
        let fits = if param(want).is_some() {
            true
        } else if i == 0 && want == VERSION_SEGMENT {
            is_version(got)
        } else {
            want == *got
        };
        if !fits {
            return Ok(None);
        }
    }
    let mut params = Vec::new();
    for (want, got) in pattern().zip(segments) {
        let Some(name) = param(want) else { continue };
        let value = match DECODED.iter().find(|(n, _)| *n == name) {
            Some((_, refusal)) => {
                percent_decode(got).ok_or_else(|| ApiError::bad_request(*refusal))?
            }
            None => (*got).to_owned(),
        };
        params.push((name, value));
    }
    Ok(Some(Params(params)))
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+` in a path). `None` when the result
/// is not UTF-8 or an escape is malformed.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Spec(&'static [Method], &'static str);

    impl RouteSpec for Spec {
        fn methods(&self) -> &[Method] {
            self.0
        }
        fn template(&self) -> &'static str {
            self.1
        }
    }

    const TABLE: &[Spec] = &[
        Spec(&[Method::GET], "/"),
        Spec(&[Method::GET, Method::HEAD], "/healthcheck"),
        Spec(&[Method::GET], "/v2/images"),
        Spec(&[Method::POST], "/v2/images"),
        Spec(&[Method::GET], "/v2/images/{id}"),
        Spec(&[Method::PUT], "/v2/images/{id}/tags/{tag}"),
        Spec(&[Method::DELETE], "/v2/images/{id}/tags/{tag}"),
        Spec(&[Method::PUT], "/v2/images/{id}/members/{member_id}"),
    ];

    fn is_version(s: &str) -> bool {
        s == "v2" || s == "v2.1"
    }

    fn found(method: Method, path: &str) -> (usize, Params) {
        match route(TABLE, &method, path, is_version).unwrap() {
            Routed::Found { index, params, .. } => (index, params),
            Routed::OutsideApi => panic!("{path} is outside the API"),
        }
    }

    #[test]
    fn templates_and_version_prefixes() {
        assert_eq!(found(Method::GET, "/").0, 0);
        assert_eq!(found(Method::HEAD, "/healthcheck").0, 1);
        assert_eq!(found(Method::GET, "/v2/images").0, 2);
        assert_eq!(found(Method::POST, "/v2.1/images").0, 3);
        let (index, params) = found(Method::GET, "/v2/images/abc");
        assert_eq!((index, params.get("id")), (4, "abc"));
        assert!(matches!(
            route(TABLE, &Method::GET, "/v1/images", is_version),
            Ok(Routed::OutsideApi)
        ));
        assert!(matches!(
            route(TABLE, &Method::POST, "/v3", is_version),
            Ok(Routed::OutsideApi)
        ));
    }

    #[test]
    fn wrong_method_lists_every_allowed_one() {
        let err = route(TABLE, &Method::PATCH, "/v2/images", is_version).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::METHOD_NOT_ALLOWED);
        let err = route(TABLE, &Method::POST, "/", is_version).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn unknown_path_under_a_version_is_404() {
        let err = route(TABLE, &Method::GET, "/v2/nothing", is_version).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
        let err = route(TABLE, &Method::GET, "/v2.9/images", is_version);
        assert!(matches!(err, Ok(Routed::OutsideApi)));
    }

    #[test]
    fn tags_and_members_are_decoded_before_the_method_is_checked() {
        let (_, params) = found(Method::PUT, "/v2/images/x/tags/a%20b");
        assert_eq!(params.get("tag"), "a b");
        let (_, mut params) = found(Method::PUT, "/v2/images/x/members/p%20q");
        assert_eq!(params.take("member_id"), "p q");
        // Ids are not decoded.
        assert_eq!(found(Method::GET, "/v2/images/a%20b").1.get("id"), "a%20b");
        let err = route(TABLE, &Method::PATCH, "/v2/images/x/tags/%FF", is_version).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(err.explanation(), "Tag is not valid UTF-8.");
    }
}
