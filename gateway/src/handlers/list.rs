//! `GET /v2/images`: query parsing (pagination, both sort syntaxes, filters with their
//! operators — spec §5), the visibility rules of §5.4, and the `first`/`next` links.
//!
//! Filters become one predicate handed to `meta::Meta::list_images`, which walks an index in
//! sort order from the marker and stops after `limit` matches: a page never reads every image.

use http::{Response, StatusCode};
use std::collections::HashSet;

use meta::{Image, ImageId, ImageStatus, MemberStatus, SortDir, SortKey, Visibility};

use super::images::ImageView;
use super::json_response;
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::policy::{self, Rule, Target};

/// Decoded `key=value` pairs of a query string, in order, repeats kept.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(s: &str) -> String {
    let plus_as_space = s.replace('+', " ");
    crate::router::percent_decode(&plus_as_space).unwrap_or(plus_as_space)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

/// One condition on an image.
#[derive(Debug, Clone)]
enum Filter {
    /// A string attribute equal to one of the values (`x=v`, `x=eq:v`, `x=in:a,b`).
    OneOf(StrField, Vec<String>),
    Tag(String),
    NumRange {
        field: NumField,
        min: Option<u64>,
        max: Option<u64>,
    },
    NumEq(NumField, u64),
    Protected(bool),
    Time(TimeField, Cmp, i64),
    Property(String, String),
}

#[derive(Debug, Clone, Copy)]
enum StrField {
    Name,
    Id,
    Status,
    ContainerFormat,
    DiskFormat,
    Owner,
    Checksum,
    OsHashAlgo,
    OsHashValue,
}

#[derive(Debug, Clone, Copy)]
enum NumField {
    Size,
    VirtualSize,
    MinRam,
    MinDisk,
}

#[derive(Debug, Clone, Copy)]
enum TimeField {
    CreatedAt,
    UpdatedAt,
}

impl StrField {
    fn get(self, image: &Image) -> Option<String> {
        match self {
            StrField::Name => image.name.clone(),
            StrField::Id => Some(image.id.to_string()),
            StrField::Status => Some(image.status.to_string()),
            StrField::ContainerFormat => image.container_format.clone(),
            StrField::DiskFormat => image.disk_format.clone(),
            StrField::Owner => image.owner.clone(),
            StrField::Checksum => image.checksum.clone(),
            StrField::OsHashAlgo => image.os_hash_algo.clone(),
            StrField::OsHashValue => image.os_hash_value.clone(),
        }
    }
}

impl NumField {
    fn parse(name: &str) -> Option<NumField> {
        Some(match name {
            "size" => NumField::Size,
            "virtual_size" => NumField::VirtualSize,
            "min_ram" => NumField::MinRam,
            "min_disk" => NumField::MinDisk,
            _ => return None,
        })
    }

    fn get(self, image: &Image) -> Option<u64> {
        match self {
            NumField::Size => image.size,
            NumField::VirtualSize => image.virtual_size,
            NumField::MinRam => Some(image.min_ram),
            NumField::MinDisk => Some(image.min_disk),
        }
    }
}

impl Filter {
    fn matches(&self, image: &Image) -> bool {
        match self {
            Filter::OneOf(field, values) => field.get(image).is_some_and(|v| values.contains(&v)),
            Filter::Tag(tag) => image.tags.contains(tag),
            Filter::NumRange { field, min, max } => field
                .get(image)
                .is_some_and(|v| min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m)),
            Filter::NumEq(field, value) => field.get(image) == Some(*value),
            Filter::Protected(p) => image.protected == *p,
            Filter::Time(field, cmp, micros) => {
                let t = match field {
                    TimeField::CreatedAt => image.created_at,
                    TimeField::UpdatedAt => image.updated_at,
                }
                .as_unix_micros()
                    / 1_000_000
                    * 1_000_000;
                match cmp {
                    Cmp::Gt => t > *micros,
                    Cmp::Gte => t >= *micros,
                    Cmp::Lt => t < *micros,
                    Cmp::Lte => t <= *micros,
                    Cmp::Eq => t == *micros,
                    Cmp::Neq => t != *micros,
                }
            }
            Filter::Property(k, v) => image.properties.get(k) == Some(v),
        }
    }
}

