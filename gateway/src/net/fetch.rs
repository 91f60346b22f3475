//! The one way glint fetches a URL that a user (or another service) supplied: web-download,
//! glance-download, the http store, location adds. Better than Glance's string checks, because
//! a name that resolves to 127.0.0.1 or 169.254.169.254 must not pass.
//!
//! For each URL, and again for every redirect (at most [`FetchPolicy::max_redirects`]):
//! 1. it is parsed strictly ([`crate::net::url`]): numeric hosts such as `2130706433`,
//!    `0x7f.1` or `127.1` are the address they denote;
//! 2. Glance's `[import_filtering_opts]` lists apply in Glance's order and with its rule that
//!    an allow-list, when set, replaces the matching deny-list: scheme, then host, then port.
//!    Unlike Glance, the port checked is the one connected to (80/443 when none is written);
//! 3. the host is resolved (off the core) and *every* address is classified
//!    ([`crate::net::addr`]): loopback, private, link-local, metadata, multicast, unspecified,
//!    broadcast, shared (CGNAT), reserved, and IPv6 forms carrying one of those, are refused
//!    unless `allowed_hosts` names the URL's host; an address named in `disallowed_hosts` is
//!    refused too, whatever name led to it;
//! 4. the connection goes to the addresses just checked ([`Target::pinned`]), never to a
//!    second lookup's answer, so DNS rebinding between check and connect changes nothing;
//! 5. the body is capped while it streams ([`FetchPolicy::max_bytes`]; a larger
//!    `Content-Length` is refused before any byte is read).
//!
//! Errors are typed ([`FetchError`]) and never contain the URL's userinfo or query.
//!
//! The settings, [`ImportFilteringOpts`], are `Config`'s `import_filtering_opts` table.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::header::{AUTHORIZATION, LOCATION, RANGE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::net::addr::{classify, AddressClass};
use crate::net::client::{ClientError, HttpClient, RequestBody, ResponseBody, Scheme, Target};
use crate::net::resolve::resolve;
use crate::net::url::{FetchUrl, Host, UrlError};

pub use crate::config::ImportFilteringOpts;

/// A setting of [`ImportFilteringOpts`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyConfigError {
    /// An entry of a host list that is neither a host name nor an IP address.
    #[error("import_filtering_opts.{key}: {value:?} is not a host name or IP address")]
    BadHost {
        /// The option.
        key: &'static str,
        /// The entry.
        value: String,
    },
    /// Port 0 in a port list.
    #[error("import_filtering_opts.{key}: ports are 1 to 65535")]
    BadPort {
        /// The option.
        key: &'static str,
    },
}

impl ImportFilteringOpts {
    /// Checks every entry; the error names the option.
    pub fn validate(&self) -> Result<(), PolicyConfigError> {
        FetchPolicy::new(self).map(|_| ())
    }
}

