//! The route table: every operation glint answers, once. Routing (`router`), the route
//! templates in logs, the `route` label of the request metrics, and whether a request may
//! carry a body all derive from [`ROUTES`]; so does the test that requests every route.
//!
//! Adding an operation is one entry:
//!
//! ```text
//! Route {
//!     methods: &[Method::GET],
//!     template: "/v2/images/{id}/tasks",     // `{name}` parameters; `/v2` = every version
//!     body: BodyRule::None,                  // None (400 if sent) | Ignored | Json | Stream
//!     handler: Handler::Authed(|app, call| {
//!         Box::pin(async move { tasks::list(app, call.ctx, call.param("id")).await })
//!     }),
//! },
//! ```
//!
//! `Handler::Public` routes are answered ahead of authentication (versions, health, metrics,
//! as Glance's pipeline does); `Handler::Authed` ones get the caller's [`RequestContext`]
//! and, for `BodyRule::Json`, the body read (at most 1 MiB). A body on a `BodyRule::None`
//! route is refused after authentication, where Glance's resource refuses it.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;

use crate::body::RequestBody;
use bytes::Bytes;
use http::header::HeaderValue;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};

use crate::app::App;
use crate::body::Body;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::handlers::metadefs::{self as md, Content};
use crate::handlers::{
    self, cache, image_data, images, import, info, list, locations, members, patch, schemas,
    stores, tags, tasks, versions,
};
use crate::router::{self, Params, RouteSpec, Routed};

/// The `route` label of requests that matched no route (404, 405, a bad parameter).
pub const UNMATCHED: &str = "unmatched";

/// One operation.
pub struct Route {
    /// The methods it answers (a `HEAD` is listed where Glance answers one).
    pub methods: &'static [Method],
    /// Its path template (see `router`).
    pub template: &'static str,
    /// What the request may carry.
    pub body: BodyRule,
    /// What answers it.
    pub handler: Handler,
}

/// What a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// Nothing: a body is refused with 400 (the routes Glance's v2 router marks
    /// `body_reject`).
    None,
    /// Nothing read: a body is ignored, as Glance ignores it where its router does not refuse
    /// one (the image list, `/v2/info/usage`) and outside that router (the version documents,
    /// `/healthcheck`; `/metrics` alike). It is left unread: hyper drains what has arrived.
    Ignored,
    /// A JSON document, read whole (at most 1 MiB) before the handler runs.
    Json,
    /// A stream the handler reads itself (image data).
    Stream,
}

/// A handler's answer.
pub type Reply<'a> = Pin<Box<dyn Future<Output = Result<Response<Body>, ApiError>> + 'a>>;

/// What answers a route.
pub enum Handler {
    /// Answered ahead of authentication, from the request head.
    Public(for<'a> fn(&'a App, &'a Parts) -> Reply<'a>),
    /// Answered for an authenticated caller.
    Authed(for<'a> fn(&'a App, Call<'a>) -> Reply<'a>),
}

/// An authenticated request, as its handler gets it.
pub struct Call<'a> {
    /// Who is asking.
    pub ctx: &'a RequestContext,
    /// The path parameters.
    pub params: Params,
    /// Method, URI and headers.
    pub parts: Parts,
    /// The body, as the route's [`BodyRule`] says.
    pub body: CallBody,
}

/// A request body, as the route's [`BodyRule`] says.
pub enum CallBody {
    /// None allowed.
    None,
    /// The JSON document, read.
    Json(Bytes),
    /// The stream, unread.
    Stream(RequestBody),
}

impl Call<'_> {
    /// The path parameter `name`.
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name)
    }

    /// The path parameter `name`, owned.
    pub fn take_param(&mut self, name: &str) -> String {
        self.params.take(name)
    }

    /// The JSON body (`BodyRule::Json` routes; empty otherwise).
    pub fn json(&self) -> &[u8] {
        match &self.body {
            CallBody::Json(bytes) => bytes,
            _ => &[],
        }
    }

    /// The request with its unread body (`BodyRule::Stream` routes).
    pub fn into_request(self) -> Result<Request<RequestBody>, ApiError> {
        match self.body {
            CallBody::Stream(body) => Ok(Request::from_parts(self.parts, body)),
            _ => Err(ApiError::internal(
                "a streaming handler on a route without a stream",
            )),
        }
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("methods", &self.methods)
            .field("template", &self.template)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

impl RouteSpec for Route {
    fn methods(&self) -> &[Method] {
        self.methods
    }

    fn template(&self) -> &'static str {
        self.template
    }
}

