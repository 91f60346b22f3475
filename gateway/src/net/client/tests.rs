//! The client against the loopback test origin, on io_uring and on epoll.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};

use super::*;
use crate::net::test_origin::{on_each_driver, pattern_bytes, TestOrigin};

/// Generous timeouts: these tests must not fail because a shared machine is slow.
fn patient() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(10),
        ..ClientSettings::default()
    }
}

/// Short timeouts, for the tests that wait for them to fire.
fn impatient() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_millis(500),
        stall_timeout: Duration::from_millis(500),
        ..ClientSettings::default()
    }
}

fn target(origin: &TestOrigin) -> Target {
    Target::new(Scheme::Http, Host::V4(Ipv4Addr::LOCALHOST), origin.port())
}

fn get(path: &str) -> http::Request<RequestBody> {
    http::Request::get(path).body(RequestBody::empty()).unwrap()
}

fn put(path: &str, body: RequestBody) -> http::Request<RequestBody> {
    http::Request::put(path).body(body).unwrap()
}

async fn read_all(body: &mut ResponseBody) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    while let Some(piece) = body.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

fn md5_hex(data: &[u8]) -> String {
    let digest = openssl::hash::hash(openssl::hash::MessageDigest::md5(), data).unwrap();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_large_body_streams_in_bounded_frames() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let client = HttpClient::new(patient());
        let len = 8 << 20;
        let mut response = client
            .send(&target(&origin), get(&format!("/bytes/{len}")))
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.body.content_length(), Some(len));
        let mut received = Vec::new();
        let mut frames = 0;
        while let Some(piece) = response.body.next().await {
            let piece = piece.unwrap();
            assert!(piece.len() <= MAX_BUF_BYTES, "frame of {}", piece.len());
            received.extend_from_slice(&piece);
            frames += 1;
        }
        assert!(frames > 8, "{frames} frames");
        assert_eq!(received, pattern_bytes(0, len));
    });
}

#[test]
fn ranges_chunked_bodies_and_head() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let client = HttpClient::new(patient());
        let target = target(&origin);
        let mut request = get("/bytes/100000");
        request
            .headers_mut()
            .insert("range", "bytes=1000-1999".parse().unwrap());
        let mut response = client.send(&target, request).await.unwrap();
        assert_eq!(response.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(response.headers["content-range"], "bytes 1000-1999/100000");
        assert_eq!(
            read_all(&mut response.body).await.unwrap(),
            pattern_bytes(1000, 1000)
        );

        let mut response = client.send(&target, get("/chunked/123457")).await.unwrap();
        assert_eq!(response.body.content_length(), None);
        assert_eq!(
            read_all(&mut response.body).await.unwrap(),
            pattern_bytes(0, 123457)
        );

        let head = http::Request::head("/bytes/5000")
            .body(RequestBody::empty())
            .unwrap();
        let response = client.send(&target, head).await.unwrap();
        assert_eq!(response.headers["content-length"], "5000");
        assert!(response.body.is_finished());
        // All three went over one kept connection.
        assert_eq!(origin.connections(), 1);
    });
}

#[test]
fn keep_alive_reuses_a_connection_only_once_a_body_is_read() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let client = HttpClient::new(patient());
        let target = target(&origin);
        for _ in 0..5 {
            let mut response = client.send(&target, get("/bytes/1000")).await.unwrap();
            read_all(&mut response.body).await.unwrap();
        }
        assert_eq!(origin.connections(), 1);
        assert_eq!(client.idle_connections(), 1);
        // A body dropped unread takes its connection with it.
        let response = client.send(&target, get("/bytes/100000")).await.unwrap();
        drop(response);
        let mut response = client.send(&target, get("/bytes/10")).await.unwrap();
        read_all(&mut response.body).await.unwrap();
        assert_eq!(origin.connections(), 2);
        // `Connection: close` is honoured.
        let mut response = client.send(&target, get("/close/10")).await.unwrap();
        read_all(&mut response.body).await.unwrap();
        let mut response = client.send(&target, get("/bytes/10")).await.unwrap();
        read_all(&mut response.body).await.unwrap();
        assert_eq!(origin.connections(), 3);
    });
}

#[test]
fn a_connection_the_server_dropped_while_idle_is_replaced() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let client = HttpClient::new(patient());
        let target = target(&origin);
        for _ in 0..20 {
            let mut response = client.send(&target, get("/quiet-close/100")).await.unwrap();
            assert_eq!(read_all(&mut response.body).await.unwrap().len(), 100);
        }
        assert_eq!(origin.connections(), 20);
    });
}