/// Why a fetch was refused or failed. No variant carries the URL's userinfo or query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL could not be parsed.
    #[error("invalid URL: {0}")]
    InvalidUrl(#[source] UrlError),
    /// The scheme is not allowed by `[import_filtering_opts]`.
    #[error("scheme {scheme:?} is not allowed")]
    SchemeNotAllowed {
        /// The scheme.
        scheme: String,
    },
    /// The scheme is allowed but glint cannot fetch it (only http and https).
    #[error("scheme {scheme:?} is not supported (http and https are)")]
    UnsupportedScheme {
        /// The scheme.
        scheme: String,
    },
    /// The host is not allowed by `[import_filtering_opts]`.
    #[error("host {host} is not allowed")]
    HostNotAllowed {
        /// The host.
        host: String,
    },
    /// The port is not allowed by `[import_filtering_opts]`.
    #[error("port {port} is not allowed")]
    PortNotAllowed {
        /// The port.
        port: u16,
    },
    /// The host is, or resolves to, an address that is refused.
    #[error("host {host} {resolution}{address} ({class} address), which is not allowed")]
    AddressNotAllowed {
        /// The host as written in the URL.
        host: String,
        /// "is " or "resolves to ".
        resolution: &'static str,
        /// The address.
        address: IpAddr,
        /// Its class.
        class: AddressClass,
    },
    /// The host is, or resolves to, an address named in `disallowed_hosts`.
    #[error("host {host} resolves to {address}, which is in disallowed_hosts")]
    AddressDisallowed {
        /// The host as written.
        host: String,
        /// The address.
        address: IpAddr,
    },
    /// A redirect without a usable `Location`.
    #[error("redirect from {from} has no valid Location: {reason}")]
    BadRedirect {
        /// The URL that redirected (no userinfo, no query).
        from: String,
        /// What was wrong.
        reason: String,
    },
    /// More redirects than allowed.
    #[error("more than {limit} redirects")]
    TooManyRedirects {
        /// The limit.
        limit: u32,
    },
    /// The origin answered with a status other than success.
    #[error("{url} answered {status}")]
    Status {
        /// The status.
        status: StatusCode,
        /// The URL (no userinfo, no query).
        url: String,
    },
    /// The body is larger than allowed.
    #[error("{url} is larger than {limit} bytes")]
    TooLarge {
        /// The URL (no userinfo, no query).
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Resolving, connecting or the exchange failed.
    #[error(transparent)]
    Http(#[from] ClientError),
}

impl FetchError {
    /// Whether the policy refused the URL (as opposed to the origin failing).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            FetchError::InvalidUrl(_)
                | FetchError::SchemeNotAllowed { .. }
                | FetchError::UnsupportedScheme { .. }
                | FetchError::HostNotAllowed { .. }
                | FetchError::PortNotAllowed { .. }
                | FetchError::AddressNotAllowed { .. }
                | FetchError::AddressDisallowed { .. }
                | FetchError::TooManyRedirects { .. }
        )
    }
}

/// The checks of one kind of fetch, built from [`ImportFilteringOpts`]. Share it between
/// cores (it is plain data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    allowed_schemes: Vec<String>,
    disallowed_schemes: Vec<String>,
    allowed_hosts: Vec<Host>,
    disallowed_hosts: Vec<Host>,
    allowed_ports: Vec<u16>,
    disallowed_ports: Vec<u16>,
    /// Redirects followed before giving up (Python's urllib, which Glance uses: 10).
    pub max_redirects: u32,
    /// The largest body accepted, if any limit.
    pub max_bytes: Option<u64>,
}

fn parse_hosts(key: &'static str, hosts: &[String]) -> Result<Vec<Host>, PolicyConfigError> {
    hosts
        .iter()
        .map(|value| {
            Host::parse(value.trim()).map_err(|_| PolicyConfigError::BadHost {
                key,
                value: value.clone(),
            })
        })
        .collect()
}

fn check_ports(key: &'static str, ports: &[u16]) -> Result<Vec<u16>, PolicyConfigError> {
    if ports.contains(&0) {
        return Err(PolicyConfigError::BadPort { key });
    }
    Ok(ports.to_vec())
}

impl FetchPolicy {
    /// The policy of `opts`. As in Glance, a non-empty allow-list makes its deny-list unused.
    pub fn new(opts: &ImportFilteringOpts) -> Result<FetchPolicy, PolicyConfigError> {
        let lower = |list: &[String]| -> Vec<String> {
            list.iter().map(|s| s.trim().to_ascii_lowercase()).collect()
        };
        let allowed_schemes = lower(&opts.allowed_schemes);
        let allowed_hosts = parse_hosts("allowed_hosts", &opts.allowed_hosts)?;
        let allowed_ports = check_ports("allowed_ports", &opts.allowed_ports)?;
        let disallowed_hosts = parse_hosts("disallowed_hosts", &opts.disallowed_hosts)?;
        let disallowed_ports = check_ports("disallowed_ports", &opts.disallowed_ports)?;
        Ok(FetchPolicy {
            disallowed_schemes: if allowed_schemes.is_empty() {
                lower(&opts.disallowed_schemes)
            } else {
                Vec::new()
            },
            disallowed_hosts: if allowed_hosts.is_empty() {
                disallowed_hosts
            } else {
                Vec::new()
            },
            disallowed_ports: if allowed_ports.is_empty() {
                disallowed_ports
            } else {
                Vec::new()
            },
            allowed_schemes,
            allowed_hosts,
            allowed_ports,
            max_redirects: 10,
            max_bytes: None,
        })
    }

    /// The same policy with a body limit.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> FetchPolicy {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// The same policy following at most `max_redirects` redirects.
    pub fn with_max_redirects(mut self, max_redirects: u32) -> FetchPolicy {
        self.max_redirects = max_redirects;
        self
    }