use BodyRule as B;
use Handler::{Authed, Public};
use Method as M;

/// Every operation glint answers. Entries sharing a template are listed together, methods in
/// the order a 405 names them.
pub static ROUTES: &[Route] = &[
    Route {
        methods: &[M::GET],
        template: "/",
        body: B::Ignored,
        handler: Public(|app, parts| Box::pin(async move { versions_choice(app, parts) })),
    },
    Route {
        methods: &[M::GET],
        template: "/versions",
        body: B::Ignored,
        handler: Public(|app, parts| {
            Box::pin(async move { Ok(versions_document(app, parts, StatusCode::OK)) })
        }),
    },
    Route {
        methods: &[M::GET, M::HEAD],
        template: "/healthcheck",
        body: B::Ignored,
        handler: Public(|app, parts| Box::pin(healthcheck(app, parts))),
    },
    Route {
        methods: &[M::GET],
        template: "/metrics",
        body: B::Ignored,
        handler: Public(|app, parts| Box::pin(metrics(app, parts))),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/schemas/image",
        body: B::None,
        handler: Authed(|app, _| {
            let schema = schemas::image(&app.config);
            Box::pin(async move { Ok(handlers::json_response(StatusCode::OK, &schema)) })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/schemas/images",
        body: B::None,
        handler: Authed(|app, _| {
            let schema = schemas::images(&app.config);
            Box::pin(async move { Ok(handlers::json_response(StatusCode::OK, &schema)) })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/schemas/member",
        body: B::None,
        handler: Authed(|_, _| {
            Box::pin(async { Ok(handlers::json_response(StatusCode::OK, &schemas::member())) })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/schemas/members",
        body: B::None,
        handler: Authed(|_, _| {
            Box::pin(async { Ok(handlers::json_response(StatusCode::OK, &schemas::members())) })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/info/usage",
        body: B::Ignored,
        handler: Authed(|app, call| Box::pin(async move { info::usage(app, call.ctx).await })),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/schemas/task",
        // Glance's router does not refuse a body here.
        body: B::Ignored,
        handler: Authed(|_, _| {
            Box::pin(async { Ok(handlers::json_response(StatusCode::OK, &tasks::schema())) })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/schemas/tasks",
        // Glance's router does not refuse a body here.
        body: B::Ignored,
        handler: Authed(|_, _| {
            Box::pin(async {
                Ok(handlers::json_response(
                    StatusCode::OK,
                    &tasks::collection_schema(),
                ))
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/info/import",
        body: B::None,
        handler: Authed(|app, _| Box::pin(async move { Ok(import::info(app)) })),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/info/stores",
        body: B::None,
        handler: Authed(|app, _| Box::pin(async move { info::stores(app) })),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/info/stores/detail",
        body: B::None,
        handler: Authed(|app, call| Box::pin(async move { info::stores_detail(app, call.ctx) })),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/stores/{store_id}/{image_id}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                let (store, image) = (call.param("store_id"), call.param("image_id"));
                stores::delete_from_store(app, call.ctx, store, image).await
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/images",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move {
                list::list(app, call.ctx, call.parts.uri.query().unwrap_or("")).await
            })
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/images",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                images::create(app, call.ctx, &call.parts.headers, call.json()).await
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/images/{id}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move { images::show(app, call.ctx, call.param("id")).await })
        }),
    },
    Route {
        methods: &[M::PATCH],
        template: "/v2/images/{id}",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                let (id, headers) = (call.param("id"), &call.parts.headers);
                patch::update(app, call.ctx, id, headers, call.json()).await
            })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/images/{id}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                let (id, headers) = (call.param("id"), &call.parts.headers);
                images::delete(app, call.ctx, id, headers).await
            })
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/images/{id}/actions/deactivate",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(
                async move { images::set_active(app, call.ctx, call.param("id"), false).await },
            )
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/images/{id}/actions/reactivate",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move { images::set_active(app, call.ctx, call.param("id"), true).await })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/images/{id}/file",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                let id = call.param("id");
                image_data::download(app, call.ctx, id, &call.parts.headers).await
            })
        }),
    },
    Route {
        methods: &[M::PUT],
        template: "/v2/images/{id}/file",
        body: B::Stream,
        handler: Authed(|app, mut call| {
            Box::pin(async move {
                let (ctx, id) = (call.ctx, call.take_param("id"));
                image_data::upload(app, ctx, &id, call.into_request()?).await
            })
        }),
    },
    Route {
        methods: &[M::PUT],
        template: "/v2/images/{id}/stage",
        body: B::Stream,
        handler: Authed(|app, mut call| {
            Box::pin(async move {
                let (ctx, id) = (call.ctx, call.take_param("id"));
                import::stage(app, ctx, &id, call.into_request()?).await
            })
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/images/{id}/import",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                let (id, headers) = (call.param("id"), &call.parts.headers);
                import::import(app, call.ctx, id, headers, call.json()).await
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/images/{id}/tasks",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move { tasks::image_tasks(app, call.ctx, call.param("id")).await })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/tasks",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move {
                tasks::list(app, call.ctx, call.parts.uri.query().unwrap_or("")).await
            })
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/tasks",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move { tasks::create(app, call.ctx, call.json()).await })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/tasks/{task_id}",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move { tasks::show(app, call.ctx, call.param("task_id")).await })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/tasks/{task_id}",
        body: B::Ignored,
        handler: Authed(|_, call| Box::pin(async move { tasks::delete(call.ctx) })),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/images/{id}/locations",
        // Glance's router does not refuse a body here.
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move { locations::list(app, call.ctx, call.param("id")).await })
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/images/{id}/locations",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(
                async move { locations::add(app, call.ctx, call.param("id"), call.json()).await },
            )
        }),
    },
    Route {
        methods: &[M::PUT],
        template: "/v2/images/{id}/tags/{tag}",
        body: B::None,
        handler: Authed(|app, mut call| {
            Box::pin(async move {
                let tag = call.take_param("tag");
                tags::add(app, call.ctx, call.param("id"), tag).await
            })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/images/{id}/tags/{tag}",
        body: B::None,
        handler: Authed(|app, mut call| {
            Box::pin(async move {
                let tag = call.take_param("tag");
                tags::delete(app, call.ctx, call.param("id"), tag).await
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/images/{id}/members",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move { members::list(app, call.ctx, call.param("id")).await })
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/images/{id}/members",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(
                async move { members::create(app, call.ctx, call.param("id"), call.json()).await },
            )
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/images/{id}/members/{member_id}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                members::show(app, call.ctx, call.param("id"), call.param("member_id")).await
            })
        }),
    },
    Route {
        methods: &[M::PUT],
        template: "/v2/images/{id}/members/{member_id}",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                let (id, member) = (call.param("id"), call.param("member_id"));
                members::update(app, call.ctx, id, member, call.json()).await
            })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/images/{id}/members/{member_id}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                let (id, member) = (call.param("id"), call.param("member_id"));
                members::delete(app, call.ctx, id, member).await
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/cache",
        body: B::None,
        handler: Authed(|app, call| Box::pin(async move { cache::list(app, call.ctx).await })),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/cache",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move { cache::clear(app, call.ctx, &call.parts.headers).await })
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/cache/clean",
        body: B::Ignored,
        handler: Authed(|app, call| Box::pin(async move { cache::clean(app, call.ctx).await })),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/cache/prune",
        body: B::Ignored,
        handler: Authed(|app, call| Box::pin(async move { cache::prune(app, call.ctx).await })),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/cache/nodes/{id}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move { cache::nodes(app, call.ctx, call.param("id")).await })
        }),
    },
    Route {
        methods: &[M::PUT],
        template: "/v2/cache/{id}",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move { cache::queue(app, call.ctx, call.param("id")).await })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/cache/{id}",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move { cache::delete(app, call.ctx, call.param("id")).await })
        }),
    },
    // Metadata definitions (spec §9); writes admin-only by default (handlers::metadefs::access).
    Route {
        methods: &[M::GET],
        template: "/v2/schemas/metadefs/{name}",
        body: B::None,
        handler: Authed(|_, call| Box::pin(async move { md::schema(call.param("name")) })),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/metadefs/namespaces",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::namespaces::list(app, call.ctx, call.parts.uri.query().unwrap_or("")).await
            })
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/metadefs/namespaces",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::namespaces::create(app, call.ctx, &call.parts.headers, call.json()).await
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/metadefs/namespaces/{namespace}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::namespaces::show(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    call.parts.uri.query().unwrap_or(""),
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::PUT],
        template: "/v2/metadefs/namespaces/{namespace}",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::namespaces::update(app, call.ctx, call.param("namespace"), call.json()).await
            })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/metadefs/namespaces/{namespace}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(
                async move { md::namespaces::delete(app, call.ctx, call.param("namespace")).await },
            )
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/metadefs/namespaces/{namespace}/objects",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::objects::list(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    call.parts.uri.query().unwrap_or(""),
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/metadefs/namespaces/{namespace}/objects",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::objects::create(app, call.ctx, call.param("namespace"), call.json()).await
            })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/metadefs/namespaces/{namespace}/objects",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::namespaces::delete_content(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    Content::Objects,
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/metadefs/namespaces/{namespace}/objects/{object_name}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::objects::show(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    call.param("object_name"),
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::PUT],
        template: "/v2/metadefs/namespaces/{namespace}/objects/{object_name}",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                let name = call.param("object_name");
                md::objects::update(app, call.ctx, call.param("namespace"), name, call.json()).await
            })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/metadefs/namespaces/{namespace}/objects/{object_name}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::objects::delete(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    call.param("object_name"),
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/metadefs/namespaces/{namespace}/properties",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(
                async move { md::properties::list(app, call.ctx, call.param("namespace")).await },
            )
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/metadefs/namespaces/{namespace}/properties",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::properties::create(app, call.ctx, call.param("namespace"), call.json()).await
            })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/metadefs/namespaces/{namespace}/properties",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::namespaces::delete_content(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    Content::Properties,
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/metadefs/namespaces/{namespace}/properties/{property_name}",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move {
                let name = call.param("property_name");
                md::properties::show(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    name,
                    call.parts.uri.query().unwrap_or(""),
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::PUT],
        template: "/v2/metadefs/namespaces/{namespace}/properties/{property_name}",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                let name = call.param("property_name");
                md::properties::update(app, call.ctx, call.param("namespace"), name, call.json())
                    .await
            })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/metadefs/namespaces/{namespace}/properties/{property_name}",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::properties::delete(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    call.param("property_name"),
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/metadefs/namespaces/{namespace}/tags",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::tags::list(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    call.parts.uri.query().unwrap_or(""),
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/metadefs/namespaces/{namespace}/tags",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::tags::create_many(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    &call.parts.headers,
                    call.json(),
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/metadefs/namespaces/{namespace}/tags",
        body: B::Ignored,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::namespaces::delete_content(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    Content::Tags,
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/metadefs/namespaces/{namespace}/tags/{tag_name}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::tags::show(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    call.param("tag_name"),
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/metadefs/namespaces/{namespace}/tags/{tag_name}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::tags::create(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    call.param("tag_name"),
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::PUT],
        template: "/v2/metadefs/namespaces/{namespace}/tags/{tag_name}",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                let name = call.param("tag_name");
                md::tags::update(app, call.ctx, call.param("namespace"), name, call.json()).await
            })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/metadefs/namespaces/{namespace}/tags/{tag_name}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::tags::delete(
                    app,
                    call.ctx,
                    call.param("namespace"),
                    call.param("tag_name"),
                )
                .await
            })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/metadefs/resource_types",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move { md::resource_types::list(app, call.ctx).await })
        }),
    },
    Route {
        methods: &[M::GET],
        template: "/v2/metadefs/namespaces/{namespace}/resource_types",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::resource_types::list_associations(app, call.ctx, call.param("namespace")).await
            })
        }),
    },
    Route {
        methods: &[M::POST],
        template: "/v2/metadefs/namespaces/{namespace}/resource_types",
        body: B::Json,
        handler: Authed(|app, call| {
            Box::pin(async move {
                md::resource_types::associate(app, call.ctx, call.param("namespace"), call.json())
                    .await
            })
        }),
    },
    Route {
        methods: &[M::DELETE],
        template: "/v2/metadefs/namespaces/{namespace}/resource_types/{resource_type}",
        body: B::None,
        handler: Authed(|app, call| {
            Box::pin(async move {
                let name = call.param("resource_type");
                md::resource_types::deassociate(app, call.ctx, call.param("namespace"), name).await
            })
        }),
    },
];

