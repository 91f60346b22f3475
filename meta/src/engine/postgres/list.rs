//! Listing in the PostgreSQL engine: a [`ListFilter`] as one statement,
//!
//! ```text
//! SELECT … FROM images
//! WHERE status <> 'deleted' AND <scope> AND <conditions> AND <keyset after the marker>
//! ORDER BY <full order> LIMIT $n
//! ```
//!
//! translated clause by clause from the reference semantics ([`ListFilter::admits`],
//! [`crate::sort`]): unset values sort as `''` or 0 (`COALESCE`), text compares bytewise (the
//! columns' `"C"` collation), times compare truncated to the second. The keyset condition
//! compares the sort values with the marker's (read first, in the same session): a row
//! comparison `(k1, k2, …) < (m1, m2, …)` when every key goes one way — which the sort indexes
//! (`schema.rs`) answer with one range scan — or the expanded `k1 < m1 OR (k1 = m1 AND …)`
//! when directions are mixed.

use postgres::types::ToSql;
use uuid::Uuid;

use super::pool::{Run, Session};
use super::row::image_from_row;
use crate::error::{Error, Result};
use crate::filter::{
    Cmp, Condition, ListFilter, NumberField, Scope, TextField, TimeField, VisibilityFilter,
};
use crate::sort::{SortDir, SortKey};
use crate::types::{Image, ImageId, Visibility};

/// A statement parameter.
enum Param {
    Text(String),
    Texts(Vec<String>),
    Int(i64),
    Bool(bool),
    Uuid(Uuid),
    Uuids(Vec<Uuid>),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(v) => v,
            Param::Texts(v) => v,
            Param::Int(v) => v,
            Param::Bool(v) => v,
            Param::Uuid(v) => v,
            Param::Uuids(v) => v,
        }
    }
}

/// The statement being built.
#[derive(Default)]
struct Sql {
    params: Vec<Param>,
}

impl Sql {
    /// A placeholder for `param`.
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }
}

/// The expression a sort key orders by.
fn sort_expr(key: SortKey) -> &'static str {
    match key {
        SortKey::Name => "COALESCE(name, '')",
        SortKey::Status => "status",
        SortKey::ContainerFormat => "COALESCE(container_format, '')",
        SortKey::DiskFormat => "COALESCE(disk_format, '')",
        SortKey::Size => "COALESCE(size, 0)",
        SortKey::Id => "id",
        SortKey::CreatedAt => "created_at",
        SortKey::UpdatedAt => "updated_at",
    }
}

/// The marker's value of `key` from column `index` of its row.
fn marker_value(row: &postgres::Row, index: usize, key: SortKey) -> Param {
    match key {
        SortKey::Name | SortKey::Status | SortKey::ContainerFormat | SortKey::DiskFormat => {
            Param::Text(row.get(index))
        }
        SortKey::Size | SortKey::CreatedAt | SortKey::UpdatedAt => Param::Int(row.get(index)),
        SortKey::Id => Param::Uuid(row.get(index)),
    }
}

fn cmp_op(cmp: Cmp) -> &'static str {
    match cmp {
        Cmp::Eq => "=",
        Cmp::Neq => "<>",
        Cmp::Lt => "<",
        Cmp::Lte => "<=",
        Cmp::Gt => ">",
        Cmp::Gte => ">=",
    }
}

fn text_column(field: TextField) -> &'static str {
    match field {
        TextField::Id => "id",
        TextField::Name => "name",
        TextField::Status => "status",
        TextField::ContainerFormat => "container_format",
        TextField::DiskFormat => "disk_format",
        TextField::Owner => "owner",
        TextField::Checksum => "checksum",
        TextField::OsHashAlgo => "os_hash_algo",
        TextField::OsHashValue => "os_hash_value",
    }
}

fn condition(sql: &mut Sql, condition: &Condition) -> String {
    match condition {
        Condition::Text { field, values } if values.is_empty() => {
            let _ = field;
            "FALSE".to_owned()
        }
        Condition::Text {
            field: TextField::Id,
            values,
        } => {
            // An id is listed as its lowercase hyphenated text: only values in that exact form
            // can match.
            let ids: Vec<Uuid> = values
                .iter()
                .filter_map(|v| v.parse::<ImageId>().ok().filter(|id| id.to_string() == *v))
                .map(|id| id.as_uuid())
                .collect();
            format!("id = ANY({})", sql.bind(Param::Uuids(ids)))
        }
        Condition::Text { field, values } => format!(
            "{} = ANY({})",
            text_column(*field),
            sql.bind(Param::Texts(values.clone()))
        ),
        Condition::Number { field, cmp, value } => {
            let column = match field {
                NumberField::Size => "size",
                NumberField::VirtualSize => "virtual_size",
                NumberField::MinRam => "min_ram",
                NumberField::MinDisk => "min_disk",
            };
            match i64::try_from(*value) {
                Ok(value) => format!("{column} {} {}", cmp_op(*cmp), sql.bind(Param::Int(value))),
                // Above every stored value: only "less" and "different" hold, for a set value.
                Err(_) => match cmp {
                    Cmp::Lt | Cmp::Lte | Cmp::Neq => format!("{column} IS NOT NULL"),
                    Cmp::Eq | Cmp::Gt | Cmp::Gte => "FALSE".to_owned(),
                },
            }
        }
        Condition::Time { field, cmp, at } => {
            let column = match field {
                TimeField::CreatedAt => "created_at",
                TimeField::UpdatedAt => "updated_at",
            };
            format!(
                "({column} / 1000000) * 1000000 {} {}",
                cmp_op(*cmp),
                sql.bind(Param::Int(at.as_unix_micros()))
            )
        }
        Condition::Tag(tag) => format!("{} = ANY(tags)", sql.bind(Param::Text(tag.clone()))),
        Condition::Property { key, value } => format!(
            "properties ->> {}::text = {}",
            sql.bind(Param::Text(key.clone())),
            sql.bind(Param::Text(value.clone()))
        ),
        Condition::Protected(flag) => format!("protected = {}", sql.bind(Param::Bool(*flag))),
        Condition::OsHidden(flag) => format!("os_hidden = {}", sql.bind(Param::Bool(*flag))),
        Condition::StatusNotIn(statuses) => {
            let names = statuses.iter().map(|s| s.as_str().to_owned()).collect();
            format!("NOT (status = ANY({}))", sql.bind(Param::Texts(names)))
        }
    }
}

