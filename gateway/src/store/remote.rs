//! [`ResponseStream`]: an outbound response body (S3 GetObject, an http origin's GET) as a
//! store's [`DataStream`] — the bytes a download relays, frame by frame as they arrive.
//!
//! It yields exactly the range it was made for. When an origin ignored `Range` and sent the
//! whole object, the bytes before the range are dropped as they stream by and the stream ends
//! at the range's end (never buffering). A body that ends early, or an exchange that breaks or
//! stalls, is an error: hyper then closes the client's connection before the announced
//! `Content-Length`, so a download is never a short `200`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::DataStream;
use crate::net::client::ResponseBody;

/// A response body relayed as a store stream (see the module docs).
pub struct ResponseStream {
    body: ResponseBody,
    store: String,
    /// Leading bytes still to drop (an origin that ignored `Range`).
    skip: u64,
    /// Bytes still to yield.
    remaining: u64,
    /// Bytes the stream was made for.
    expected: u64,
}

impl ResponseStream {
    /// Yields `len` bytes of `body` after dropping its first `skip` bytes; `store` names the
    /// store in errors.
    pub fn new(body: ResponseBody, store: &str, skip: u64, len: u64) -> ResponseStream {
        ResponseStream {
            body,
            store: store.to_owned(),
            skip,
            remaining: len,
            expected: len,
        }
    }
}

impl DataStream for ResponseStream {
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        let this = self.get_mut();
        loop {
            if this.remaining == 0 {
                return Poll::Ready(None);
            }
            match std::task::ready!(Pin::new(&mut this.body).poll_next(cx)) {
                Some(Ok(mut data)) => {
                    if this.skip > 0 {
                        let dropped = this.skip.min(data.len() as u64);
                        let _ = data.split_to(dropped as usize);
                        this.skip -= dropped;
                        if data.is_empty() {
                            continue;
                        }
                    }
                    if data.len() as u64 > this.remaining {
                        data.truncate(this.remaining as usize);
                    }
                    this.remaining -= data.len() as u64;
                    return Poll::Ready(Some(Ok(data)));
                }
                Some(Err(e)) => {
                    let remaining = std::mem::take(&mut this.remaining);
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!(
                            "store {}: reading the data failed with {remaining} of {} bytes \
                             to go: {e}",
                            this.store, this.expected
                        ),
                    ))));
                }
                None => {
                    let remaining = std::mem::take(&mut this.remaining);
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "store {}: the data ended {remaining} bytes short of the {} \
                             expected",
                            this.store, this.expected
                        ),
                    ))));
                }
            }
        }
    }

    fn remaining(&self) -> u64 {
        self.remaining
    }
}
