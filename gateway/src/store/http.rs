//! The http store (read-only, as Glance's): images whose location is an `http(s)://` URL on a
//! web server glint does not own.
//!
//! - Size: a `HEAD` of the URL (its `Content-Length`), following redirects.
//! - Read: a `GET` with the range asked for passed on as `Range`. The answer is relayed frame
//!   by frame, never buffered whole: a `206` must be that range; an origin that ignores
//!   `Range` and sends `200` has the bytes before the range dropped as they stream by.
//! - Every fetch goes through the URL policy ([`crate::net::fetch`]: Glance's
//!   `[import_filtering_opts]`, then the resolved addresses — a loopback, private or metadata
//!   address is refused unless `allowed_hosts` names the host), and every redirect is checked
//!   again. Origin errors and timeouts are errors, never a short body.
//! - No writes; deleting an image only forgets its URL (the data is not glint's).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::StatusCode;
use meta::{ImageId, Location};

use super::{
    BoxStream, LocalBoxFuture, Recovered, ResponseStream, Store, StoreError, StoreKind, StoreWriter,
};
use crate::config::StoreSettings;
use crate::net::client::{ClientSettings, HttpClient};
use crate::net::fetch::{ByteRange, FetchError, FetchPolicy, FetchRequest, Fetcher};
use crate::net::tls::TlsSettings;

/// A read-only store of web URLs (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct HttpStore {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    uid: u64,
    client: ClientSettings,
    policy: Arc<FetchPolicy>,
    description: Option<String>,
    weight: i64,
}

impl std::fmt::Debug for HttpStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStore")
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// This thread's fetcher of each http store, by store uid.
    static FETCHERS: RefCell<HashMap<u64, Fetcher>> = RefCell::new(HashMap::new());
}

impl HttpStore {
    /// A store named `id` fetching under `policy` (built from `[import_filtering_opts]`).
    pub fn new(id: &str, settings: &StoreSettings, policy: &FetchPolicy) -> HttpStore {
        let client = ClientSettings {
            tls: TlsSettings {
                ca_file: settings.http().ca_file,
                ..TlsSettings::default()
            },
            ..ClientSettings::default()
        };
        HttpStore::with_client(id, settings, policy, client)
    }

    /// The same with the client's timeouts given (tests use short ones).
    pub fn with_client(
        id: &str,
        settings: &StoreSettings,
        policy: &FetchPolicy,
        client: ClientSettings,
    ) -> HttpStore {
        static NEXT_UID: AtomicU64 = AtomicU64::new(1);
        HttpStore {
            inner: Arc::new(Inner {
                id: id.to_owned(),
                uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
                client,
                policy: Arc::new(
                    policy
                        .clone()
                        .with_max_redirects(settings.http().max_redirects),
                ),
                description: settings.description.clone(),
                weight: settings.weight.unwrap_or(0),
            }),
        }
    }

    fn fetcher(&self) -> Fetcher {
        FETCHERS.with(|fetchers| {
            fetchers
                .borrow_mut()
                .entry(self.inner.uid)
                .or_insert_with(|| {
                    Fetcher::new(
                        HttpClient::new(self.inner.client.clone()),
                        Arc::clone(&self.inner.policy),
                    )
                })
                .clone()
        })
    }

    fn error(&self, e: FetchError) -> StoreError {
        let store = self.inner.id.clone();
        match e {
            FetchError::Status { status, .. } if status == StatusCode::NOT_FOUND => {
                StoreError::NotFound {
                    store,
                    what: e.to_string(),
                }
            }
            FetchError::Status { status, .. } if status.is_server_error() => {
                StoreError::Unavailable {
                    store,
                    message: e.to_string(),
                }
            }
            FetchError::Status { .. } => StoreError::Remote {
                store,
                message: e.to_string(),
            },
            ref refused if refused.is_refusal() => StoreError::BadLocation {
                store,
                message: e.to_string(),
            },
            FetchError::Http(ref client) if client.is_unavailable() => StoreError::Unavailable {
                store,
                message: e.to_string(),
            },
            _ => StoreError::Remote {
                store,
                message: e.to_string(),
            },
        }
    }

