//! The query of `GET /v2/images`, parsed into a [`meta::ListFilter`]: pagination, both sort
//! syntaxes, every filter with its operators (spec §5.1–5.3) and the caller's visibility rules
//! (§5.4), with Glance's 400 for each bad parameter.
//!
//! Glance finds bad parameters in two places, and so at two moments: its request parser
//! (limit, sort, visibility, member status, `os_hidden`, `protected`, `changes-since`) before
//! the `get_images` rule, and its database layer (the other filter values, the marker) after
//! it. [`parse`] refuses the first kind at once and keeps the first of the second kind in the
//! [`ListQuery`], which hands it out only when the filter is asked for
//! ([`ListQuery::into_filter`]) — after the policy check.
//!
//! Parsing only: which images match is `meta`'s business (the engine evaluates the filter
//! against its indexes, or translates it to SQL), and the response is the handler's.

use meta::{
    Cmp, Condition, ImageStatus, ListFilter, MemberStatus, NumberField, Scope, SortDir, SortKey,
    TextField, TimeField, Timestamp, Viewer, VisibilityFilter,
};

use crate::config::Config;
use crate::context::RequestContext;
use crate::error::ApiError;

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

fn parse_time_filter(name: &str, value: &str) -> Result<(Cmp, Timestamp), ApiError> {
    let bad_format = || {
        ApiError::bad_request(format!(
            "Bad \"{name}\" query filter format. Use ISO 8601 DateTime notation."
        ))
    };
    if let Some(t) = parse_iso8601(value) {
        return Ok((Cmp::Eq, Timestamp::from_unix_micros(t)));
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
    let at = parse_iso8601(rest).ok_or_else(bad_format)?;
    Ok((cmp, Timestamp::from_unix_micros(at)))
}

fn parse_number(value: &str) -> Result<u64, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::bad_request("Unable to filter on a range with a non-numeric value."))
}

fn number_field(name: &str) -> Option<NumberField> {
    Some(match name {
        "size" => NumberField::Size,
        "virtual_size" => NumberField::VirtualSize,
        "min_ram" => NumberField::MinRam,
        "min_disk" => NumberField::MinDisk,
        _ => return None,
    })
}

/// Statuses no listing shows (§5.4; `deleted` images are never listed by meta at all).
const NEVER_LISTED: [ImageStatus; 2] = [ImageStatus::PendingDelete, ImageStatus::Killed];

/// A list request's query, parsed: the page to list, unless a filter value or the marker is
/// bad (the 400 Glance's database layer gives, after `get_images`).
#[derive(Debug)]
pub struct ListQuery {
    filter: ListFilter,
    /// The first bad filter value or marker.
    deferred: Option<ApiError>,
}

impl ListQuery {
    /// The page to list, or the 400 for the first bad filter value or marker.
    pub fn into_filter(self) -> Result<ListFilter, ApiError> {
        match self.deferred {
            Some(error) => Err(error),
            None => Ok(self.filter),
        }
    }
}

