//! `portcullis-bench-keyscale [--keys N…] [--sample S] [--cached C] [--rounds R]`
//!
//! For each N: a fresh SQLite database with one keyspace and N API keys (bulk
//! inserted in transactions, with real HMAC digests). Then S keys per size verified
//! once each through the service's verification path with a cold cache and again
//! warm, in R rounds taking one key of each size in turn: the latency distribution of an
//! uncached and a cached verification (a size with fewer than S keys is read in
//! repeats, each by a new authority). The largest size is filled first and, before
//! any other exists, C of its keys verified to fill a cache: the process RSS
//! before and after. Prints one JSON document.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use portcullis_core::clock::SystemClock;
use portcullis_core::keys::MasterKey;
use portcullis_core::secret::OpaqueSecret;
use portcullis_service::apikeys::{NewKeyspace, VerifyRequest};
use portcullis_service::{Authority, AuthorityConfig};
use portcullis_store::SqliteStore;
use serde_json::json;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// An authority over `store`: a new one starts with an empty API-key cache.
async fn authority(store: &Arc<SqliteStore>, mk: &MasterKey) -> anyhow::Result<Authority> {
    Ok(Authority::new(
        store.clone(),
        Arc::new(SystemClock),
        mk,
        AuthorityConfig::with_issuer("http://127.0.0.1"),
    )
    .await?)
}