    fn short(&self, what: String) -> StoreError {
        StoreError::Remote {
            store: self.inner.id.clone(),
            message: what,
        }
    }
}

/// `bytes FIRST-LAST/TOTAL` → (first, last).
fn content_range(headers: &http::HeaderMap) -> Option<(u64, u64)> {
    let value = headers.get(http::header::CONTENT_RANGE)?.to_str().ok()?;
    let spec = value.trim().strip_prefix("bytes ")?;
    let (range, _total) = spec.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?))
}

impl Store for HttpStore {
    fn id(&self) -> &str {
        &self.inner.id
    }

    fn kind(&self) -> StoreKind {
        StoreKind::Http
    }

    fn is_read_only(&self) -> bool {
        true
    }

    fn description(&self) -> Option<&str> {
        self.inner.description.as_deref()
    }

    fn weight(&self) -> i64 {
        self.inner.weight
    }

    fn properties(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }

    fn owns(&self, url: &str) -> bool {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        (lower.starts_with("http://") || lower.starts_with("https://"))
            && crate::net::url::FetchUrl::parse(url).is_ok()
    }

    fn writer(
        &self,
        _id: ImageId,
        _size_hint: Option<u64>,
    ) -> LocalBoxFuture<'_, Result<Box<dyn StoreWriter>, StoreError>> {
        Box::pin(async move {
            Err(StoreError::ReadOnly {
                store: self.inner.id.clone(),
            })
        })
    }

    fn read<'a>(
        &'a self,
        location: &'a Location,
        range: Range<u64>,
    ) -> LocalBoxFuture<'a, Result<BoxStream, StoreError>> {
        Box::pin(async move {
            let len = range.end.saturating_sub(range.start);
            let mut request = FetchRequest::get(location.url.clone());
            if len > 0 {
                request = request.with_range(ByteRange::Inclusive(range.start, range.end - 1));
            }
            let fetched = self
                .fetcher()
                .fetch(request)
                .await
                .map_err(|e| self.error(e))?;
            let skip = if fetched.status == StatusCode::PARTIAL_CONTENT {
                match content_range(&fetched.headers) {
                    Some((first, last)) if first == range.start && last + 1 == range.end => 0,
                    other => {
                        return Err(self.short(format!(
                            "the origin sent range {other:?} for bytes {}-{}",
                            range.start,
                            range.end.saturating_sub(1)
                        )))
                    }
                }
            } else {
                // 200: the whole object. Too short is found now when its length is announced,
                // else when the body ends.
                if let Some(total) = fetched.body.content_length() {
                    if total < range.end {
                        return Err(self.short(format!(
                            "the origin's object has {total} bytes, fewer than the image's \
                             {}",
                            range.end
                        )));
                    }
                }
                range.start
            };
            Ok(Box::pin(ResponseStream::new(fetched.body, &self.inner.id, skip, len)) as BoxStream)
        })
    }

    fn size<'a>(&'a self, location: &'a Location) -> LocalBoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let fetched = self
                .fetcher()
                .fetch(FetchRequest::head(location.url.clone()))
                .await
                .map_err(|e| self.error(e))?;
            fetched
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                .ok_or_else(|| self.short("the origin does not say the object's size".into()))
        })
    }

    fn delete<'a>(&'a self, _location: &'a Location) -> LocalBoxFuture<'a, Result<(), StoreError>> {
        // The data is the origin's: deleting the image only forgets its URL.
        Box::pin(async { Ok(()) })
    }

    fn check(&self) -> LocalBoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn recover<'a>(
        &'a self,
        _inventory: &'a super::Inventory<'a>,
    ) -> LocalBoxFuture<'a, Result<Recovered, StoreError>> {
        Box::pin(async { Ok(Recovered::default()) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::net::fetch::ImportFilteringOpts;
    use crate::net::test_origin::{on_each_driver, pattern_bytes, TestOrigin};

    fn store(allow_loopback: bool, port: u16) -> HttpStore {
        let opts = ImportFilteringOpts {
            allowed_ports: vec![port],
            allowed_hosts: if allow_loopback {
                vec!["127.0.0.1".into()]
            } else {
                Vec::new()
            },
            ..ImportFilteringOpts::default()
        };
        let policy = FetchPolicy::new(&opts).unwrap();
        let client = ClientSettings {
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_millis(500),
            ..ClientSettings::default()
        };
        HttpStore::with_client(
            "web",
            &StoreSettings {
                kind: crate::config::StoreType::Http,
                ..StoreSettings::default()
            },
            &policy,
            client,
        )
    }

    fn location(origin: &TestOrigin, path: &str) -> Location {
        Location {
            url: format!("http://127.0.0.1:{}{path}", origin.port()),
            store: "web".into(),
        }
    }

    async fn drain(mut stream: BoxStream) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(piece) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }

    #[test]
    fn size_and_ranges_come_from_the_origin() {
        let origin = TestOrigin::start();
        on_each_driver(|| async {
            let store = store(true, origin.port());
            let loc = location(&origin, "/bytes/1000000");
            assert_eq!(store.size(&loc).await.unwrap(), 1_000_000);
            let whole = drain(store.read(&loc, 0..1_000_000).await.unwrap())
                .await
                .unwrap();
            assert_eq!(whole, pattern_bytes(0, 1_000_000));
            let stream = store.read(&loc, 1000..5000).await.unwrap();
            assert_eq!(stream.remaining(), 4000);
            assert_eq!(drain(stream).await.unwrap(), pattern_bytes(1000, 4000));
        });
        let ranges: Vec<_> = origin
            .seen()
            .into_iter()
            .filter(|s| s.method == "GET")
            .collect();
        assert!(!ranges.is_empty());
    }

    #[test]
    fn an_origin_ignoring_range_is_skipped_not_buffered() {
        let origin = TestOrigin::start();
        on_each_driver(|| async {
            let store = store(true, origin.port());
            // /chunked/ sends the whole body, chunked, whatever the Range.
            let loc = location(&origin, "/chunked/300000");
            let got = drain(store.read(&loc, 250_000..260_000).await.unwrap())
                .await
                .unwrap();
            assert_eq!(got, pattern_bytes(250_000, 10_000));
        });
    }

    #[test]
    fn origin_errors_and_stalls_are_errors_never_short_data() {
        let origin = TestOrigin::start();
        on_each_driver(|| async {
            let store = store(true, origin.port());
            let missing = store.read(&location(&origin, "/status/404"), 0..10).await;
            assert!(
                matches!(missing, Err(StoreError::NotFound { .. })),
                "{missing:?}"
            );
            let broken = store.read(&location(&origin, "/status/503"), 0..10).await;
            assert!(
                matches!(broken, Err(StoreError::Unavailable { .. })),
                "{broken:?}"
            );
            // Announces 2n, sends n, goes quiet: the stream fails after n bytes.
            let stream = store
                .read(&location(&origin, "/stall-body/1000"), 0..2000)
                .await
                .unwrap();
            let err = drain(stream).await.unwrap_err();
            assert!(err.to_string().contains("web"), "{err}");
            // Shorter than the image says.
            let short = store.read(&location(&origin, "/bytes/100"), 0..200).await;
            assert!(short.is_err(), "a 100-byte object cannot give 200 bytes");
            let stream = store
                .read(&location(&origin, "/close/100"), 50..100)
                .await
                .unwrap();
            assert_eq!(drain(stream).await.unwrap(), pattern_bytes(50, 50));
        });
    }

    #[test]
    fn loopback_origins_need_allowed_hosts_and_writes_are_refused() {
        let origin = TestOrigin::start();
        on_each_driver(|| async {
            let store = store(false, origin.port());
            let refused = store.read(&location(&origin, "/bytes/10"), 0..10).await;
            assert!(
                matches!(refused, Err(StoreError::BadLocation { .. })),
                "{refused:?}"
            );
            let write = store.writer(ImageId::new_v4(), None).await;
            assert!(matches!(write, Err(StoreError::ReadOnly { .. })));
        });
        assert!(origin.seen().is_empty(), "nothing reached the origin");
        let store = store(false, origin.port());
        assert!(store.owns("https://example.com/cirros.img"));
        assert!(!store.owns("file:///etc/passwd"));
        assert!(store.is_read_only());
    }
}
