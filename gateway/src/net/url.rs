//! URLs of outbound fetches: parsed strictly, with the host read as the address it denotes.
//!
//! Only `scheme://[userinfo@]host[:port][/path][?query][#fragment]` is accepted. Hosts are
//! lower-cased ASCII names (IDNs must be given in punycode), IPv4 addresses, or bracketed IPv6
//! addresses. A host that ends in a number is an IPv4 address in any of the forms the WHATWG URL
//! standard (and `inet_aton`) accept: `2130706433`, `0x7f.1`, `0177.0.0.1` and `127.1` are all
//! 127.0.0.1, so a policy looking at the host sees the address the resolver would have
//! produced. Anything ambiguous (backslashes, several `@`, spaces, control or non-ASCII
//! characters, percent signs in the host, IPv6 zone ids) is refused rather than guessed at.
//!
//! A URL's userinfo (`user:password@`) is kept for Basic authentication but never shown:
//! `Display` and `Debug` print the URL without it and without the query (which may carry a
//! signature or token), so a URL can be logged or put in an error as it is.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a URL was refused by the parser. Carries no part of the URL (it may hold credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// No `scheme://`.
    #[error("the URL has no scheme:// prefix")]
    NoScheme,
    /// Empty host.
    #[error("the URL has no host")]
    NoHost,
    /// A character that is not allowed where it stands (space, control, non-ASCII, `\`).
    #[error(
        "the URL contains a character that is not allowed (space, control, non-ASCII or backslash)"
    )]
    BadCharacter,
    /// More than one `@` before the host.
    #[error("the URL has more than one '@' in its authority")]
    AmbiguousUserinfo,
    /// A host name with characters outside letters, digits, `-`, `_` and `.`.
    #[error("the URL's host is not a valid host name (use punycode for international names)")]
    BadHost,
    /// A host ending in a number that is not a valid IPv4 address.
    #[error("the URL's host ends in a number but is not a valid IPv4 address")]
    BadIpv4,
    /// A bracketed host that is not an IPv6 address (zone ids are not accepted).
    #[error("the URL's host is not a valid IPv6 address")]
    BadIpv6,
    /// A port that is not a number in 1..=65535.
    #[error("the URL's port is not a number between 1 and 65535")]
    BadPort,
}

/// The host of a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name: lower-case ASCII, without a trailing dot.
    Name(String),
    /// An IPv4 address (in whichever form the URL wrote it).
    V4(Ipv4Addr),
    /// An IPv6 address (written in brackets in the URL).
    V6(Ipv6Addr),
}

impl Host {
    /// Parses a host as it appears in a URL's authority (IPv6 in brackets) or in a host list
    /// (IPv6 with or without brackets).
    pub fn parse(text: &str) -> Result<Host, UrlError> {
        if text.is_empty() {
            return Err(UrlError::NoHost);
        }
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(UrlError::BadIpv6)?;
            return inner.parse().map(Host::V6).map_err(|_| UrlError::BadIpv6);
        }
        if text.contains(':') {
            return text.parse().map(Host::V6).map_err(|_| UrlError::BadIpv6);
        }
        if !text.is_ascii() {
            return Err(UrlError::BadHost);
        }
        let lower = text.to_ascii_lowercase();
        // One trailing dot names the same host (an absolute DNS name).
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(UrlError::BadHost);
        }
        if ends_in_number(name) {
            return parse_ipv4(name).map(Host::V4).ok_or(UrlError::BadIpv4);
        }
        if name.split('.').any(str::is_empty) {
            return Err(UrlError::BadHost);
        }
        Ok(Host::Name(name.to_owned()))
    }

    /// The IP address, when the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::V4(ip) => Some(IpAddr::V4(*ip)),
            Host::V6(ip) => Some(IpAddr::V6(*ip)),
        }
    }

    /// The host as a policy list names it (Python's `urlparse(...).hostname`: no brackets).
    pub fn list_name(&self) -> String {
        match self {
            Host::Name(name) => name.clone(),
            Host::V4(ip) => ip.to_string(),
            Host::V6(ip) => ip.to_string(),
        }
    }
}

impl fmt::Display for Host {
    /// As it is written in a URL or a `Host` header (IPv6 in brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::V4(ip) => write!(f, "{ip}"),
            Host::V6(ip) => write!(f, "[{ip}]"),
        }
    }
}

