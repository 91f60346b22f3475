//! The token cache: validations by token hash, on the generic [`SingleFlight`] — concurrent
//! requests with one uncached token share one validation. A valid token is kept until
//! `token_cache_time` passes or it expires, whichever is first; a refusal for
//! `token_cache_time` (a client retrying a bogus token does not hammer Keystone); an outage
//! not at all. Keyed by SHA-256, so tokens are not held once validated.

use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::client::Outcome;
use crate::single_flight::SingleFlight;

/// A token's hash.
pub type CacheKey = [u8; 32];

/// Validations by token hash.
pub type TokenCache = SingleFlight<CacheKey, Outcome>;

/// The cache key of `token`.
pub fn cache_key(token: &str) -> CacheKey {
    Sha256::digest(token.as_bytes()).into()
}

/// Until when `outcome`, answered at `now`, is kept; `None`: not kept.
pub fn keep_until(outcome: &Outcome, now: Instant, ttl: Duration) -> Option<Instant> {
    match outcome {
        Outcome::Valid(identity) => {
            let left = identity
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            Some(now + ttl.min(left))
        }
        Outcome::Invalid => Some(now + ttl),
        Outcome::Unavailable(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keystone::client::Identity;
    use crate::single_flight::Begin;
    use std::sync::Arc;

    const TTL: Duration = Duration::from_secs(300);

    fn valid(expires_in: Duration) -> Outcome {
        Outcome::Valid(Arc::new(Identity {
            user_id: "u".into(),
            user_domain_id: None,
            project_id: Some("p".into()),
            project_domain_id: None,
            domain_id: None,
            system_scope: None,
            roles: vec!["reader".into()],
            expires_at: SystemTime::now() + expires_in,
        }))
    }

    fn answer(cache: &Arc<TokenCache>, token: &str, outcome: Outcome, now: Instant) {
        let Begin::Lead(lead, _) = cache.begin(cache_key(token), now) else {
            panic!("{token} must be fetched")
        };
        let until = keep_until(&outcome, now, TTL);
        lead.finish(outcome, until);
    }

    #[test]
    fn kept_no_longer_than_the_token_lives() {
        let cache = TokenCache::new(10);
        let now = Instant::now();
        answer(&cache, "short", valid(Duration::from_secs(10)), now);
        answer(&cache, "long", valid(Duration::from_secs(3600)), now);
        let at = |secs| now + Duration::from_secs(secs);
        assert!(matches!(
            cache.begin(cache_key("short"), at(5)),
            Begin::Hit(_)
        ));
        assert!(matches!(
            cache.begin(cache_key("short"), at(11)),
            Begin::Lead(..)
        ));
        assert!(matches!(
            cache.begin(cache_key("long"), at(299)),
            Begin::Hit(_)
        ));
        assert!(matches!(
            cache.begin(cache_key("long"), at(301)),
            Begin::Lead(..)
        ));
    }

    #[test]
    fn refusals_are_kept_and_outages_are_not() {
        let cache = TokenCache::new(10);
        let now = Instant::now();
        answer(&cache, "bad", Outcome::Invalid, now);
        answer(&cache, "down", Outcome::Unavailable("x".into()), now);
        assert!(matches!(
            cache.begin(cache_key("bad"), now),
            Begin::Hit(Outcome::Invalid)
        ));
        assert!(matches!(
            cache.begin(cache_key("down"), now),
            Begin::Lead(..)
        ));
    }
}
