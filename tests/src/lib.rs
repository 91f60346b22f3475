//! Harness for glint's end-to-end tests.
//!
//! [`TestServer`] starts the real `glint` binary on an ephemeral loopback port with its own
//! temporary data directory, and offers small blocking HTTP helpers to drive it (ureq 3 for
//! ordinary requests, [`raw`] for what an HTTP library will not send: a body on GET, several
//! ranges, half-sent uploads). The server is stopped (SIGTERM, then SIGKILL after a deadline)
//! and its directory removed when the `TestServer` is dropped.
//!
//! It deliberately knows nothing of glint's internals: it only speaks HTTP and looks at the
//! data directory layout the server documents (`meta.redb`, `images/<id>`,
//! `images/<id>.part`).
//!
//! ```no_run
//! use glint_tests::TestServer;
//! use serde_json::json;
//!
//! let srv = TestServer::start();
//! let image = srv.create_image(json!({"disk_format": "raw", "container_format": "bare"}));
//! let id = image["id"].as_str().unwrap();
//! srv.upload(id, b"hello").expect_status(204);
//! assert_eq!(srv.download(id).expect_status(200).body, b"hello");
//! ```

pub mod fake_keystone;
pub mod origin;
pub mod pg;
pub mod raw;
pub mod rgw;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::http;

/// How long the server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound for one HTTP exchange (a 64 MiB upload in a debug build included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The PATCH media type of the RFC 6902 dialect (API 2.1).
pub const PATCH_V21: &str = "application/openstack-images-v2.1-json-patch";
/// The PATCH media type of the deprecated draft-04 dialect (API 2.0).
pub const PATCH_V20: &str = "application/openstack-images-v2.0-json-patch";

/// Path of the `glint` binary under test: `$GLINT_BIN`, else the newer of
/// `<workspace>/target/{debug,release}/glint`.
pub fn glint_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("GLINT_BIN") {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "GLINT_BIN={} is not a file", bin.display());
        return bin;
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let candidates = ["debug", "release"].map(|profile| target.join(profile).join("glint"));
    candidates
        .iter()
        .filter_map(|p| mtime(p).map(|t| (t, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| {
            panic!(
                "no glint binary in {}/{{debug,release}}: run `cargo build -p gateway` first \
                 (or set GLINT_BIN)",
                target.display()
            )
        })
}

/// A running `glint serve` with its own temporary data directory.
pub struct TestServer {
    /// Holds the data dir, the config file and the server log; removed on drop.
    root: tempfile::TempDir,
    config: Option<PathBuf>,
    envs: Vec<(String, String)>,
    no_subcommand: bool,
    /// The data dir is a tmpfs mount of this test's, unmounted on drop.
    mounted: bool,
    child: Option<Child>,
    addr: SocketAddr,
    agent: ureq::Agent,
}

/// Options for [`TestServer`] beyond the defaults.
#[derive(Default)]
pub struct ServerBuilder {
    config_toml: Option<String>,
    envs: Vec<(String, String)>,
    no_subcommand: bool,
    tmpfs_bytes: Option<u64>,
    parent_dir: Option<PathBuf>,
    shared_images: Option<PathBuf>,
}

impl ServerBuilder {
    /// Start with this TOML config file (`--config`).
    pub fn config(mut self, toml: &str) -> Self {
        self.config_toml = Some(toml.to_owned());
        self
    }

    /// Set an environment variable for the server process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Start `glint --listen …` without the `serve` subcommand (serve is the default).
    pub fn without_serve_subcommand(mut self) -> Self {
        self.no_subcommand = true;
        self
    }

    /// Put the data dir on its own tmpfs of `bytes` (a small disk to fill). Needs the right to
    /// mount (root); check with [`can_mount_tmpfs`] first.
    pub fn tmpfs_data_dir(mut self, bytes: u64) -> Self {
        self.tmpfs_bytes = Some(bytes);
        self
    }

    /// Make `<data>/images` (the file store) a link to `dir`, shared with other servers (the
    /// file store on a shared file system, for tests of several gateways).
    pub fn shared_images(mut self, dir: &Path) -> Self {
        self.shared_images = Some(dir.to_owned());
        self
    }

    /// Make the server's temporary folder (data dir included) inside `dir` instead of the
    /// system's temporary folder (for a test that needs a particular file system).
    pub fn dir_in(mut self, dir: &Path) -> Self {
        self.parent_dir = Some(dir.to_owned());
        self
    }

    pub fn start(self) -> TestServer {
        let mut root = tempfile::Builder::new();
        root.prefix("glint-test-");
        let root = match &self.parent_dir {
            Some(dir) => root.tempdir_in(dir),
            None => root.tempdir(),
        }
        .expect("create temp dir");
        std::fs::create_dir(root.path().join("data")).expect("create data dir");
        if let Some(bytes) = self.tmpfs_bytes {
            mount_tmpfs(&root.path().join("data"), bytes)
                .unwrap_or_else(|e| panic!("mount a tmpfs data dir: {e}"));
        }
        if let Some(shared) = &self.shared_images {
            std::os::unix::fs::symlink(shared, root.path().join("data").join("images"))
                .expect("link the shared images folder");
        }
        let config = self.config_toml.map(|toml| {
            let path = root.path().join("glint.toml");
            std::fs::write(&path, toml).expect("write config file");
            path
        });
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                // Accept is set per request (default `*/*`, as glanceclient sends).
                .accept("")
                // A fresh connection per request: a server that closes after an error
                // must not make the next request fail on a stale pooled socket.
                .max_idle_connections(0)
                .max_idle_connections_per_host(0)
                .timeout_global(Some(REQUEST_TIMEOUT))
                .build(),
        );
        let mut srv = TestServer {
            root,
            config,
            envs: self.envs,
            no_subcommand: self.no_subcommand,
            mounted: self.tmpfs_bytes.is_some(),
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            agent,
        };
        srv.spawn();
        srv
    }
}

