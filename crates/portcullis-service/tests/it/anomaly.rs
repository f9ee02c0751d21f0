//! A scripted sequence of uses from different addresses, countries and rates
//! raises exactly the expected signals and actions, and a normal one raises none.
//! Geolocation comes from the tiny documentation-range databases in
//! `tests/fixtures` (see `make_geo_mmdb.py`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use portcullis_service::anomaly::{Action, Signal};
use portcullis_service::apikeys::{NewApiKey, NewKeyspace, VerifyCode, VerifyRequest};
use portcullis_service::AuthorityConfig;
use portcullis_store::AuditFilter;

use crate::{env_with, Env};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn geo(c: &mut AuthorityConfig) {
    c.anomaly.geoip_db = Some(fixture("test-city.mmdb"));
    c.anomaly.asn_db = Some(fixture("test-asn.mmdb"));
    c.anomaly.frequency_min = 50;
    c.anomaly.frequency_warmup = 5;
}

async fn key(e: &Env) -> (String, String) {
    e.auth
        .create_keyspace(NewKeyspace {
            name: "acme".into(),
            prefix: "acme_live".into(),
            ..Default::default()
        })
        .await
        .expect("ks");
    let k = e
        .auth
        .create_api_key(NewApiKey {
            keyspace: "acme".into(),
            owner: "org".into(),
            ..Default::default()
        })
        .await
        .expect("key");
    (k.view.id, k.key)
}

async fn use_from(e: &Env, key: &str, ip: &str) -> VerifyCode {
    e.auth
        .verify_api_key(&VerifyRequest {
            key: key.into(),
            ip: Some(ip.parse().expect("ip")),
            ..Default::default()
        })
        .await
        .expect("verify")
        .code
}

async fn signals(e: &Env) -> Vec<String> {
    e.auth
        .audit_list(&AuditFilter {
            kind: Some("anomaly.".into()),
            limit: 1_000,
            ..AuditFilter::default()
        })
        .await
        .expect("audit")
        .into_iter()
        .filter(|r| r.kind == "anomaly.alert" || r.kind == "anomaly.detected")
        .map(|r| r.reason.unwrap_or_default())
        .collect()
}

/// Five uses a minute from Berlin for 15 minutes, then a drive to Munich two hours later.
async fn normal_history(e: &Env, key: &str) {
    for _ in 0..15 {
        for _ in 0..5 {
            assert_eq!(use_from(e, key, "192.0.2.10").await, VerifyCode::Valid);
        }
        e.clock.advance(60);
    }
    e.clock.advance(2 * 3_600);
    assert_eq!(use_from(e, key, "192.0.2.200").await, VerifyCode::Valid);
}

#[tokio::test]
async fn a_normal_sequence_raises_nothing() {
    let e = env_with(geo).await;
    let (_, k) = key(&e).await;
    normal_history(&e, &k).await;
    // Occasional failures stay under the burst threshold.
    for _ in 0..5 {
        let code = use_from(
            &e,
            "acme_live_0000000000000000000000000000000000000000000000",
            "192.0.2.10",
        )
        .await;
        assert_eq!(code, VerifyCode::NotFound);
    }
    assert!(signals(&e).await.is_empty(), "{:?}", signals(&e).await);
}

#[tokio::test]
async fn a_jump_across_the_world_a_spike_and_a_failure_burst_raise_exactly_their_signals() {
    let e = env_with(|c| {
        geo(c);
        c.anomaly
            .actions
            .insert(Signal::FailureBurst, vec![Action::Log, Action::DenyIp]);
    })
    .await;
    let (_, k) = key(&e).await;
    normal_history(&e, &k).await;
    assert!(signals(&e).await.is_empty());

    // Five minutes later from Sydney: a new country, a new network, and ~16,000 km
    // in five minutes.
    e.clock.advance(300);
    assert_eq!(use_from(&e, &k, "198.51.100.7").await, VerifyCode::Valid);
    let got: BTreeSet<String> = signals(&e).await.into_iter().collect();
    let want: BTreeSet<String> = ["new_country", "new_asn", "impossible_travel"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
    // new_asn is log-only by default; the others alert (webhooks).
    let alerts = e
        .auth
        .audit_list(&AuditFilter {
            kind: Some("anomaly.alert".into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .expect("audit");
    assert_eq!(alerts.len(), 2);
    let travel = alerts
        .iter()
        .find(|a| a.reason.as_deref() == Some("impossible_travel"))
        .expect("travel");
    let d = &travel.details;
    assert!(d["distance_km"].as_f64().expect("km") > 15_000.0, "{d}");
    assert_eq!(d["seconds_between_uses"], 300);
    assert_eq!(d["country"], "AU");

    // A spike: 200 uses in one minute against a baseline of about 5.
    e.clock.advance(60);
    for _ in 0..200 {
        use_from(&e, &k, "198.51.100.7").await;
    }
    let freq = signals(&e)
        .await
        .iter()
        .filter(|s| *s == "frequency")
        .count();
    assert_eq!(freq, 1, "flagged once per minute");

    // Credential stuffing from one address: 20 failures in a minute.
    let attacker = "203.0.113.9";
    for i in 0..25 {
        let fake = format!("acme_live_{:0>50}", i);
        use_from(&e, &fake, attacker).await;
    }
    let bursts = signals(&e)
        .await
        .iter()
        .filter(|s| *s == "failure_burst")
        .count();
    assert_eq!(bursts, 1);
    assert!(
        e.auth.is_ip_blocked(attacker.parse().expect("ip")),
        "deny_ip acted"
    );
    assert!(!e.auth.is_ip_blocked("203.0.113.10".parse().expect("ip")));
    // The deny lifts itself.
    e.clock.advance(3_601);
    assert!(!e.auth.is_ip_blocked(attacker.parse().expect("ip")));
}

#[tokio::test]
async fn the_revoke_action_revokes_the_credential_used() {
    let e = env_with(|c| {
        geo(c);
        c.anomaly
            .actions
            .insert(Signal::ImpossibleTravel, vec![Action::Log, Action::Revoke]);
    })
    .await;
    let (id, k) = key(&e).await;
    assert_eq!(use_from(&e, &k, "192.0.2.10").await, VerifyCode::Valid);
    e.clock.advance(60);
    assert_eq!(
        use_from(&e, &k, "198.51.100.7").await,
        VerifyCode::Valid,
        "this use is let through…"
    );
    assert_eq!(
        use_from(&e, &k, "198.51.100.7").await,
        VerifyCode::Revoked,
        "…and the key revoked"
    );
    let revoked = e
        .auth
        .audit_list(&AuditFilter {
            kind: Some("anomaly.credential_revoked".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .expect("audit");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].credential_id.as_deref(), Some(id.as_str()));
    assert_eq!(revoked[0].reason.as_deref(), Some("impossible_travel"));
}