/// The `visibility` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VisibilityFilter {
    /// Not given: §5.4's default list.
    Default,
    /// `all`.
    All,
    /// One visibility.
    Only(Visibility),
}

/// A parsed list request.
#[derive(Debug)]
pub struct ListQuery {
    limit: usize,
    marker: Option<meta::ImageId>,
    sort: Vec<(SortKey, SortDir)>,
    filters: Vec<Filter>,
    visibility: VisibilityFilter,
    /// Which shared-with-me images are listed: `None` for `all`, else that status.
    member_status: Option<MemberStatus>,
    os_hidden: bool,
}

fn parse_sort_key(key: &str) -> Result<SortKey, ApiError> {
    Ok(match key {
        "name" => SortKey::Name,
        "status" => SortKey::Status,
        "container_format" => SortKey::ContainerFormat,
        "disk_format" => SortKey::DiskFormat,
        "size" => SortKey::Size,
        "id" => SortKey::Id,
        "created_at" => SortKey::CreatedAt,
        "updated_at" => SortKey::UpdatedAt,
        other => return Err(ApiError::bad_request(format!("Invalid sort key: {other}."))),
    })
}

fn parse_sort_dir(dir: &str) -> Result<SortDir, ApiError> {
    match dir {
        "asc" => Ok(SortDir::Asc),
        "desc" => Ok(SortDir::Desc),
        other => Err(ApiError::bad_request(format!(
            "Invalid sort direction: {other}. It must be one of the following: asc, desc."
        ))),
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(ApiError::bad_request(format!(
            "Invalid value '{other}' for '{name}' filter. Valid values are 'true' or 'false'."
        ))),
    }
}

/// Parses an ISO 8601 date-time (with or without zone, optional fraction) into Unix
/// microseconds, truncated to whole seconds as Glance stores them.
pub fn parse_iso8601(value: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    use time::{Date, OffsetDateTime, PrimitiveDateTime};
    let value = value.trim();
    if let Ok(t) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(t.unix_timestamp() * 1_000_000);
    }
    let naive = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day][first [T] [ ]][hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
    );
    if let Ok(t) = PrimitiveDateTime::parse(value, &naive) {
        return Some(t.assume_utc().unix_timestamp() * 1_000_000);
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(value, &date)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1_000_000)
}

/// Splits `in:` lists: commas separate, double quotes protect commas, backslash escapes a
/// quote inside quotes.
fn split_in_list(list: &str) -> Result<Vec<String>, ApiError> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => match chars.next() {
                Some(next) => current.push(next),
                None => break,
            },
            ',' if !quoted => values.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if quoted {
        return Err(ApiError::bad_request(
            "Invalid filter value: unbalanced quotes.",
        ));
    }
    values.push(current);
    Ok(values)
}

/// `name=v`, `name=eq:v`, `name=in:a,b` (Glance: a value that parses as a time is not split).
fn parse_one_of(value: &str) -> Result<Vec<String>, ApiError> {
    if parse_iso8601(value).is_some() {
        return Ok(vec![value.to_owned()]);
    }
    match value.split_once(':') {
        None => Ok(vec![value.to_owned()]),
        Some(("eq", rest)) => Ok(vec![rest.to_owned()]),
        Some(("in", rest)) => split_in_list(rest),
        Some((op, _)) => Err(ApiError::bad_request(format!(
            "Unable to filter by unknown operator '{op}'."
        ))),
    }
}

fn parse_time_filter(name: &str, value: &str) -> Result<(Cmp, i64), ApiError> {
    let bad_format = || {
        ApiError::bad_request(format!(
            "Bad \"{name}\" query filter format. Use ISO 8601 DateTime notation."
        ))
    };
    if let Some(t) = parse_iso8601(value) {
        return Ok((Cmp::Eq, t));
    }
    let (op, rest) = value.split_once(':').ok_or_else(bad_format)?;
    let cmp = match op {
        "gt" => Cmp::Gt,
        "gte" => Cmp::Gte,
        "lt" => Cmp::Lt,
        "lte" => Cmp::Lte,
        "eq" => Cmp::Eq,
        "neq" => Cmp::Neq,
        other => {
            return Err(ApiError::bad_request(format!(
                "Unable to filter by unknown operator '{other}'."
            )))
        }
    };
    Ok((cmp, parse_iso8601(rest).ok_or_else(bad_format)?))
}

