//! `portcullis-bench-paced`: an open-loop load generator that paces evenly.
//!
//! oha's `-q RATE` schedules request `i` at `start + i / RATE` with tokio's timer,
//! whose resolution is one millisecond: at 35,000 req/s every tick releases some 35
//! requests at once, so a "half load" run is really a burst of 35 simultaneous
//! requests each millisecond, and its p99 is how long the server takes to drain such
//! a burst. This generator keeps the same schedule but releases each request at its
//! own instant from an OS thread that sleeps with the kernel's high-resolution timer
//! (a wake-up every few tens of microseconds, a few requests each), hands it to
//! whichever of the keep-alive connections is free, and counts latency from the
//! scheduled instant (so a request that waited for a free connection is charged for
//! the wait: no coordinated omission).
//!
//! Usage:
//!   portcullis-bench-paced --url http://127.0.0.1:PORT/PATH --rate R [-d SECONDS] [-w SECONDS]
//!       [-c CONNECTIONS] [-m METHOD] [-H 'Name: value']... [--body TEXT] [--basic ID:SECRET]
//!
//! Prints one JSON object: offered and achieved rate, latency percentiles (ms) from the
//! scheduled instant and from the moment the request was written, status counts,
//! errors, and how late the pacer released requests.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

#[derive(Debug, Clone)]
struct Args {
    url: hyper::Uri,
    rate: f64,
    duration: f64,
    warmup: f64,
    connections: usize,
    method: hyper::Method,
    headers: Vec<(String, String)>,
    body: Bytes,
}

fn args() -> anyhow::Result<Args> {
    let mut url = None;
    let mut rate = None;
    let mut a = Args {
        url: hyper::Uri::from_static("http://127.0.0.1/"),
        rate: 0.0,
        duration: 3.0,
        warmup: 1.0,
        connections: 32,
        method: hyper::Method::GET,
        headers: Vec::new(),
        body: Bytes::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--url" => url = Some(v()?.parse::<hyper::Uri>().context("--url")?),
            "--rate" => rate = Some(v()?.parse::<f64>().context("--rate")?),
            "-d" => a.duration = v()?.parse().context("-d")?,
            "-w" => a.warmup = v()?.parse().context("-w")?,
            "-c" => a.connections = v()?.parse().context("-c")?,
            "-m" => a.method = v()?.parse().context("-m")?,
            "-H" => {
                let h = v()?;
                let (name, value) = h.split_once(':').context("-H 'Name: value'")?;
                a.headers
                    .push((name.trim().to_owned(), value.trim().to_owned()));
            }
            "--body" => a.body = Bytes::from(v()?),
            "--basic" => {
                let creds = v()?;
                let b64 = base64::engine::general_purpose::STANDARD.encode(creds);
                a.headers
                    .push(("authorization".to_owned(), format!("Basic {b64}")));
            }
            other => bail!("unknown argument {other}"),
        }
    }
    a.url = url.context("--url is required")?;
    a.rate = rate.context("--rate is required")?;
    if a.url.scheme_str() != Some("http") {
        bail!("--url must be http://host:port/path");
    }
    if !(a.rate > 0.0 && a.rate.is_finite()) || a.connections == 0 || a.duration <= 0.0 {
        bail!("--rate, -c and -d must be positive");
    }
    Ok(a)
}

/// One scheduled request: its instant, and whether it is counted (not warm-up).
#[derive(Clone, Copy)]
struct Slot {
    at: Instant,
    counted: bool,
}