/// Whether the last label of a host name is a number (decimal, octal or `0x` hex): such a
/// host must be an IPv4 address (WHATWG URL "ends in a number").
fn ends_in_number(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let last = name.rsplit('.').next().unwrap_or(name);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    match last.strip_prefix("0x").or_else(|| last.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

/// One part of a numeric IPv4 host: `0x` hex, `0`-led octal, or decimal.
fn parse_ipv4_number(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x").or(part.strip_prefix("0X")) {
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() {
        // "0x" alone is zero.
        return Some(0);
    }
    // Longer than any valid part: refuse instead of overflowing.
    if digits.len() > 12 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// WHATWG's IPv4 parser: one to four parts; every part but the last fits a byte, the last
/// fills the remaining bytes (so `127.1` is 127.0.0.1 and `2130706433` is 127.0.0.1).
fn parse_ipv4(name: &str) -> Option<Ipv4Addr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let parts: Vec<&str> = name.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let numbers = parts
        .iter()
        .map(|p| parse_ipv4_number(p))
        .collect::<Option<Vec<u64>>>()?;
    let (last, leading) = numbers.split_last()?;
    if leading.iter().any(|&n| n > 255) {
        return None;
    }
    let last_bits = 8 * (4 - leading.len() as u32);
    if *last >= 1u64 << last_bits {
        return None;
    }
    let mut value = *last;
    for (i, n) in leading.iter().enumerate() {
        value |= n << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from(value as u32))
}

/// A parsed URL. `Display`/`Debug` omit the userinfo and the query.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchUrl {
    scheme: String,
    userinfo: Option<String>,
    host: Host,
    port: Option<u16>,
    path_and_query: String,
}

impl FetchUrl {
    /// Parses an absolute URL.
    pub fn parse(text: &str) -> Result<FetchUrl, UrlError> {
        if text.bytes().any(|b| b <= b' ' || b >= 0x7f || b == b'\\') {
            return Err(UrlError::BadCharacter);
        }
        let (scheme, rest) = text.split_once("://").ok_or(UrlError::NoScheme)?;
        let mut chars = scheme.chars();
        let valid_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid_scheme {
            return Err(UrlError::NoScheme);
        }
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((info, _)) if info.contains('@') => return Err(UrlError::AmbiguousUserinfo),
            Some((info, host_port)) => (Some(info.to_owned()), host_port),
            None => (None, authority),
        };
        let (host_text, port_text) = if host_port.starts_with('[') {
            match host_port.find(']') {
                Some(close) => {
                    let (host, after) = host_port.split_at(close + 1);
                    match after {
                        "" => (host, None),
                        _ => (
                            host,
                            Some(after.strip_prefix(':').ok_or(UrlError::BadIpv6)?),
                        ),
                    }
                }
                None => return Err(UrlError::BadIpv6),
            }
        } else {
            match host_port.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        if host_text.contains('%') {
            return Err(if host_text.starts_with('[') {
                UrlError::BadIpv6
            } else {
                UrlError::BadHost
            });
        }
        let host = Host::parse(host_text)?;
        let port = match port_text {
            None | Some("") => None,
            Some(port) => {
                if !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
                    return Err(UrlError::BadPort);
                }
                match port.parse::<u16>() {
                    Ok(0) | Err(_) => return Err(UrlError::BadPort),
                    Ok(port) => Some(port),
                }
            }
        };
        let path_and_query = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            format!("/{tail}")
        };
        Ok(FetchUrl {
            scheme: scheme.to_ascii_lowercase(),
            userinfo,
            host,
            port,
            path_and_query,
        })
    }

    /// The URL a redirect's `Location` names, relative to this one. Credentials are kept only
    /// when the redirect stays on this scheme, host and port.
    pub fn join(&self, location: &str) -> Result<FetchUrl, UrlError> {
        if has_scheme(location) {
            let mut next = FetchUrl::parse(location)?;
            if next.userinfo.is_none() && next.same_origin(self) {
                next.userinfo = self.userinfo.clone();
            }
            return Ok(next);
        }
        if let Some(rest) = location.strip_prefix("//") {
            let mut next = FetchUrl::parse(&format!("{}://{rest}", self.scheme))?;
            if next.userinfo.is_none() && next.same_origin(self) {
                next.userinfo = self.userinfo.clone();
            }
            return Ok(next);
        }
        if location
            .bytes()
            .any(|b| b <= b' ' || b >= 0x7f || b == b'\\')
        {
            return Err(UrlError::BadCharacter);
        }
        let location = location.split_once('#').map_or(location, |(l, _)| l);
        let path_and_query = if location.starts_with('/') {
            location.to_owned()
        } else if location.starts_with('?') {
            format!("{}{location}", self.path())
        } else {
            let path = self.path();
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query)),
            None => (path_and_query.clone(), None),
        };
        let mut path = remove_dot_segments(&path);
        if let Some(query) = query {
            path.push('?');
            path.push_str(query);
        }
        Ok(FetchUrl {
            path_and_query: path,
            ..self.clone()
        })
    }

    /// Whether both URLs name the same scheme, host and port.
    pub fn same_origin(&self, other: &FetchUrl) -> bool {
        self.scheme == other.scheme
            && self.host == other.host
            && self.effective_port() == other.effective_port()
    }

    /// The scheme, lower-case.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port written in the URL, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port connected to: the one written, else the scheme's (80 for http, 443 for
    /// https; `None` for schemes without a known default).
    pub fn effective_port(&self) -> Option<u16> {
        self.port.or(match self.scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        })
    }

    /// The path and query, as sent in the request line (always starts with `/`).
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(&self.path_and_query, |(p, _)| p)
    }

    /// The userinfo as `(user, password)`, percent-decoded, for Basic authentication.
    pub fn credentials(&self) -> Option<(String, String)> {
        let info = self.userinfo.as_deref()?;
        let (user, password) = info.split_once(':').unwrap_or((info, ""));
        Some((percent_decode(user), percent_decode(password)))
    }

    /// `host[:port]` as the `Host` header carries it (the port only when not the default).
    pub fn host_header(&self) -> String {
        match self.port {
            Some(port) if Some(port) != default_port(&self.scheme) => {
                format!("{}:{port}", self.host)
            }
            _ => self.host.to_string(),
        }
    }
}