impl TestServer {
    /// A server with the default configuration.
    pub fn start() -> TestServer {
        ServerBuilder::default().start()
    }

    /// A server started with `--config` pointing at this TOML.
    pub fn start_with_config(toml: &str) -> TestServer {
        ServerBuilder::default().config(toml).start()
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The `--config` file, when the server was started with one (tests may rewrite it and
    /// send SIGHUP).
    pub fn config_file(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    /// The file an active image's data lives in.
    pub fn image_file(&self, id: &str) -> PathBuf {
        self.data_dir().join("images").join(id)
    }

    /// The partial file of an upload of image `id` in progress (`<id>.<nonce>.part`), if any.
    pub fn part_file(&self, id: &str) -> Option<PathBuf> {
        let prefix = format!("{id}.");
        self.part_files().into_iter().find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
    }

    /// Every `*.part` file under `images/`.
    pub fn part_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.data_dir().join("images")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "part"))
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("glint.log")
    }

    /// The last `n` lines the server wrote to stderr (for failure messages).
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        let mut cmd = Command::new(glint_bin());
        if !self.no_subcommand {
            cmd.arg("serve");
        }
        cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.data_dir());
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        // GLINT_BIN is the harness's own variable, not server configuration.
        cmd.env_remove("GLINT_BIN");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", glint_bin().display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Reads the ready line, then keeps draining stdout so the server never blocks on it.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(url) = line.strip_prefix("listening on http://") {
                        sent = tx.send(url.trim().to_owned()).is_ok();
                    }
                }
            }
        });
        let ready = rx.recv_timeout(START_TIMEOUT);
        self.child = Some(child);
        match ready {
            Ok(addr) => {
                self.addr = addr
                    .parse()
                    .unwrap_or_else(|e| panic!("bad address in `listening on {addr}`: {e}"));
            }
            Err(e) => {
                let status = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                panic!(
                    "glint did not print `listening on http://...` ({e:?}; exit status {status:?}); \
                     log:\n{}",
                    self.log_tail(40)
                );
            }
        }
    }

    /// SIGTERM and wait for the exit (SIGKILL after a deadline). Returns the exit status, or
    /// `None` if the server had already been stopped.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.stop_with(libc::SIGTERM)
    }

    /// Like [`TestServer::stop`], with another signal (e.g. `libc::SIGINT`).
    pub fn stop_with(&mut self, sig: libc::c_int) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        signal(&child, sig);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = child.kill();
                    return child.wait().ok();
                }
            }
        }
    }

    /// Stop cleanly, then start again on the same data dir and config (new port).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// `kill -9` the server and reap it; call [`TestServer::start_again`] afterwards.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same data dir (after [`TestServer::kill9`] or
    /// [`TestServer::stop`]).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server is still running");
        self.spawn();
    }

    // ----- HTTP -----

    /// A request to `path` (which starts with `/`), sent with `Accept: */*` unless changed.
    pub fn request(&self, method: &str, path: &str) -> Req<'_> {
        Req {
            srv: self,
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: ReqBody::None,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path).send()
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.request("DELETE", path).send()
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.request("POST", path).json(body).send()
    }

    /// POST without a body (`Content-Length: 0`).
    pub fn post_empty(&self, path: &str) -> Resp {
        self.request("POST", path).send()
    }

    /// GET, assert 200, parse JSON.
    pub fn get_json(&self, path: &str) -> Value {
        self.get(path).expect_status(200).json()
    }

    /// POST /v2/images, assert 201, return the image.
    pub fn create_image(&self, body: Value) -> Value {
        self.post_json("/v2/images", &body)
            .expect_status(201)
            .json()
    }

    /// Create an image with `disk_format=raw`, `container_format=bare` (plus `extra` keys)
    /// and return its id.
    pub fn create_raw_image(&self, extra: Value) -> String {
        let mut body = serde_json::json!({"disk_format": "raw", "container_format": "bare"});
        if let Value::Object(extra) = extra {
            body.as_object_mut().expect("object").extend(extra);
        }
        id_of(&self.create_image(body))
    }

    /// Create a raw/bare image, upload `data`, assert 204, return the id.
    pub fn create_active_image(&self, extra: Value, data: &[u8]) -> String {
        let id = self.create_raw_image(extra);
        self.upload(&id, data).expect_status(204);
        id
    }

    /// GET /v2/images/{id}, assert 200.
    pub fn image(&self, id: &str) -> Value {
        self.get_json(&format!("/v2/images/{id}"))
    }

    /// PUT /v2/images/{id}/file with `Content-Type: application/octet-stream` and
    /// `Content-Length`.
    pub fn upload(&self, id: &str, data: &[u8]) -> Resp {
        self.request("PUT", &format!("/v2/images/{id}/file"))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
    }

    /// Same as [`TestServer::upload`], with a chunked body.
    pub fn upload_chunked(&self, id: &str, data: &[u8]) -> Resp {
        self.request("PUT", &format!("/v2/images/{id}/file"))
            .header("content-type", "application/octet-stream")
            .chunked(data.to_vec())
            .send()
    }

    /// Upload over a raw socket, writing the body from another thread while the response is
    /// read: for uploads the server may refuse before it has read the whole body (a 413 or
    /// 415 sent early), which a client that insists on writing everything first would miss.
    pub fn upload_streaming(&self, id: &str, data: &[u8], chunked: bool) -> Resp {
        let path = format!("/v2/images/{id}/file");
        let len = data.len().to_string();
        let framing = if chunked {
            ("Transfer-Encoding", "chunked")
        } else {
            ("Content-Length", len.as_str())
        };
        let mut request = raw::head(
            "PUT",
            &path,
            &[
                ("Content-Type", "application/octet-stream"),
                framing,
                ("Connection", "close"),
            ],
        );
        if chunked {
            request.extend(raw::chunked_body(data, 1 << 20));
        } else {
            request.extend_from_slice(data);
        }
        let mut conn = self.connect();
        let mut writer = conn.writer();
        let sender = std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = writer.write_all(&request);
        });
        let mut resp = conn.read_response_to(&format!("PUT {path} (streaming)"), false);
        drop(conn);
        let _ = sender.join();
        resp.what = format!("PUT {path}");
        resp
    }

    /// GET /v2/images/{id}/file.
    pub fn download(&self, id: &str) -> Resp {
        self.get(&format!("/v2/images/{id}/file"))
    }

    /// PATCH /v2/images/{id} in the 2.1 dialect.
    pub fn patch(&self, id: &str, ops: Value) -> Resp {
        self.request("PATCH", &format!("/v2/images/{id}"))
            .header("content-type", PATCH_V21)
            .body(serde_json::to_vec(&ops).expect("serialize"))
            .send()
    }

    /// GET /v2/images with this query string (without `?`), assert 200.
    pub fn list(&self, query: &str) -> Value {
        if query.is_empty() {
            self.get_json("/v2/images")
        } else {
            self.get_json(&format!("/v2/images?{query}"))
        }
    }

    /// Ids of the images in one list page.
    pub fn list_ids(&self, query: &str) -> Vec<String> {
        ids_of(&self.list(query))
    }

    /// Follow `next` links from `/v2/images?{query}` to the end; every id in order.
    pub fn list_all_ids(&self, query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut path = if query.is_empty() {
            "/v2/images".to_owned()
        } else {
            format!("/v2/images?{query}")
        };
        for _ in 0..10_000 {
            let page = self.get_json(&path);
            ids.extend(ids_of(&page));
            match page.get("next").and_then(Value::as_str) {
                Some(next) => path = next.to_owned(),
                None => return ids,
            }
        }
        panic!("more than 10000 pages following next from {query}");
    }

    /// Poll GET /v2/images/{id} until `status` matches (deadline 30 s).
    pub fn wait_for_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let image = self.image(id);
            if image["status"] == status {
                return image;
            }
            assert!(
                Instant::now() < deadline,
                "image {id} did not become {status}: {image}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Open a raw TCP connection to the server.
    pub fn connect(&self) -> raw::Conn {
        raw::Conn::connect(self.addr)
    }

    /// Send these exact request bytes on a new connection and read one response.
    pub fn raw(&self, request: &[u8]) -> Resp {
        let mut conn = self.connect();
        conn.send(request);
        conn.read_response()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        if self.mounted {
            unmount(&self.data_dir());
        }
        if std::thread::panicking() {
            eprintln!(
                "--- glint log ({}) ---\n{}",
                self.log_path().display(),
                self.log_tail(60)
            );
        }
    }
}

