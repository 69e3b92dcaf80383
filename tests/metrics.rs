//! `daemon --metrics-listen` (issue 12, item 3): Prometheus metrics scraped during a daemon round
//! parse, and once the round ended its counters match history; a bad or taken address is refused
//! before the first round.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::held::{big_tables, hold, release, wait_until_mid_copy, BIG_ROWS};
use support::runs::Guard;
use support::{Server, TestEnv};

/// `GET path` over HTTP/1.1: status code and body.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to :{port}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP response: {response:?}"));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    assert!(code != 200 || head.to_ascii_lowercase().contains("content-type: application/openmetrics-text"), "{head}");
    (code, body.to_string())
}

type Samples = Vec<(String, Vec<(String, String)>, f64)>;

/// The scrape parsed as Prometheus text: `(name, labels, value)` of every sample.
fn scrape(port: u16) -> Samples {
    scrape_with_text(port).0
}

/// [`scrape`] and the text it parsed.
fn scrape_with_text(port: u16) -> (Samples, String) {
    let (code, body) = get(port, "/metrics");
    assert_eq!(code, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{body}"));
    assert!(!parsed.docs.is_empty(), "no HELP lines:\n{body}");
    let samples = parsed
        .samples
        .into_iter()
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => f64::NAN,
            };
            let mut labels: Vec<(String, String)> = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            labels.sort();
            (s.metric, labels, value)
        })
        .collect();
    (samples, body)
}

/// The value of `name` with these labels among them, if any.
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|(_, _, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_during_a_daemon_round_parses_and_its_counters_match_history() {
    let env = TestEnv::on("metrics_daemon", Server::Pg, Server::Gp6);
    big_tables(&env);
    let src = env.src.admin(&env.db).await;
    let dst = env.dst.admin(&env.dst_db).await;
    let locker = hold(&env).await;
    let port = support::free_ports(1).unwrap()[0];
    let addr = format!("127.0.0.1:{port}");
    let daemon = Guard(Some(env.spawn(&["daemon", "--interval", "1h", "--metrics-listen", &addr])));

    // Mid-round: the window's COPY is running; the endpoint answers, nothing is counted yet.
    wait_until_mid_copy(&src, &dst).await;
    let during = scrape(port);
    assert_eq!(value(&during, "gptransfer_rounds_total", &[]), Some(0.0), "{during:?}");
    assert_eq!(value(&during, "gptransfer_windows_total", &[("status", "succeeded")]), None, "{during:?}");
    assert_eq!(get(port, "/").0, 404);

    // The round ends (window, compare, standing); then the counters are history's.
    release(&locker).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let (after, text) = loop {
        let (s, text) = scrape_with_text(port);
        if value(&s, "gptransfer_rounds_total", &[]) == Some(1.0) {
            break (s, text);
        }
        assert!(Instant::now() < deadline, "the round did not end: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let history: Vec<f64> = env
        .dst_psql(
            "SELECT count(*) || ' ' || coalesce(sum(rows_written), 0) || ' ' || coalesce(sum(bytes), 0) \
             FROM gptransfer.history WHERE status = 'succeeded'",
        )
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    let entry = [("job", "j"), ("table", "public.big")];
    let succeeded = [("job", "j"), ("table", "public.big"), ("status", "succeeded")];
    assert_eq!(history[..2], [1.0, f64::from(BIG_ROWS)]);
    assert_eq!(value(&after, "gptransfer_windows_total", &succeeded), Some(history[0]), "{after:?}");
    assert_eq!(value(&after, "gptransfer_rows_total", &entry), Some(history[1]), "{after:?}");
    assert_eq!(value(&after, "gptransfer_bytes_total", &entry), Some(history[2]), "{after:?}");
    assert!(text.contains("gptransfer_window_seconds_count{job=\"j\",table=\"public.big\"} 1\n"), "{text}");
    assert_eq!(value(&after, "gptransfer_lag_seconds", &entry), Some(0.0), "{after:?}");
    assert_eq!(value(&after, "gptransfer_failing", &entry), Some(0.0), "{after:?}");
    assert_eq!(value(&after, "gptransfer_compare_differing_windows", &entry), Some(0.0), "{after:?}");
    assert!(value(&after, "gptransfer_last_round_end_timestamp_seconds", &[]).unwrap_or(0.0) > 1.7e9, "{after:?}");

    daemon.signal("TERM");
    let out = daemon.wait();
    assert_eq!(out.code, 143, "{}", out.render());
}

#[test]
fn a_bad_or_taken_metrics_address_is_refused_before_the_first_round() {
    let env = TestEnv::new("metrics_bad_address");
    env.write_config("{CLUSTERS}\n");
    let bad = env.run(&["daemon", "--rounds", "1", "--metrics-listen", "localhost:notaport"]);
    bad.assert_code(2);
    assert!(bad.stderr.contains("is not an address"), "{}", bad.render());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = env.run(&["daemon", "--rounds", "1", "--metrics-listen", &addr]);
    out.assert_code(2);
    assert!(out.stderr.contains(&format!("cannot listen on {addr}")), "{}", out.render());
}
