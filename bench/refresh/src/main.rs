//! `portcullis-bench-refresh`: a closed-loop load generator for the refresh grant.
//!
//! Rotation makes every refresh token single-use, so each connection keeps its own
//! family: one `password` grant to start, then `refresh_token` grants in a chain,
//! each with the token the previous answer returned. `--static` instead POSTs
//! the same body again and again (to measure a baseline with this same generator).
//!
//! Usage:
//!   portcullis-bench-refresh --url URL --basic ID:SECRET --user U --password P [-c 32] [-d 10]
//!   portcullis-bench-refresh --static --url URL [--basic ID:SECRET] [--body FORM] [-c 32] [-d 10]
//!
//! Prints one JSON object: requests per second, p50/p99 latency (ms), errors.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

#[derive(Debug, Clone, Default)]
struct Args {
    url: String,
    basic: Option<(String, String)>,
    user: String,
    password: String,
    body: String,
    connections: usize,
    duration: u64,
    warmup: f64,
    fixed: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        connections: 32,
        duration: 10,
        warmup: 2.0,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--url" => a.url = v()?,
            "--basic" => {
                let s = v()?;
                let (id, secret) = s.split_once(':').context("--basic ID:SECRET")?;
                a.basic = Some((id.to_owned(), secret.to_owned()));
            }
            "--user" => a.user = v()?,
            "--password" => a.password = v()?,
            "--body" => a.body = v()?,
            "-c" => a.connections = v()?.parse()?,
            "-d" => a.duration = v()?.parse()?,
            "-w" => a.warmup = v()?.parse()?,
            "--static" => a.fixed = true,
            other => bail!("unknown argument {other}"),
        }
    }
    if a.url.is_empty() {
        bail!("--url is required");
    }
    Ok(a)
}

async fn post(http: &reqwest::Client, a: &Args, body: String) -> anyhow::Result<serde_json::Value> {
    let mut req = http
        .post(&a.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = &a.basic {
        req = req.basic_auth(id, Some(secret));
    }
    let res = req.send().await?;
    let status = res.status();
    let v: serde_json::Value = res.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{status}: {v}");
    }
    Ok(v)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One connection's loop until `until`: latencies of successful requests (µs), errors.
async fn worker(a: Args, start_at: Instant, until: Instant) -> anyhow::Result<(Vec<u32>, u64)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()?;
    let mut refresh = if a.fixed {
        String::new()
    } else {
        let v = post(
            &http,
            &a,
            format!(
                "grant_type=password&username={}&password={}&scope=read%20offline_access",
                enc(&a.user),
                enc(&a.password)
            ),
        )
        .await?;
        v["refresh_token"]
            .as_str()
            .context("no refresh_token")?
            .to_owned()
    };
    let mut lat = Vec::new();
    let mut errors = 0u64;
    loop {
        let t0 = Instant::now();
        if t0 >= until {
            break;
        }
        let body = if a.fixed {
            a.body.clone()
        } else {
            format!("grant_type=refresh_token&refresh_token={refresh}")
        };
        match post(&http, &a, body).await {
            Ok(v) => {
                if !a.fixed {
                    refresh = v["refresh_token"]
                        .as_str()
                        .context("rotated token")?
                        .to_owned();
                }
                if t0 >= start_at {
                    lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
            }
            Err(e) => {
                errors += 1;
                if errors == 1 {
                    eprintln!("error: {e:#}");
                }
                if !a.fixed {
                    bail!("the token chain broke: {e:#}");
                }
            }
        }
    }
    Ok((lat, errors))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let begin = Instant::now();
    let start_at = begin + Duration::from_secs_f64(a.warmup);
    let until = start_at + Duration::from_secs(a.duration);
    let mut tasks = Vec::new();
    for _ in 0..a.connections {
        tasks.push(tokio::spawn(worker(a.clone(), start_at, until)));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await??;
        all.extend(lat);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|us| f64::from(*us) / 1000.0)
            .unwrap_or(0.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "rps": all.len() as f64 / a.duration as f64,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "requests": all.len(),
            "errors": errors,
            "connections": a.connections,
            "duration_s": a.duration,
        })
    );
    Ok(())
}