fn mount_tmpfs(dir: &Path, bytes: u64) -> Result<(), String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount -t tmpfs on {}: {}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn unmount(dir: &Path) {
    let ok = Command::new("umount")
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        // Something still holds it: detach it now, the kernel frees it when released.
        let _ = Command::new("umount").arg("-l").arg(dir).status();
    }
}

/// Whether this process may mount a tmpfs (the full-disk tests need it): mounts and unmounts
/// a tiny one. `Err` says why not.
pub fn can_mount_tmpfs() -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("glint-mount-probe-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    mount_tmpfs(dir.path(), 1 << 20)?;
    unmount(dir.path());
    Ok(())
}

/// Bytes available to an unprivileged writer on the file system holding `path`.
pub fn free_bytes(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in path");
    // SAFETY: statvfs(3) writes into the zeroed struct we pass; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        assert_eq!(
            libc::statvfs(c_path.as_ptr(), &mut st),
            0,
            "statvfs {}",
            path.display()
        );
        st.f_bavail * st.f_frsize
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own unreaped child,
    // so it cannot have been recycled for another process.
    unsafe {
        libc::kill(pid, sig);
    }
}

enum ReqBody {
    None,
    Sized(Vec<u8>),
    Chunked(Vec<u8>),
}

/// A request being built; see [`TestServer::request`].
pub struct Req<'a> {
    srv: &'a TestServer,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: ReqBody,
}

