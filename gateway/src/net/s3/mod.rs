//! The S3 protocol on top of [`crate::net::client`], for the S3 store: objects (put, ranged
//! get, head, delete), multipart uploads (create, upload part, complete, abort, list), buckets
//! (create, head) and a credentials check.
//!
//! Requests are signed with AWS Signature Version 4 by AWS's own signer (`aws-sigv4`), the
//! signature in the `Authorization` header (never in a URL, so no signed URL can reach a log).
//! Bodies of unknown content are sent with `x-amz-content-sha256: UNSIGNED-PAYLOAD`, so an
//! upload streams without being hashed first; small bodies (the complete-upload document) are
//! signed with their hash. S3 needs a `Content-Length` on PUT and UploadPart: a stream of
//! unknown length must go up part by part (at most 10,000 parts, each at least 5 MiB except
//! the last), and a failed multipart upload must be aborted or its parts stay in the bucket.
//!
//! Path-style (`http://host/bucket/key`) and virtual-host (`http://bucket.host/key`)
//! addressing are both supported. The secret key is a [`SecretKey`], which no `Debug`,
//! `Display` or error shows.
//!
//! Errors ([`S3Error`]) carry S3's error code and message; wrong credentials
//! (`InvalidAccessKeyId`, `SignatureDoesNotMatch`) are their own variant, so a store can name
//! them at start-up ([`S3Client::check_credentials`]).

mod xml;

use std::fmt;
use std::net::SocketAddr;
use std::time::SystemTime;

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::header::{CONTENT_RANGE, CONTENT_TYPE, ETAG, HOST, LAST_MODIFIED, RANGE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::net::client::{
    ClientError, HttpClient, RequestBody, Response, ResponseBody, Scheme, Target,
};
use crate::net::fetch::ByteRange;
use crate::net::url::{FetchUrl, Host};

/// Largest S3 error or listing document read into memory.
const MAX_XML_BYTES: usize = 4 << 20;
/// The most parts a multipart upload may have.
pub const MAX_PARTS: u32 = 10_000;
/// The smallest part but the last.
pub const MIN_PART_BYTES: u64 = 5 << 20;

/// A secret access key. Shown as `***` by `Debug`, `Display` and `Serialize`.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> SecretKey {
        SecretKey(secret.into())
    }

    /// The secret itself, for signing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl serde::Serialize for SecretKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

/// How a bucket is named in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    /// `scheme://endpoint/bucket/key` (works with any endpoint, IP addresses included).
    Path,
    /// `scheme://bucket.endpoint/key` (needs DNS, or a server configured for it).
    Virtual,
}

/// Where and as whom to talk S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `http(s)://host[:port]`, without a path.
    pub endpoint: String,
    /// The signing region (`us-east-1` unless the service says otherwise).
    pub region: String,
    /// The access key id.
    pub access_key: String,
    /// The secret key.
    pub secret_key: SecretKey,
    /// The bucket.
    pub bucket: String,
    /// Path-style or virtual-host addressing.
    pub addressing: Addressing,
}

/// An entity tag as S3 returns it (usually a quoted hex MD5; `-N` suffixed for multipart).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

impl ETag {
    /// The tag as S3 wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag without its quotes.
    pub fn unquoted(&self) -> &str {
        self.0.trim_matches('"')
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A multipart upload's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(pub String);

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A part uploaded, for completing the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// 1..=10,000.
    pub part_number: u32,
    /// What UploadPart returned.
    pub etag: ETag,
}

/// A multipart upload in progress (neither completed nor aborted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    /// The object key.
    pub key: String,
    /// The upload.
    pub upload_id: UploadId,
    /// When it started (ISO 8601, as S3 gave it).
    pub initiated: Option<String>,
}

/// An object's metadata (HeadObject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// Entity tag.
    pub etag: Option<ETag>,
    /// `Last-Modified`, as sent.
    pub last_modified: Option<String>,
}

