//! Tenant quotas: what one tenant may use at once (requests in flight, shell
//! commands), how fast it may send requests (a token bucket), and, counted where
//! they live, its sessions and running terminals. Over one, a request is refused
//! naming the quota and saying when to come back; what one tenant uses never
//! counts against another.

use crate::config::{Config, TenantLimits};
use crate::sync::Lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Over a quota.
#[derive(Debug, thiserror::Error)]
#[error("the tenant's {quota} quota ({limit}) is used up")]
pub struct Exceeded {
    /// The quota's name, as in `[tenant_limits]`.
    pub quota: &'static str,
    pub limit: u64,
    /// When trying again may succeed.
    pub retry_after_s: u64,
}

/// Seconds to come back after a concurrency or count quota: something must end first.
const RETRY_AFTER_S: u64 = 1;

/// One tenant's quotas and what it uses of them.
pub struct Tenant {
    pub limits: TenantLimits,
    in_flight: AtomicU64,
    shells: AtomicU64,
    bucket: Mutex<Bucket>,
}

/// Requests the tenant may send now, refilled at its rate.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A concurrency quota: what is counted while it is held.
#[derive(Clone, Copy)]
pub enum Gauge {
    RequestsInFlight,
    ShellCommands,
}

impl Gauge {
    /// Its name, as in `[tenant_limits]`.
    fn name(self) -> &'static str {
        match self {
            Gauge::RequestsInFlight => "requests_in_flight",
            Gauge::ShellCommands => "shell_commands",
        }
    }

    fn limit(self, limits: &TenantLimits) -> u64 {
        match self {
            Gauge::RequestsInFlight => limits.requests_in_flight,
            Gauge::ShellCommands => limits.shell_commands,
        }
    }
}

/// A unit of a concurrency quota, given back when dropped.
pub struct Held {
    tenant: Arc<Tenant>,
    gauge: Gauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.tenant
            .counter(self.gauge)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Tenant {
    fn new(limits: TenantLimits) -> Tenant {
        Tenant {
            limits,
            in_flight: AtomicU64::new(0),
            shells: AtomicU64::new(0),
            bucket: Mutex::new(Bucket {
                tokens: burst(&limits) as f64,
                at: Instant::now(),
            }),
        }
    }

    fn counter(&self, gauge: Gauge) -> &AtomicU64 {
        match gauge {
            Gauge::RequestsInFlight => &self.in_flight,
            Gauge::ShellCommands => &self.shells,
        }
    }

    /// What the tenant uses now of a concurrency quota.
    pub fn used(&self, gauge: Gauge) -> u64 {
        self.counter(gauge).load(Ordering::Relaxed)
    }

    /// One more of `gauge` until the hold is dropped, unless that is over it.
    fn hold(self: &Arc<Tenant>, gauge: Gauge) -> Result<Held, Exceeded> {
        let counter = self.counter(gauge);
        let used = counter.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = room(gauge.name(), gauge.limit(&self.limits), used) {
            counter.fetch_sub(1, Ordering::Relaxed);
            return Err(e);
        }
        Ok(Held {
            tenant: self.clone(),
            gauge,
        })
    }

    /// Takes one request from the bucket.
    fn take_request(&self) -> Result<(), Exceeded> {
        let rate = self.limits.requests_per_second;
        if rate == 0 {
            return Ok(());
        }
        let mut bucket = self.bucket.locked();
        let now = Instant::now();
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate as f64;
        bucket.tokens = (bucket.tokens + refill).min(burst(&self.limits) as f64);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Exceeded {
            quota: "requests_per_second",
            limit: rate,
            retry_after_s: ((1.0 - bucket.tokens) / rate as f64).ceil().max(1.0) as u64,
        })
    }
}

fn burst(limits: &TenantLimits) -> u64 {
    match limits.request_burst {
        0 => limits.requests_per_second,
        burst => burst,
    }
}

/// Refuses one more of a quota (`limit` 0: none) of which `used` are taken.
pub fn room(quota: &'static str, limit: u64, used: u64) -> Result<(), Exceeded> {
    if limit > 0 && used >= limit {
        return Err(Exceeded {
            quota,
            limit,
            retry_after_s: RETRY_AFTER_S,
        });
    }
    Ok(())
}

/// Every tenant's quotas (fixed at start: changed quotas take a restart).
pub struct Quotas {
    tenants: HashMap<String, Arc<Tenant>>,
    /// The defaults: the one tenant of a config without tenants.
    defaults: Arc<Tenant>,
}

impl Quotas {
    pub fn new(config: &Config) -> anyhow::Result<Quotas> {
        let mut tenants = HashMap::new();
        for tenant in &config.tenants {
            let limits = config.limits_of(tenant)?;
            tenants.insert(tenant.name.clone(), Arc::new(Tenant::new(limits)));
        }
        Ok(Quotas {
            tenants,
            defaults: Arc::new(Tenant::new(config.tenant_limits)),
        })
    }

    /// The tenant's quotas and use (only configured tenants, or the default one
    /// when none is, authenticate).
    pub fn tenant(&self, tenant: &str) -> Arc<Tenant> {
        self.tenants.get(tenant).unwrap_or(&self.defaults).clone()
    }

    /// Admits one request of the tenant: within its rate, and one more in flight
    /// until the returned hold is dropped.
    pub fn request(&self, tenant: &str) -> Result<Held, Exceeded> {
        let tenant = self.tenant(tenant);
        tenant.take_request()?;
        tenant.hold(Gauge::RequestsInFlight)
    }

    /// One more running shell command of the tenant, until dropped.
    pub fn shell(&self, tenant: &str) -> Result<Held, Exceeded> {
        self.tenant(tenant).hold(Gauge::ShellCommands)
    }
}