fn parse_number(value: &str) -> Result<u64, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::bad_request("Unable to filter on a range with a non-numeric value."))
}

impl ListQuery {
    /// Parses the query of a list request.
    pub fn parse(app: &App, pairs: &[(String, String)]) -> Result<ListQuery, ApiError> {
        let mut q = ListQuery {
            limit: app.config.limit_param_default,
            marker: None,
            sort: Vec::new(),
            filters: Vec::new(),
            visibility: VisibilityFilter::Default,
            member_status: Some(MemberStatus::Accepted),
            os_hidden: false,
        };
        let (mut sort_keys, mut sort_dirs, mut new_sort) = (Vec::new(), Vec::new(), None);
        let mut ranges: Vec<(NumField, Option<u64>, Option<u64>)> = Vec::new();
        for (key, value) in pairs {
            let (key, value) = (key.as_str(), value.as_str());
            match key {
                "limit" => {
                    let limit: i64 = value
                        .parse()
                        .map_err(|_| ApiError::bad_request("limit param must be an integer"))?;
                    if limit < 0 {
                        return Err(ApiError::bad_request("limit param must be positive"));
                    }
                    q.limit = (limit as u64).min(app.config.api_limit_max as u64) as usize;
                }
                "marker" => {
                    q.marker = Some(value.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "Invalid marker. Image {value} could not be found."
                        ))
                    })?)
                }
                "sort_key" => sort_keys.push(parse_sort_key(value)?),
                "sort_dir" => sort_dirs.push(parse_sort_dir(value)?),
                "sort" => new_sort = Some(value.to_owned()),
                "changes-since" => {
                    return Err(ApiError::bad_request(
                        "The \"changes-since\" filter is no longer available on v2.",
                    ))
                }
                "visibility" => {
                    q.visibility = match value {
                        "all" => VisibilityFilter::All,
                        other => VisibilityFilter::Only(other.parse().map_err(|_| {
                            ApiError::bad_request(format!("Invalid visibility value: {value}"))
                        })?),
                    }
                }
                "member_status" => {
                    q.member_status = match value {
                        "all" => None,
                        other => Some(other.parse().map_err(|_| {
                            ApiError::bad_request(format!("Invalid status value: {value}"))
                        })?),
                    };
                }
                // Glance lower-cases this one (openstacksdk sends `True`), not `protected`.
                "os_hidden" => q.os_hidden = parse_bool("os_hidden", &value.to_ascii_lowercase())?,
                "protected" => q
                    .filters
                    .push(Filter::Protected(parse_bool("protected", value)?)),
                "tag" => q.filters.push(Filter::Tag(value.to_owned())),
                "name" | "id" | "status" | "container_format" | "disk_format" => {
                    let field = match key {
                        "name" => StrField::Name,
                        "id" => StrField::Id,
                        "status" => StrField::Status,
                        "container_format" => StrField::ContainerFormat,
                        _ => StrField::DiskFormat,
                    };
                    q.filters.push(Filter::OneOf(field, parse_one_of(value)?));
                }
                "owner" => q
                    .filters
                    .push(Filter::OneOf(StrField::Owner, vec![value.to_owned()])),
                "checksum" => q
                    .filters
                    .push(Filter::OneOf(StrField::Checksum, vec![value.to_owned()])),
                "os_hash_value" => q
                    .filters
                    .push(Filter::OneOf(StrField::OsHashValue, vec![value.to_owned()])),
                "os_hash_algo" => q
                    .filters
                    .push(Filter::OneOf(StrField::OsHashAlgo, vec![value.to_owned()])),
                "created_at" | "updated_at" => {
                    let (cmp, t) = parse_time_filter(key, value)?;
                    let field = if key == "created_at" {
                        TimeField::CreatedAt
                    } else {
                        TimeField::UpdatedAt
                    };
                    q.filters.push(Filter::Time(field, cmp, t));
                }
                "self" | "file" | "schema" => {
                    return Err(ApiError::bad_request(format!("Invalid filter: {key}")))
                }
                _ => {
                    let range = key
                        .strip_suffix("_min")
                        .map(|f| (f, true))
                        .or_else(|| key.strip_suffix("_max").map(|f| (f, false)));
                    if let Some((field, is_min)) =
                        range.and_then(|(f, m)| NumField::parse(f).map(|f| (f, m)))
                    {
                        let n = parse_number(value)?;
                        ranges.push(if is_min {
                            (field, Some(n), None)
                        } else {
                            (field, None, Some(n))
                        });
                    } else if let Some(field) = NumField::parse(key) {
                        q.filters.push(Filter::NumEq(field, parse_number(value)?));
                    } else {
                        q.filters
                            .push(Filter::Property(key.to_owned(), value.to_owned()));
                    }
                }
            }
        }
        for (field, min, max) in ranges {
            q.filters.push(Filter::NumRange { field, min, max });
        }
        q.sort = match new_sort {
            Some(_) if !sort_keys.is_empty() || !sort_dirs.is_empty() => {
                return Err(ApiError::bad_request(
                    "Old and new sorting syntax cannot be combined",
                ))
            }
            Some(spec) => spec
                .split(',')
                .map(|item| {
                    let (key, dir) = item.split_once(':').unwrap_or((item, "desc"));
                    Ok((parse_sort_key(key.trim())?, parse_sort_dir(dir.trim())?))
                })
                .collect::<Result<_, ApiError>>()?,
            None => {
                if sort_dirs.len() > 1 && sort_dirs.len() != sort_keys.len() {
                    return Err(ApiError::bad_request(
                        "Number of sort dirs does not match the number of sort keys",
                    ));
                }
                if sort_keys.is_empty() && !sort_dirs.is_empty() {
                    sort_keys.push(SortKey::CreatedAt);
                }
                let dir_for = |i: usize| match sort_dirs.len() {
                    0 => SortDir::Desc,
                    1 => sort_dirs[0],
                    _ => sort_dirs[i],
                };
                sort_keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (*k, dir_for(i)))
                    .collect()
            }
        };
        // Glance appends created_at and id as tie-breakers, in the request's direction when it
        // gave exactly one, else descending.
        let dirs: Vec<SortDir> = q.sort.iter().map(|(_, d)| *d).collect();
        let tie_dir = match dirs.as_slice() {
            [only] => *only,
            _ if sort_dirs.len() == 1 => sort_dirs[0],
            _ => SortDir::Desc,
        };
        for key in [SortKey::CreatedAt, SortKey::Id] {
            if !q.sort.iter().any(|(k, _)| *k == key) {
                q.sort.push((key, tie_dir));
            }
        }
        Ok(q)
    }

    /// Whether `image` belongs in the result for `ctx` (spec §5.4, then the filters).
    /// `shared_with_me` holds the images the caller's project is a member of, with the
    /// requested member status, from the by-project index.
    fn keeps(
        &self,
        ctx: &RequestContext,
        shared_with_me: &HashSet<ImageId>,
        image: &Image,
    ) -> bool {
        if matches!(
            image.status,
            ImageStatus::Deleted | ImageStatus::PendingDelete | ImageStatus::Killed
        ) || image.os_hidden != self.os_hidden
        {
            return false;
        }
        if matches!(self.visibility, VisibilityFilter::Only(v) if v != image.visibility) {
            return false;
        }
        let own = ctx.owns(image.owner.as_deref());
        // Other projects' community images only when asked for by visibility.
        let community_asked = self.visibility != VisibilityFilter::Default;
        let listed = match image.visibility {
            Visibility::Public => true,
            Visibility::Community => own || community_asked,
            Visibility::Private => own || ctx.is_admin_role(),
            Visibility::Shared => own || ctx.is_admin_role() || shared_with_me.contains(&image.id),
        };
        listed && self.filters.iter().all(|f| f.matches(image))
    }
}