impl Req<'_> {
    /// Add a header. `accept` replaces the default `*/*`; an empty value means "don't send".
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Send no `Accept` header at all.
    pub fn no_accept(self) -> Self {
        self.header("accept", "")
    }

    /// A body sent with `Content-Length`.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = ReqBody::Sized(body.into());
        self
    }

    /// A body sent with `Transfer-Encoding: chunked`.
    pub fn chunked(mut self, body: Vec<u8>) -> Self {
        self.body = ReqBody::Chunked(body);
        self
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(self, value: &Value) -> Self {
        let bytes = serde_json::to_vec(value).expect("serialize");
        self.header("content-type", "application/json").body(bytes)
    }

    pub fn send(self) -> Resp {
        let (method, path) = (self.method.clone(), self.path.clone());
        let srv = self.srv;
        self.try_send().unwrap_or_else(|e| {
            panic!(
                "{method} {path} failed: {e}; server log:\n{}",
                srv.log_tail(20)
            )
        })
    }

    /// Like [`Req::send`], but a transport failure (refused, reset, cut short: the server
    /// was killed) is returned instead of panicking.
    pub fn try_send(self) -> Result<Resp, String> {
        let url = format!("{}{}", self.srv.url(), self.path);
        let mut builder = http::Request::builder()
            .method(self.method.as_str())
            .uri(&url);
        let sends_accept = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"));
        if !sends_accept {
            builder = builder.header("accept", "*/*");
        }
        for (k, v) in &self.headers {
            if !v.is_empty() {
                builder = builder.header(k.as_str(), v.as_str());
            }
        }
        let (parts, ()) = builder.body(()).expect("valid request").into_parts();
        // ureq frames a body-less POST/PUT/PATCH as an empty chunked body, which the API
        // rightly refuses on body-less routes (§2.3); send `Content-Length: 0` instead, as
        // python-requests (glanceclient, openstacksdk) does.
        let body = match self.body {
            ReqBody::None if matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") => {
                ReqBody::Sized(Vec::new())
            }
            body => body,
        };
        let result = match body {
            ReqBody::None => self
                .srv
                .agent
                .run(http::Request::from_parts(parts, ureq::SendBody::none())),
            ReqBody::Sized(bytes) => self.srv.agent.run(http::Request::from_parts(parts, bytes)),
            ReqBody::Chunked(bytes) => self.srv.agent.run(http::Request::from_parts(
                parts,
                ureq::SendBody::from_owned_reader(ChunkReader::new(bytes)),
            )),
        };
        let mut response = result.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| format!("reading body: {e}"))?;
        Ok(Resp {
            what: format!("{} {}", self.method, self.path),
            status,
            headers,
            body,
        })
    }
}

