//! The daemon's Prometheus metrics (`daemon --metrics-listen ADDR`): kept with
//! `prometheus-client`, served at `/metrics` by a small hyper server on the daemon's runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use gptransfer_core::compare::WindowComparison;
use gptransfer_core::config::TableSpec;
use gptransfer_core::engine::{Observer, TableStatus, WindowReport, WindowStatus};
use gptransfer_core::roles::Counters;
use gptransfer_core::window::Window;

use crate::progress::Reporter;

/// A table entry: job, and `source` or `source -> target`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Entry {
    job: String,
    table: String,
}

/// An entry and how its window ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    job: String,
    table: String,
    status: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the daemon keeps.
pub struct Metrics {
    registry: Registry,
    windows: Family<Outcome, Counter>,
    rows: Family<Entry, Counter>,
    bytes: Family<Entry, Counter>,
    window_seconds: Family<Entry, Histogram, fn() -> Histogram>,
    lag_seconds: Family<Entry, Gauge>,
    failing: Family<Entry, Gauge>,
    differing_windows: Family<Entry, Gauge>,
    differences: Family<Entry, Counter>,
    rounds: Counter,
    last_round_end: FloatGauge,
    last_round_seconds: FloatGauge,
}

fn window_histogram() -> Histogram {
    // 50 ms to ~14 min: an hourly window of a big table takes minutes, a small one a fraction
    // of a second.
    Histogram::new(exponential_buckets(0.05, 2.0, 15))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gptransfer");
        let windows = Family::<Outcome, Counter>::default();
        registry.register("windows", "Window attempts that ended, by status (succeeded, failed)", windows.clone());
        let rows = Family::<Entry, Counter>::default();
        registry.register("rows", "Rows written to the target by windows that landed", rows.clone());
        let bytes = Family::<Entry, Counter>::default();
        registry.register("bytes", "Bytes carried by windows that landed", bytes.clone());
        let window_seconds = Family::<Entry, Histogram, fn() -> Histogram>::new_with_constructor(window_histogram);
        registry.register("window_seconds", "Seconds per window attempt", window_seconds.clone());
        let lag_seconds = Family::<Entry, Gauge>::default();
        registry.register(
            "lag_seconds",
            "Seconds from the cursor to where windows may end now (now - lag, or the table's end)",
            lag_seconds.clone(),
        );
        let failing = Family::<Entry, Gauge>::default();
        registry.register("failing", "1 when the entry's newest attempt failed", failing.clone());
        let differing_windows = Family::<Entry, Gauge>::default();
        registry.register(
            "compare_differing_windows",
            "Windows the last compare of the entry found differing",
            differing_windows.clone(),
        );
        let differences = Family::<Entry, Counter>::default();
        registry.register("compare_differences", "Differing keys compare found", differences.clone());
        let rounds = Counter::default();
        registry.register("rounds", "Daemon rounds completed", rounds.clone());
        let last_round_end = FloatGauge::default();
        registry.register(
            "last_round_end_timestamp_seconds",
            "When the last round ended (Unix time)",
            last_round_end.clone(),
        );
        let last_round_seconds = FloatGauge::default();
        registry.register("last_round_seconds", "How long the last round took", last_round_seconds.clone());
        Metrics {
            registry,
            windows,
            rows,
            bytes,
            window_seconds,
            lag_seconds,
            failing,
            differing_windows,
            differences,
            rounds,
            last_round_end,
            last_round_seconds,
        }
    }

    /// A window ended.
    pub fn window(&self, w: &WindowReport) {
        let status = match w.status {
            WindowStatus::Succeeded => "succeeded",
            WindowStatus::Failed => "failed",
            WindowStatus::Planned => return,
        };
        let entry = Entry { job: w.job.clone(), table: w.table.clone() };
        self.windows
            .get_or_create(&Outcome { job: w.job.clone(), table: w.table.clone(), status: status.into() })
            .inc();
        self.window_seconds.get_or_create(&entry).observe(w.elapsed_seconds);
        if w.status == WindowStatus::Succeeded {
            self.rows.get_or_create(&entry).inc_by(w.rows_written);
            self.bytes.get_or_create(&entry).inc_by(w.bytes);
        }
    }

    /// A compare of the windows just loaded ended.
    pub fn compared(&self, found: &[WindowComparison]) {
        let mut per_entry: std::collections::BTreeMap<(String, String), (i64, u64)> = Default::default();
        for c in found {
            let e = per_entry.entry((c.job.clone(), c.table.clone())).or_default();
            if c.differs() {
                e.0 += 1;
            }
            e.1 += c.total_differences as u64;
        }
        for ((job, table), (differing, differences)) in per_entry {
            let entry = Entry { job, table };
            self.differing_windows.get_or_create(&entry).set(differing);
            self.differences.get_or_create(&entry).inc_by(differences);
        }
    }

    /// Where each entry stands at the end of a round.
    pub fn standing(&self, found: &[TableStatus]) {
        for s in found {
            let entry = Entry { job: s.job.clone(), table: s.table.clone() };
            self.lag_seconds.get_or_create(&entry).set(s.lag_seconds);
            self.failing.get_or_create(&entry).set(i64::from(s.failing));
        }
    }

    /// A round ended after `seconds`.
    pub fn round(&self, seconds: f64) {
        self.rounds.inc();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.last_round_end.set(now);
        self.last_round_seconds.set(seconds);
    }

    fn text(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Serves `/metrics` on `listener` until the process ends.
pub fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("metrics: cannot accept a connection: {e}");
                    continue;
                }
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(respond(&metrics, &req)) }
                });
                if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                    tracing::debug!("metrics: connection ended: {e}");
                }
            });
        }
    });
}

/// Binds the metrics address, or says why it cannot (exit 2 before the first round).
pub async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let parsed: SocketAddr = addr.parse().map_err(|e| {
        super::commands::usage(
            "--metrics-listen",
            format!("{addr:?} is not an address: {e}; write e.g. 127.0.0.1:9187"),
        )
    })?;
    tokio::net::TcpListener::bind(parsed)
        .await
        .map_err(|e| super::commands::usage("--metrics-listen", format!("cannot listen on {addr}: {e}")))
}

fn respond<B>(metrics: &Metrics, req: &Request<B>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(v) = content_type.parse() {
            response.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        response
    };
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "text/plain", "gptransfer serves /metrics only\n".into());
    }
    match metrics.text() {
        Ok(body) => reply(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", body),
        Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "cannot encode the metrics\n".into()),
    }
}

/// The daemon's observer: the progress lines, and each finished window into the metrics.
pub struct Observed {
    pub reporter: Reporter,
    pub metrics: Option<Arc<Metrics>>,
}

impl Observer for Observed {
    fn planned(&self, table: &TableSpec, windows: &[Window]) {
        self.reporter.planned(table, windows);
    }
    fn window_started(&self, table: &TableSpec, window: &Window, counters: Arc<Counters>) {
        self.reporter.window_started(table, window, counters);
    }
    fn window_retrying(&self, report: &WindowReport) {
        self.reporter.window_retrying(report);
        // Each attempt is a history row: the counters add up to history.
        if let Some(m) = &self.metrics {
            m.window(report);
        }
    }
    fn window_finished(&self, report: &WindowReport) {
        self.reporter.window_finished(report);
        if let Some(m) = &self.metrics {
            m.window(report);
        }
    }
}
