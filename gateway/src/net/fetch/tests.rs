//! The fetch policy: Glance's lists, address classes in every spelling, redirects, limits,
//! and what reaches the loopback test origin.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::net::client::ClientSettings;
use crate::net::test_origin::{on_each_driver, pattern_bytes, TestOrigin};
use crate::net::tls::TlsSettings;

fn policy(opts: ImportFilteringOpts) -> FetchPolicy {
    FetchPolicy::new(&opts).unwrap()
}

fn url(text: &str) -> FetchUrl {
    FetchUrl::parse(text).unwrap()
}

fn opts_with_ports(ports: &[u16]) -> ImportFilteringOpts {
    ImportFilteringOpts {
        allowed_ports: ports.to_vec(),
        ..ImportFilteringOpts::default()
    }
}

fn fetcher(policy: FetchPolicy) -> Fetcher {
    let settings = ClientSettings {
        connect_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(10),
        ..ClientSettings::default()
    };
    Fetcher::new(HttpClient::new(settings), Arc::new(policy))
}

async fn read_all(body: &mut ResponseBody) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    while let Some(piece) = body.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

#[test]
fn glance_defaults_allow_http_and_https_on_80_and_443() {
    let defaults = ImportFilteringOpts::default();
    assert_eq!(defaults.allowed_schemes, ["http", "https"]);
    assert_eq!(defaults.allowed_ports, [80, 443]);
    let p = policy(defaults);
    assert!(p.check_url(&url("http://images.example/a.qcow2")).is_ok());
    assert!(p.check_url(&url("https://images.example/a.qcow2")).is_ok());
    assert!(p.check_url(&url("http://images.example:443/")).is_ok());
    assert!(matches!(
        p.check_url(&url("ftp://images.example/a")),
        Err(FetchError::SchemeNotAllowed { .. })
    ));
    assert!(matches!(
        p.check_url(&url("http://images.example:8080/a")),
        Err(FetchError::PortNotAllowed { port: 8080 })
    ));
    // Unlike Glance, the port checked is the one connected to, written or not.
    let only_8080 = policy(opts_with_ports(&[8080]));
    assert!(matches!(
        only_8080.check_url(&url("http://images.example/a")),
        Err(FetchError::PortNotAllowed { port: 80 })
    ));
}

#[test]
fn an_allow_list_replaces_its_deny_list_as_in_glance() {
    let p = policy(ImportFilteringOpts {
        allowed_schemes: vec!["http".into()],
        disallowed_schemes: vec!["http".into()],
        allowed_hosts: vec!["a.example".into()],
        disallowed_hosts: vec!["a.example".into()],
        allowed_ports: vec![80],
        disallowed_ports: vec![80],
    });
    assert!(p.check_url(&url("http://a.example/")).is_ok());
    assert!(matches!(
        p.check_url(&url("http://b.example/")),
        Err(FetchError::HostNotAllowed { .. })
    ));
    assert!(matches!(
        p.check_url(&url("https://a.example/")),
        Err(FetchError::SchemeNotAllowed { .. })
    ));

    let deny_only = policy(ImportFilteringOpts {
        allowed_schemes: vec![],
        disallowed_schemes: vec!["HTTPS".into()],
        allowed_hosts: vec![],
        disallowed_hosts: vec!["Bad.Example".into()],
        allowed_ports: vec![],
        disallowed_ports: vec![8080],
    });
    assert!(deny_only
        .check_url(&url("http://good.example:9000/"))
        .is_ok());
    assert!(matches!(
        deny_only.check_url(&url("https://good.example/")),
        Err(FetchError::SchemeNotAllowed { .. })
    ));
    assert!(matches!(
        deny_only.check_url(&url("http://bad.example./")),
        Err(FetchError::HostNotAllowed { .. })
    ));
    assert!(matches!(
        deny_only.check_url(&url("http://good.example:8080/")),
        Err(FetchError::PortNotAllowed { port: 8080 })
    ));
    // A scheme that passes the lists but cannot be fetched.
    assert!(matches!(
        deny_only.check_url(&url("gopher://good.example/")),
        Err(FetchError::UnsupportedScheme { .. })
    ));
}