/// A GetObject answer: the bytes asked for, streaming.
#[derive(Debug)]
pub struct ObjectStream {
    /// 200, or 206 for a range.
    pub status: StatusCode,
    /// The whole object's size.
    pub object_size: u64,
    /// The range sent, `(first, last)` inclusive; the whole object when no range was asked.
    pub range: Option<(u64, u64)>,
    /// Entity tag.
    pub etag: Option<ETag>,
    /// The bytes.
    pub body: ResponseBody,
}

/// Why an S3 request failed. No variant carries the secret key or a signature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    /// The settings cannot work (endpoint, bucket name).
    #[error("S3 settings: {0}")]
    Settings(String),
    /// The service refused the credentials (`InvalidAccessKeyId`, `SignatureDoesNotMatch`).
    #[error("S3 {operation} {resource}: the credentials were refused ({code}: {message})")]
    Credentials {
        /// The S3 operation.
        operation: &'static str,
        /// `bucket[/key]`.
        resource: String,
        /// S3's error code.
        code: String,
        /// S3's message.
        message: String,
    },
    /// Permission denied to these credentials (`AccessDenied`, or 403 without a body).
    #[error("S3 {operation} {resource}: access denied ({code}: {message})")]
    Denied {
        /// The S3 operation.
        operation: &'static str,
        /// `bucket[/key]`.
        resource: String,
        /// S3's error code.
        code: String,
        /// S3's message.
        message: String,
    },
    /// No such bucket, key or upload (`NoSuchBucket`, `NoSuchKey`, `NoSuchUpload`, 404).
    #[error("S3 {operation} {resource}: not found ({code})")]
    NotFound {
        /// The S3 operation.
        operation: &'static str,
        /// `bucket[/key]`.
        resource: String,
        /// S3's error code.
        code: String,
    },
    /// Any other error the service answered with.
    #[error("S3 {operation} {resource}: {status} {code}: {message}")]
    Service {
        /// The S3 operation.
        operation: &'static str,
        /// `bucket[/key]`.
        resource: String,
        /// The HTTP status.
        status: StatusCode,
        /// S3's error code (empty when the body had none).
        code: String,
        /// S3's message.
        message: String,
        /// S3's request id, for the service's logs.
        request_id: Option<String>,
    },
    /// The service could not be reached, or the exchange broke.
    #[error("S3 {operation} {resource}: {source}")]
    Http {
        /// The S3 operation.
        operation: &'static str,
        /// `bucket[/key]`.
        resource: String,
        /// What the client saw.
        #[source]
        source: ClientError,
    },
    /// The service answered something that is not S3.
    #[error("S3 {operation} {resource}: unexpected answer: {reason}")]
    Protocol {
        /// The S3 operation.
        operation: &'static str,
        /// `bucket[/key]`.
        resource: String,
        /// What was wrong.
        reason: String,
    },
}

impl S3Error {
    /// S3's error code, when the service sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            S3Error::Credentials { code, .. }
            | S3Error::Denied { code, .. }
            | S3Error::NotFound { code, .. }
            | S3Error::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the bucket, key or upload does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, S3Error::NotFound { .. })
    }

    /// Whether the credentials were refused.
    pub fn is_credentials(&self) -> bool {
        matches!(self, S3Error::Credentials { .. })
    }

    /// Whether the service could not be reached or went away mid-request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            S3Error::Http { source, .. } => source.is_unavailable(),
            S3Error::Service { status, .. } => status.is_server_error(),
            _ => false,
        }
    }
}

/// How a request's payload is signed.
enum Payload<'a> {
    /// `UNSIGNED-PAYLOAD`: streamed bodies.
    Unsigned,
    /// The SHA-256 of these bytes.
    Bytes(&'a [u8]),
}

/// One S3 request before signing.
struct Call<'a> {
    operation: &'static str,
    method: Method,
    /// `None`: the service (ListBuckets); `Some(None)`: the bucket; `Some(Some(key))`: an object.
    key: Option<Option<&'a str>>,
    /// Already encoded.
    query: String,
    headers: HeaderMap,
    body: RequestBody,
    payload: Payload<'a>,
}

