//! The server's Prometheus metrics (`GET /metrics`): what happens (requests,
//! component calls, bytes, watcher overflows) is counted where it happens, into
//! one process-wide registry; what is (instances, sessions, terminals, database
//! size) is read when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's template (`-` when no route matched).
    pub route: &'static str,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub slot: &'static str,
    /// `ok` (the component answered, with a value or an API error), `trap`,
    /// `timeout`, `busy` (no instance), `storage` or `workspace`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestoreLabels {
    /// `touched` (only what changed since the workspace last equalled the
    /// snapshot) or `everything`.
    pub compared: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 100 µs to ~100 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.5, 16))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Histograms<RequestLabels>,
    pub call_seconds: Histograms<CallLabels>,
    pub uploaded_bytes: Counter,
    pub downloaded_bytes: Counter,
    pub watch_overflows: Counter,
    pub restores: Family<RestoreLabels, Counter>,
    pub attached_clients: Gauge,
    // Read at each scrape.
    pub instances_in_use: Gauge,
    pub instances_capacity: Gauge,
    pub sessions: Gauge,
    pub terminals_running: Gauge,
    pub database_bytes: Gauge,
}

impl Metrics {
    fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("reshost"),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency),
            call_seconds: Family::new_with_constructor(latency),
            uploaded_bytes: Counter::default(),
            downloaded_bytes: Counter::default(),
            watch_overflows: Counter::default(),
            restores: Family::default(),
            attached_clients: Gauge::default(),
            instances_in_use: Gauge::default(),
            instances_capacity: Gauge::default(),
            sessions: Gauge::default(),
            terminals_running: Gauge::default(),
            database_bytes: Gauge::default(),
        };
        let r = &mut metrics.registry;
        r.register(
            "http_requests",
            "Requests answered, by route template, method and status",
            metrics.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time to the answer's head, by route template, method and status",
            metrics.request_seconds.clone(),
        );
        r.register(
            "component_call_duration_seconds",
            "Component calls by slot and outcome (traps and timeouts included)",
            metrics.call_seconds.clone(),
        );
        r.register(
            "uploaded_bytes",
            "Bytes of files uploaded (stored)",
            metrics.uploaded_bytes.clone(),
        );
        r.register(
            "downloaded_bytes",
            "Bytes of file content sent",
            metrics.downloaded_bytes.clone(),
        );
        r.register(
            "watch_overflows",
            "Times the file watcher's event queue overflowed (workspaces were rescanned)",
            metrics.watch_overflows.clone(),
        );
        r.register(
            "snapshot_restores",
            "Snapshot restores, by what they compared: what was touched since the workspace last equalled the snapshot, or everything",
            metrics.restores.clone(),
        );
        r.register(
            "terminal_clients_attached",
            "WebSocket clients attached to terminals",
            metrics.attached_clients.clone(),
        );
        r.register(
            "instances_in_use",
            "Component instances in use",
            metrics.instances_in_use.clone(),
        );
        r.register(
            "instances_capacity",
            "Component instances the pool holds (limits.max_instances)",
            metrics.instances_capacity.clone(),
        );
        r.register("sessions", "Sessions stored", metrics.sessions.clone());
        r.register(
            "terminals_running",
            "Terminals whose process runs",
            metrics.terminals_running.clone(),
        );
        r.register(
            "database_bytes",
            "Size of the database file",
            metrics.database_bytes.clone(),
        );
        metrics
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Counts an answered request.
    pub fn request(&self, labels: RequestLabels, took: Duration) {
        self.request_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }

    /// Counts a component call.
    pub fn call(&self, slot: &'static str, outcome: &'static str, took: Duration) {
        self.call_seconds
            .get_or_create(&CallLabels { slot, outcome })
            .observe(took.as_secs_f64());
    }
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Sets a gauge to a count.
pub fn set(gauge: &Gauge, value: u64) {
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
}