#[test]
fn host_lists_are_checked_when_built() {
    let bad_host = ImportFilteringOpts {
        allowed_hosts: vec!["exa mple".into()],
        ..ImportFilteringOpts::default()
    };
    let err = bad_host.validate().unwrap_err().to_string();
    assert!(err.contains("allowed_hosts"), "{err}");
    let bad_port = ImportFilteringOpts {
        disallowed_ports: vec![0],
        allowed_ports: vec![],
        ..ImportFilteringOpts::default()
    };
    assert!(bad_port
        .validate()
        .unwrap_err()
        .to_string()
        .contains("disallowed_ports"));
    // Entries are compared as the address they denote.
    let p = policy(ImportFilteringOpts {
        allowed_hosts: vec!["0x7f.1".into(), "[::1]".into()],
        ..ImportFilteringOpts::default()
    });
    assert!(p.check_url(&url("http://127.0.0.1/")).is_ok());
    assert!(p.check_url(&url("http://2130706433/")).is_ok());
    assert!(p.check_url(&url("http://[::1]/")).is_ok());
    let parsed: ImportFilteringOpts =
        toml::from_str("allowed_hosts = [\"mirror.internal\"]\nallowed_ports = [8080]\n").unwrap();
    assert_eq!(parsed.allowed_schemes, ["http", "https"]);
    assert_eq!(parsed.allowed_ports, [8080]);
    assert!(toml::from_str::<ImportFilteringOpts>("allowed_host = []").is_err());
}