#[test]
fn bodies_in_memory_and_streamed_arrive_whole() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let client = HttpClient::new(patient());
        let target = target(&origin);
        let data = pattern_bytes(5, 3 << 20);
        let expected = format!("len={} md5={}", data.len(), md5_hex(&data));

        let full = RequestBody::full(data.clone());
        let mut response = client.send(&target, put("/echo", full)).await.unwrap();
        assert_eq!(
            read_all(&mut response.body).await.unwrap(),
            expected.as_bytes()
        );

        let pieces: Vec<Bytes> = data.chunks(100_000).map(Bytes::copy_from_slice).collect();
        let chunks = RequestBody::chunks(pieces.clone());
        let mut response = client.send(&target, put("/echo", chunks)).await.unwrap();
        assert_eq!(
            read_all(&mut response.body).await.unwrap(),
            expected.as_bytes()
        );

        let (mut sender, body) = RequestBody::channel(data.len() as u64, 2);
        let producer = monoio::spawn(async move {
            for piece in pieces {
                sender.send(piece).await.unwrap();
            }
        });
        let mut response = client.send(&target, put("/echo", body)).await.unwrap();
        producer.await;
        assert_eq!(
            read_all(&mut response.body).await.unwrap(),
            expected.as_bytes()
        );

        // An empty PUT still says Content-Length: 0 (S3 refuses a PUT without one).
        let mut response = client
            .send(&target, put("/echo", RequestBody::empty()))
            .await
            .unwrap();
        assert_eq!(
            read_all(&mut response.body).await.unwrap(),
            format!("len=0 md5={}", md5_hex(b"")).as_bytes()
        );
    });
}

/// A source of `frames` frames of `size` bytes, made as they are asked for.
struct Generated {
    frames: usize,
    size: usize,
}

impl ByteSource for Generated {
    fn poll_next(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Bytes>>> {
        if self.frames == 0 {
            return Poll::Ready(None);
        }
        self.frames -= 1;
        Poll::Ready(Some(Ok(Bytes::from(vec![7u8; self.size]))))
    }
}

#[test]
fn a_stream_must_match_its_declared_length() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let client = HttpClient::new(patient());
        let target = target(&origin);
        let longer = RequestBody::stream(
            1000,
            Generated {
                frames: 2,
                size: 600,
            },
        );
        let err = client
            .send(&target, put("/echo", longer))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::Body(e) if e.to_string().contains("more than the declared")),
            "{err}"
        );
        let shorter = RequestBody::stream(
            1000,
            Generated {
                frames: 1,
                size: 600,
            },
        );
        let err = client
            .send(&target, put("/echo", shorter))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::Body(e) if e.to_string().contains("400 bytes short")),
            "{err}"
        );
        // A producer that gives up fails the request with its own error.
        let (sender, body) = RequestBody::channel(1000, 1);
        sender.abort(io::Error::other("client went away"));
        let err = client.send(&target, put("/echo", body)).await.unwrap_err();
        assert!(err.to_string().contains("client went away"), "{err}");
    });
}

#[test]
fn refused_and_unanswered_connects_fail_fast() {
    on_each_driver(|| async {
        let client = HttpClient::new(impatient());
        let closed_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let target = Target::new(Scheme::Http, Host::V4(Ipv4Addr::LOCALHOST), closed_port);
        let err = client.send(&target, get("/")).await.unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
        assert!(err.is_unavailable());

        // A listener whose accept queue is full drops further SYNs: connect never completes.
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        socket.listen(0).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let filler =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            filler.set_nonblocking(true).unwrap();
            let _ = filler.connect(&addr.into());
            fillers.push(filler);
        }
        let target = Target::new(Scheme::Http, Host::V4(Ipv4Addr::LOCALHOST), addr.port());
        let started = std::time::Instant::now();
        let err = client.send(&target, get("/")).await.unwrap_err();
        assert!(matches!(err, ClientError::ConnectTimeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    });
}

#[test]
fn a_quiet_server_fails_the_request_after_the_stall_timeout() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let client = HttpClient::new(impatient());
        let target = target(&origin);
        let err = client.send(&target, get("/stall-head")).await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Stalled {
                    phase: "waiting for the response",
                    ..
                }
            ),
            "{err}"
        );

        let mut response = client.send(&target, get("/stall-body/1000")).await.unwrap();
        let mut received = 0;
        let err = loop {
            match response.body.next().await {
                Some(Ok(piece)) => received += piece.len(),
                Some(Err(err)) => break err,
                None => panic!("body ended"),
            }
        };
        assert_eq!(received, 1000);
        assert!(
            matches!(
                err,
                ClientError::Stalled {
                    phase: "reading the response body",
                    ..
                }
            ),
            "{err}"
        );

        // A server that stops reading an upload: the socket buffers fill, then nothing moves.
        let body = RequestBody::stream(
            1 << 30,
            Generated {
                frames: 1024,
                size: 1 << 20,
            },
        );
        let err = client
            .send(&target, put("/no-read", body))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Stalled { .. }), "{err}");
    });
}

#[test]
fn a_slow_body_source_is_not_a_stall() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let client = HttpClient::new(impatient());
        let (mut sender, body) = RequestBody::channel(20, 1);
        let producer = monoio::spawn(async move {
            sender
                .send(Bytes::from_static(b"0123456789"))
                .await
                .unwrap();
            // Three stall timeouts with nothing to send: glint's own client is slow.
            monoio::time::sleep(Duration::from_millis(1500)).await;
            sender
                .send(Bytes::from_static(b"0123456789"))
                .await
                .unwrap();
        });
        let mut response = client
            .send(&target(&origin), put("/echo", body))
            .await
            .unwrap();
        producer.await;
        let text = read_all(&mut response.body).await.unwrap();
        assert!(
            text.starts_with(b"len=20 "),
            "{}",
            String::from_utf8_lossy(&text)
        );
    });
}

