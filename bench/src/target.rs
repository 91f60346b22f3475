//! The server under test, as the wire sees it: Glance's Image API v2 (glint, Glance) or plain
//! file URLs (nginx: `PUT`/`GET BASE/NAME`).

use std::io::Read;
use std::net::ToSocketAddrs as _;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use md5::{Digest as _, Md5};
use ureq::http;

use crate::Api;

/// Size of the buffer downloads are read into.
const READ_BUF: usize = 256 * 1024;

pub struct Target {
    base: String,
    api: Api,
    agent: ureq::Agent,
    headers: Vec<(String, String)>,
}

/// What one download brought back.
pub struct Fetched {
    pub status: u16,
    pub bytes: u64,
    /// md5 of the body, when asked for.
    pub md5: Option<String>,
}

/// Refuse a URL whose host is not loopback (every address it resolves to), unless allowed.
pub fn check_url(url: &str, allow_remote: bool) -> anyhow::Result<http::Uri> {
    let uri: http::Uri = url.parse().with_context(|| format!("--url {url:?}"))?;
    let scheme = uri.scheme_str().unwrap_or("");
    if scheme != "http" && scheme != "https" {
        bail!("--url {url:?}: only http:// and https:// URLs are supported");
    }
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("--url {url:?} has no host"))?;
    if allow_remote {
        return Ok(uri);
    }
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = (bare, port)
        .to_socket_addrs()
        .with_context(|| format!("resolve {host}"))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        bail!(
            "--url {url:?}: {host} is not a loopback address; load tests stay on this machine \
             unless --allow-remote is given"
        );
    }
    Ok(uri)
}