#[test]
fn special_addresses_are_refused_in_every_spelling() {
    let p = policy(ImportFilteringOpts::default());
    let cases: &[(&str, AddressClass)] = &[
        ("http://127.0.0.1/", AddressClass::Loopback),
        ("http://2130706433/", AddressClass::Loopback),
        ("http://0x7f.1/", AddressClass::Loopback),
        ("http://0x7f000001/", AddressClass::Loopback),
        ("http://127.1/", AddressClass::Loopback),
        ("http://0177.0.0.1/", AddressClass::Loopback),
        ("http://127.0.0.1./", AddressClass::Loopback),
        ("http://[::1]/", AddressClass::Loopback),
        ("http://[::ffff:127.0.0.1]/", AddressClass::Loopback),
        ("http://[::ffff:7f00:1]/", AddressClass::Loopback),
        (
            "http://169.254.169.254/latest/meta-data/",
            AddressClass::Metadata,
        ),
        ("http://2852039166/", AddressClass::Metadata),
        ("http://0xa9.0xfe.0xa9.0xfe/", AddressClass::Metadata),
        ("http://[::ffff:169.254.169.254]/", AddressClass::Metadata),
        ("http://[::ffff:a9fe:a9fe]/", AddressClass::Metadata),
        ("http://[fd00:ec2::254]/", AddressClass::Metadata),
        ("http://100.100.100.200/", AddressClass::Metadata),
        ("http://169.254.1.1/", AddressClass::LinkLocal),
        ("http://[fe80::1]/", AddressClass::LinkLocal),
        ("http://10.0.0.1/", AddressClass::Private),
        ("http://10.1/", AddressClass::Private),
        ("http://172.16.5.4/", AddressClass::Private),
        ("http://192.168.0.1/", AddressClass::Private),
        ("http://[fc00::1]/", AddressClass::Private),
        ("http://[fd12:3456::1]/", AddressClass::Private),
        ("http://[::ffff:10.0.0.1]/", AddressClass::Private),
        ("http://100.64.0.1/", AddressClass::SharedCgnat),
        ("http://224.0.0.1/", AddressClass::Multicast),
        ("http://[ff02::1]/", AddressClass::Multicast),
        ("http://0.0.0.0/", AddressClass::Unspecified),
        ("http://0/", AddressClass::Unspecified),
        ("http://[::]/", AddressClass::Unspecified),
        ("http://255.255.255.255/", AddressClass::Broadcast),
        ("http://240.0.0.1/", AddressClass::Reserved),
        ("http://[64:ff9b::a9fe:a9fe]/", AddressClass::Metadata),
        ("http://[2002:7f00:1::]/", AddressClass::Loopback),
    ];
    for (text, expected) in cases {
        let u = url(text);
        let ip = u.host().ip().unwrap();
        match p.check_address(&u, ip) {
            Err(FetchError::AddressNotAllowed { class, address, .. }) => {
                assert_eq!(class, *expected, "{text}");
                assert_eq!(address, ip, "{text}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    assert!(p
        .check_address(&url("http://8.8.8.8/"), "8.8.8.8".parse().unwrap())
        .is_ok());
    // A name is judged by what it resolves to.
    let name = url("http://innocent.example/");
    let err = p
        .check_address(&name, "169.254.169.254".parse().unwrap())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "host innocent.example resolves to 169.254.169.254 (cloud metadata service address), \
         which is not allowed"
    );
}

#[test]
fn only_allowed_hosts_reach_special_addresses_and_denied_addresses_stay_denied() {
    let p = policy(ImportFilteringOpts {
        allowed_hosts: vec!["127.0.0.1".into(), "mirror.internal".into()],
        ..ImportFilteringOpts::default()
    });
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    assert!(p.check_address(&url("http://0x7f.1/"), loopback).is_ok());
    assert!(p
        .check_address(&url("http://mirror.internal/"), "10.0.0.5".parse().unwrap())
        .is_ok());

    let deny = policy(ImportFilteringOpts {
        disallowed_hosts: vec!["93.184.216.34".into()],
        ..ImportFilteringOpts::default()
    });
    assert!(matches!(
        deny.check_address(
            &url("http://alias.example/"),
            "93.184.216.34".parse().unwrap()
        ),
        Err(FetchError::AddressDisallowed { .. })
    ));
}

#[test]
fn loopback_origins_are_refused_without_an_allow_list_and_never_contacted() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let port = origin.port();
        let fetcher = fetcher(policy(opts_with_ports(&[port])));
        for text in [
            format!("http://127.0.0.1:{port}/bytes/1"),
            format!("http://2130706433:{port}/bytes/1"),
            format!("http://0x7f.1:{port}/bytes/1"),
            format!("http://127.1:{port}/bytes/1"),
            format!("http://0177.0.0.1:{port}/bytes/1"),
            format!("http://[::ffff:127.0.0.1]:{port}/bytes/1"),
            format!("http://localhost:{port}/bytes/1"),
        ] {
            let err = fetcher.get(&text).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    FetchError::AddressNotAllowed {
                        class: AddressClass::Loopback,
                        ..
                    }
                ),
                "{text}: {err}"
            );
            assert!(err.is_refusal());
        }
        let err = fetcher
            .get(&format!("http://localhost:{port}/"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("localhost resolves to"), "{err}");
        assert_eq!(origin.connections(), 0);
    });
}