/// An S3 client for one bucket, on one core (it holds the core's [`HttpClient`]).
#[derive(Clone)]
pub struct S3Client {
    http: HttpClient,
    scheme: Scheme,
    host: Host,
    port: u16,
    connect_to: Option<Vec<SocketAddr>>,
    bucket: String,
    region: String,
    addressing: Addressing,
    credentials: aws_credential_types::Credentials,
    access_key: String,
}

impl fmt::Debug for S3Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Client")
            .field(
                "endpoint",
                &format_args!("{}://{}:{}", self.scheme.as_str(), self.host, self.port),
            )
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("addressing", &self.addressing)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// Whether `name` is a bucket name S3 accepts (3-63 of `a-z 0-9 . -`, starting and ending
/// with a letter or digit).
fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Percent-encodes for S3: every byte but `A-Z a-z 0-9 - _ . ~` (and `/` when `keep_slash`).
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl S3Client {
    /// A client for `settings`, sending through `http`.
    pub fn new(http: HttpClient, settings: &S3Settings) -> Result<S3Client, S3Error> {
        let endpoint = FetchUrl::parse(&settings.endpoint)
            .map_err(|e| S3Error::Settings(format!("endpoint: {e}")))?;
        let scheme = Scheme::parse(endpoint.scheme())
            .ok_or_else(|| S3Error::Settings("endpoint must be http:// or https://".into()))?;
        if endpoint.path_and_query() != "/" {
            return Err(S3Error::Settings("endpoint must not have a path".into()));
        }
        if endpoint.credentials().is_some() {
            return Err(S3Error::Settings(
                "endpoint must not carry credentials (set the access and secret keys)".into(),
            ));
        }
        if !valid_bucket(&settings.bucket) {
            return Err(S3Error::Settings(format!(
                "{:?} is not a valid bucket name (3-63 of a-z 0-9 . -)",
                settings.bucket
            )));
        }
        if settings.addressing == Addressing::Virtual && !matches!(endpoint.host(), Host::Name(_)) {
            return Err(S3Error::Settings(
                "virtual-host addressing needs a host name, not an address".into(),
            ));
        }
        if settings.access_key.is_empty() || settings.secret_key.expose().is_empty() {
            return Err(S3Error::Settings(
                "access key and secret key are required".into(),
            ));
        }
        let region = if settings.region.is_empty() {
            "us-east-1".to_owned()
        } else {
            settings.region.clone()
        };
        Ok(S3Client {
            http,
            scheme,
            host: endpoint.host().clone(),
            port: endpoint.port().unwrap_or(scheme.default_port()),
            connect_to: None,
            bucket: settings.bucket.clone(),
            region,
            addressing: settings.addressing,
            credentials: aws_credential_types::Credentials::new(
                settings.access_key.clone(),
                settings.secret_key.expose().to_owned(),
                None,
                None,
                "glint-settings",
            ),
            access_key: settings.access_key.clone(),
        })
    }

    /// Connects to `addrs` instead of resolving the endpoint (split-horizon DNS, or a test
    /// reaching a virtual-host bucket name that no DNS knows).
    pub fn with_connect_addrs(mut self, addrs: Vec<SocketAddr>) -> S3Client {
        self.connect_to = Some(addrs);
        self
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn resource(&self, key: Option<Option<&str>>) -> String {
        match key {
            None => String::from("(service)"),
            Some(None) => self.bucket.clone(),
            Some(Some(key)) => format!("{}/{key}", self.bucket),
        }
    }

    /// The target and path of a request.
    fn locate(&self, key: Option<Option<&str>>) -> (Target, String) {
        let (host, path) = match (self.addressing, key) {
            (_, None) => (self.host.clone(), "/".to_owned()),
            (Addressing::Path, Some(None)) => (self.host.clone(), format!("/{}", self.bucket)),
            (Addressing::Path, Some(Some(key))) => (
                self.host.clone(),
                format!("/{}/{}", self.bucket, encode(key, true)),
            ),
            (Addressing::Virtual, Some(key)) => {
                let host = Host::Name(format!("{}.{}", self.bucket, self.host.list_name()));
                let path = format!("/{}", key.map(|k| encode(k, true)).unwrap_or_default());
                (host, path)
            }
        };
        let target = Target {
            scheme: self.scheme,
            host,
            port: self.port,
            addrs: self.connect_to.clone(),
        };
        (target, path)
    }

    /// Adds the SigV4 headers (`Authorization`, `X-Amz-Date`, `X-Amz-Content-Sha256`).
    fn sign(
        &self,
        method: &Method,
        url: &str,
        headers: &mut HeaderMap,
        payload: &Payload<'_>,
    ) -> Result<(), String> {
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v)))
            .collect();
        let body = match payload {
            Payload::Unsigned => SignableBody::UnsignedPayload,
            Payload::Bytes(bytes) => SignableBody::Bytes(bytes),
        };
        let signable = SignableRequest::new(method.as_str(), url, pairs.into_iter(), body)
            .map_err(|e| e.to_string())?;
        let mut settings = SigningSettings::default();
        // S3 signs the path as sent (encoded once) and keeps `//` and `.` in keys.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        for (name, value) in instructions.headers() {
            let mut value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
            if name.eq_ignore_ascii_case("authorization") {
                value.set_sensitive(true);
            }
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?,
                value,
            );
        }
        Ok(())
    }

    /// Signs and sends `call`; a status other than 2xx becomes the matching [`S3Error`].
    async fn execute(&self, call: Call<'_>) -> Result<Response, S3Error> {
        let operation = call.operation;
        let resource = self.resource(call.key);
        let (target, path) = self.locate(call.key);
        let path_and_query = if call.query.is_empty() {
            path
        } else {
            format!("{path}?{}", call.query)
        };
        let mut headers = call.headers;
        let host = HeaderValue::from_str(&target.host_header())
            .map_err(|e| S3Error::Settings(format!("host: {e}")))?;
        headers.insert(HOST, host);
        let url = format!(
            "{}://{}{path_and_query}",
            self.scheme.as_str(),
            target.host_header()
        );
        self.sign(&call.method, &url, &mut headers, &call.payload)
            .map_err(|reason| S3Error::Protocol {
                operation,
                resource: resource.clone(),
                reason: format!("cannot sign the request: {reason}"),
            })?;
        let mut request = http::Request::new(call.body);
        *request.method_mut() = call.method.clone();
        *request.uri_mut() = path_and_query
            .parse()
            .map_err(|_| S3Error::Settings("the key makes an invalid request path".into()))?;
        *request.headers_mut() = headers;
        let response = self
            .http
            .send(&target, request)
            .await
            .map_err(|source| S3Error::Http {
                operation,
                resource: resource.clone(),
                source,
            })?;
        if response.status.is_success() {
            return Ok(response);
        }
        Err(self
            .error_from(operation, resource, &call.method, response)
            .await)
    }

    async fn error_from(
        &self,
        operation: &'static str,
        resource: String,
        method: &Method,
        response: Response,
    ) -> S3Error {
        let status = response.status;
        let doc = if *method == Method::HEAD {
            None
        } else {
            match response.body.bytes(64 << 10).await {
                Ok(body) => xml::parse_error(&body),
                Err(_) => None,
            }
        };
        let doc = doc.unwrap_or_else(|| xml::ErrorDoc {
            code: match status {
                StatusCode::NOT_FOUND => "NotFound".into(),
                StatusCode::FORBIDDEN => "Forbidden".into(),
                _ => String::new(),
            },
            message: status.canonical_reason().unwrap_or("").into(),
            request_id: None,
        });
        match doc.code.as_str() {
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "ExpiredToken" => {
                S3Error::Credentials {
                    operation,
                    resource,
                    code: doc.code,
                    message: doc.message,
                }
            }
            "NoSuchKey" | "NoSuchBucket" | "NoSuchUpload" | "NotFound" => S3Error::NotFound {
                operation,
                resource,
                code: doc.code,
            },
            "AccessDenied" | "Forbidden" => S3Error::Denied {
                operation,
                resource,
                code: doc.code,
                message: doc.message,
            },
            _ => S3Error::Service {
                operation,
                resource,
                status,
                code: doc.code,
                message: doc.message,
                request_id: doc.request_id,
            },
        }
    }

    /// Reads a small XML answer.
    async fn xml(
        &self,
        operation: &'static str,
        resource: String,
        response: Response,
    ) -> Result<Bytes, S3Error> {
        response
            .body
            .bytes(MAX_XML_BYTES)
            .await
            .map_err(|source| S3Error::Http {
                operation,
                resource,
                source,
            })
    }

    fn protocol(&self, operation: &'static str, key: Option<&str>, reason: &str) -> S3Error {
        S3Error::Protocol {
            operation,
            resource: self.resource(Some(key)),
            reason: reason.to_owned(),
        }
    }

    fn call<'a>(operation: &'static str, method: Method, key: Option<Option<&'a str>>) -> Call<'a> {
        Call {
            operation,
            method,
            key,
            query: String::new(),
            headers: HeaderMap::new(),
            body: RequestBody::empty(),
            payload: Payload::Bytes(&[]),
        }
    }

    /// Lists the account's buckets and discards the answer: checks that the endpoint answers
    /// and takes these credentials.
    pub async fn check_credentials(&self) -> Result<(), S3Error> {
        let response = self
            .execute(Self::call("ListBuckets", Method::GET, None))
            .await?;
        self.xml("ListBuckets", self.resource(None), response)
            .await?;
        Ok(())
    }

    /// Whether the bucket exists (and these credentials may see it).
    pub async fn head_bucket(&self) -> Result<bool, S3Error> {
        match self
            .execute(Self::call("HeadBucket", Method::HEAD, Some(None)))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the bucket; one that these credentials already own is fine.
    pub async fn create_bucket(&self) -> Result<(), S3Error> {
        match self
            .execute(Self::call("CreateBucket", Method::PUT, Some(None)))
            .await
        {
            Ok(response) => {
                drop(response);
                Ok(())
            }
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stores `body` (its length is the object's size) as `key` in one request.
    pub async fn put_object(&self, key: &str, body: RequestBody) -> Result<ETag, S3Error> {
        let call = Call {
            body,
            payload: Payload::Unsigned,
            ..Self::call("PutObject", Method::PUT, Some(Some(key)))
        };
        let response = self.execute(call).await?;
        response_etag(&response).ok_or_else(|| self.protocol("PutObject", Some(key), "no ETag"))
    }

    /// The object's size and tag.
    pub async fn head_object(&self, key: &str) -> Result<ObjectInfo, S3Error> {
        let response = self
            .execute(Self::call("HeadObject", Method::HEAD, Some(Some(key))))
            .await?;
        let size = header_u64(&response.headers, http::header::CONTENT_LENGTH)
            .ok_or_else(|| self.protocol("HeadObject", Some(key), "no Content-Length"))?;
        Ok(ObjectInfo {
            size,
            etag: response_etag(&response),
            last_modified: header_str(&response.headers, LAST_MODIFIED),
        })
    }

    /// The object's bytes, or `range` of them, streaming.
    pub async fn get_object(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectStream, S3Error> {
        let mut call = Self::call("GetObject", Method::GET, Some(Some(key)));
        if let Some(range) = range {
            let value = HeaderValue::from_str(&range.header_value())
                .map_err(|e| S3Error::Settings(format!("range: {e}")))?;
            call.headers.insert(RANGE, value);
        }
        let response = self.execute(call).await?;
        let length = response.body.content_length();
        let (object_size, sent) = if response.status == StatusCode::PARTIAL_CONTENT {
            let range = header_str(&response.headers, CONTENT_RANGE)
                .and_then(|v| parse_content_range(&v))
                .ok_or_else(|| {
                    self.protocol("GetObject", Some(key), "206 without a valid Content-Range")
                })?;
            (range.2, Some((range.0, range.1)))
        } else {
            let size =
                length.ok_or_else(|| self.protocol("GetObject", Some(key), "no Content-Length"))?;
            (size, size.checked_sub(1).map(|last| (0, last)))
        };
        Ok(ObjectStream {
            status: response.status,
            object_size,
            range: sent,
            etag: response_etag(&response),
            body: response.body,
        })
    }

    /// Deletes the object (deleting a missing key succeeds, as in S3).
    pub async fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        self.execute(Self::call("DeleteObject", Method::DELETE, Some(Some(key))))
            .await?;
        Ok(())
    }

    /// Starts a multipart upload of `key`.
    pub async fn create_multipart_upload(&self, key: &str) -> Result<UploadId, S3Error> {
        let call = Call {
            query: "uploads".into(),
            ..Self::call("CreateMultipartUpload", Method::POST, Some(Some(key)))
        };
        let response = self.execute(call).await?;
        let body = self
            .xml(
                "CreateMultipartUpload",
                self.resource(Some(Some(key))),
                response,
            )
            .await?;
        xml::parse_upload_id(&body)
            .map(UploadId)
            .ok_or_else(|| self.protocol("CreateMultipartUpload", Some(key), "no UploadId"))
    }

    /// Uploads part `part_number` (1..=10,000) of an upload; `body`'s length is the part's.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        body: RequestBody,
    ) -> Result<ETag, S3Error> {
        if !(1..=MAX_PARTS).contains(&part_number) {
            return Err(S3Error::Settings(format!(
                "part number {part_number} is outside 1..={MAX_PARTS}"
            )));
        }
        let call = Call {
            query: format!(
                "partNumber={part_number}&uploadId={}",
                encode(&upload_id.0, false)
            ),
            body,
            payload: Payload::Unsigned,
            ..Self::call("UploadPart", Method::PUT, Some(Some(key)))
        };
        let response = self.execute(call).await?;
        response_etag(&response).ok_or_else(|| self.protocol("UploadPart", Some(key), "no ETag"))
    }

    /// Completes an upload from its parts, in part-number order.
    pub async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &UploadId,
        parts: &[CompletedPart],
    ) -> Result<ETag, S3Error> {
        let document = xml::complete_body(parts.iter().map(|p| (p.part_number, p.etag.as_str())));
        let document = Bytes::from(document);
        let mut call = Call {
            query: format!("uploadId={}", encode(&upload_id.0, false)),
            body: RequestBody::full(document.clone()),
            ..Self::call("CompleteMultipartUpload", Method::POST, Some(Some(key)))
        };
        call.payload = Payload::Bytes(&document);
        call.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        let response = self.execute(call).await?;
        let body = self
            .xml(
                "CompleteMultipartUpload",
                self.resource(Some(Some(key))),
                response,
            )
            .await?;
        // S3 may answer 200 and put the failure in the body.
        if let Some(error) = xml::parse_error(&body) {
            return Err(S3Error::Service {
                operation: "CompleteMultipartUpload",
                resource: self.resource(Some(Some(key))),
                status: StatusCode::OK,
                code: error.code,
                message: error.message,
                request_id: error.request_id,
            });
        }
        match xml::parse_complete_etag(&body) {
            Some(etag) if !etag.is_empty() => Ok(ETag(etag)),
            // Ceph RGW 16 answers `<ETag></ETag>` here; the object's own tag is right.
            Some(_) => self
                .head_object(key)
                .await?
                .etag
                .ok_or_else(|| self.protocol("CompleteMultipartUpload", Some(key), "no ETag")),
            None => Err(self.protocol(
                "CompleteMultipartUpload",
                Some(key),
                "not a CompleteMultipartUploadResult",
            )),
        }
    }

    /// Aborts an upload, removing its parts.
    pub async fn abort_multipart_upload(
        &self,
        key: &str,
        upload_id: &UploadId,
    ) -> Result<(), S3Error> {
        let call = Call {
            query: format!("uploadId={}", encode(&upload_id.0, false)),
            ..Self::call("AbortMultipartUpload", Method::DELETE, Some(Some(key)))
        };
        self.execute(call).await?;
        Ok(())
    }

    /// The uploads in progress whose keys start with `prefix` (every page).
    pub async fn list_multipart_uploads(
        &self,
        prefix: &str,
    ) -> Result<Vec<MultipartUpload>, S3Error> {
        let mut uploads = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query = String::from("uploads");
            if !prefix.is_empty() {
                query.push_str(&format!("&prefix={}", encode(prefix, false)));
            }
            if let Some((key, upload)) = &markers {
                query.push_str(&format!(
                    "&key-marker={}&upload-id-marker={}",
                    encode(key, false),
                    encode(upload, false)
                ));
            }
            let call = Call {
                query,
                ..Self::call("ListMultipartUploads", Method::GET, Some(None))
            };
            let response = self.execute(call).await?;
            let body = self
                .xml("ListMultipartUploads", self.resource(Some(None)), response)
                .await?;
            let page = xml::parse_uploads(&body).ok_or_else(|| {
                self.protocol(
                    "ListMultipartUploads",
                    None,
                    "not a ListMultipartUploadsResult",
                )
            })?;
            uploads.extend(page.uploads.into_iter().map(|u| MultipartUpload {
                key: u.key,
                upload_id: UploadId(u.upload_id),
                initiated: u.initiated,
            }));
            match (
                page.is_truncated,
                page.next_key_marker,
                page.next_upload_id_marker,
            ) {
                (true, Some(key), Some(upload))
                    if markers.as_ref() != Some(&(key.clone(), upload.clone())) =>
                {
                    markers = Some((key, upload));
                }
                (true, _, _) => {
                    return Err(self.protocol(
                        "ListMultipartUploads",
                        None,
                        "truncated listing without new markers",
                    ))
                }
                (false, _, _) => return Ok(uploads),
            }
        }
    }
}