    /// The scheme, host and port checks of `[import_filtering_opts]`, in Glance's order.
    pub fn check_url(&self, url: &FetchUrl) -> Result<(), FetchError> {
        let scheme = url.scheme();
        if (!self.allowed_schemes.is_empty() && !self.allowed_schemes.iter().any(|s| s == scheme))
            || self.disallowed_schemes.iter().any(|s| s == scheme)
        {
            return Err(FetchError::SchemeNotAllowed {
                scheme: scheme.to_owned(),
            });
        }
        let host = url.host();
        if (!self.allowed_hosts.is_empty() && !self.allowed_hosts.contains(host))
            || self.disallowed_hosts.contains(host)
        {
            return Err(FetchError::HostNotAllowed {
                host: host.list_name(),
            });
        }
        let Some(port) = url.effective_port() else {
            return Err(FetchError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            });
        };
        if (!self.allowed_ports.is_empty() && !self.allowed_ports.contains(&port))
            || self.disallowed_ports.contains(&port)
        {
            return Err(FetchError::PortNotAllowed { port });
        }
        Ok(())
    }

    /// Whether `url`'s host may be reached at `address`.
    pub fn check_address(&self, url: &FetchUrl, address: IpAddr) -> Result<(), FetchError> {
        let host = url.host();
        let resolution = if host.ip().is_some() {
            "is "
        } else {
            "resolves to "
        };
        let as_host = match address {
            IpAddr::V4(ip) => Host::V4(ip),
            IpAddr::V6(ip) => Host::V6(ip),
        };
        if self.disallowed_hosts.contains(&as_host) {
            return Err(FetchError::AddressDisallowed {
                host: host.list_name(),
                address,
            });
        }
        let class = classify(address);
        if class.is_public() || self.allowed_hosts.contains(host) {
            return Ok(());
        }
        Err(FetchError::AddressNotAllowed {
            host: host.list_name(),
            resolution,
            address,
            class,
        })
    }

    /// The addresses to connect to for `url`: its host resolved (unless it is an address),
    /// every one of them checked. One refused address refuses the URL.
    pub async fn resolve_checked(
        &self,
        url: &FetchUrl,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, FetchError> {
        let port = url
            .effective_port()
            .ok_or_else(|| FetchError::UnsupportedScheme {
                scheme: url.scheme().to_owned(),
            })?;
        let addrs = match url.host() {
            Host::V4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), port)],
            Host::V6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), port)],
            Host::Name(name) => resolve(name, port, timeout)
                .await
                .map_err(|e| FetchError::Http(ClientError::Resolve(e)))?,
        };
        for addr in &addrs {
            self.check_address(url, addr.ip())?;
        }
        Ok(addrs)
    }
}

/// A byte range to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// From this offset to the end.
    From(u64),
    /// From the first to the last offset, both included.
    Inclusive(u64, u64),
    /// The last this-many bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The `Range` header value.
    pub fn header_value(&self) -> String {
        match self {
            ByteRange::From(first) => format!("bytes={first}-"),
            ByteRange::Inclusive(first, last) => format!("bytes={first}-{last}"),
            ByteRange::Suffix(len) => format!("bytes=-{len}"),
        }
    }
}

/// One fetch.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// GET or HEAD.
    pub method: Method,
    /// The URL as the user gave it.
    pub url: String,
    /// A range to ask for.
    pub range: Option<ByteRange>,
    /// More headers (e.g. `X-Auth-Token` for glance-download).
    pub headers: HeaderMap,
}

impl FetchRequest {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> FetchRequest {
        FetchRequest {
            method: Method::GET,
            url: url.into(),
            range: None,
            headers: HeaderMap::new(),
        }
    }

    /// A HEAD of `url`.
    pub fn head(url: impl Into<String>) -> FetchRequest {
        FetchRequest {
            method: Method::HEAD,
            ..FetchRequest::get(url)
        }
    }

    /// The same request for `range`.
    pub fn with_range(mut self, range: ByteRange) -> FetchRequest {
        self.range = Some(range);
        self
    }
}

