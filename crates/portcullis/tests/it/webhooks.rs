//! Webhooks over real HTTP: a receiver that fails twice then succeeds gets the
//! event once, every attempt is logged, and the signature verifies with the
//! documented recipe.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use portcullis_testkit::{urlencode, TestApp};
use serde_json::{json, Value};

/// One request the receiver saw: headers, raw body, the status it answered.
type Seen = (HeaderMap, Vec<u8>, u16);

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Seen>>>,
}

async fn receiver(fail_first: usize) -> (String, Receiver) {
    let r = Receiver::default();
    let r2 = r.clone();
    let app = axum::Router::new().fallback(move |h: HeaderMap, body: axum::body::Bytes| {
        let r = r2.clone();
        async move {
            let mut g = r.got.lock().expect("lock");
            let status = if g.len() < fail_first { 500 } else { 204 };
            g.push((h, body.to_vec(), status));
            StatusCode::from_u16(status).expect("status")
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await.expect("receiver") });
    (format!("http://{addr}/hooks/portcullis"), r)
}

async fn wait_for(r: &Receiver, n: usize) {
    for _ in 0..200 {
        if r.got.lock().expect("lock").len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "receiver got {} requests, expected {n}",
        r.got.lock().expect("lock").len()
    );
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_event_once_with_retries_logged() {
    let app = TestApp::builder()
        .settings(|s| {
            s.webhooks.poll_interval = Duration::from_millis(50);
            s.webhooks.retry_base = Duration::from_secs(10);
        })
        .spawn()
        .await;
    let (url, rx) = receiver(2).await;
    let admin = app
        .authority
        .create_admin_token("hooks", &["webhooks:write".into(), "webhooks:read".into()])
        .await
        .expect("admin")
        .token;
    let res = app
        .http
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(&admin)
        .json(&json!({"url": url, "events": ["token.revoked"]}))
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.expect("json");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("pcwhsec_"));
    let hook_id = created["id"].as_str().expect("id").to_owned();
    // Invariant 1: the signing secret is stored sealed, never in clear.
    let db = app.database_bytes();
    let db = String::from_utf8_lossy(&db);
    assert!(db.contains(&hook_id), "positive control: the row is there");
    assert!(!db.contains(&secret), "webhook secret stored in clear");

    let c = app.client(TestApp::cc("svc")).await;
    let jwt = app.token(&c, "").await;
    let res = app
        .post_form(
            "/oauth/revoke",
            &format!("token={}", urlencode(&jwt)),
            Some(&c),
        )
        .await;
    assert_eq!(res.status(), 200);

    // Attempt 1 at once; attempt 2 after retry_base; attempt 3 after twice that.
    wait_for(&rx, 1).await;
    app.clock.advance(11);
    wait_for(&rx, 2).await;
    app.clock.advance(21);
    wait_for(&rx, 3).await;
    // Nothing more: it was delivered.
    app.clock.advance(3_600);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.got.lock().expect("lock").clone();
    assert_eq!(got.len(), 3, "delivered once, after two failures");
    assert_eq!(got.iter().map(|g| g.2).collect::<Vec<_>>(), [500, 500, 204]);
    let ids: Vec<String> = got
        .iter()
        .map(|g| header(&g.0, "portcullis-delivery-id"))
        .collect();
    assert!(
        ids.iter().all(|i| i == &ids[0] && !i.is_empty()),
        "stable delivery id: {ids:?}"
    );
    assert_eq!(
        got.iter()
            .map(|g| header(&g.0, "portcullis-delivery-attempt"))
            .collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    // The documented recipe verifies the signature over the raw body.
    let (h, body, _) = &got[2];
    let sig = header(h, "portcullis-signature");
    let t: i64 = sig
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .expect("t=")
        .parse()
        .expect("t");
    assert_eq!(
        portcullis_core::webhook::verify(&secret, &sig, body, t + 10, 300),
        Ok(())
    );
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert!(portcullis_core::webhook::verify(&secret, &sig, &tampered, t, 300).is_err());
    assert!(
        portcullis_core::webhook::verify(&secret, &sig, body, t + 301, 300).is_err(),
        "an old signature is a replay"
    );
    assert_eq!(header(h, "content-type"), "application/json");
    let event: Value = serde_json::from_slice(body).expect("json body");
    assert_eq!(event["type"], "token.revoked");
    assert_eq!(event["data"]["client_id"], c.id);
    assert_eq!(event["data"]["ip"], "127.0.0.1");
    assert!(
        !String::from_utf8_lossy(body).contains(&jwt),
        "never the token"
    );

    // The delivery log, newest first.
    let log: Value = app
        .http
        .get(app.url(&format!("/api/v1/webhooks/{hook_id}/deliveries")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    let statuses: Vec<i64> = log
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["status"].as_i64().expect("status"))
        .collect();
    assert_eq!(statuses, [204, 500, 500], "{log}");
    // The subscription and the deliveries are audited too.
    let kinds: Vec<String> = app
        .authority
        .audit_list(&portcullis_store::AuditFilter {
            kind: Some("webhook.".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, ["webhook.created"]);
}

#[tokio::test]
async fn bad_subscriptions_are_refused_and_other_events_are_not_sent() {
    let app = TestApp::builder()
        .settings(|s| s.webhooks.poll_interval = Duration::from_millis(50))
        .spawn()
        .await;
    let admin = app
        .authority
        .create_admin_token("hooks", &["webhooks:write".into()])
        .await
        .expect("admin")
        .token;
    for (body, field) in [
        (json!({"url": "ftp://x.test/", "events": ["*"]}), "url"),
        (
            json!({"url": "https://u:p@x.test/", "events": ["*"]}),
            "url",
        ),
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (json!({"url": "https://x.test/", "events": []}), "events"),
        (
            json!({"url": "https://x.test/", "events": ["Token.Revoked"]}),
            "events",
        ),
    ] {
        let res = app
            .http
            .post(app.url("/api/v1/webhooks"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(res.status(), 422, "{body}");
        let p: Value = res.json().await.expect("json");
        assert_eq!(p["field"], field, "{p}");
    }
    assert_eq!(app.count_rows("webhooks").await, 0, "nothing half-written");
    let (url, rx) = receiver(0).await;
    app.authority
        .create_webhook(&url, &["apikey.".into()])
        .await
        .expect("hook");
    let c = app.client(TestApp::cc("svc")).await;
    app.token(&c, "").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.got.lock().expect("lock").len(),
        0,
        "token.issued is not apikey."
    );
}
