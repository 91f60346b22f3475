//! A stand-in for Keystone v3's token API, for end-to-end tests of glint's `keystone` auth
//! that need to count and steer what Keystone sees (validations per token, outages, a revoked
//! service token). The real Keystone drives `tests/e2e/keystone.sh`; this one answers only
//! what glint asks:
//!
//! - `POST /v3/auth/tokens` (password, project scope by name): the service user's login;
//!   `201` with `X-Subject-Token`.
//! - `GET /v3/auth/tokens` with `X-Auth-Token` (a service token it issued) and
//!   `X-Subject-Token`: `200` with the token body, `404` for an unknown or expired subject,
//!   `401` for an unknown service token — Keystone's answers. Without `?nocatalog` the body
//!   carries the service catalog ([`FakeKeystone::add_image_endpoint`]), as Keystone's does.
//!
//! One request per connection (`Connection: close`), on a thread per connection.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

/// The service user glint is configured with.
pub const SERVICE_USER: &str = "glance";
/// Its password.
pub const SERVICE_PASSWORD: &str = "glance-secret";

/// A token the fake knows.
#[derive(Clone)]
struct Token {
    user: String,
    project: Option<String>,
    domain: Option<String>,
    system: bool,
    roles: Vec<String>,
    expires_at: SystemTime,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, Token>,
    validations: HashMap<String, usize>,
    service_tokens: Vec<String>,
    logins: usize,
    next: u64,
    /// `image` endpoints: (region, interface, url).
    image_endpoints: Vec<(String, String, String)>,
    /// Validations that asked for the catalog.
    catalog_requests: usize,
}

/// A running fake Keystone on 127.0.0.1; stops accepting when dropped.
pub struct FakeKeystone {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    down: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

impl FakeKeystone {
    pub fn start() -> FakeKeystone {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake keystone");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let down = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (st, dn, rq) = (state.clone(), down.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if dn.load(Ordering::SeqCst) {
                    // An outage: the connection is dropped unanswered.
                    drop(stream);
                    continue;
                }
                rq.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                std::thread::spawn(move || serve(stream, &st));
            }
        });
        FakeKeystone {
            addr,
            state,
            down,
            requests,
        }
    }

    /// `http://127.0.0.1:PORT/v3`.
    pub fn url(&self) -> String {
        format!("http://{}/v3", self.addr)
    }

    /// The glint config that validates tokens with this Keystone.
    pub fn glint_config(&self) -> String {
        format!(
            "[auth]\nstrategy = \"keystone\"\n\n[keystone_authtoken]\nauth_url = \"{}\"\n\
             username = \"{SERVICE_USER}\"\npassword = \"{SERVICE_PASSWORD}\"\n\
             project_name = \"service\"\nwww_authenticate_uri = \"{}\"\n",
            self.url(),
            self.url()
        )
    }

    /// Issues a project-scoped token for `user` in `project` with `roles`, valid for `ttl`.
    pub fn issue(&self, user: &str, project: &str, roles: &[&str], ttl: Duration) -> String {
        self.add(Token {
            user: user.into(),
            project: Some(project.into()),
            domain: None,
            system: false,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            expires_at: SystemTime::now() + ttl,
        })
    }

    /// Issues a system-scoped token (no project), as `openstack --os-system-scope all` gets.
    pub fn issue_system(&self, user: &str, roles: &[&str]) -> String {
        self.add(Token {
            user: user.into(),
            project: None,
            domain: None,
            system: true,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            expires_at: SystemTime::now() + Duration::from_secs(3600),
        })
    }

    /// Issues a token scoped to `domain` (no project), as `openstack --os-domain-name` gets.
    pub fn issue_domain(&self, user: &str, domain: &str, roles: &[&str]) -> String {
        self.add(Token {
            user: user.into(),
            project: None,
            domain: Some(domain.into()),
            system: false,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            expires_at: SystemTime::now() + Duration::from_secs(3600),
        })
    }

    /// Issues an unscoped token: a user, no scope and so no roles.
    pub fn issue_unscoped(&self, user: &str) -> String {
        self.add(Token {
            user: user.into(),
            project: None,
            domain: None,
            system: false,
            roles: Vec::new(),
            expires_at: SystemTime::now() + Duration::from_secs(3600),
        })
    }

    fn add(&self, token: Token) -> String {
        let mut st = self.state.lock().expect("state");
        st.next += 1;
        let id = format!("gAAAA-fake-{}-{}", st.next, token.user);
        st.tokens.insert(id.clone(), token);
        id
    }

    /// How many times `token` was validated (`GET /v3/auth/tokens` with it as subject).
    pub fn validations(&self, token: &str) -> usize {
        let st = self.state.lock().expect("state");
        st.validations.get(token).copied().unwrap_or(0)
    }

    /// How many times the service user logged in.
    pub fn logins(&self) -> usize {
        self.state.lock().expect("state").logins
    }

    /// Revokes every service token issued so far (glint must log in again).
    pub fn revoke_service_tokens(&self) {
        let mut st = self.state.lock().expect("state");
        let revoked = std::mem::take(&mut st.service_tokens);
        for t in revoked {
            st.tokens.remove(&t);
        }
    }

    /// Revokes one token.
    pub fn revoke(&self, token: &str) {
        self.state.lock().expect("state").tokens.remove(token);
    }

    /// While `true`, connections are closed unanswered, as with Keystone down.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Adds an `image` service endpoint to every token's catalog.
    pub fn add_image_endpoint(&self, region: &str, interface: &str, url: &str) {
        self.state.lock().expect("state").image_endpoints.push((
            region.into(),
            interface.into(),
            url.into(),
        ));
    }

    /// How many validations asked for the catalog (no `?nocatalog`).
    pub fn catalog_requests(&self) -> usize {
        self.state.lock().expect("state").catalog_requests
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (path, query) = path.split_once('?').unwrap_or((path.as_str(), ""));
    let with_catalog = !query.split('&').any(|q| q == "nocatalog");
    let (status, extra, body) = match (method.as_str(), path) {
        ("POST", "/v3/auth/tokens") => login(state, &body),
        ("GET", "/v3/auth/tokens") => validate(state, &headers, with_catalog),
        _ => (404, Vec::new(), json!({"error": {"code": 404}})),
    };
    let body = body.to_string();
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    let mut stream = reader.into_inner();
    let _ = stream.write_all(out.as_bytes());
}