/// The images `ctx`'s project is a member of, with `status` (any when `None`); empty for
/// admins (who list every shared image anyway) and unscoped callers.
fn shared_with(
    app: &App,
    ctx: &RequestContext,
    status: Option<MemberStatus>,
) -> Result<HashSet<ImageId>, ApiError> {
    let Some(project) = ctx.project_id.as_deref().filter(|_| !ctx.is_admin_role()) else {
        return Ok(HashSet::new());
    };
    Ok(app
        .meta
        .images_shared_with(project)?
        .into_iter()
        .filter(|(_, s)| status.is_none_or(|wanted| *s == wanted))
        .map(|(id, _)| id)
        .collect())
}

/// `GET /v2/images`.
pub fn list(app: &App, ctx: &RequestContext, raw_query: &str) -> Result<Response<Body>, ApiError> {
    policy::enforce_global(
        ctx,
        Rule::GetImages,
        &Target {
            owner: ctx.project_id.as_deref(),
            visibility: Visibility::Private,
            membership: None,
            member_id: None,
        },
    )?;
    let pairs = query_pairs(raw_query);
    let query = ListQuery::parse(app, &pairs)?;
    let shared_with_me = shared_with(app, ctx, query.member_status)?;
    let images = app
        .meta
        .list_images(&query.sort, query.marker, query.limit, |image| {
            query.keeps(ctx, &shared_with_me, image)
        })
        .map_err(|e| match e {
            meta::Error::MarkerNotFound(id) => {
                ApiError::bad_request(format!("Invalid marker. Image {id} could not be found."))
            }
            other => ApiError::from(other),
        })?;
    // Links repeat the request's own parameters (all of them, repeats kept), minus the marker.
    let kept: Vec<&str> = raw_query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("marker="))
        .collect();
    let first = if kept.is_empty() {
        "/v2/images".to_owned()
    } else {
        format!("/v2/images?{}", kept.join("&"))
    };
    let next = images
        .last()
        .filter(|_| images.len() == query.limit && query.limit > 0)
        .map(|last| {
            let mut next: Vec<String> = kept.iter().map(|s| s.to_string()).collect();
            next.push(format!("marker={}", last.id));
            format!("/v2/images?{}", next.join("&"))
        });
    let page = Page {
        images: images
            .iter()
            .map(|image| ImageView::of(app, image))
            .collect(),
        first,
        next,
        schema: "/v2/schemas/images",
    };
    Ok(json_response(StatusCode::OK, &page))
}

