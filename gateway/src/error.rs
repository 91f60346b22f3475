//! `ApiError`: the one place that knows HTTP status codes and Glance's error bodies.
//!
//! Handlers return `Result<_, ApiError>`; `From` conversions map the library crates' errors
//! (`meta::Error`, I/O) once. The body follows webob, which Glance uses: its shape depends on the
//! request's `Accept` header (spec §2.4) — plain text without one, HTML for `*/*` (what
//! python-glanceclient sends), JSON for an explicit `application/json` (openstacksdk). Internal
//! causes are logged with the request id and never sent to the client.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};

use crate::body::Body;

/// An error response: status, the human-readable explanation, and any extra headers
/// (`Allow`, `Accept-Patch`).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    explanation: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with `status` and `explanation`.
    pub fn new(status: StatusCode, explanation: impl Into<String>) -> ApiError {
        ApiError {
            status,
            explanation: explanation.into(),
            headers: Vec::new(),
        }
    }

    /// 400.
    pub fn bad_request(explanation: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, explanation)
    }

    /// 403.
    pub fn forbidden(explanation: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, explanation)
    }

    /// 404.
    pub fn not_found(explanation: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, explanation)
    }

    /// 404 for an image that does not exist or that the caller may not see.
    pub fn image_not_found(id: impl std::fmt::Display) -> ApiError {
        ApiError::not_found(format!("No image found with ID {id}"))
    }

    /// 409.
    pub fn conflict(explanation: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, explanation)
    }

    /// 413.
    pub fn too_large(explanation: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, explanation)
    }

    /// 415.
    pub fn unsupported_media_type(explanation: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, explanation)
    }

    /// 500. The cause is logged here and replaced by a generic explanation.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(%cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server has either erred or is incapable of performing the requested operation.",
        )
    }

    /// 405 with the `Allow` header listing `allowed`.
    pub fn method_not_allowed(allowed: &[&str]) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method specified is not allowed for this resource.",
        )
        .with_header(http::header::ALLOW, &allowed.join(", "))
    }

    /// Logs an internal cause beside this error (never sent to the client).
    pub fn log_cause(self, cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(%cause, status = self.status.as_u16(), "request failed");
        self
    }

    /// Adds a header to the error response.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> ApiError {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The explanation sent to the client.
    pub fn explanation(&self) -> &str {
        &self.explanation
    }

    /// Renders the Glance error body chosen by the request's `Accept` header.
    pub fn into_response(self, request_headers: &HeaderMap) -> Response<Body> {
        let code = self.status.as_u16();
        let title = webob_title(self.status);
        let status_line = format!("{code} {title}");
        let (content_type, body) = match preferred_error_type(request_headers) {
            ErrorType::Json => {
                let message = format!("{}<br /><br />\n\n\n", self.explanation);
                let body = serde_json::json!({
                    "message": message, "code": status_line, "title": title,
                });
                ("application/json", body.to_string())
            }
            ErrorType::Html => (
                "text/html; charset=UTF-8",
                format!(
                    "<html>\n <head>\n  <title>{status_line}</title>\n </head>\n <body>\n  \
                     <h1>{status_line}</h1>\n  {}<br /><br />\n\n\n\n </body>\n</html>",
                    html_escape(&self.explanation)
                ),
            ),
            ErrorType::Plain => (
                "text/plain; charset=UTF-8",
                format!("{status_line}\n\n{}\n\n   ", self.explanation),
            ),
        };
        let mut response = Response::new(Body::full(Bytes::from(body)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.explanation)
    }
}