/// A successful fetch: the final URL (after redirects), status, headers, and the body, capped
/// at the policy's limit.
#[derive(Debug)]
pub struct Fetched {
    /// Where the answer came from.
    pub url: FetchUrl,
    /// Redirects followed.
    pub redirects: u32,
    /// The status (2xx).
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, read frame by frame.
    pub body: ResponseBody,
}

/// Fetches URLs under a [`FetchPolicy`] with a core's [`HttpClient`].
#[derive(Clone)]
pub struct Fetcher {
    client: HttpClient,
    policy: Arc<FetchPolicy>,
}

impl Fetcher {
    /// A fetcher applying `policy`.
    pub fn new(client: HttpClient, policy: Arc<FetchPolicy>) -> Fetcher {
        Fetcher { client, policy }
    }

    /// The policy applied.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// GET `url`.
    pub async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        self.fetch(FetchRequest::get(url)).await
    }

    /// Runs `request`, following and checking redirects. Statuses other than 2xx are errors
    /// ([`FetchError::Status`]).
    pub async fn fetch(&self, request: FetchRequest) -> Result<Fetched, FetchError> {
        let mut url = FetchUrl::parse(&request.url).map_err(FetchError::InvalidUrl)?;
        let first = url.clone();
        let mut method = request.method.clone();
        let mut redirects = 0;
        loop {
            self.policy.check_url(&url)?;
            let scheme =
                Scheme::parse(url.scheme()).ok_or_else(|| FetchError::UnsupportedScheme {
                    scheme: url.scheme().to_owned(),
                })?;
            let timeout = self.client.settings().connect_timeout;
            let addrs = self.policy.resolve_checked(&url, timeout).await?;
            let port = url.port().unwrap_or(scheme.default_port());
            let target = Target::pinned(scheme, url.host().clone(), port, addrs);
            // The caller's headers (a token, say) go only to the origin it named.
            let same_origin = url.same_origin(&first);
            let outgoing = build_request(&method, &url, &request, same_origin)?;
            let mut response = self.client.send(&target, outgoing).await?;
            if is_redirect(response.status) {
                if redirects >= self.policy.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        limit: self.policy.max_redirects,
                    });
                }
                let bad = |reason: String| FetchError::BadRedirect {
                    from: url.to_string(),
                    reason,
                };
                let location = response
                    .headers
                    .get(LOCATION)
                    .ok_or_else(|| bad("no Location header".into()))?
                    .to_str()
                    .map_err(|_| bad("Location is not ASCII".into()))?;
                let next = url.join(location).map_err(|e| bad(e.to_string()))?;
                tracing::debug!(from = %url, to = %next, status = %response.status, "following redirect");
                if response.status == StatusCode::SEE_OTHER && method != Method::HEAD {
                    method = Method::GET;
                }
                url = next;
                redirects += 1;
                continue;
            }
            if !response.status.is_success() {
                return Err(FetchError::Status {
                    status: response.status,
                    url: url.to_string(),
                });
            }
            if let Some(limit) = self.policy.max_bytes {
                if response
                    .body
                    .content_length()
                    .is_some_and(|len| len > limit)
                    && method != Method::HEAD
                {
                    return Err(FetchError::TooLarge {
                        url: url.to_string(),
                        limit,
                    });
                }
                response.body.set_limit(limit);
            }
            return Ok(Fetched {
                url,
                redirects,
                status: response.status,
                headers: response.headers,
                body: response.body,
            });
        }
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn build_request(
    method: &Method,
    url: &FetchUrl,
    request: &FetchRequest,
    with_headers: bool,
) -> Result<http::Request<RequestBody>, FetchError> {
    let invalid =
        |what: &str| FetchError::Http(ClientError::InvalidRequest(format!("{what} is not valid")));
    let mut outgoing = http::Request::builder()
        .method(method.clone())
        .uri(url.path_and_query())
        .body(RequestBody::empty())
        .map_err(|_| invalid("the URL's path"))?;
    let headers = outgoing.headers_mut();
    if with_headers {
        for (name, value) in &request.headers {
            headers.append(name, value.clone());
        }
    }
    if let Some(range) = request.range {
        let value = HeaderValue::from_str(&range.header_value()).map_err(|_| invalid("range"))?;
        headers.insert(RANGE, value);
    }
    if let Some((user, password)) = url.credentials() {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut value =
            HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| invalid("userinfo"))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(outgoing)
}

#[cfg(test)]
mod tests;