/// A database with `n` keys; returns its store, master key and authority, and the
/// first `keep` keys in clear.
async fn populate(
    dir: &std::path::Path,
    n: usize,
    keep: usize,
) -> anyhow::Result<(Arc<SqliteStore>, MasterKey, Authority, Vec<String>)> {
    let url = format!("sqlite://{}?mode=rwc", dir.join("keys.db").display());
    let store = Arc::new(SqliteStore::connect(&url, 4).await?);
    let pool = store.pool().clone();
    let mk = MasterKey::generate()?;
    let pepper = mk.pepper()?;
    let auth = authority(&store, &mk).await?;
    let ks = auth
        .create_keyspace(NewKeyspace {
            name: "bench".into(),
            prefix: "bench_live".into(),
            scopes: vec!["read".into()],
            default_scopes: vec!["read".into()],
            ..NewKeyspace::default()
        })
        .await?;
    let mut kept = Vec::with_capacity(keep);
    let now = 1_800_000_000i64;
    let mut i = 0;
    // Multi-row INSERTs of 1,000 keys (7 binds each, under SQLite's limit), 10 per
    // transaction: one statement per key made a round trip to sqlx's SQLite thread
    // per key, and filling a million took over three minutes on a slow machine.
    // Once the indexes outgrow SQLite's page cache (2 MB), an insert that lands on
    // a page not in it costs a read and, later, a write: so each transaction's
    // keys go in digest order (each page of the digest index touched once per
    // transaction, not once per key), and owners take their keys in runs of 1,000
    // (`owner-000` the first 1,000 keys, …): 1,000 owners taking turns kept 1,000
    // insertion points hot in each of the two owner indexes. Same table, same
    // counts; filling a million keys took 63–69 s before, 31 s after (Zen 4 guest).
    while i < n {
        let in_tx = 10_000.min(n - i);
        let mut rows: Vec<(usize, OpaqueSecret, String)> = (i..i + in_tx)
            .map(|j| {
                let secret = OpaqueSecret::generate("bench_live");
                let digest = pepper.digest(secret.expose()).as_str().to_owned();
                (j, secret, digest)
            })
            .collect();
        for (_, secret, _) in rows.iter().take(keep.saturating_sub(kept.len())) {
            kept.push(secret.expose().to_owned());
        }
        rows.sort_unstable_by(|a, b| a.2.cmp(&b.2));
        let mut tx = pool.begin().await?;
        for chunk in rows.chunks(1_000) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO api_keys (id, keyspace_id, digest, hint, owner, name, scopes, meta, remaining, rate_limit, allow_ips,
                                       enabled, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, (j, secret, digest)| {
                b.push_bind(format!("key-{j:08}"))
                    .push_bind(&ks.id)
                    .push_bind(digest.as_str())
                    .push_bind(secret.hint())
                    .push_bind(format!("owner-{:03}", j / 1000 % 1000))
                    .push("''")
                    .push("'read'")
                    .push("'{}'")
                    .push("NULL")
                    .push("NULL")
                    .push("'[]'")
                    .push("TRUE")
                    .push_bind(now)
                    .push_bind(now);
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        i += in_tx;
    }
    Ok((store, mk, auth, kept))
}

/// One size's database and what has been measured on it.
struct Table {
    n: usize,
    store: Arc<SqliteStore>,
    mk: MasterKey,
    auth: Authority,
    /// The keys sampled, spread over the kept ones (repeated for a small table).
    sample: Vec<String>,
    populate_s: f64,
    cold: Vec<f64>,
    warm: Vec<f64>,
}

/// Verifies `key` through `auth`; its latency in µs.
async fn verify_one(auth: &Authority, key: &str, scopes: &[String]) -> anyhow::Result<f64> {
    let t = Instant::now();
    let v = auth
        .verify_api_key(&VerifyRequest {
            key: key.to_owned(),
            scopes: scopes.to_vec(),
            ip: None,
        })
        .await?;
    let us = t.elapsed().as_secs_f64() * 1e6;
    anyhow::ensure!(v.valid, "a stored key failed to verify");
    Ok(us)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_owned())
    };
    let sizes: Vec<usize> = arg("--keys", "1000,1000000")
        .split(',')
        .map(|s| s.parse().context("--keys"))
        .collect::<Result<_, _>>()?;
    let sample: usize = arg("--sample", "5000").parse().context("--sample")?;
    let cached: usize = arg("--cached", "100000").parse().context("--cached")?;
    let rounds: usize = arg("--rounds", "5").parse().context("--rounds")?;
    anyhow::ensure!(rounds >= 1 && sample >= rounds, "--rounds");
    let dirs = sizes
        .iter()
        .map(|_| tempfile::tempdir())
        .collect::<Result<Vec<_>, _>>()?;
    // The largest table first, and its memory figures before any other table
    // exists: with a 1,000-key table (its own SQLite threads, its own allocations)
    // open beside it, the same cache read 20 MB more RSS (141 against 127 MB).
    let largest = (0..sizes.len()).max_by_key(|&i| sizes[i]).unwrap_or(0);
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    let mut tables: Vec<Option<Table>> = sizes.iter().map(|_| None).collect();
    let mut memory = serde_json::Map::new();
    for i in order {
        let n = sizes[i];
        let t0 = Instant::now();
        let keep = sample.max(cached).min(n);
        let (store, mk, auth, kept) = populate(dirs[i].path(), n, keep).await?;
        let populate_s = t0.elapsed().as_secs_f64();
        if i == largest && n >= cached {
            let before = rss_kb();
            for k in kept.iter().take(cached) {
                auth.verify_api_key(&VerifyRequest {
                    key: k.clone(),
                    scopes: vec![],
                    ip: None,
                })
                .await?;
            }
            let after = rss_kb();
            memory.insert("cached_keys".into(), json!(cached));
            memory.insert("rss_before_cache_mb".into(), json!(before as f64 / 1024.0));
            memory.insert("rss_with_cache_mb".into(), json!(after as f64 / 1024.0));
        }
        // Spread over the whole table; a table with fewer keys than the sample has
        // them all, repeated (each repeat is read by a new authority, below).
        let step = (kept.len() / sample.min(kept.len()).max(1)).max(1);
        let spread: Vec<String> = kept.iter().step_by(step).cloned().collect();
        let sample = spread.iter().cycle().take(sample).cloned().collect();
        tables[i] = Some(Table {
            n,
            store,
            mk,
            auth,
            sample,
            populate_s,
            cold: Vec::new(),
            warm: Vec::new(),
        });
    }
    let mut tables: Vec<Table> = tables.into_iter().flatten().collect();
    // Cold, then warm: in rounds, each round's share of every size's sample read
    // by a new authority per size (an empty key cache), then again from its cache,
    // one key of each size in turn (and turns about who goes first), so that this
    // guest's drift and its bursts of stolen time fall on every size alike. Measured
    // one size after the other, the ratio of their p99s read from 0.67 to 1.95 in
    // nine runs of one binary; in rounds of 1,000 keys per size, 0.54 to 1.77. A
    // small table's repeats never meet a cache that already holds them.
    let per = sample / rounds;
    let read: Vec<String> = vec!["read".into()];
    for r in 0..rounds {
        for t in tables.iter_mut() {
            t.auth = authority(&t.store, &t.mk).await?;
        }
        let end = if r + 1 == rounds {
            sample
        } else {
            (r + 1) * per
        };
        for warm in [false, true] {
            for j in r * per..end {
                let mut order: Vec<usize> = (0..tables.len()).collect();
                if j % 2 == 1 {
                    order.reverse();
                }
                for i in order {
                    let t = &mut tables[i];
                    let scopes: &[String] = if warm { &[] } else { &read };
                    let us = verify_one(&t.auth, &t.sample[j], scopes).await?;
                    if warm { &mut t.warm } else { &mut t.cold }.push(us);
                }
            }
        }
    }
    let mut results = Vec::new();
    for (i, mut t) in tables.into_iter().enumerate() {
        t.cold.sort_by(f64::total_cmp);
        t.warm.sort_by(f64::total_cmp);
        let mut entry = json!({
            "keys_stored": t.n, "sample": t.cold.len(), "rounds": rounds, "populate_s": t.populate_s,
            "cold_p50_us": percentile(&t.cold, 0.5), "cold_p99_us": percentile(&t.cold, 0.99),
            "warm_p50_us": percentile(&t.warm, 0.5), "warm_p99_us": percentile(&t.warm, 0.99),
        });
        if i == largest {
            for (k, v) in &memory {
                entry[k] = v.clone();
            }
        }
        eprintln!("{entry}");
        results.push(entry);
    }
    println!("{}", serde_json::to_string_pretty(&results)?);
    Ok(())
}
