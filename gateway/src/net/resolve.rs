//! Name resolution off the core: `getaddrinfo` blocks, so each lookup runs on a short-lived
//! thread and the core awaits its answer (with a deadline).
//!
//! Lookups are rare (an import, a store's endpoint when a new connection is opened), so a
//! thread per lookup costs less than a resolver pool would; the answers are not cached here,
//! which keeps the address that is checked and the address that is connected to one and the
//! same (see [`crate::net::fetch`]).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The resolver answered with an error (no such name, no addresses).
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        /// The name looked up.
        host: String,
        /// The resolver's answer.
        #[source]
        source: io::Error,
    },
    /// The resolver answered with no address.
    #[error("{host} has no address")]
    NoAddress {
        /// The name looked up.
        host: String,
    },
    /// No answer before the deadline.
    #[error("resolving {host} took longer than {timeout:?}")]
    Timeout {
        /// The name looked up.
        host: String,
        /// The deadline.
        timeout: Duration,
    },
}

/// Resolves `host` (a DNS name, no brackets) to socket addresses with `port`, waiting at
/// most `timeout`. Must run on a monoio runtime with its timer enabled.
pub async fn resolve(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let (tx, rx) = futures_channel::oneshot::channel();
    let name = host.to_owned();
    let spawned = std::thread::Builder::new()
        .name("glint-resolve".into())
        .spawn(move || {
            let answer = (name.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<_>>());
            let _ = tx.send(answer);
        });
    if let Err(source) = spawned {
        return Err(ResolveError::Lookup {
            host: host.to_owned(),
            source,
        });
    }
    let answer = match monoio::time::timeout(timeout, rx).await {
        Err(_) => {
            return Err(ResolveError::Timeout {
                host: host.to_owned(),
                timeout,
            })
        }
        Ok(Err(_canceled)) => Err(io::Error::other("resolver thread ended without answer")),
        Ok(Ok(answer)) => answer,
    };
    let mut addrs = answer.map_err(|source| ResolveError::Lookup {
        host: host.to_owned(),
        source,
    })?;
    // getaddrinfo lists an address once per socket type on some systems.
    let mut seen = std::collections::HashSet::new();
    addrs.retain(|a| seen.insert(*a));
    if addrs.is_empty() {
        return Err(ResolveError::NoAddress {
            host: host.to_owned(),
        });
    }
    Ok(addrs)
}
