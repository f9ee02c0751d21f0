//! One body per behaviour, run against the in-process store and, when
//! `PORTCULLIS_TEST_REDIS_URL` is set, against Redis: both must answer alike.

use std::io::Write;
use std::sync::Arc;

use portcullis_core::limits::RateLimit;
use portcullis_service::ratelimit::{MemoryRateStore, RateStore, RedisRateStore};

/// The stores to run on: always memory, Redis when configured.
async fn stores() -> Vec<Arc<dyn RateStore>> {
    let mut v: Vec<Arc<dyn RateStore>> = vec![Arc::new(MemoryRateStore::default())];
    match std::env::var("PORTCULLIS_TEST_REDIS_URL") {
        Ok(url) => {
            // A fresh key prefix per run: tests never see each other's state.
            let prefix = format!("portcullis-test:{}:", uuid::Uuid::new_v4().simple());
            let r = RedisRateStore::connect(&url, &prefix)
                .await
                .expect("PORTCULLIS_TEST_REDIS_URL is set but Redis is unreachable");
            v.push(Arc::new(r));
        }
        Err(_) => {
            let _ = writeln!(
                std::io::stderr(),
                "skipped: redis (set PORTCULLIS_TEST_REDIS_URL to run the rate-limit tests on Redis too)"
            );
        }
    }
    v
}

fn rl(s: &str) -> RateLimit {
    s.parse().expect("rate limit")
}

const T0: u64 = 1_800_000_000_000_000;

#[tokio::test]
async fn limits_are_exact_at_the_boundary() {
    for store in stores().await {
        let limit = rl("5/minute");
        for i in 0..5u32 {
            let d = store.check("boundary", limit, T0).await;
            assert!(d.allowed, "{}: request {i}", store.name());
            assert_eq!(d.remaining, 4 - i, "{}", store.name());
        }
        let d = store.check("boundary", limit, T0).await;
        assert!(!d.allowed, "{}: the sixth is refused", store.name());
        assert_eq!(
            d.reset_after_ms,
            12_000,
            "{}: one emission interval",
            store.name()
        );
        // One microsecond before the next slot: still refused; at it: admitted, once.
        assert!(
            !store
                .check("boundary", limit, T0 + 11_999_999)
                .await
                .allowed
        );
        assert!(
            store
                .check("boundary", limit, T0 + 12_000_000)
                .await
                .allowed
        );
        assert!(
            !store
                .check("boundary", limit, T0 + 12_000_000)
                .await
                .allowed
        );
        // Other keys have their own budget.
        assert!(store.check("boundary-other", limit, T0).await.allowed);
        // Forgetting a key restores its budget.
        store.forget("boundary").await;
        assert_eq!(
            store
                .check("boundary", limit, T0 + 12_000_000)
                .await
                .remaining,
            4
        );
    }
}

#[tokio::test]
async fn both_stores_give_the_same_answers_for_the_same_sequence() {
    let stores = stores().await;
    let limit = rl("10/second");
    // A scripted sequence with bursts and pauses (µs offsets).
    let times: Vec<u64> = (0..60u64)
        .map(|i| T0 + i * 37_000 + if i > 30 { 900_000 } else { 0 })
        .collect();
    let mut answers = Vec::new();
    for store in &stores {
        let mut seq = Vec::new();
        for t in &times {
            let d = store.check("same", limit, *t).await;
            seq.push((d.allowed, d.remaining, d.reset_after_ms));
        }
        answers.push((store.name(), seq));
    }
    let (first_name, first) = &answers[0];
    assert!(
        first.iter().any(|a| !a.0),
        "the sequence must hit the limit"
    );
    assert!(first.iter().filter(|a| a.0).count() > 10, "and recover");
    for (name, seq) in &answers[1..] {
        assert_eq!(seq, first, "{name} differs from {first_name}");
    }
}

#[tokio::test]
async fn a_concurrent_burst_admits_exactly_the_limit() {
    for store in stores().await {
        let limit = rl("25/hour");
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.check("burst", limit, T0).await.allowed
            }));
        }
        let mut admitted = 0;
        for t in tasks {
            if t.await.expect("task") {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 25, "{}", store.name());
    }
}
