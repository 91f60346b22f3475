//! The cache's rules, on a monoio runtime: single flight with joiners, verification before
//! publishing, hard capacity with LRU and reader protection, restart.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use meta::ImageId;

use super::*;
use crate::body::ByteStream;

fn run<F: std::future::Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A store stream of `chunks`, failing after `fail_after` of them when set.
struct Chunks {
    chunks: VecDeque<Bytes>,
    fail_after: Option<usize>,
    sent: usize,
}

impl ByteStream for Chunks {
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.fail_after == Some(self.sent) {
            return Poll::Ready(Some(Err(io::Error::other("the store broke"))));
        }
        self.sent += 1;
        Poll::Ready(self.chunks.pop_front().map(Ok))
    }

    fn remaining(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }
}

fn source(data: &[u8], fail_after: Option<usize>) -> Source {
    Box::pin(Chunks {
        chunks: data.chunks(1000).map(Bytes::copy_from_slice).collect(),
        fail_after,
        sent: 0,
    })
}

fn expect_of(data: &[u8]) -> Expect {
    let mut hasher = Hasher::new("sha512").unwrap();
    hasher.update(data).unwrap();
    Expect {
        size: data.len() as u64,
        algo: "sha512".into(),
        digest: hasher.finish().unwrap(),
    }
}

async fn drain(mut stream: Pin<Box<dyn ByteStream>>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn a_miss_fills_once_joiners_stream_it_and_then_it_hits() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), 1 << 20, 1).unwrap();
    let id = ImageId::new_v4();
    let bytes = data(10_000, 1);
    let expect = expect_of(&bytes);
    let (job, first) = match cache.lookup(id, &expect, None) {
        Lookup::Fill(job, Some(joiner)) => (job, joiner),
        _ => panic!("a miss fills"),
    };
    let Lookup::Join(second) = cache.lookup(id, &expect, None) else {
        panic!("a second request joins the fill")
    };
    let Lookup::Join(ranged) = cache.lookup(id, &expect, Some((0, 10))) else {
        panic!("a range at the fill's start joins too")
    };
    let (a, b, c) = run(async move {
        let fill = monoio::spawn(job.run(source(&bytes, None)));
        let a = drain(Box::pin(first)).await.unwrap();
        let b = drain(Box::pin(second)).await.unwrap();
        let c = drain(Box::pin(ranged)).await.unwrap();
        fill.await;
        (a, b, c)
    });
    let bytes = data(10_000, 1);
    assert_eq!(a, bytes);
    assert_eq!(b, bytes);
    assert_eq!(c, &bytes[..10]);
    assert!(matches!(
        cache.lookup(id, &expect, None),
        Lookup::Hit { .. }
    ));
    assert_eq!(
        std::fs::read(dir.path().join(id.to_string())).unwrap(),
        bytes
    );
    let (cached, _) = cache.list();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].size, 10_000);
}

#[test]
fn wrong_data_or_a_failing_store_is_never_published_and_joiners_get_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), 1 << 20, 1).unwrap();
    let bytes = data(5_000, 2);
    let expect = expect_of(&bytes);
    for (corrupt, fail_after) in [(true, None), (false, Some(2))] {
        let id = ImageId::new_v4();
        let Lookup::Fill(job, Some(joiner)) = cache.lookup(id, &expect, None) else {
            panic!("a miss fills")
        };
        let mut sent = bytes.clone();
        if corrupt {
            sent[4_000] ^= 1;
        }
        let got = run(async move {
            let fill = monoio::spawn(job.run(source(&sent, fail_after)));
            let got = drain(Box::pin(joiner)).await;
            fill.await;
            got
        });
        assert!(got.is_err(), "a joiner of a failed fill gets an error");
        assert!(!cache.contains(id));
        assert!(
            matches!(cache.lookup(id, &expect, None), Lookup::Bypass),
            "no new fill right after a failed one"
        );
        assert!(!dir.path().join(id.to_string()).exists());
        assert!(!dir.path().join(format!("{id}.fill")).exists());
    }
    assert_eq!(cache.used_bytes(), 0);
}