/// Parses the query of a list request by `ctx`: 400 at once for a bad request parameter
/// (what Glance's request parser checks), the page to list otherwise — with the first bad
/// filter value or marker kept for [`ListQuery::into_filter`].
pub fn parse(
    config: &Config,
    ctx: &RequestContext,
    pairs: &[(String, String)],
) -> Result<ListQuery, ApiError> {
    let mut limit = config.limit_param_default;
    let mut marker = None;
    // Glance's database layer meets these after `get_images`; the first one is answered.
    let mut deferred: Option<ApiError> = None;
    let mut defer = |error: ApiError| {
        deferred.get_or_insert(error);
    };
    let mut conditions = Vec::new();
    let mut visibility = VisibilityFilter::Default;
    let mut member_status = Some(MemberStatus::Accepted);
    let mut os_hidden = false;
    let (mut sort_keys, mut sort_dirs, mut new_sort) = (Vec::new(), Vec::new(), None);
    // `<field>_min` / `<field>_max`, kept apart so that they follow the other conditions.
    let mut ranges: Vec<Condition> = Vec::new();
    let text = |field, values| Condition::Text { field, values };
    for (key, value) in pairs {
        let (key, value) = (key.as_str(), value.as_str());
        match key {
            "limit" => {
                let given: i64 = value
                    .parse()
                    .map_err(|_| ApiError::bad_request("limit param must be an integer"))?;
                if given < 0 {
                    return Err(ApiError::bad_request("limit param must be positive"));
                }
                limit = (given as u64).min(config.api_limit_max as u64) as usize;
            }
            "marker" => match value.parse() {
                Ok(id) => marker = Some(id),
                Err(_) => defer(ApiError::bad_request(format!(
                    "Invalid marker. Image {value} could not be found."
                ))),
            },
            "sort_key" => sort_keys.push(parse_sort_key(value)?),
            "sort_dir" => sort_dirs.push(parse_sort_dir(value)?),
            "sort" => new_sort = Some(value.to_owned()),
            "changes-since" => {
                return Err(ApiError::bad_request(
                    "The \"changes-since\" filter is no longer available on v2.",
                ))
            }
            "visibility" => {
                visibility = match value {
                    "all" => VisibilityFilter::All,
                    other => VisibilityFilter::Only(other.parse().map_err(|_| {
                        ApiError::bad_request(format!("Invalid visibility value: {value}"))
                    })?),
                }
            }
            "member_status" => {
                member_status = match value {
                    "all" => None,
                    other => Some(other.parse().map_err(|_| {
                        ApiError::bad_request(format!("Invalid status value: {value}"))
                    })?),
                };
            }
            // Glance lower-cases this one (openstacksdk sends `True`), not `protected`.
            "os_hidden" => os_hidden = parse_bool("os_hidden", &value.to_ascii_lowercase())?,
            "protected" => conditions.push(Condition::Protected(parse_bool("protected", value)?)),
            "tag" => conditions.push(Condition::Tag(value.to_owned())),
            "name" | "id" | "status" | "container_format" | "disk_format" => {
                let field = match key {
                    "name" => TextField::Name,
                    "id" => TextField::Id,
                    "status" => TextField::Status,
                    "container_format" => TextField::ContainerFormat,
                    _ => TextField::DiskFormat,
                };
                match parse_one_of(value) {
                    Ok(values) => conditions.push(text(field, values)),
                    Err(e) => defer(e),
                }
            }
            "owner" => conditions.push(text(TextField::Owner, vec![value.to_owned()])),
            "checksum" => conditions.push(text(TextField::Checksum, vec![value.to_owned()])),
            "os_hash_value" => {
                conditions.push(text(TextField::OsHashValue, vec![value.to_owned()]))
            }
            "os_hash_algo" => conditions.push(text(TextField::OsHashAlgo, vec![value.to_owned()])),
            "created_at" | "updated_at" => {
                let field = if key == "created_at" {
                    TimeField::CreatedAt
                } else {
                    TimeField::UpdatedAt
                };
                match parse_time_filter(key, value) {
                    Ok((cmp, at)) => conditions.push(Condition::Time { field, cmp, at }),
                    Err(e) => defer(e),
                }
            }
            "self" | "file" | "schema" => {
                defer(ApiError::bad_request(format!("Invalid filter: {key}")))
            }
            _ => {
                let range = key
                    .strip_suffix("_min")
                    .map(|f| (f, Cmp::Gte))
                    .or_else(|| key.strip_suffix("_max").map(|f| (f, Cmp::Lte)));
                if let Some((field, cmp)) =
                    range.and_then(|(f, cmp)| number_field(f).map(|f| (f, cmp)))
                {
                    match parse_number(value) {
                        Ok(value) => ranges.push(Condition::Number { field, cmp, value }),
                        Err(e) => defer(e),
                    }
                } else if let Some(field) = number_field(key) {
                    match parse_number(value) {
                        Ok(value) => conditions.push(Condition::Number {
                            field,
                            cmp: Cmp::Eq,
                            value,
                        }),
                        Err(e) => defer(e),
                    }
                } else {
                    conditions.push(Condition::Property {
                        key: key.to_owned(),
                        value: value.to_owned(),
                    });
                }
            }
        }
    }
    conditions.extend(ranges);
    conditions.push(Condition::OsHidden(os_hidden));
    conditions.push(Condition::StatusNotIn(NEVER_LISTED.to_vec()));
    let mut sort: Vec<(SortKey, SortDir)> = match new_sort {
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
    let dirs: Vec<SortDir> = sort.iter().map(|(_, d)| *d).collect();
    let tie_dir = match dirs.as_slice() {
        [only] => *only,
        _ if sort_dirs.len() == 1 => sort_dirs[0],
        _ => SortDir::Desc,
    };
    for key in [SortKey::CreatedAt, SortKey::Id] {
        if !sort.iter().any(|(k, _)| *k == key) {
            sort.push((key, tie_dir));
        }
    }
    let filter = ListFilter {
        scope: Scope::Viewer(Viewer {
            project: ctx.project_id.clone(),
            admin: ctx.is_admin_role(),
            visibility,
            member_status,
        }),
        conditions,
        sort,
        marker,
        limit,
    };
    Ok(ListQuery { filter, deferred })
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

    fn parsed(query: &str) -> Result<ListFilter, ApiError> {
        let ctx = crate::test_util::project_ctx("p", &["member", "reader"]);
        parse(&Config::default(), &ctx, &query_pairs(query)).and_then(ListQuery::into_filter)
    }

    #[test]
    fn defaults_are_glance_s_first_page_for_the_caller() {
        let filter = parsed("").unwrap();
        assert_eq!(
            filter.scope,
            Scope::Viewer(Viewer {
                project: Some("p".into()),
                admin: false,
                visibility: VisibilityFilter::Default,
                member_status: Some(MemberStatus::Accepted),
            })
        );
        assert_eq!(
            filter.conditions,
            vec![
                Condition::OsHidden(false),
                Condition::StatusNotIn(NEVER_LISTED.to_vec())
            ]
        );
        assert_eq!(
            filter.sort,
            vec![
                (SortKey::CreatedAt, SortDir::Desc),
                (SortKey::Id, SortDir::Desc)
            ]
        );
        assert_eq!((filter.marker, filter.limit), (None, 25));
    }

    #[test]
    fn each_filter_becomes_a_condition() {
        let filter = parsed(
            "name=in:a,b&size_min=5&size_max=9&min_ram=64&tag=x&os_distro=ubuntu\
             &created_at=gte:1970-01-01T00:00:10Z&protected=false&os_hidden=True\
             &visibility=community&member_status=all&limit=2000&sort=name:asc",
        )
        .unwrap();
        assert_eq!(
            filter.conditions,
            vec![
                Condition::Text {
                    field: TextField::Name,
                    values: vec!["a".into(), "b".into()]
                },
                Condition::Number {
                    field: NumberField::MinRam,
                    cmp: Cmp::Eq,
                    value: 64
                },
                Condition::Tag("x".into()),
                Condition::Property {
                    key: "os_distro".into(),
                    value: "ubuntu".into()
                },
                Condition::Time {
                    field: TimeField::CreatedAt,
                    cmp: Cmp::Gte,
                    at: Timestamp::from_unix_micros(10_000_000)
                },
                Condition::Protected(false),
                Condition::Number {
                    field: NumberField::Size,
                    cmp: Cmp::Gte,
                    value: 5
                },
                Condition::Number {
                    field: NumberField::Size,
                    cmp: Cmp::Lte,
                    value: 9
                },
                Condition::OsHidden(true),
                Condition::StatusNotIn(NEVER_LISTED.to_vec()),
            ]
        );
        let Scope::Viewer(viewer) = filter.scope else {
            panic!("a caller's listing is scoped");
        };
        assert_eq!(
            viewer.visibility,
            VisibilityFilter::Only(meta::Visibility::Community)
        );
        assert_eq!(viewer.member_status, None);
        // Capped at api_limit_max; one direction given, so the tie-breakers follow it.
        assert_eq!(filter.limit, 1000);
        assert_eq!(
            filter.sort,
            vec![
                (SortKey::Name, SortDir::Asc),
                (SortKey::CreatedAt, SortDir::Asc),
                (SortKey::Id, SortDir::Asc)
            ]
        );
    }

    #[test]
    fn bad_parameters_are_400() {
        for query in [
            "limit=x",
            "limit=-1",
            "marker=nope",
            "sort_key=checksum",
            "sort=name:up",
            "sort=name&sort_key=name",
            "visibility=everyone",
            "member_status=maybe",
            "protected=yes",
            "size_min=big",
            "name=foo:bar",
            "created_at=yesterday",
            "changes-since=2020-01-01",
            "self=x",
        ] {
            let err = parsed(query).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{query}");
        }
    }

    #[test]
    fn filter_values_and_the_marker_are_refused_after_the_request_parameters() {
        let ctx = crate::test_util::project_ctx("p", &["member", "reader"]);
        let parse = |query: &str| parse(&Config::default(), &ctx, &query_pairs(query));
        // Glance's request parser: refused before the policy is asked.
        for query in [
            "limit=x",
            "sort_key=checksum",
            "sort=name:up",
            "visibility=everyone",
            "member_status=maybe",
            "os_hidden=maybe",
            "protected=yes",
            "changes-since=2020-01-01",
            // Even after a bad filter value.
            "size_min=big&limit=x",
        ] {
            let err = parse(query).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{query}");
        }
        // Its database layer: parsed, and refused only when the filter is asked for.
        for (query, explanation) in [
            (
                "marker=nope",
                "Invalid marker. Image nope could not be found.",
            ),
            (
                "size_min=big",
                "Unable to filter on a range with a non-numeric value.",
            ),
            (
                "min_ram=x",
                "Unable to filter on a range with a non-numeric value.",
            ),
            (
                "name=foo:bar",
                "Unable to filter by unknown operator 'foo'.",
            ),
            (
                "created_at=yesterday",
                "Bad \"created_at\" query filter format. Use ISO 8601 DateTime notation.",
            ),
            ("self=x", "Invalid filter: self"),
            // The first one is answered.
            ("file=x&marker=nope", "Invalid filter: file"),
        ] {
            let err = parse(query).expect(query).into_filter().unwrap_err();
            assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(err.explanation(), explanation, "{query}");
        }
    }

    #[test]
    fn query_decoding() {
        let pairs = query_pairs("name=a%20b&tag=x&tag=y&sort=name:asc");
        assert_eq!(pairs[0], ("name".into(), "a b".into()));
        assert_eq!(pairs.len(), 4);
    }
}