/// Releases slot `i` at `start + i / rate` until `end`, from an OS thread: its sleeps
/// use the kernel's high-resolution timer (tokio's timer wheel ticks per millisecond).
/// Returns how late each release was (µs), for the report.
fn pace(
    tx: flume::Sender<Slot>,
    start: Instant,
    counted_from: Instant,
    end: Instant,
    rate: f64,
) -> Vec<u32> {
    let mut late = Vec::new();
    for i in 0u64.. {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        if at >= end {
            break;
        }
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        let counted = at >= counted_from;
        if counted {
            late.push(micros(Instant::now().saturating_duration_since(at)));
        }
        if tx.send(Slot { at, counted }).is_err() {
            break;
        }
    }
    late
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

#[derive(Default)]
struct Tally {
    /// From the scheduled instant to the last byte of the answer.
    from_schedule: Vec<u32>,
    /// From writing the request to the last byte of the answer.
    from_send: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
}

async fn connection(args: &Args, rx: flume::Receiver<Slot>) -> anyhow::Result<Tally> {
    let authority = args
        .url
        .authority()
        .context("--url needs host:port")?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((authority.host(), port))
        .await
        .with_context(|| format!("connect to {authority}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut t = Tally::default();
    while let Ok(slot) = rx.recv_async().await {
        let mut req = Request::builder()
            .method(args.method.clone())
            .uri(args.url.clone())
            .header(hyper::header::HOST, authority.as_str());
        for (k, v) in &args.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(args.body.clone()))?;
        if sender.ready().await.is_err() {
            bail!("the server closed a keep-alive connection");
        }
        let sent = Instant::now();
        let answer = match sender.send_request(req).await {
            Ok(res) => {
                let status = res.status().as_u16();
                res.into_body()
                    .collect()
                    .await
                    .map(|_| status)
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let done = Instant::now();
        if !slot.counted {
            continue;
        }
        match answer {
            Ok(status) => {
                *t.statuses.entry(status).or_default() += 1;
                t.from_schedule.push(micros(done - slot.at));
                t.from_send.push(micros(done - sent));
            }
            Err(e) => *t.errors.entry(e).or_default() += 1,
        }
    }
    Ok(t)
}

fn percentile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn summary(mut v: Vec<u32>) -> serde_json::Value {
    v.sort_unstable();
    serde_json::json!({
        "p50_ms": percentile_ms(&v, 0.50),
        "p90_ms": percentile_ms(&v, 0.90),
        "p99_ms": percentile_ms(&v, 0.99),
        "p999_ms": percentile_ms(&v, 0.999),
        "max_ms": percentile_ms(&v, 1.0),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let (tx, rx) = flume::unbounded::<Slot>();
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        let (a, rx) = (args.clone(), rx.clone());
        workers.push(tokio::spawn(async move { connection(&a, rx).await }));
    }
    drop(rx);
    // Connections open before the clock starts.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let counted_from = start + Duration::from_secs_f64(args.warmup);
    let end = counted_from + Duration::from_secs_f64(args.duration);
    let rate = args.rate;
    let pacer = std::thread::spawn(move || pace(tx, start, counted_from, end, rate));
    let mut all = Tally::default();
    for w in workers {
        let t = w.await.context("connection task")??;
        all.from_schedule.extend(t.from_schedule);
        all.from_send.extend(t.from_send);
        for (k, n) in t.statuses {
            *all.statuses.entry(k).or_default() += n;
        }
        for (k, n) in t.errors {
            *all.errors.entry(k).or_default() += n;
        }
    }
    let finished = Instant::now();
    let late = pacer
        .join()
        .map_err(|_| anyhow::anyhow!("the pacer panicked"))?;
    let requests = all.from_schedule.len() as u64 + all.errors.values().sum::<u64>();
    let mut late_sorted = late;
    late_sorted.sort_unstable();
    let out = serde_json::json!({
        "rate_offered": args.rate,
        "rate_achieved": requests as f64 / (finished - counted_from).as_secs_f64(),
        "requests": requests,
        "connections": args.connections,
        "duration_s": args.duration,
        "from_schedule": summary(all.from_schedule),
        "from_send": summary(all.from_send),
        "pacer_late": {
            "p50_ms": percentile_ms(&late_sorted, 0.5),
            "p99_ms": percentile_ms(&late_sorted, 0.99),
        },
        "status_codes": all.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "errors": all.errors,
    });
    println!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_releases_every_slot_of_the_schedule_in_order_and_marks_the_warm_up() {
        let (tx, rx) = flume::unbounded();
        let start = Instant::now();
        let counted_from = start + Duration::from_millis(50);
        let end = start + Duration::from_millis(150);
        let late = pace(tx, start, counted_from, end, 1000.0);
        let slots: Vec<Slot> = rx.drain().collect();
        // Slot i is due at start + i ms: 0..150, of which 50..150 are counted.
        assert_eq!(slots.len(), 150);
        assert_eq!(slots.iter().filter(|s| s.counted).count(), 100);
        assert_eq!(late.len(), 100);
        assert!(slots.windows(2).all(|w| w[0].at < w[1].at));
        assert!(slots.iter().all(|s| s.counted == (s.at >= counted_from)));
        assert_eq!(slots[149].at - slots[0].at, Duration::from_millis(149));
        // No slot left before its instant.
        assert!(Instant::now() >= slots[149].at);
    }

    #[test]
    fn percentiles_are_read_from_the_sorted_samples() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile_ms(&v, 0.50), 0.050);
        assert_eq!(percentile_ms(&v, 0.99), 0.099);
        assert_eq!(percentile_ms(&v, 1.0), 0.100);
        assert_eq!(percentile_ms(&[7], 0.99), 0.007);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
    }
}
