//! Admission limits: new streams per client address and per user, and
//! publishes per user, as keyed GCRA rate limiters (`governor`: lock-free
//! per key, no background task). The simultaneous-streams cap per user is
//! enforced by the Registry, which owns the set of open streams.
//!
//! Limits are per instance. Behind a load balancer, a user's budget is the
//! per-instance rate times the instances they reach.

use std::{fmt, hash::Hash, net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use actix_web::HttpRequest;
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    auth::Principal,
    config::{LimitSettings, RateLimit},
    domain::UserId,
    telemetry::Metrics,
};

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    StreamsPerIp,
    StreamsPerUser,
    PublishesPerUser,
    StreamsPerUserCap,
    TicketsPerUser,
}

impl Limit {
    pub const ALL: [Self; 5] = [
        Self::StreamsPerIp,
        Self::StreamsPerUser,
        Self::PublishesPerUser,
        Self::StreamsPerUserCap,
        Self::TicketsPerUser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StreamsPerIp => "streams_per_ip",
            Self::StreamsPerUser => "streams_per_user",
            Self::PublishesPerUser => "publishes_per_user",
            Self::StreamsPerUserCap => "streams_per_user_cap",
            Self::TicketsPerUser => "tickets_per_user",
        }
    }
}

/// A refusal, with when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}; retry in {retry_after_secs} s", describe(*.limit))]
pub struct RateLimited {
    pub limit: Limit,
    pub retry_after_secs: u64,
}

fn describe(limit: Limit) -> &'static str {
    match limit {
        Limit::StreamsPerIp => "too many new streams from this address",
        Limit::StreamsPerUser => "too many new streams for this user",
        Limit::PublishesPerUser => "too many publishes for this user",
        Limit::StreamsPerUserCap => "this user has too many open streams",
        Limit::TicketsPerUser => "too many stream tickets for this user",
    }
}

pub struct RateLimits {
    streams_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    streams_per_user: Option<DefaultKeyedRateLimiter<UserId>>,
    publishes_per_user: Option<DefaultKeyedRateLimiter<UserId>>,
    /// Stream tickets, at the rate of `--stream-rate-per-user` but counted
    /// apart (a stream opened with a ticket is charged as a stream too): a
    /// subscriber minting tickets in a loop would otherwise fill the
    /// instance's ticket book, or Redis, and deny every other user theirs.
    tickets_per_user: Option<DefaultKeyedRateLimiter<UserId>>,
    /// The places of `GET /sse/diagnose`s: see [`DIAGNOSES_AT_ONCE`].
    diagnoses: Arc<Semaphore>,
    trusted_proxies: Vec<IpAddr>,
    metrics: Metrics,
}

impl RateLimits {
    pub fn new(settings: &LimitSettings, metrics: Metrics) -> Self {
        metrics.declare_rate_limits(&Limit::ALL.map(Limit::as_str));
        Self {
            streams_per_ip: settings.streams_per_ip.map(keyed),
            streams_per_user: settings.streams_per_user.map(keyed),
            publishes_per_user: settings.publishes_per_user.map(keyed),
            tickets_per_user: settings.streams_per_user.map(keyed),
            diagnoses: Arc::new(Semaphore::new(DIAGNOSES_AT_ONCE)),
            trusted_proxies: settings.trusted_proxies.clone(),
            metrics,
        }
    }

    /// What one new stream from `req`'s client for `principal` will cost
    /// against the stream rate limits, to be paid by the Registry once it
    /// admits the stream; `None` when no stream rate applies (the default:
    /// a connect then costs nothing here).
    pub fn stream_charge(
        self: &Arc<Self>,
        req: &HttpRequest,
        principal: &Principal,
    ) -> Option<StreamCharge> {
        let address = self
            .streams_per_ip
            .as_ref()
            .and_then(|_| self.client_address(req));
        let user = self
            .streams_per_user
            .as_ref()
            .and_then(|_| principal.user_id.clone())
            .filter(|_| principal.authenticated);
        (address.is_some() || user.is_some()).then(|| StreamCharge {
            limits: self.clone(),
            address,
            user,
        })
    }

    /// Admits one publish (event, test event, task write) for `principal`.
    pub fn admit_publish(&self, principal: &Principal) -> Result<(), RateLimited> {
        self.check_user(&self.publishes_per_user, principal, Limit::PublishesPerUser)
    }

