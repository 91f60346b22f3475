//! A cache whose misses are fetched once: concurrent requests for a key that is not cached
//! share one fetch (the first one *leads* it, the others wait for its answer), and the answer
//! is kept until a deadline the leader chooses — a refusal can be kept as well as a success,
//! and an answer not worth keeping (an outage) is handed to the waiters and then forgotten.
//!
//! It knows nothing of what is fetched or where the fetch runs: the Keystone token cache
//! (`auth::keystone`) fetches on its validator threads; an image cache can fetch from a store.
//! A [`Lead`] dropped without an answer (its job was lost) wakes its waiters with `None`, so
//! nobody waits forever.
//!
//! Bounded: at capacity, a new miss first drops what has expired, then the eighth of the kept
//! answers that expire soonest. Fetches in flight are never dropped.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_channel::oneshot;

/// Answers by key, kept or in flight. Shared through an `Arc`.
pub struct SingleFlight<K, V> {
    table: Mutex<Table<K, V>>,
}

struct Table<K, V> {
    entries: HashMap<K, Slot<V>>,
    capacity: usize,
}

enum Slot<V> {
    Kept { value: V, until: Instant },
    InFlight(Vec<oneshot::Sender<V>>),
}

/// What a request for a key gets.
pub enum Begin<K: Hash + Eq + Clone, V: Clone> {
    /// A kept answer.
    Hit(V),
    /// Another request is fetching this key: await its answer.
    Wait(Answer<V>),
    /// Fetch it, then [`Lead::finish`]; the answer also arrives through the [`Answer`].
    Lead(Lead<K, V>, Answer<V>),
}

/// The answer of a fetch in flight: `None` when its leader was dropped without one.
pub struct Answer<V>(oneshot::Receiver<V>);

impl<V> Future for Answer<V> {
    type Output = Option<V>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<V>> {
        Pin::new(&mut self.0).poll(cx).map(Result::ok)
    }
}

/// The duty to fetch one key. Dropping it unfinished abandons the fetch.
pub struct Lead<K: Hash + Eq + Clone, V: Clone> {
    flight: Arc<SingleFlight<K, V>>,
    key: Option<K>,
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// An empty cache keeping at most `capacity` answers (at least one).
    pub fn new(capacity: usize) -> Arc<SingleFlight<K, V>> {
        Arc::new(SingleFlight {
            table: Mutex::new(Table {
                entries: HashMap::new(),
                capacity: capacity.max(1),
            }),
        })
    }

    /// Looks `key` up at `now`: a kept answer, an answer to wait for, or the lead of a fetch.
    pub fn begin(self: &Arc<Self>, key: K, now: Instant) -> Begin<K, V> {
        let (tx, rx) = oneshot::channel();
        let mut table = self.lock();
        match table.entries.get_mut(&key) {
            Some(Slot::Kept { value, until }) if *until > now => return Begin::Hit(value.clone()),
            Some(Slot::InFlight(waiters)) => {
                waiters.push(tx);
                return Begin::Wait(Answer(rx));
            }
            _ => {}
        }
        table.make_room(now);
        table.entries.insert(key.clone(), Slot::InFlight(vec![tx]));
        Begin::Lead(
            Lead {
                flight: Arc::clone(self),
                key: Some(key),
            },
            Answer(rx),
        )
    }

    /// How many answers are kept or in flight.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is kept or in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Table<K, V>> {
        // Whole slots are swapped in and out, so a panic while holding the lock leaves the
        // table consistent: a poisoned lock is still usable.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Lead<K, V> {
    /// Answers everyone waiting for this key with `value`, and keeps it until `keep_until`
    /// (`None`: do not keep it; the next request fetches again).
    pub fn finish(mut self, value: V, keep_until: Option<Instant>) {
        let Some(key) = self.key.take() else {
            return;
        };
        let previous = {
            let mut table = self.flight.lock();
            match keep_until {
                Some(until) => table.entries.insert(
                    key,
                    Slot::Kept {
                        value: value.clone(),
                        until,
                    },
                ),
                None => table.entries.remove(&key),
            }
        };
        // Sent outside the lock: a waiter woken here may come straight back to `begin`.
        if let Some(Slot::InFlight(waiters)) = previous {
            for waiter in waiters {
                let _ = waiter.send(value.clone());
            }
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for Lead<K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // Dropping the senders wakes the waiters with `None`.
            let abandoned = self.flight.lock().entries.remove(&key);
            drop(abandoned);
        }
    }
}

