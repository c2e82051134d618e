//! The per-author rate limit of the topics: a token bucket per (author, topic), refilled
//! continuously, so a burst up to the per-minute budget passes and a flood does not.

use std::collections::HashMap;
use std::time::Instant;

use crate::message::Topic;

#[derive(Debug)]
pub struct RateLimiter {
    per_minute: f64,
    buckets: HashMap<(u64, Topic), (f64, Instant)>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute: f64::from(per_minute.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Whether `author` may have one more message on `topic` at `now`; takes a token if so.
    pub fn allow(&mut self, author: u64, topic: Topic, now: Instant) -> bool {
        let per_minute = self.per_minute;
        let (tokens, last) = self
            .buckets
            .entry((author, topic))
            .or_insert((per_minute, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * per_minute / 60.0;
        *tokens = (*tokens + refill).min(per_minute);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_up_to_the_budget_passes_then_one_a_period() {
        let mut limiter = RateLimiter::new(60);
        let t0 = Instant::now();
        assert!((0..60).all(|_| limiter.allow(1, Topic::Feed, t0)));
        assert!(!limiter.allow(1, Topic::Feed, t0));
        // Another author and another topic have their own budgets.
        assert!(limiter.allow(2, Topic::Feed, t0));
        assert!(limiter.allow(1, Topic::Events, t0));
        // One token a second at 60 a minute.
        assert!(!limiter.allow(1, Topic::Feed, t0 + Duration::from_millis(500)));
        assert!(limiter.allow(1, Topic::Feed, t0 + Duration::from_millis(1600)));
    }
}