/// The route a request goes to: its position in [`ROUTES`], the entry and the path
/// parameters. A path outside the API gets the versions document (`/`), whatever its method.
pub fn find(method: &Method, path: &str) -> Result<(usize, &'static Route, Params), ApiError> {
    match router::route(ROUTES, method, path, versions::is_advertised)? {
        Routed::Found {
            index,
            route,
            params,
        } => Ok((index, route, params)),
        Routed::OutsideApi => Ok((0, &ROUTES[0], Params::default())),
    }
}

/// The `route` label values: each template once, in table order, then [`UNMATCHED`].
struct Labels {
    names: Vec<&'static str>,
    /// Label slot of each [`ROUTES`] entry.
    slot_of: Vec<usize>,
}

static LABELS: LazyLock<Labels> = LazyLock::new(|| {
    let mut names: Vec<&'static str> = Vec::new();
    let mut slot_of = Vec::with_capacity(ROUTES.len());
    for route in ROUTES {
        let slot = match names.iter().position(|n| *n == route.template) {
            Some(slot) => slot,
            None => {
                names.push(route.template);
                names.len() - 1
            }
        };
        slot_of.push(slot);
    }
    names.push(UNMATCHED);
    Labels { names, slot_of }
});

/// The `route` label values of the request metrics, for `metrics::set_route_labels`.
pub fn metric_labels() -> &'static [&'static str] {
    &LABELS.names
}