/// A page of images, as `GET /v2/images` answers it.
#[derive(serde::Serialize)]
struct Page<'a> {
    images: Vec<ImageView<'a>>,
    first: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    schema: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_with_quotes() {
        assert_eq!(
            split_in_list(r#""glass, darkly",share me"#).unwrap(),
            vec!["glass, darkly".to_owned(), "share me".to_owned()]
        );
        assert!(split_in_list(r#""open"#).is_err());
    }

    #[test]
    fn operators() {
        assert_eq!(parse_one_of("foo").unwrap(), vec!["foo"]);
        assert_eq!(parse_one_of("eq:foo:bar").unwrap(), vec!["foo:bar"]);
        assert!(parse_one_of("foo:bar").is_err());
        assert_eq!(parse_one_of("in:a,b").unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:10Z"), Some(10_000_000));
        assert_eq!(parse_iso8601("1970-01-01T00:00:10"), Some(10_000_000));
        assert_eq!(parse_iso8601("1970-01-02"), Some(86_400_000_000));
        assert!(parse_iso8601("yesterday").is_none());
        assert_eq!(
            parse_time_filter("created_at", "gt:1970-01-01T00:00:10Z")
                .unwrap()
                .0,
            Cmp::Gt
        );
        assert!(parse_time_filter("created_at", "xx:1970-01-01T00:00:10Z").is_err());
        assert!(parse_time_filter("created_at", "gt:nope").is_err());
    }

    #[test]
    fn query_decoding() {
        let pairs = query_pairs("name=a%20b&tag=x&tag=y&sort=name:asc");
        assert_eq!(pairs[0], ("name".into(), "a b".into()));
        assert_eq!(pairs.len(), 4);
    }
}
