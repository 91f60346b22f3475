//! Tasks (spec §4.9, §4.15): an image's tasks (`GET /v2/images/{id}/tasks`, 2.12, the raw
//! records), the legacy `/v2/tasks` API (admin only by default: `tasks_api_access`), and the
//! task schemas. `POST /v2/tasks` creates the legacy `import` task (`tasks::legacy` runs it);
//! the other types are created by the image import API only.

use http::{Response, StatusCode};
use meta::tasks::{Task, TaskFilter, TaskId, TaskSortKey, TaskStatus, TaskType};
use meta::{Image, Timestamp};
use serde_json::{json, Map, Value};

use super::images::load_authorized;
use super::{json_response, parse_image_id};
use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::policy::{self, Rule, Target};
use crate::tasks::LegacyJob;

/// Glance's task timestamp form in the database rows of 2.12: `YYYY-MM-DDTHH:MM:SS.ffffff`.
fn db_time(t: Timestamp) -> String {
    let fraction = t.as_unix_micros().rem_euclid(1_000_000);
    format!("{}.{fraction:06}", super::images::date_time(t))
}

fn json_text(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// A task as `GET /v2/images/{id}/tasks` shows it: the database row.
fn row(task: &Task) -> Value {
    json!({
        "id": task.id.to_string(),
        "type": task.kind.as_str(),
        "status": task.status.as_str(),
        "owner": task.owner,
        "expires_at": task.expires_at.map(db_time),
        "created_at": db_time(task.created_at),
        "updated_at": db_time(task.updated_at),
        "deleted_at": Value::Null,
        "deleted": false,
        "image_id": task.image_id.map(|i| i.to_string()),
        "request_id": task.request_id,
        "user_id": task.user_id,
        "input": json_text(Some(&task.input)),
        "result": json_text(task.result.as_deref()),
        "message": task.message,
    })
}

/// A task as `/v2/tasks/{id}` shows it (`stub`: as the list shows it, without input, result
/// and message).
fn view(task: &Task, stub: bool) -> Value {
    let mut view = Map::new();
    view.insert("id".into(), task.id.to_string().into());
    view.insert("type".into(), task.kind.as_str().into());
    view.insert("status".into(), task.status.as_str().into());
    view.insert(
        "owner".into(),
        task.owner.clone().unwrap_or_default().into(),
    );
    let iso = super::images::format_timestamp;
    view.insert("created_at".into(), iso(task.created_at).into());
    view.insert("updated_at".into(), iso(task.updated_at).into());
    view.insert("self".into(), format!("/v2/tasks/{}", task.id).into());
    view.insert("schema".into(), "/v2/schemas/task".into());
    if let Some(at) = task.expires_at {
        view.insert("expires_at".into(), iso(at).into());
    }
    if !stub {
        view.insert("input".into(), json_text(Some(&task.input)));
        view.insert("result".into(), json_text(task.result.as_deref()));
        view.insert("message".into(), task.message.clone().into());
        if let Some(image) = task.image_id {
            view.insert("image_id".into(), image.to_string().into());
        }
        if let Some(request) = &task.request_id {
            view.insert("request_id".into(), request.clone().into());
        }
        if let Some(user) = &task.user_id {
            view.insert("user_id".into(), user.clone().into());
        }
    }
    Value::Object(view)
}

/// `GET /v2/images/{id}/tasks`: 404 when the image is not there or not visible.
pub async fn image_tasks(
    app: &App,
    ctx: &RequestContext,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let id = parse_image_id(id)?;
    load_authorized(app, ctx, id, Rule::GetImage)
        .await
        .map_err(|e| match e.status() {
            StatusCode::FORBIDDEN => ApiError::image_not_found(id),
            _ => e,
        })?;
    let now = Timestamp::now();
    let tasks: Vec<Value> = app
        .catalog
        .image_tasks(id)
        .await?
        .iter()
        .filter(|t| t.expires_at.is_none_or(|at| at >= now))
        .map(row)
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "tasks": tasks })))
}