/// The label slot of [`ROUTES`] entry `index`, or of [`UNMATCHED`] for `None`.
pub fn label_slot(index: Option<usize>) -> usize {
    index
        .and_then(|i| LABELS.slot_of.get(i).copied())
        .unwrap_or(LABELS.names.len() - 1)
}

// ---- the routes answered ahead of authentication ----

/// `GET /` and paths outside the API: the versions document with 300.
fn versions_choice(app: &App, parts: &Parts) -> Result<Response<Body>, ApiError> {
    Ok(versions_document(app, parts, StatusCode::MULTIPLE_CHOICES))
}

fn versions_document(app: &App, parts: &Parts, status: StatusCode) -> Response<Body> {
    let doc = versions::document(app.config.public_endpoint.as_deref(), &parts.headers);
    handlers::json_response(status, &doc)
}

/// oslo.middleware's healthcheck: `200 OK` (`HEAD`: 204), or 503 when the metadata store
/// cannot be read or a store does not work (a file store's folder takes no new file, an S3
/// bucket does not answer or refuses glint's credentials); the body then names the stores at
/// fault (their reasons are logged, not sent).
async fn healthcheck(app: &App, parts: &Parts) -> Result<Response<Body>, ApiError> {
    let mut faults = Vec::new();
    if let Err(e) = app.catalog.count_images().await {
        tracing::warn!(error = %e, "healthcheck: metadata unreadable");
        faults.push("metadata".to_owned());
    }
    for store in app.stores.iter() {
        if let Err(e) = store.check().await {
            tracing::warn!(store = %store.id(), error = %e, "healthcheck: store not working");
            faults.push(format!("store {}", store.id()));
        }
    }
    let head = parts.method == Method::HEAD;
    let (status, text) = match (faults.is_empty(), head) {
        (true, false) => (StatusCode::OK, "OK".to_owned()),
        (true, true) => (StatusCode::NO_CONTENT, String::new()),
        (false, false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("UNAVAILABLE: {}", faults.join(", ")),
        ),
        (false, true) => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
    };
    let body = if text.is_empty() {
        Body::Empty
    } else {
        Body::full(Bytes::from(text))
    };
    Ok(text_response(status, body, "text/plain"))
}