#[test]
fn an_allowed_loopback_origin_is_fetched_with_ranges_and_statuses() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let port = origin.port();
        let fetcher = fetcher(policy(ImportFilteringOpts {
            allowed_hosts: vec!["127.0.0.1".into()],
            ..opts_with_ports(&[port])
        }));
        let mut fetched = fetcher
            .get(&format!("http://127.0.0.1:{port}/bytes/100000"))
            .await
            .unwrap();
        assert_eq!(fetched.status, StatusCode::OK);
        assert_eq!(
            read_all(&mut fetched.body).await.unwrap(),
            pattern_bytes(0, 100000)
        );
        // The numeric spelling is the same host.
        let mut fetched = fetcher
            .fetch(
                FetchRequest::get(format!("http://2130706433:{port}/bytes/100000"))
                    .with_range(ByteRange::Inclusive(10, 19)),
            )
            .await
            .unwrap();
        assert_eq!(fetched.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            read_all(&mut fetched.body).await.unwrap(),
            pattern_bytes(10, 10)
        );
        let fetched = fetcher
            .fetch(FetchRequest::head(format!(
                "http://127.0.0.1:{port}/bytes/4242"
            )))
            .await
            .unwrap();
        assert_eq!(fetched.headers["content-length"], "4242");
        // A name resolving to the same address is not the allowed host.
        let err = fetcher
            .get(&format!("http://localhost:{port}/bytes/1"))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::HostNotAllowed { .. }), "{err}");
        let err = fetcher
            .get(&format!("http://127.0.0.1:{port}/status/404"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Status {
                    status: StatusCode::NOT_FOUND,
                    ..
                }
            ),
            "{err}"
        );
    });
}

#[test]
fn every_redirect_is_checked_again() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let port = origin.port();
        let fetcher = fetcher(policy(ImportFilteringOpts {
            allowed_hosts: vec!["127.0.0.1".into()],
            ..opts_with_ports(&[80, port])
        }));
        let base = format!("http://127.0.0.1:{port}");
        for (code, to) in [
            (302, "http://169.254.169.254/latest/meta-data/".to_owned()),
            (307, "http://[::ffff:169.254.169.254]/latest/".to_owned()),
            (301, "http://[fd00:ec2::254]/".to_owned()),
            (308, format!("http://localhost:{port}/bytes/1")),
            (303, format!("http://127.0.0.1:{}/bytes/1", 9)),
            (302, "ftp://127.0.0.1/pub/image".to_owned()),
        ] {
            let err = fetcher
                .get(&format!("{base}/redirect/{code}?to={to}"))
                .await
                .unwrap_err();
            assert!(err.is_refusal(), "{to}: {err}");
        }
        let err = fetcher
            .get(&format!("{base}/redirect/302?to=file:///etc/passwd"))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::BadRedirect { .. }), "{err}");
        // A redirect to another spelling of the allowed host is followed.
        let mut fetched = fetcher
            .get(&format!(
                "{base}/redirect/302?to=http://0x7f.1:{port}/bytes/64"
            ))
            .await
            .unwrap();
        assert_eq!(fetched.redirects, 1);
        assert_eq!(
            read_all(&mut fetched.body).await.unwrap(),
            pattern_bytes(0, 64)
        );
        // Relative redirects and their limit.
        let mut fetched = fetcher
            .get(&format!("{base}/redirect/301?to=/bytes/3"))
            .await
            .unwrap();
        assert_eq!(
            read_all(&mut fetched.body).await.unwrap(),
            pattern_bytes(0, 3)
        );
        let looping = format!("{base}/loop");
        let err = fetcher.get(&looping).await.unwrap_err();
        assert!(
            matches!(err, FetchError::TooManyRedirects { limit: 10 }),
            "{err}"
        );
        let strict = Fetcher::new(
            HttpClient::new(ClientSettings::default()),
            Arc::new(fetcher.policy().clone().with_max_redirects(0)),
        );
        let err = strict
            .get(&format!("{base}/redirect/301?to=/bytes/3"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::TooManyRedirects { limit: 0 }),
            "{err}"
        );
        // Only the origin itself was ever asked anything.
        let seen = origin.seen();
        assert!(
            seen.iter().all(|s| s.host == format!("127.0.0.1:{port}")),
            "{seen:?}"
        );
    });
}