/// `tasks_api_access` (admin by default), checked first on every `/v2/tasks` route.
fn enforce_access(ctx: &RequestContext) -> Result<(), ApiError> {
    let anything = Target {
        owner: ctx.project_id.as_deref(),
        visibility: meta::Visibility::Private,
        membership: None,
        member_id: None,
    };
    policy::enforce_global(ctx, Rule::TasksApiAccess, &anything)
}

/// The id of a task as a path parameter: anything else is a task that does not exist.
fn parse_task_id(id: &str) -> Result<TaskId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("Task with identifier {id} not found")))
}

/// `GET /v2/tasks/{id}`.
pub async fn show(app: &App, ctx: &RequestContext, id: &str) -> Result<Response<Body>, ApiError> {
    enforce_access(ctx)?;
    let id = parse_task_id(id)?;
    let task = app.catalog.get_task(id).await?;
    Ok(json_response(StatusCode::OK, &view(&task, false)))
}

/// `DELETE /v2/tasks/{id}`: never allowed (tasks expire).
pub fn delete(ctx: &RequestContext) -> Result<Response<Body>, ApiError> {
    enforce_access(ctx)?;
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "This operation is currently not permitted on Glance Tasks. They are auto deleted \
         after reaching the time based on their expires_at property.",
    )
    .with_header(http::header::ALLOW, "GET"))
}

fn task_schema_error(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Provided object does not match schema 'task': {detail}"
    ))
}

/// A JSON value as Python prints it in Glance's messages (`None` for null).
fn python_repr(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "None".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Glance's `validate_legacy_import_from_uri`: http(s) only (file URIs refused by name), then
/// `[import_filtering_opts]`. Returns the URI.
fn check_import_from(app: &App, value: Option<&Value>) -> Result<String, ApiError> {
    let uri = match value {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid location: {}",
                python_repr(other)
            )))
        }
    };
    if uri.starts_with("file:///") || uri.starts_with("filesystem:///") {
        return Err(ApiError::bad_request(
            "File based imports are not allowed. Please use a non-local source of image data.",
        ));
    }
    if !(uri.starts_with("http://") || uri.starts_with("https://")) {
        return Err(ApiError::bad_request(
            "The given uri is not valid. Please specify a valid uri from the following list of \
             supported uri ['http']",
        ));
    }
    if !super::import::passes_filtering(app, &uri)? {
        return Err(ApiError::bad_request(format!(
            "URI for legacy import task does not pass filtering: {}",
            super::import::redact(&uri)
        )));
    }
    Ok(uri)
}

/// The image a legacy import task creates, from its input — or why it cannot (Glance finds
/// out when the task runs: the task fails with it).
fn task_image(
    app: &App,
    ctx: &RequestContext,
    input: &Map<String, Value>,
) -> Result<Image, String> {
    for key in ["import_from", "import_from_format", "image_properties"] {
        if !input.contains_key(key) {
            return Err(format!("Input does not contain '{key}' field"));
        }
    }
    let Some(properties) = input["image_properties"].as_object() else {
        return Err("Input field 'image_properties' must be an object of image attributes.".into());
    };
    super::images::new_image(app, ctx, properties).map_err(|e| e.explanation().to_owned())
}