/// `GET /metrics`: the Prometheus text format, or 404 when metrics are switched off.
async fn metrics(app: &App, _: &Parts) -> Result<Response<Body>, ApiError> {
    if !crate::metrics::is_enabled() {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    let images_by_status = app
        .catalog
        .images_by_status()
        .await
        .map_err(|e| tracing::warn!(error = %e, "metrics: cannot count images"))
        .ok();
    let store_space: Vec<(String, u64, u64)> = app
        .stores
        .iter()
        .filter_map(|store| {
            let room = store.capacity()?;
            Some((store.id().to_owned(), room.total_bytes, room.free_bytes))
        })
        .collect();
    let rendered = crate::metrics::render(crate::metrics::Sources {
        images_by_status,
        store_space: &store_space,
    });
    let (status, text) = match rendered {
        Ok(text) => (StatusCode::OK, text),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, String::new())
        }
    };
    Ok(text_response(
        status,
        Body::full(text),
        "text/plain; version=0.0.4; charset=utf-8",
    ))
}

fn text_response(status: StatusCode, body: Body, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(method: Method, path: &str) -> &'static str {
        find(&method, path).unwrap().1.template
    }

    #[test]
    fn every_template_is_reachable_with_each_of_its_methods() {
        for (index, route) in ROUTES.iter().enumerate() {
            let path = route
                .template
                .replace("{id}", "x")
                .replace("{tag}", "t")
                .replace("{member_id}", "m");
            for method in route.methods {
                let (found, ..) = find(method, &path).unwrap();
                assert_eq!(found, index, "{method} {path}");
            }
        }
    }

    #[test]
    fn outside_the_api_is_the_versions_document_for_any_method() {
        assert_eq!(routed(Method::GET, "/v1/images"), "/");
        assert_eq!(routed(Method::DELETE, "/anything/else"), "/");
        assert_eq!(routed(Method::GET, "/v2.0/images"), "/v2/images");
        assert_eq!(
            find(&Method::POST, "/").unwrap_err().status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn bodies_are_allowed_where_glance_reads_them() {
        let with_body: Vec<String> = ROUTES
            .iter()
            .filter(|r| matches!(r.body, BodyRule::Json | BodyRule::Stream))
            .map(|r| format!("{} {}", r.methods[0], r.template))
            .collect();
        assert_eq!(
            with_body,
            [
                "POST /v2/images",
                "PATCH /v2/images/{id}",
                "PUT /v2/images/{id}/file",
                "PUT /v2/images/{id}/stage",
                "POST /v2/images/{id}/import",
                "POST /v2/tasks",
                "POST /v2/images/{id}/locations",
                "POST /v2/images/{id}/members",
                "PUT /v2/images/{id}/members/{member_id}",
                "POST /v2/metadefs/namespaces",
                "PUT /v2/metadefs/namespaces/{namespace}",
                "POST /v2/metadefs/namespaces/{namespace}/objects",
                "PUT /v2/metadefs/namespaces/{namespace}/objects/{object_name}",
                "POST /v2/metadefs/namespaces/{namespace}/properties",
                "PUT /v2/metadefs/namespaces/{namespace}/properties/{property_name}",
                "POST /v2/metadefs/namespaces/{namespace}/tags",
                "PUT /v2/metadefs/namespaces/{namespace}/tags/{tag_name}",
                "POST /v2/metadefs/namespaces/{namespace}/resource_types",
            ]
        );
    }

    fn with(rule: BodyRule) -> Vec<String> {
        ROUTES
            .iter()
            .filter(|r| r.body == rule)
            .map(|r| format!("{} {}", r.methods[0], r.template))
            .collect()
    }

    #[test]
    fn bodies_are_refused_where_glance_marks_body_reject() {
        assert_eq!(
            with(BodyRule::None),
            [
                "GET /v2/schemas/image",
                "GET /v2/schemas/images",
                "GET /v2/schemas/member",
                "GET /v2/schemas/members",
                "GET /v2/info/import",
                "GET /v2/info/stores",
                "GET /v2/info/stores/detail",
                "DELETE /v2/stores/{store_id}/{image_id}",
                "GET /v2/images/{id}",
                "DELETE /v2/images/{id}",
                "POST /v2/images/{id}/actions/deactivate",
                "POST /v2/images/{id}/actions/reactivate",
                "GET /v2/images/{id}/file",
                "GET /v2/images/{id}/tasks",
                "PUT /v2/images/{id}/tags/{tag}",
                "DELETE /v2/images/{id}/tags/{tag}",
                "GET /v2/images/{id}/members",
                "GET /v2/images/{id}/members/{member_id}",
                "DELETE /v2/images/{id}/members/{member_id}",
                "GET /v2/cache",
                "GET /v2/cache/nodes/{id}",
                "GET /v2/schemas/metadefs/{name}",
                "GET /v2/metadefs/namespaces/{namespace}",
                "DELETE /v2/metadefs/namespaces/{namespace}",
                "GET /v2/metadefs/namespaces/{namespace}/objects/{object_name}",
                "DELETE /v2/metadefs/namespaces/{namespace}/objects/{object_name}",
                "GET /v2/metadefs/namespaces/{namespace}/properties",
                "GET /v2/metadefs/namespaces/{namespace}/tags/{tag_name}",
                "POST /v2/metadefs/namespaces/{namespace}/tags/{tag_name}",
                "DELETE /v2/metadefs/namespaces/{namespace}/tags/{tag_name}",
                "GET /v2/metadefs/resource_types",
                "GET /v2/metadefs/namespaces/{namespace}/resource_types",
                "DELETE /v2/metadefs/namespaces/{namespace}/resource_types/{resource_type}",
            ]
        );
        // Ignored: Glance's list, usage, task-schema, legacy task and location-list routes, the
        // cache's writes, and the metadef collection reads and deletes, have no body_reject; the
        // version documents and the healthcheck
        // are served outside its v2 router.
        assert_eq!(
            with(BodyRule::Ignored),
            [
                "GET /",
                "GET /versions",
                "GET /healthcheck",
                "GET /metrics",
                "GET /v2/info/usage",
                "GET /v2/schemas/task",
                "GET /v2/schemas/tasks",
                "GET /v2/images",
                "GET /v2/tasks",
                "GET /v2/tasks/{task_id}",
                "DELETE /v2/tasks/{task_id}",
                "GET /v2/images/{id}/locations",
                "DELETE /v2/cache",
                "POST /v2/cache/clean",
                "POST /v2/cache/prune",
                "PUT /v2/cache/{id}",
                "DELETE /v2/cache/{id}",
                "GET /v2/metadefs/namespaces",
                "GET /v2/metadefs/namespaces/{namespace}/objects",
                "DELETE /v2/metadefs/namespaces/{namespace}/objects",
                "DELETE /v2/metadefs/namespaces/{namespace}/properties",
                "GET /v2/metadefs/namespaces/{namespace}/properties/{property_name}",
                "DELETE /v2/metadefs/namespaces/{namespace}/properties/{property_name}",
                "GET /v2/metadefs/namespaces/{namespace}/tags",
                "DELETE /v2/metadefs/namespaces/{namespace}/tags",
            ]
        );
    }

    #[test]
    fn labels_are_each_template_once_then_unmatched() {
        let labels = metric_labels();
        assert_eq!(labels.first(), Some(&"/"));
        assert_eq!(labels.last(), Some(&UNMATCHED));
        let mut distinct = labels.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), labels.len());
        for (index, route) in ROUTES.iter().enumerate() {
            assert_eq!(labels[label_slot(Some(index))], route.template);
        }
        assert_eq!(labels[label_slot(None)], UNMATCHED);
    }
}