#[test]
fn credentials_and_caller_headers_stay_with_the_origin_named() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let port = origin.port();
        let fetcher = fetcher(policy(ImportFilteringOpts {
            allowed_hosts: vec!["127.0.0.1".into(), "localhost".into()],
            ..opts_with_ports(&[port])
        }));
        let mut request = FetchRequest::get(format!(
            "http://alice:pa%3Ass@127.0.0.1:{port}/redirect/302?to=http://localhost:{port}/bytes/5"
        ));
        request
            .headers
            .insert("x-test-token", "tok".parse().unwrap());
        let mut fetched = fetcher.fetch(request).await.unwrap();
        read_all(&mut fetched.body).await.unwrap();
        let seen = origin.seen();
        assert_eq!(seen.len(), 2);
        // base64("alice:pa:ss")
        assert_eq!(
            seen[0].authorization.as_deref(),
            Some("Basic YWxpY2U6cGE6c3M=")
        );
        assert_eq!(seen[0].token.as_deref(), Some("tok"));
        assert_eq!(seen[1].authorization, None);
        assert_eq!(seen[1].token, None);

        let err = fetcher
            .get(&format!(
                "http://alice:secretpw@127.0.0.1:{port}/status/500?sig=xyz"
            ))
            .await
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("secretpw") && !shown.contains("alice"),
            "{shown}"
        );
        assert!(!shown.contains("xyz"), "{shown}");
        assert!(shown.contains("500"), "{shown}");
    });
}

#[test]
fn the_body_is_capped_while_it_streams() {
    on_each_driver(|| async {
        let origin = TestOrigin::start();
        let port = origin.port();
        let fetcher = fetcher(
            policy(ImportFilteringOpts {
                allowed_hosts: vec!["127.0.0.1".into()],
                ..opts_with_ports(&[port])
            })
            .with_max_bytes(1000),
        );
        let err = fetcher
            .get(&format!("http://127.0.0.1:{port}/bytes/5000"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::TooLarge { limit: 1000, .. }),
            "{err}"
        );
        // No length announced: the cap cuts the stream.
        let mut fetched = fetcher
            .get(&format!("http://127.0.0.1:{port}/chunked/5000"))
            .await
            .unwrap();
        let err = read_all(&mut fetched.body).await.unwrap_err();
        assert!(
            matches!(err, ClientError::TooLarge { limit: 1000 }),
            "{err}"
        );
        let mut fetched = fetcher
            .get(&format!("http://127.0.0.1:{port}/chunked/1000"))
            .await
            .unwrap();
        assert_eq!(read_all(&mut fetched.body).await.unwrap().len(), 1000);
    });
}

#[test]
fn https_fetches_go_to_the_checked_address_and_verify_the_name() {
    on_each_driver(|| async {
        let origin = TestOrigin::start_tls();
        let port = origin.port();
        let settings = ClientSettings {
            tls: TlsSettings {
                system_roots: false,
                ca_file: origin.ca_file.clone(),
            },
            ..ClientSettings::default()
        };
        let policy = policy(ImportFilteringOpts {
            allowed_hosts: vec!["localhost".into()],
            ..opts_with_ports(&[port])
        });
        let fetcher = Fetcher::new(HttpClient::new(settings), Arc::new(policy));
        let mut fetched = fetcher
            .get(&format!("https://localhost:{port}/bytes/70000"))
            .await
            .unwrap();
        assert_eq!(
            read_all(&mut fetched.body).await.unwrap(),
            pattern_bytes(0, 70000)
        );
        let err = fetcher
            .get(&format!("http://localhost:{port}/bytes/1"))
            .await
            .unwrap_err();
        // Plain HTTP to a TLS port: a protocol failure, not a hang.
        assert!(matches!(err, FetchError::Http(_)), "{err}");
    });
}

#[test]
fn urls_that_do_not_parse_say_why_without_echoing_them() {
    on_each_driver(|| async {
        let fetcher = fetcher(policy(ImportFilteringOpts::default()));
        for text in [
            "http://user:hunter2@exa mple.com/",
            "http://user:hunter2@[::1/",
            "http://user:hunter2@1.2.3.4.5/",
            "no-scheme",
        ] {
            let err = fetcher.get(text).await.unwrap_err();
            assert!(matches!(err, FetchError::InvalidUrl(_)), "{err}");
            assert!(!format!("{err:?}").contains("hunter2"));
        }
    });
}