/// Whether a reference starts with `scheme:` (an absolute URL, not a relative path).
fn has_scheme(reference: &str) -> bool {
    match reference.find(':') {
        Some(colon) => {
            let scheme = &reference[..colon];
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl fmt::Display for FetchUrl {
    /// The URL without userinfo, and with any query shown as `?…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        f.write_str(self.path())?;
        if self.path_and_query.contains('?') {
            f.write_str("?…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for FetchUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FetchUrl({self})")
    }
}

/// RFC 3986 §5.2.4 on a path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(path.len());
    for segment in &out {
        result.push('/');
        result.push_str(segment);
    }
    if trailing_slash || result.is_empty() {
        result.push('/');
    }
    result
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(byte) = u8::from_str_radix(hex, 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(url: &str) -> Ipv4Addr {
        match FetchUrl::parse(url).unwrap().host() {
            Host::V4(ip) => *ip,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn numeric_ipv4_forms_are_the_address_they_denote() {
        let loopback = Ipv4Addr::new(127, 0, 0, 1);
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7F000001/",
            "http://127.1/",
            "http://127.0.1/",
            "http://0177.0.0.1/",
            "http://0177.1/",
            "http://017700000001/",
            "http://0x7f.0.0.1/",
            "http://127.0.0.1./",
            "http://0x7f.0x0.0x0.0x1/",
        ] {
            assert_eq!(v4(url), loopback, "{url}");
        }
        assert_eq!(
            v4("http://2852039166/latest"),
            Ipv4Addr::new(169, 254, 169, 254)
        );
        assert_eq!(v4("http://0xa9fea9fe/"), Ipv4Addr::new(169, 254, 169, 254));
        assert_eq!(v4("http://0/"), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(v4("http://0x/"), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(v4("http://10.1/"), Ipv4Addr::new(10, 0, 0, 1));
    }

    #[test]
    fn hosts_ending_in_a_number_that_are_not_addresses_are_refused() {
        for url in [
            "http://1.2.3.4.5/",
            "http://256.0.0.1/",
            "http://4294967296/",
            "http://127.0.0.256/",
            "http://127.16777216/",
            "http://09.0.0.1/",
            "http://0x7g.1/",
            "http://example.123/",
            "http://1..1/",
        ] {
            assert!(
                matches!(FetchUrl::parse(url), Err(UrlError::BadIpv4)),
                "{url}: {:?}",
                FetchUrl::parse(url)
            );
        }
        // A name whose last label merely starts with a digit is a name.
        assert_eq!(
            FetchUrl::parse("http://host.1a/").unwrap().host(),
            &Host::Name("host.1a".into())
        );
    }

    #[test]
    fn ipv6_hosts_in_brackets() {
        let url = FetchUrl::parse("http://[::ffff:127.0.0.1]:8080/x").unwrap();
        assert_eq!(
            url.host(),
            &Host::V6("::ffff:127.0.0.1".parse::<Ipv6Addr>().unwrap())
        );
        assert_eq!(url.port(), Some(8080));
        assert_eq!(url.host_header(), "[::ffff:127.0.0.1]:8080");
        assert_eq!(
            FetchUrl::parse("http://[fd00:ec2::254]/").unwrap().host(),
            &Host::V6("fd00:ec2::254".parse::<Ipv6Addr>().unwrap())
        );
        for bad in [
            "http://[::1/",
            "http://[::1]x/",
            "http://[fe80::1%25eth0]/",
            "http://[zz::1]/",
            "http://::1/",
        ] {
            assert!(FetchUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_lower_cased_and_checked() {
        let url = FetchUrl::parse("HTTP://Example.COM./a/b?x=1#frag").unwrap();
        assert_eq!(url.scheme(), "http");
        assert_eq!(url.host(), &Host::Name("example.com".into()));
        assert_eq!(url.path_and_query(), "/a/b?x=1");
        assert_eq!(url.effective_port(), Some(80));
        for bad in [
            "http://exa mple.com/",
            "http://exämple.com/",
            "http://ex%61mple.com/",
            "http://evil.com\\@127.0.0.1/",
            "http://a@b@127.0.0.1/",
            "http:///path",
            "http://host:0/",
            "http://host:65536/",
            "http://host:8o/",
            "http://a..b/",
            "example.com/path",
            "://host/",
        ] {
            assert!(FetchUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn userinfo_is_never_shown() {
        let url =
            FetchUrl::parse("https://alice:s3cr%40t@files.example:8443/img.qcow2?sig=abc").unwrap();
        assert_eq!(
            url.credentials(),
            Some(("alice".to_owned(), "s3cr@t".to_owned()))
        );
        let shown = format!("{url} {url:?}");
        assert!(
            !shown.contains("alice") && !shown.contains("s3cr"),
            "{shown}"
        );
        assert!(!shown.contains("sig=abc"), "{shown}");
        assert_eq!(url.to_string(), "https://files.example:8443/img.qcow2?…");
        // The last '@' ends the userinfo, as browsers read it; two are refused.
        assert_eq!(
            FetchUrl::parse("http://user:pa:ss@host/").unwrap().host(),
            &Host::Name("host".into())
        );
    }

    #[test]
    fn redirects_resolve_against_the_current_url() {
        let base = FetchUrl::parse("http://u:p@origin.example/a/b/c?q=1").unwrap();
        let join = |l: &str| base.join(l).unwrap();
        assert_eq!(join("/x").path_and_query(), "/x");
        assert_eq!(join("d").path_and_query(), "/a/b/d");
        assert_eq!(join("../d?z").path_and_query(), "/a/d?z");
        assert_eq!(join("?n=2").path_and_query(), "/a/b/c?n=2");
        assert_eq!(join("./").path_and_query(), "/a/b/");
        assert_eq!(join("/x").credentials(), base.credentials());
        let other = join("http://169.254.169.254/latest/meta-data/");
        assert_eq!(other.host(), &Host::V4(Ipv4Addr::new(169, 254, 169, 254)));
        assert_eq!(
            other.credentials(),
            None,
            "credentials leak to another host"
        );
        let scheme_relative = join("//2130706433/");
        assert_eq!(scheme_relative.host(), &Host::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(scheme_relative.scheme(), "http");
        assert!(base.join("http://a@b@c/").is_err());
    }
}