/// The scope as SQL (see `Viewer` in `filter.rs`).
fn scope(sql: &mut Sql, scope: &Scope) -> String {
    let Scope::Viewer(viewer) = scope else {
        return "TRUE".to_owned();
    };
    let (own, member) = match &viewer.project {
        Some(project) => {
            let project = sql.bind(Param::Text(project.clone()));
            let status = match viewer.member_status {
                Some(status) => format!(
                    " AND m.status = {}",
                    sql.bind(Param::Text(status.as_str().to_owned()))
                ),
                None => String::new(),
            };
            (
                format!("owner = {project}"),
                format!(
                    "EXISTS (SELECT 1 FROM image_members m \
                     WHERE m.image_id = images.id AND m.member = {project}{status})"
                ),
            )
        }
        None => ("FALSE".to_owned(), "FALSE".to_owned()),
    };
    let admin = if viewer.admin { "TRUE" } else { "FALSE" };
    let community_asked = if viewer.visibility == VisibilityFilter::Default {
        "FALSE"
    } else {
        "TRUE"
    };
    let only = match viewer.visibility {
        VisibilityFilter::Only(v) => format!(
            "visibility = {} AND ",
            sql.bind(Param::Text(v.as_str().to_owned()))
        ),
        _ => String::new(),
    };
    let (public, community, private, shared) = (
        Visibility::Public.as_str(),
        Visibility::Community.as_str(),
        Visibility::Private.as_str(),
        Visibility::Shared.as_str(),
    );
    format!(
        "{only}(visibility = '{public}' \
         OR (visibility = '{community}' AND ({own} OR {community_asked})) \
         OR (visibility = '{private}' AND ({own} OR {admin})) \
         OR (visibility = '{shared}' AND ({own} OR {admin} OR {member})))"
    )
}

/// The keyset condition: strictly after the marker's `values` in `order`.
fn after(sql: &mut Sql, order: &[(SortKey, SortDir)], values: Vec<Param>) -> String {
    let placeholders: Vec<String> = values.into_iter().map(|v| sql.bind(v)).collect();
    let op = |dir: SortDir| match dir {
        SortDir::Asc => ">",
        SortDir::Desc => "<",
    };
    let uniform = order.iter().all(|(_, dir)| *dir == order[0].1);
    if uniform {
        let keys: Vec<&str> = order.iter().map(|(key, _)| sort_expr(*key)).collect();
        return format!(
            "({}) {} ({})",
            keys.join(", "),
            op(order[0].1),
            placeholders.join(", ")
        );
    }
    let mut alternatives = Vec::with_capacity(order.len());
    for (i, (key, dir)) in order.iter().enumerate() {
        let mut terms: Vec<String> = order[..i]
            .iter()
            .zip(&placeholders)
            .map(|((k, _), p)| format!("{} = {p}", sort_expr(*k)))
            .collect();
        terms.push(format!(
            "{} {} {}",
            sort_expr(*key),
            op(*dir),
            placeholders[i]
        ));
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    format!("({})", alternatives.join(" OR "))
}

pub(super) fn list(session: &mut Session, filter: &ListFilter) -> Result<Vec<Image>> {
    let order = filter.order();
    let mut sql = Sql::default();
    let mut clauses = vec!["status <> 'deleted'".to_owned()];
    if let Some(marker) = filter.marker {
        let exprs: Vec<&str> = order.iter().map(|(key, _)| sort_expr(*key)).collect();
        let lookup = format!(
            "SELECT {} FROM images WHERE id = $1 AND status <> 'deleted'",
            exprs.join(", ")
        );
        let row = session
            .row(&lookup, &[&marker.as_uuid()])?
            .ok_or(Error::MarkerNotFound(marker))?;
        let values = order
            .iter()
            .enumerate()
            .map(|(i, (key, _))| marker_value(&row, i, *key))
            .collect();
        clauses.push(after(&mut sql, &order, values));
    }
    clauses.push(scope(&mut sql, &filter.scope));
    for c in &filter.conditions {
        clauses.push(condition(&mut sql, c));
    }
    let order_by: Vec<String> = order
        .iter()
        .map(|(key, dir)| format!("{} {}", sort_expr(*key), dir.as_str().to_uppercase()))
        .collect();
    let mut text = format!(
        concat!(
            "SELECT ",
            image_columns!(),
            " FROM images WHERE {} ORDER BY {}"
        ),
        clauses.join(" AND "),
        order_by.join(", ")
    );
    if let Ok(limit) = i64::try_from(filter.limit) {
        let limit = sql.bind(Param::Int(limit));
        text.push_str(&format!(" LIMIT {limit}"));
    }
    let params: Vec<&(dyn ToSql + Sync)> = sql.params.iter().map(Param::as_sql).collect();
    let rows = session.rows(&text, &params)?;
    rows.iter().map(image_from_row).collect()
}