    /// A place for one `GET /sse/diagnose`, held until dropped (its stream
    /// ends or is dropped); `None` when [`DIAGNOSES_AT_ONCE`] run.
    pub fn start_diagnosis(&self) -> Option<OwnedSemaphorePermit> {
        self.diagnoses.clone().try_acquire_owned().ok()
    }

    /// Admits one stream ticket for `principal`.
    pub fn admit_ticket(&self, principal: &Principal) -> Result<(), RateLimited> {
        self.check_user(&self.tickets_per_user, principal, Limit::TicketsPerUser)
    }

    /// `limiter`'s check of `principal`'s subject, when the limit is on and
    /// the caller authenticated (without authentication no one has one).
    fn check_user(
        &self,
        limiter: &Option<DefaultKeyedRateLimiter<UserId>>,
        principal: &Principal,
        limit: Limit,
    ) -> Result<(), RateLimited> {
        match (limiter, &principal.user_id) {
            (Some(limiter), Some(user)) if principal.authenticated => {
                self.check(limiter, user, limit)
            }
            _ => Ok(()),
        }
    }

    /// The client's address: the TCP peer, or, when the peer is a trusted
    /// proxy, the rightmost `X-Forwarded-For` hop that is not one. The
    /// leftmost entries are whatever the client wrote, so never those.
    pub fn client_address(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        forwarded
            .iter()
            .rev()
            .filter_map(|hop| hop.parse::<IpAddr>().ok())
            .find(|ip| !self.trusted_proxies.contains(ip))
            .or(Some(peer))
    }

    /// Forgets keys whose budget is full again, so the maps hold only
    /// recently active clients. Called periodically.
    pub fn forget_idle_keys(&self) {
        if let Some(limiter) = &self.streams_per_ip {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in [
            &self.streams_per_user,
            &self.publishes_per_user,
            &self.tickets_per_user,
        ]
        .into_iter()
        .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    fn check<K: Hash + Eq + Clone>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
        limit: Limit,
    ) -> Result<(), RateLimited> {
        limiter.check_key(key).map_err(|not_until| {
            self.metrics.record_rate_limited(limit.as_str());
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            RateLimited {
                limit,
                retry_after_secs: retry_after_secs(wait),
            }
        })
    }
}

/// Diagnoses an instance runs at once. Each holds its connection for its
/// 1.5 s burst outside the Registry's count of streams: without a cap a
/// client could hold connections past `--max-connections` through it.
pub const DIAGNOSES_AT_ONCE: usize = 32;

/// A new stream's charge against `--stream-rate-per-ip` and
/// `--stream-rate-per-user`. The Registry pays it only once the stream has
/// passed its own checks (the connection limit, the per-user cap, the
/// drain), so a refused open uses up nothing of the client's budget.
pub struct StreamCharge {
    limits: Arc<RateLimits>,
    address: Option<IpAddr>,
    user: Option<UserId>,
}

impl StreamCharge {
    pub fn pay(self) -> Result<(), RateLimited> {
        let limits = &self.limits;
        if let (Some(limiter), Some(address)) = (&limits.streams_per_ip, &self.address) {
            limits.check(limiter, address, Limit::StreamsPerIp)?;
        }
        if let (Some(limiter), Some(user)) = (&limits.streams_per_user, &self.user) {
            limits.check(limiter, user, Limit::StreamsPerUser)?;
        }
        Ok(())
    }
}

impl fmt::Debug for StreamCharge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamCharge")
            .field("address", &self.address)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Whole seconds, rounded up, at least 1 (`Retry-After` has no fractions).
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn keyed<K: Hash + Eq + Clone>(limit: RateLimit) -> DefaultKeyedRateLimiter<K> {
    let burst = NonZeroU32::new(limit.count).unwrap_or(NonZeroU32::MIN);
    let replenish = (limit.period / burst.get()).max(Duration::from_nanos(1));
    let quota = Quota::with_period(replenish)
        .expect("a non-zero period")
        .allow_burst(burst);
    RateLimiter::keyed(quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_admitted_then_refused_with_a_whole_second_wait() {
        let limiter = keyed::<String>(RateLimit::parse("2/s").unwrap().unwrap());
        let key = "alice".to_owned();
        assert!(limiter.check_key(&key).is_ok());
        assert!(limiter.check_key(&key).is_ok());
        let refused = limiter.check_key(&key).unwrap_err();
        let wait = refused.wait_time_from(DefaultClock::default().now());
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        assert_eq!(retry_after_secs(wait), 1);
        assert!(limiter.check_key(&"bob".to_owned()).is_ok());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