fn login(state: &Mutex<State>, body: &[u8]) -> (u16, Vec<(String, String)>, Value) {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return (400, Vec::new(), json!({}));
    };
    let user = &req["auth"]["identity"]["password"]["user"];
    let project = req["auth"]["scope"]["project"]["name"].as_str();
    if user["name"] != SERVICE_USER
        || user["password"] != SERVICE_PASSWORD
        || project != Some("service")
    {
        return (401, Vec::new(), json!({"error": {"code": 401}}));
    }
    let token = Token {
        user: SERVICE_USER.into(),
        project: Some("service".into()),
        domain: None,
        system: false,
        roles: vec!["admin".into(), "service".into()],
        expires_at: SystemTime::now() + Duration::from_secs(3600),
    };
    let mut st = state.lock().expect("state");
    st.logins += 1;
    st.next += 1;
    let id = format!("gAAAA-service-{}", st.next);
    st.tokens.insert(id.clone(), token.clone());
    st.service_tokens.push(id.clone());
    (201, vec![("X-Subject-Token".into(), id)], body_of(&token))
}

fn validate(
    state: &Mutex<State>,
    headers: &HashMap<String, String>,
    with_catalog: bool,
) -> (u16, Vec<(String, String)>, Value) {
    let mut st = state.lock().expect("state");
    let service_ok = headers
        .get("x-auth-token")
        .is_some_and(|t| st.service_tokens.contains(t) && st.tokens.contains_key(t));
    if !service_ok {
        return (401, Vec::new(), json!({"error": {"code": 401}}));
    }
    let subject = headers.get("x-subject-token").cloned().unwrap_or_default();
    *st.validations.entry(subject.clone()).or_default() += 1;
    if with_catalog {
        st.catalog_requests += 1;
    }
    match st.tokens.get(&subject) {
        Some(t) if t.expires_at > SystemTime::now() => {
            let mut body = body_of(t);
            if with_catalog {
                let endpoints: Vec<Value> = st
                    .image_endpoints
                    .iter()
                    .enumerate()
                    .map(|(i, (region, interface, url))| {
                        json!({"id": format!("ep-{i}"), "interface": interface,
                               "region_id": region, "region": region, "url": url})
                    })
                    .collect();
                body["token"]["catalog"] = json!([
                    {"type": "identity", "name": "keystone", "id": "svc-keystone",
                     "endpoints": []},
                    {"type": "image", "name": "glance", "id": "svc-glance",
                     "endpoints": endpoints}
                ]);
            }
            (200, Vec::new(), body)
        }
        _ => (404, Vec::new(), json!({"error": {"code": 404}})),
    }
}

fn body_of(t: &Token) -> Value {
    let expires: time::OffsetDateTime = t.expires_at.into();
    let expires = expires
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format time");
    let mut token = json!({
        "methods": ["password"],
        "user": {"id": format!("{}-id", t.user), "name": t.user,
                 "domain": {"id": "default", "name": "Default"}},
        "expires_at": expires,
        "issued_at": "2026-11-27T00:00:00.000000Z",
        "audit_ids": ["fake"],
        "roles": t.roles.iter().map(|r| json!({"id": format!("{r}-id"), "name": r}))
            .collect::<Vec<_>>(),
    });
    if let Some(p) = &t.project {
        token["project"] =
            json!({"id": p, "name": p, "domain": {"id": "default", "name": "Default"}});
    }
    if let Some(d) = &t.domain {
        token["domain"] = json!({"id": d, "name": d});
    }
    if t.system {
        token["system"] = json!({"all": true});
    }
    json!({ "token": token })
}