impl From<meta::Error> for ApiError {
    fn from(err: meta::Error) -> ApiError {
        use meta::Error as E;
        match err {
            E::NotFound(id) => ApiError::image_not_found(id),
            E::Duplicate(id) => {
                ApiError::conflict(format!("Image with identifier {id} already exists!"))
            }
            E::InvalidTransition { from, to } => ApiError::conflict(format!(
                "Image status transition from {from} to {to} is not allowed"
            )),
            E::FormatsNotSet(_) => ApiError::bad_request(
                "Properties disk_format, container_format must be set prior to saving data.",
            ),
            E::Protected(id) => {
                ApiError::forbidden(format!("Image {id} is protected and cannot be deleted."))
            }
            E::MarkerNotFound(id) => {
                ApiError::bad_request(format!("Invalid marker. Image {id} could not be found."))
            }
            E::FormatsLocked { .. } => ApiError::forbidden(
                "Attribute disk_format can be only replaced for a queued image.",
            ),
            E::ReadOnlyField { field, .. } => {
                ApiError::forbidden(format!("Attribute '{field}' is read-only."))
            }
            E::DataMismatch { field, .. } => ApiError::conflict(format!(
                "The uploaded data does not match the image's recorded {field}."
            )),
            quota @ E::QuotaExceeded { .. } => ApiError::too_large(format!(
                "The request returned a 413 Request Entity Too Large. This generally means that \
                 rate limiting or a quota threshold was breached.\n\nThe response body:\n{quota}"
            )),
            // The members handlers put these in Glance's per-operation words; this is the
            // default.
            E::NotShared(_) => ApiError::forbidden("Only shared images have members."),
            E::DuplicateMember { image, member } => {
                ApiError::conflict(format!("Member {member} is duplicated for image {image}"))
            }
            E::MemberNotFound { image, member } => ApiError::not_found(format!(
                "{member} not found in the member list of the image {image}."
            )),
            E::TooManyMembers {
                image,
                attempted,
                maximum,
            } => ApiError::too_large(format!(
                "Image member limit exceeded for image {image}: The limit has been exceeded on \
                 the number of allowed image members for this image. Attempted: {attempted}, \
                 Maximum: {maximum}:"
            )),
            unavailable @ E::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The image metadata database is unavailable; try again shortly.",
            )
            .with_header(http::header::RETRY_AFTER, "1")
            .log_cause(unavailable),
            E::Metadef(err) => metadef_error(err),
            E::TaskNotFound(id) => {
                ApiError::not_found(format!("Task with identifier {id} not found"))
            }
            E::ImportInProgress(id) | E::ImportLockLost(id) => ApiError::conflict(format!(
                "New operation on image '{id}' is not permitted as prior operation is still in \
                 progress"
            )),
            other => ApiError::internal(other),
        }
    }
}

/// A metadef refusal: its status, and meta's message (Glance's words).
fn metadef_error(err: meta::metadefs::MetadefError) -> ApiError {
    use meta::metadefs::MetadefError as M;
    let status = match &err {
        M::NamespaceNotFound(_)
        | M::ObjectNotFound { .. }
        | M::PropertyNotFound { .. }
        | M::TagNotFound { .. }
        | M::AssociationNotFound { .. } => StatusCode::NOT_FOUND,
        M::DuplicateNamespace(_)
        | M::DuplicateObject { .. }
        | M::DuplicateProperty { .. }
        | M::DuplicateTag { .. }
        | M::DuplicateAssociation { .. } => StatusCode::CONFLICT,
        M::Protected { .. } => StatusCode::FORBIDDEN,
        M::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, err.to_string())
}

impl From<std::io::Error> for ApiError {
    fn from(err: std::io::Error) -> ApiError {
        ApiError::internal(err)
    }
}

/// The status titles webob (and so Glance) uses; a few differ from today's RFC wording.
fn webob_title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        416 => "Request Range Not Satisfiable",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

enum ErrorType {
    Plain,
    Html,
    Json,
}

/// webob's choice: JSON only when asked for explicitly (and `*/*` is not also offered),
/// HTML for `*/*` or `text/html`, plain text otherwise (including no `Accept` at all).
fn preferred_error_type(headers: &HeaderMap) -> ErrorType {
    let accept = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let types: Vec<&str> = accept
        .split(',')
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .filter(|t| !t.is_empty())
        .collect();
    let has = |t: &str| types.iter().any(|x| x.eq_ignore_ascii_case(t));
    if has("*/*") || has("text/html") || has("text/*") {
        ErrorType::Html
    } else if has("application/json") || has("application/*") {
        ErrorType::Json
    } else {
        ErrorType::Plain
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::block_on;
    use http_body_util::BodyExt;

    fn render(accept: Option<&str>) -> (String, String) {
        let mut headers = HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(http::header::ACCEPT, HeaderValue::from_str(a).unwrap());
        }
        let response = ApiError::image_not_found("x").into_response(&headers);
        let ct = response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = block_on(response.into_body().collect()).unwrap().to_bytes();
        (ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn plain_without_accept() {
        let (ct, body) = render(None);
        assert!(ct.starts_with("text/plain"));
        assert_eq!(body, "404 Not Found\n\nNo image found with ID x\n\n   ");
    }

    #[test]
    fn html_for_star() {
        let (ct, body) = render(Some("*/*"));
        assert!(ct.starts_with("text/html"));
        assert!(body.contains("<h1>404 Not Found</h1>"));
        assert!(body.contains("No image found with ID x<br /><br />"));
    }

    #[test]
    fn json_when_explicit() {
        let (ct, body) = render(Some("application/json"));
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "404 Not Found");
        assert_eq!(v["title"], "Not Found");
        assert_eq!(v["message"], "No image found with ID x<br /><br />\n\n\n");
    }

    #[test]
    fn star_wins_over_json() {
        assert!(render(Some("application/json, */*"))
            .0
            .starts_with("text/html"));
    }
}