impl Target {
    pub fn new(
        base: &str,
        api: Api,
        timeout: Duration,
        headers: Vec<(String, String)>,
        connections: usize,
    ) -> Target {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(timeout))
                // One keep-alive connection per client thread.
                .max_idle_connections(connections.max(1))
                .max_idle_connections_per_host(connections.max(1))
                .build(),
        );
        Target {
            base: base.trim_end_matches('/').to_owned(),
            api,
            agent,
            headers,
        }
    }

    fn request(&self, method: &str, path: &str) -> http::request::Builder {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in &self.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        b
    }

    fn image_path(&self, id: &str) -> String {
        match self.api {
            Api::Images => format!("/v2/images/{id}"),
            Api::Files => format!("/{id}"),
        }
    }

    fn data_path(&self, id: &str) -> String {
        match self.api {
            Api::Images => format!("/v2/images/{id}/file"),
            Api::Files => format!("/{id}"),
        }
    }

    /// A new image record (Image API) or a new file name (files): the id to upload to.
    pub fn create(&self, name: &str) -> anyhow::Result<String> {
        if self.api == Api::Files {
            return Ok(format!("{name}.bin"));
        }
        let body = serde_json::json!({
            "name": name, "disk_format": "raw", "container_format": "bare",
        });
        let req = self
            .request("POST", "/v2/images")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body)?)?;
        let mut resp = self.agent.run(req).context("POST /v2/images")?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if status != 201 {
            bail!("POST /v2/images: HTTP {status}: {}", snippet(&text));
        }
        let v: serde_json::Value = serde_json::from_str(&text).context("POST /v2/images body")?;
        v["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("POST /v2/images: no id in {}", snippet(&text)))
    }

    /// Send `size` bytes of `payload` with a Content-Length. Returns the status and, when
    /// `hash` is set, the md5 of what was sent.
    pub fn upload(
        &self,
        id: &str,
        payload: &crate::payload::Payload,
        size: u64,
        hash: bool,
    ) -> anyhow::Result<(u16, Option<String>)> {
        let (reader, digest) = payload.reader(size, hash);
        let req = self
            .request("PUT", &self.data_path(id))
            .header("content-type", "application/octet-stream")
            .header("content-length", size.to_string())
            .body(ureq::SendBody::from_owned_reader(reader))?;
        let mut resp = self
            .agent
            .run(req)
            .with_context(|| format!("PUT {}", self.data_path(id)))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if !(200..300).contains(&status) {
            bail!(
                "PUT {}: HTTP {status}: {}",
                self.data_path(id),
                snippet(&text)
            );
        }
        Ok((status, digest.map(|d| d.hex())))
    }

    /// GET the data of `id`, reading (and optionally hashing) the whole body.
    pub fn download(&self, id: &str, hash: bool) -> anyhow::Result<Fetched> {
        let path = self.data_path(id);
        let req = self.request("GET", &path).body(())?;
        let mut resp = self.agent.run(req).with_context(|| format!("GET {path}"))?;
        let status = resp.status().as_u16();
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        let mut buf = vec![0u8; READ_BUF];
        let mut md5 = hash.then(Md5::new);
        let mut bytes = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("GET {path}: body after {bytes} bytes"))
                }
            };
            bytes += n as u64;
            if let Some(h) = md5.as_mut() {
                h.update(&buf[..n]);
            }
        }
        Ok(Fetched {
            status,
            bytes,
            md5: md5.map(|h| hex(&h.finalize())),
        })
    }

    /// GET one page of the image list. Returns the status, the body size and the number of
    /// images on the page.
    pub fn list(&self, limit: u32) -> anyhow::Result<(u16, u64, usize)> {
        if self.api == Api::Files {
            bail!("the list scenario needs the Image API (--api images)");
        }
        let path = format!("/v2/images?limit={limit}");
        let req = self.request("GET", &path).body(())?;
        let mut resp = self.agent.run(req).with_context(|| format!("GET {path}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()?;
        if status != 200 {
            bail!(
                "GET {path}: HTTP {status}: {}",
                snippet(&String::from_utf8_lossy(&body))
            );
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))?;
        let n = v["images"]
            .as_array()
            .ok_or_else(|| anyhow!("GET {path}: no `images` array"))?
            .len();
        Ok((status, body.len() as u64, n))
    }

    /// GET the record of image `id`; the body's size.
    pub fn show(&self, id: &str) -> anyhow::Result<u64> {
        if self.api == Api::Files {
            bail!("the show scenario needs the Image API (--api images)");
        }
        let path = self.image_path(id);
        let req = self.request("GET", &path).body(())?;
        let mut resp = self.agent.run(req).with_context(|| format!("GET {path}"))?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_vec()?;
        if status != 200 {
            bail!(
                "GET {path}: HTTP {status}: {}",
                snippet(&String::from_utf8_lossy(&body))
            );
        }
        Ok(body.len() as u64)
    }

    /// The `checksum` (md5) the Image API records for `id`, if any.
    pub fn recorded_md5(&self, id: &str) -> anyhow::Result<Option<String>> {
        if self.api == Api::Files {
            return Ok(None);
        }
        let path = self.image_path(id);
        let req = self.request("GET", &path).body(())?;
        let mut resp = self.agent.run(req).with_context(|| format!("GET {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if status != 200 {
            bail!("GET {path}: HTTP {status}: {}", snippet(&text));
        }
        let v: serde_json::Value = serde_json::from_str(&text)?;
        Ok(v["checksum"].as_str().map(str::to_owned))
    }

    /// Best effort: remove what the run created.
    pub fn delete(&self, id: &str) {
        if let Ok(req) = self.request("DELETE", &self.image_path(id)).body(()) {
            let _ = self.agent.run(req);
        }
    }
}

fn snippet(text: &str) -> String {
    text.chars()
        .take(200)
        .collect::<String>()
        .replace('\n', " ")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_pass() {
        for url in [
            "http://127.0.0.1:9292",
            "http://localhost:1/",
            "http://[::1]:8080/upload",
            "http://127.0.0.2",
        ] {
            check_url(url, false).unwrap_or_else(|e| panic!("{url}: {e:#}"));
        }
    }

    #[test]
    fn remote_urls_need_allow_remote() {
        for url in [
            "http://10.0.0.1:9292",
            "http://192.168.1.5/",
            "http://[2001:db8::1]:80",
        ] {
            let err = check_url(url, false).expect_err(url);
            assert!(format!("{err:#}").contains("--allow-remote"), "{err:#}");
            check_url(url, true).unwrap_or_else(|e| panic!("{url}: {e:#}"));
        }
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in ["ftp://127.0.0.1/", "127.0.0.1:9292", "http://", "not a url"] {
            assert!(check_url(url, true).is_err(), "{url}");
        }
    }
}