/// Hands the body to ureq in 64 KiB reads, so chunked uploads arrive as several chunks.
struct ChunkReader {
    inner: Cursor<Vec<u8>>,
}

impl ChunkReader {
    fn new(bytes: Vec<u8>) -> Self {
        ChunkReader {
            inner: Cursor::new(bytes),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(64 * 1024);
        self.inner.read(&mut buf[..n])
    }
}

/// A complete response: status, headers (names lower-cased) and body.
#[derive(Clone)]
pub struct Resp {
    /// `METHOD path`, for failure messages.
    pub what: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = format!("{} -> {}\n", self.what, self.status);
        for (k, v) in &self.headers {
            let _ = writeln!(s, "{k}: {v}");
        }
        let text = String::from_utf8_lossy(&self.body);
        let shown: String = text.chars().take(2000).collect();
        let _ = write!(s, "\n{shown}");
        f.write_str(&s)
    }
}

impl Resp {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The media type of `Content-Type`, without parameters, lower-cased.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// Panic (showing the response) unless the status is `status`.
    #[track_caller]
    pub fn expect_status(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {self:?}",
            self.status
        );
        self
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {self:?}"))
    }
}

/// The `id` of an image body.
#[track_caller]
pub fn id_of(image: &Value) -> String {
    image["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {image}"))
        .to_owned()
}

/// The ids of a list page, in order.
#[track_caller]
pub fn ids_of(page: &Value) -> Vec<String> {
    page["images"]
        .as_array()
        .unwrap_or_else(|| panic!("no images array in {page}"))
        .iter()
        .map(id_of)
        .collect()
}

/// Lower-case hex MD5.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex(&md5::Md5::digest(data))
}

/// Lower-case hex digest with one of glint's `hashing_algorithm` names that the test
/// crate knows (`md5`, `sha256`, `sha384`, `sha512`).
pub fn digest_hex(algo: &str, data: &[u8]) -> String {
    use sha2::Digest;
    match algo {
        "md5" => md5_hex(data),
        "sha256" => hex(&sha2::Sha256::digest(data)),
        "sha384" => hex(&sha2::Sha384::digest(data)),
        "sha512" => hex(&sha2::Sha512::digest(data)),
        other => panic!("digest_hex: unknown algorithm {other}"),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `len` pseudo-random bytes, the same for the same `seed` (xorshift64*).
///
/// Bytes 510..512 are never `55 AA`: with that MBR signature, random data would be detected
/// as a partitioned disk (`gpt`) by format inspection instead of `raw`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    if out.get(510..512) == Some(&[0x55, 0xAA]) {
        out[511] = 0;
    }
    out
}

/// Percent-encode a query value (everything but unreserved characters).
pub fn urlencode(s: &str) -> String {
    s.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

/// Poll `f` until it returns `Some`, or panic with `what` after `timeout`.
#[track_caller]
pub fn poll_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