/// `POST /v2/tasks`: the legacy `import` task (`tasks_api_access`). 201 with the task
/// `pending`; it runs on the import thread (`tasks::legacy`).
pub async fn create(
    app: &App,
    ctx: &RequestContext,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    enforce_access(ctx)?;
    let body = super::images::parse_json_body(body)?;
    let Value::Object(body) = body else {
        return Err(task_schema_error(format!("{body} is not of type 'object'")));
    };
    for param in ["type", "input"] {
        if !body.contains_key(param) {
            return Err(ApiError::bad_request(format!("Task '{param}' is required")));
        }
    }
    let kind = match &body["type"] {
        Value::String(kind) => kind.as_str(),
        other => {
            return Err(task_schema_error(format!(
                "{other} is not of type 'string'"
            )))
        }
    };
    let kind = match kind.parse::<TaskType>() {
        Ok(kind) => kind,
        Err(_) => {
            return Err(task_schema_error(format!(
                "'{kind}' is not one of ['import', 'api_image_import', 'location_import']"
            )))
        }
    };
    let input = match &body["input"] {
        Value::Object(input) => input.clone(),
        Value::Null => Map::new(),
        other => {
            return Err(task_schema_error(format!(
                "{other} is not of type 'null', 'object'"
            )))
        }
    };
    if kind != TaskType::Import {
        // Glance would run the raw input of its internal tasks; glint starts those only
        // through the image import API.
        return Err(ApiError::bad_request(format!(
            "Tasks of type '{}' are created by the image import API (POST \
             /v2/images/{{image_id}}/import), not by POST /v2/tasks.",
            kind.as_str()
        )));
    }
    let uri = check_import_from(app, input.get("import_from"))?;
    // Before the image is made: its `created_at` is not before the task's (see
    // `tasks::legacy::abandon`).
    let now = Timestamp::now();
    let image = task_image(app, ctx, &input);
    // The image the task will create is known now, so that a gateway finding the task
    // abandoned can remove it.
    let image_id = image.as_ref().ok().map(|i| i.id);
    let input = Value::Object(input).to_string();
    let task = crate::tasks::new_task(&app.catalog, &app.config, ctx, kind, image_id, input, now);
    app.catalog.create_task(task.clone()).await?;
    app.imports.submit_legacy(LegacyJob {
        task: task.id,
        uri,
        image,
    });
    tracing::info!(task = %task.id, "legacy import task accepted");
    let mut response = json_response(StatusCode::CREATED, &view(&task, false));
    if let Ok(location) = http::HeaderValue::from_str(&format!("/v2/tasks/{}", task.id)) {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /v2/tasks`: `limit`, `marker`, `sort_key` (`created_at`, `updated_at`), `sort_dir`,
/// `status` and `type` filters.
pub async fn list(
    app: &App,
    ctx: &RequestContext,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    enforce_access(ctx)?;
    let mut filter = TaskFilter {
        owner: None,
        limit: app.config.limit_param_default,
        ascending: false,
        ..TaskFilter::default()
    };
    let mut kept = Vec::new();
    for (key, value) in form_urlencoded(query) {
        match key.as_str() {
            "limit" => {
                let limit: i64 = value
                    .parse()
                    .map_err(|_| ApiError::bad_request("limit param must be an integer"))?;
                let limit = usize::try_from(limit)
                    .map_err(|_| ApiError::bad_request("limit param must be positive"))?;
                filter.limit = limit.min(app.config.api_limit_max);
            }
            "marker" => {
                filter.marker = Some(
                    value
                        .parse()
                        .map_err(|_| ApiError::bad_request("Invalid marker format"))?,
                )
            }
            "sort_key" => {
                filter.sort_key = value
                    .parse::<TaskSortKey>()
                    .map_err(|_| ApiError::bad_request(format!("Invalid sort key: {value}")))?
            }
            "sort_dir" => match value.as_str() {
                "asc" => filter.ascending = true,
                "desc" => filter.ascending = false,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid sort direction: {other}"
                    )))
                }
            },
            "status" => {
                filter.status =
                    Some(value.parse::<TaskStatus>().map_err(|_| {
                        ApiError::bad_request(format!("Invalid status value: {value}"))
                    })?)
            }
            // Glance accepts only the legacy type here.
            "type" if value == "import" => filter.kind = Some(TaskType::Import),
            "type" => {
                return Err(ApiError::bad_request(format!(
                    "Invalid type value: {value}"
                )))
            }
            _ => {}
        }
        if key != "marker" {
            kept.push(format!("{key}={value}"));
        }
    }
    // Non-admins (when the policy lets them in) see their project's tasks.
    if !ctx.is_admin_role() {
        filter.owner = ctx.project_id.clone();
    }
    let limit = filter.limit;
    let tasks = app.catalog.list_tasks(filter).await.map_err(|e| match e {
        meta::Error::TaskNotFound(id) => {
            ApiError::bad_request(format!("Invalid marker. Task {id} could not be found."))
        }
        e => e.into(),
    })?;
    let query = kept.join("&");
    let first = if query.is_empty() {
        "/v2/tasks".to_owned()
    } else {
        format!("/v2/tasks?{query}")
    };
    let mut body = json!({
        "tasks": tasks.iter().map(|t| view(t, true)).collect::<Vec<_>>(),
        "first": first,
        "schema": "/v2/schemas/tasks",
    });
    if limit > 0 && tasks.len() == limit {
        if let Some(last) = tasks.last() {
            let next = if query.is_empty() {
                format!("/v2/tasks?marker={}", last.id)
            } else {
                format!("/v2/tasks?{query}&marker={}", last.id)
            };
            body["next"] = next.into();
        }
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// `key=value` pairs of a query string, percent-decoded.
fn form_urlencoded(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The properties of Glance's task schema.
fn task_properties(stub: bool) -> Value {
    let mut properties = json!({
        "id": {"description": "An identifier for the task",
               "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$",
               "type": "string"},
        "type": {"description": "The type of task represented by this content",
                 "enum": ["import", "api_image_import", "location_import"], "type": "string"},
        "status": {"description": "The current status of this task",
                   "enum": ["pending", "processing", "success", "failure"], "type": "string"},
        "input": {"description": "The parameters required by task, JSON blob",
                  "type": ["null", "object"]},
        "result": {"description": "The result of current task, JSON blob",
                   "type": ["null", "object"]},
        "owner": {"description": "An identifier for the owner of this task", "type": "string"},
        "message": {"description": "Human-readable informative message only included when appropriate (usually on failure)",
                    "type": "string"},
        "image_id": {"description": "Image associated with the task", "type": "string"},
        "request_id": {"description": "Human-readable informative request-id", "type": "string"},
        "user_id": {"description": "User associated with the task", "type": "string"},
        "expires_at": {"description": "Datetime when this resource would be subject to removal",
                       "type": ["null", "string"]},
        "created_at": {"description": "Datetime when this resource was created", "type": "string"},
        "updated_at": {"description": "Datetime when this resource was updated", "type": "string"},
        "self": {"readOnly": true, "type": "string"},
        "schema": {"readOnly": true, "type": "string"},
    });
    if stub {
        if let Some(map) = properties.as_object_mut() {
            for key in ["input", "result", "message"] {
                map.remove(key);
            }
        }
    }
    properties
}

/// `GET /v2/schemas/task`.
pub fn schema() -> Value {
    json!({ "name": "task", "properties": task_properties(false) })
}

/// `GET /v2/schemas/tasks`.
pub fn collection_schema() -> Value {
    json!({
        "name": "tasks",
        "properties": {
            "tasks": {"type": "array", "items": {"name": "task", "properties": task_properties(true)}},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_rows_show_microseconds() {
        assert_eq!(
            db_time(Timestamp::from_unix_micros(1_700_000_000_123_456)),
            "2023-11-14T22:13:20.123456"
        );
    }

    #[test]
    fn decodes_query_values() {
        assert_eq!(
            form_urlencoded("status=pending&type=api_image_import&x=a%20b"),
            vec![
                ("status".to_owned(), "pending".to_owned()),
                ("type".to_owned(), "api_image_import".to_owned()),
                ("x".to_owned(), "a b".to_owned()),
            ]
        );
    }
}