fn header_str(headers: &HeaderMap, name: http::HeaderName) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

fn header_u64(headers: &HeaderMap, name: http::HeaderName) -> Option<u64> {
    header_str(headers, name)?.trim().parse().ok()
}

fn response_etag(response: &Response) -> Option<ETag> {
    header_str(&response.headers, ETAG).map(ETag)
}

/// `bytes FIRST-LAST/TOTAL` → (first, last, total).
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let spec = value.trim().strip_prefix("bytes ")?;
    let (range, total) = spec.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, total) = (first.parse().ok()?, last.parse().ok()?, total.parse().ok()?);
    (first <= last && last < total).then_some((first, last, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::client::ClientSettings;

    fn settings() -> S3Settings {
        S3Settings {
            endpoint: "http://127.0.0.1:7480".into(),
            region: String::new(),
            access_key: "AKIDEXAMPLE".into(),
            secret_key: SecretKey::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            bucket: "images".into(),
            addressing: Addressing::Path,
        }
    }

    fn client(settings: &S3Settings) -> Result<S3Client, S3Error> {
        S3Client::new(HttpClient::new(ClientSettings::default()), settings)
    }

    #[test]
    fn the_secret_is_never_shown() {
        let s = settings();
        let c = client(&s).unwrap();
        let shown = format!("{s:?} {c:?} {}", s.secret_key);
        assert!(!shown.contains("wJalr"), "{shown}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert_eq!(serde_json::to_string(&s.secret_key).unwrap(), "\"***\"");
        let parsed: SecretKey = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(parsed.expose(), "abc");
    }

    #[test]
    fn settings_are_checked() {
        let bad = |change: &dyn Fn(&mut S3Settings)| {
            let mut s = settings();
            change(&mut s);
            client(&s).unwrap_err().to_string()
        };
        assert!(bad(&|s| s.endpoint = "ftp://h/".into()).contains("http"));
        assert!(bad(&|s| s.endpoint = "http://h/sub".into()).contains("path"));
        assert!(bad(&|s| s.endpoint = "http://k:s@h/".into()).contains("credentials"));
        assert!(bad(&|s| s.bucket = "Images".into()).contains("bucket"));
        assert!(bad(&|s| s.bucket = "ab".into()).contains("bucket"));
        assert!(bad(&|s| s.addressing = Addressing::Virtual).contains("host name"));
        assert!(bad(&|s| s.secret_key = SecretKey::new("")).contains("required"));
        let c = client(&settings()).unwrap();
        assert_eq!(c.region, "us-east-1");
    }

    #[test]
    fn keys_are_encoded_once_and_addressing_picks_host_and_path() {
        assert_eq!(encode("a b/c+d~e_f.g-h", true), "a%20b/c%2Bd~e_f.g-h");
        assert_eq!(encode("a/b", false), "a%2Fb");
        assert_eq!(encode("é", true), "%C3%A9");
        let c = client(&settings()).unwrap();
        let (target, path) = c.locate(Some(Some("dir/img 1.qcow2")));
        assert_eq!(target.host_header(), "127.0.0.1:7480");
        assert_eq!(path, "/images/dir/img%201.qcow2");
        let (_, path) = c.locate(Some(None));
        assert_eq!(path, "/images");
        let mut virtual_host = settings();
        virtual_host.endpoint = "https://s3.example.com".into();
        virtual_host.addressing = Addressing::Virtual;
        let c = client(&virtual_host).unwrap();
        let (target, path) = c.locate(Some(Some("k")));
        assert_eq!(target.host_header(), "images.s3.example.com");
        assert_eq!(target.scheme, Scheme::Https);
        assert_eq!(path, "/k");
        let (target, path) = c.locate(None);
        assert_eq!(target.host_header(), "s3.example.com");
        assert_eq!(path, "/");
    }

    /// AWS's documented example ("GET Object" in the SigV4 header-signing guide): the same
    /// request, time and keys must give the same signature.
    #[test]
    fn signatures_match_aws_documented_example() {
        let mut s = settings();
        s.endpoint = "https://examplebucket.s3.amazonaws.com".into();
        s.access_key = "AKIAIOSFODNN7EXAMPLE".into();
        s.secret_key = SecretKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        s.bucket = "examplebucket".into();
        let c = client(&s).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            HOST,
            HeaderValue::from_static("examplebucket.s3.amazonaws.com"),
        );
        headers.insert(RANGE, HeaderValue::from_static("bytes=0-9"));
        let url = "https://examplebucket.s3.amazonaws.com/test.txt";
        let identity = c.credentials.clone().into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        // 20130524T000000Z
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        let signable =
            SignableRequest::new("GET", url, pairs.into_iter(), SignableBody::Bytes(&[])).unwrap();
        let (_, signature) = sign(signable, &params).unwrap().into_parts();
        assert_eq!(
            signature,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        // And our own path through `sign` puts it in headers, marked sensitive.
        let mut headers = HeaderMap::new();
        headers.insert(
            HOST,
            HeaderValue::from_static("examplebucket.s3.amazonaws.com"),
        );
        c.sign(&Method::GET, url, &mut headers, &Payload::Unsigned)
            .unwrap();
        let auth = &headers[http::header::AUTHORIZATION];
        assert!(auth.is_sensitive());
        assert!(auth
            .to_str()
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"));
        assert_eq!(headers["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
        assert!(!format!("{headers:?}").contains("Signature="));
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(parse_content_range("bytes 9-0/100"), None);
        assert_eq!(parse_content_range("bytes 0-100/100"), None);
        assert_eq!(parse_content_range("bytes */100"), None);
    }
}