#[test]
fn a_limit_caps_the_response_body() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let client = HttpClient::new(patient());
        let target = target(&origin);
        let mut response = client.send(&target, get("/chunked/50000")).await.unwrap();
        response.body.set_limit(20_000);
        let err = read_all(&mut response.body).await.unwrap_err();
        assert!(
            matches!(err, ClientError::TooLarge { limit: 20_000 }),
            "{err}"
        );
        let response = client.send(&target, get("/bytes/50000")).await.unwrap();
        let err = response.body.bytes(1000).await.unwrap_err();
        assert!(
            matches!(err, ClientError::TooLarge { limit: 1000 }),
            "{err}"
        );
        let response = client.send(&target, get("/bytes/500")).await.unwrap();
        assert_eq!(
            response.body.bytes(1000).await.unwrap(),
            pattern_bytes(0, 500)
        );
    });
}

#[test]
fn names_resolve_and_pinned_targets_keep_their_host() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let client = HttpClient::new(patient());
        // `localhost` may resolve to ::1 first, where nothing listens: the next address is
        // tried.
        let by_name = Target::new(Scheme::Http, Host::Name("localhost".into()), origin.port());
        let mut response = client.send(&by_name, get("/bytes/10")).await.unwrap();
        read_all(&mut response.body).await.unwrap();

        let pinned = Target::pinned(
            Scheme::Http,
            Host::Name("pinned.invalid".into()),
            origin.port(),
            vec![origin.addr()],
        );
        let mut response = client.send(&pinned, get("/bytes/10")).await.unwrap();
        read_all(&mut response.body).await.unwrap();
        let seen = origin.seen();
        assert_eq!(
            seen.last().unwrap().host,
            format!("pinned.invalid:{}", origin.port())
        );
        assert_eq!(seen[0].host, format!("localhost:{}", origin.port()));

        let unknown = Target::new(Scheme::Http, Host::Name("no-such-host.invalid".into()), 80);
        let err = client.send(&unknown, get("/")).await.unwrap_err();
        assert!(matches!(err, ClientError::Resolve(_)), "{err}");
    });
}

#[test]
fn https_with_a_ca_file() {
    on_each_driver(|| async {
        let origin = TestOrigin::start_tls();
        let settings = ClientSettings {
            tls: TlsSettings {
                system_roots: false,
                ca_file: origin.ca_file.clone(),
            },
            ..patient()
        };
        let client = HttpClient::new(settings);
        let by_ip = Target::new(Scheme::Https, Host::V4(Ipv4Addr::LOCALHOST), origin.port());
        let mut response = client.send(&by_ip, get("/bytes/300000")).await.unwrap();
        assert_eq!(
            read_all(&mut response.body).await.unwrap(),
            pattern_bytes(0, 300000)
        );
        let by_name = Target::new(Scheme::Https, Host::Name("localhost".into()), origin.port());
        for _ in 0..3 {
            let mut request = get("/bytes/100000");
            request
                .headers_mut()
                .insert("range", "bytes=-10".parse().unwrap());
            let mut response = client.send(&by_name, request).await.unwrap();
            assert_eq!(response.status, StatusCode::PARTIAL_CONTENT);
            assert_eq!(
                read_all(&mut response.body).await.unwrap(),
                pattern_bytes(99990, 10)
            );
        }
        let data = pattern_bytes(0, 1 << 20);
        let mut response = client
            .send(&by_ip, put("/echo", RequestBody::full(data.clone())))
            .await
            .unwrap();
        assert_eq!(
            read_all(&mut response.body).await.unwrap(),
            format!("len={} md5={}", data.len(), md5_hex(&data)).as_bytes()
        );
        // One connection by address, one by name (the pool keys on the name checked).
        assert_eq!(origin.connections(), 2);

        // A name the certificate does not carry.
        let wrong = Target::pinned(
            Scheme::Https,
            Host::Name("wrong.example".into()),
            origin.port(),
            vec![origin.addr()],
        );
        let err = client.send(&wrong, get("/bytes/1")).await.unwrap_err();
        assert!(matches!(err, ClientError::Tls { .. }), "{err}");
        assert!(err.to_string().contains("wrong.example"), "{err}");

        // Without the CA file the certificate is not trusted.
        let system_only = HttpClient::new(patient());
        let err = system_only.send(&by_ip, get("/bytes/1")).await.unwrap_err();
        assert!(matches!(err, ClientError::Tls { .. }), "{err}");
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );
    });
}

#[test]
fn head_and_methods_keep_their_semantics() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let client = HttpClient::new(patient());
        let request = http::Request::builder()
            .method(Method::GET)
            .uri("/status/404")
            .body(RequestBody::empty())
            .unwrap();
        let response = client.send(&target(&origin), request).await.unwrap();
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert!(response.body.is_finished());
        let seen = origin.seen();
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].path, "/status/404");
    });
}