impl<K: Hash + Eq + Clone, V> Table<K, V> {
    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < self.capacity {
            return;
        }
        self.entries.retain(|_, slot| match slot {
            Slot::Kept { until, .. } => *until > now,
            Slot::InFlight(_) => true,
        });
        if self.entries.len() < self.capacity {
            return;
        }
        let mut kept: Vec<(Instant, K)> = self
            .entries
            .iter()
            .filter_map(|(key, slot)| match slot {
                Slot::Kept { until, .. } => Some((*until, key.clone())),
                Slot::InFlight(_) => None,
            })
            .collect();
        let drop = (self.capacity / 8).max(1).min(kept.len());
        if drop == 0 {
            return;
        }
        kept.select_nth_unstable_by_key(drop - 1, |(until, _)| *until);
        for (_, key) in &kept[..drop] {
            self.entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::block_on;
    use std::time::Duration;

    const MINUTE: Duration = Duration::from_secs(60);

    fn lead<K: Hash + Eq + Clone, V: Clone>(begin: Begin<K, V>) -> (Lead<K, V>, Answer<V>) {
        match begin {
            Begin::Lead(lead, answer) => (lead, answer),
            _ => panic!("expected to lead the fetch"),
        }
    }

    #[test]
    fn concurrent_misses_share_one_fetch_then_hit() {
        let flight = SingleFlight::<&str, u32>::new(10);
        let now = Instant::now();
        let (first, first_answer) = lead(flight.begin("k", now));
        let Begin::Wait(second) = flight.begin("k", now) else {
            panic!("a second request must wait")
        };
        first.finish(7, Some(now + MINUTE));
        assert_eq!(block_on(first_answer), Some(7));
        assert_eq!(block_on(second), Some(7));
        assert!(matches!(flight.begin("k", now), Begin::Hit(7)));
        // Past its deadline the key is fetched again.
        assert!(matches!(flight.begin("k", now + MINUTE), Begin::Lead(..)));
    }

    #[test]
    fn an_answer_not_kept_reaches_the_waiters_and_is_forgotten() {
        let flight = SingleFlight::<&str, &str>::new(10);
        let now = Instant::now();
        let (leader, _answer) = lead(flight.begin("k", now));
        let Begin::Wait(waiter) = flight.begin("k", now) else {
            panic!("must wait")
        };
        leader.finish("outage", None);
        assert_eq!(block_on(waiter), Some("outage"));
        assert!(matches!(flight.begin("k", now), Begin::Lead(..)));
    }

    #[test]
    fn a_dropped_lead_wakes_its_waiters_with_none() {
        let flight = SingleFlight::<&str, u32>::new(10);
        let now = Instant::now();
        let (leader, answer) = lead(flight.begin("k", now));
        let Begin::Wait(waiter) = flight.begin("k", now) else {
            panic!("must wait")
        };
        drop(leader);
        assert_eq!(block_on(answer), None);
        assert_eq!(block_on(waiter), None);
        assert!(flight.is_empty());
    }

    #[test]
    fn stays_within_capacity_keeping_fetches_in_flight() {
        let flight = SingleFlight::<u64, u64>::new(16);
        let now = Instant::now();
        let (_pending, _answer) = lead(flight.begin(1000, now));
        for i in 0..100 {
            let (leader, _) = lead(flight.begin(i, now));
            leader.finish(i, Some(now + Duration::from_secs(i + 1)));
            assert!(flight.len() <= 16);
        }
        assert!(matches!(flight.begin(1000, now), Begin::Wait(_)));
        // The answers kept longest survive.
        assert!(matches!(flight.begin(99, now), Begin::Hit(99)));
    }
}