#[test]
fn capacity_is_hard_lru_goes_first_and_readers_protect() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), 25_000, 1).unwrap();
    let fill = |id: ImageId, bytes: &[u8]| {
        let expect = expect_of(bytes);
        let Lookup::Fill(job, _) = cache.lookup(id, &expect, Some((0, 1))) else {
            panic!("a miss fills")
        };
        let bytes = bytes.to_vec();
        run(async move { job.run(source(&bytes, None)).await });
        expect
    };
    let (a, b, c) = (ImageId::new_v4(), ImageId::new_v4(), ImageId::new_v4());
    let ea = fill(a, &data(10_000, 3));
    let eb = fill(b, &data(10_000, 4));
    // a is used again: b is now the least recently used, but a reader holds it.
    let Lookup::Hit { lease: held_b, .. } = cache.lookup(b, &eb, None) else {
        panic!("b is cached")
    };
    let Lookup::Hit { .. } = cache.lookup(a, &ea, None) else {
        panic!("a is cached")
    };
    fill(c, &data(10_000, 5));
    assert!(cache.contains(b), "an entry being read is never evicted");
    assert!(!cache.contains(a), "so the other one went");
    assert!(cache.used_bytes() <= 25_000);
    // Too big to ever fit: served from the store, nothing evicted.
    let huge = data(30_000, 6);
    assert!(matches!(
        cache.lookup(ImageId::new_v4(), &expect_of(&huge), None),
        Lookup::Bypass
    ));
    drop(held_b);
    assert!(cache.contains(c) && cache.contains(b));
}

#[test]
fn a_restart_keeps_published_entries_drops_partial_fills_and_catches_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = (ImageId::new_v4(), ImageId::new_v4());
    let (gb, bb) = (data(4_000, 7), data(4_000, 8));
    {
        let cache = Cache::open(dir.path(), 1 << 20, 1).unwrap();
        for (id, bytes) in [(good, &gb), (bad, &bb)] {
            let Lookup::Fill(job, _) = cache.lookup(id, &expect_of(bytes), Some((0, 1))) else {
                panic!("fills")
            };
            let bytes = bytes.clone();
            run(async move { job.run(source(&bytes, None)).await });
        }
        // A fill cut short by the restart.
        let Lookup::Fill(_job, _) = cache.lookup(ImageId::new_v4(), &expect_of(&gb), Some((0, 1)))
        else {
            panic!("fills")
        };
    }
    let mut corrupted = std::fs::read(dir.path().join(bad.to_string())).unwrap();
    corrupted[100] ^= 0xff;
    std::fs::write(dir.path().join(bad.to_string()), corrupted).unwrap();
    let cache = Cache::open(dir.path(), 1 << 20, 1).unwrap();
    let fills = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".fill")
        })
        .count();
    assert_eq!(fills, 0, "partial fills are removed at start");
    // Not served before it is verified.
    assert!(matches!(
        cache.lookup(good, &expect_of(&gb), None),
        Lookup::Bypass
    ));
    assert_eq!(cache.verify_all(false), (2, 1));
    assert!(matches!(
        cache.lookup(good, &expect_of(&gb), None),
        Lookup::Hit { .. }
    ));
    assert!(!cache.contains(bad), "the corrupted entry is evicted");
    assert!(
        matches!(cache.lookup(bad, &expect_of(&bb), None), Lookup::Fill(..)),
        "and refetched"
    );
}

#[test]
fn invalidate_and_clear_drop_entries_and_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), 1 << 20, 1).unwrap();
    let id = ImageId::new_v4();
    let bytes = data(2_000, 9);
    let Lookup::Fill(job, _) = cache.lookup(id, &expect_of(&bytes), Some((0, 1))) else {
        panic!("fills")
    };
    run(async move { job.run(source(&bytes, None)).await });
    assert!(cache.invalidate(id));
    assert!(!cache.invalidate(id));
    assert!(!dir.path().join(id.to_string()).exists());
    assert_eq!(cache.used_bytes(), 0);
    assert_eq!(cache.clear(true, true), 0);
}

#[test]
fn an_entry_invalidated_while_filling_is_never_published() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), 1 << 20, 1).unwrap();
    let id = ImageId::new_v4();
    let bytes = data(3_000, 10);
    let expect = expect_of(&bytes);
    let Lookup::Fill(job, Some(joiner)) = cache.lookup(id, &expect, None) else {
        panic!("fills")
    };
    assert!(cache.invalidate(id));
    assert!(!cache.contains(id));
    // No second fill on the same file name while the first one runs.
    assert!(matches!(cache.lookup(id, &expect, None), Lookup::Bypass));
    let got = run(async move {
        let fill = monoio::spawn(job.run(source(&bytes, None)));
        let got = drain(Box::pin(joiner)).await;
        fill.await;
        got
    });
    assert_eq!(
        got.unwrap(),
        data(3_000, 10),
        "its joiners still get the bytes"
    );
    assert!(!cache.contains(id));
    assert!(!dir.path().join(id.to_string()).exists());
    assert_eq!(cache.used_bytes(), 0);
    assert!(matches!(cache.lookup(id, &expect, None), Lookup::Fill(..)));
}
