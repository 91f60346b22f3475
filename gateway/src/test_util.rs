//! Helpers for unit tests.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread, parking while it waits (for futures woken
/// from other threads: the hashing pool, the timer).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

/// An [`crate::app::App`] on a temporary folder (kept alive by the returned guard), for
/// handler tests that call handlers directly with crafted contexts. Built as the server
/// builds it, with one hashing thread.
pub fn test_app(config: crate::config::Config) -> (tempfile::TempDir, crate::app::App) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = crate::config::Config {
        data_dir: dir.path().to_owned(),
        ..config
    };
    let app = crate::app::App::build(config, 1).expect("build the app");
    (dir, app)
}

/// A project-scoped context with `roles` (given as Keystone would: lower-case names).
pub fn project_ctx(project: &str, roles: &[&str]) -> crate::context::RequestContext {
    crate::context::RequestContext {
        project_id: Some(project.to_owned()),
        domain_id: None,
        system_scope: None,
        project_domain_id: Some("default".to_owned()),
        user_id: Some(format!("user-of-{project}")),
        user_domain_id: Some("default".to_owned()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        service_roles: Vec::new(),
        is_admin: roles.contains(&"admin"),
        request_id: "req-test".to_owned(),
    }
}

/// The context of a token without a project, with `roles` (as Keystone gives them):
/// system-scoped (`all`), domain-scoped (`default`), or unscoped for `TokenScope::Project`.
pub fn projectless_ctx(
    scope: crate::context::TokenScope,
    roles: &[&str],
) -> crate::context::RequestContext {
    use crate::context::TokenScope;
    crate::context::RequestContext {
        project_id: None,
        domain_id: (scope == TokenScope::Domain).then(|| "default".to_owned()),
        system_scope: (scope == TokenScope::System).then(|| "all".to_owned()),
        project_domain_id: None,
        ..project_ctx("unused", roles)
    }
}

/// The JSON body of a handler's response.
pub fn json_body(response: &http::Response<crate::body::Body>) -> serde_json::Value {
    match response.body() {
        crate::body::Body::Full(Some(bytes)) => serde_json::from_slice(bytes).expect("JSON body"),
        _ => serde_json::Value::Null,
    }
}
