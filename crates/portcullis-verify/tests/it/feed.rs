//! The live revocation feed: a revoked JWT is refused by an offline verifier
//! within a second; a cut stream resumes with every event it missed; while it is
//! down past the grace period, JWTs are introspected, and refused when the server
//! cannot be asked.

use std::sync::atomic::Ordering;
use std::time::Duration;

use portcullis_testkit::urlencode;

use crate::support::{env, env_behind_proxy, until, Env};

async fn revoke(e: &Env, token: &str) {
    // Straight to the server (not through the proxy), as the token's client.
    let res = reqwest::Client::new()
        .post(format!("http://{}/oauth/revoke", e.app.addr))
        .basic_auth(&e.es256.id, Some(&e.es256.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", urlencode(token)))
        .send()
        .await
        .expect("revoke");
    assert_eq!(res.status(), 200);
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

#[tokio::test]
async fn a_revoked_jwt_is_refused_offline_within_a_second() {
    let e = env().await;
    let v = e.verifier().await;
    assert!(
        until(Duration::from_secs(5), || v.feed_status().connected)
            .await
            .is_some(),
        "the feed connects"
    );
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let t = e.token(&e.es256).await;
        assert!(v.verify_at(&t, now()).is_ok());
        let start = std::time::Instant::now();
        revoke(&e, &t).await;
        let took = until(Duration::from_secs(2), || v.verify_at(&t, now()).is_err())
            .await
            .map(|_| start.elapsed());
        let took = took.expect("refused after revocation");
        assert!(took < Duration::from_secs(1), "took {took:?}");
        worst = worst.max(took);
        assert_eq!(
            v.verify_at(&t, now()),
            Err(portcullis_verify::VerifyError::Revoked)
        );
    }
    println!("revocation reached the offline verifier in at most {worst:?} (5 revocations)");
    // No introspection was needed: the feed was healthy throughout.
    assert_eq!(v.introspection_calls(), 0);
}

#[tokio::test]
async fn a_new_subscriber_gets_earlier_revocations_and_key_and_signing_key_events_apply() {
    let e = env().await;
    let t = e.token(&e.es256).await;
    revoke(&e, &t).await;
    // Subscribed after the revocation: the backlog brings it.
    let v = e.verifier().await;
    assert!(until(Duration::from_secs(5), || v.feed_status().connected)
        .await
        .is_some());
    assert_eq!(
        v.verify_at(&t, now()),
        Err(portcullis_verify::VerifyError::Revoked)
    );
    // An API key revocation arrives as a `key_revoked` event.
    let events_before = v.feed_status().events;
    let ks = e
        .app
        .authority
        .create_keyspace(portcullis_service::apikeys::NewKeyspace {
            name: "feedtest".into(),
            prefix: "feed".into(),
            ..Default::default()
        })
        .await
        .expect("keyspace");
    let k = e
        .app
        .authority
        .create_api_key(portcullis_service::apikeys::NewApiKey {
            keyspace: ks.id.clone(),
            owner: "o".into(),
            ..Default::default()
        })
        .await
        .expect("key");
    // Introspected (and cached) before the revocation, refused right after it: the
    // event drops the cached answer.
    let api_key = format!("Bearer {}", k.key);
    assert!(bearer(&v, &api_key).await.is_ok());
    e.app
        .authority
        .revoke_api_key(&k.view.id)
        .await
        .expect("revoke");
    assert!(
        until(Duration::from_secs(2), || v.feed_status().events
            > events_before)
        .await
        .is_some(),
        "the key revocation event arrives"
    );
    assert!(
        bearer(&v, &api_key).await.is_err(),
        "the cached answer was dropped"
    );

    // A signing key retired and then removed from the JWK Set: its event makes the
    // verifier drop the key, so tokens it signed fail offline, with no JWKS fetch.
    let old_kid = e.kid(portcullis_core::jose::SigningAlg::ES256);
    let signed_by_old = e.token(&e.es256).await;
    e.app
        .authority
        .rotate_now(portcullis_core::jose::SigningAlg::ES256, true)
        .await
        .expect("rotate");
    e.app.clock.advance(2 * 86_400);
    e.app.authority.rotate_due().await.expect("removal");
    assert!(
        until(Duration::from_secs(2), || !v.key_ids().contains(&old_kid))
            .await
            .is_some(),
        "the retirement event drops the key"
    );
    assert_eq!(
        v.verify_at(&signed_by_old, now()),
        Err(portcullis_verify::VerifyError::Jwt(
            portcullis_verify::JwtError::UnknownKey
        ))
    );
}

#[tokio::test]
async fn a_cut_stream_resumes_without_missing_an_event_and_falls_back_to_introspection() {
    let e = env_behind_proxy().await;
    let proxy = e.proxy.clone().expect("proxy");
    let v = e
        .builder()
        .feed_grace(Duration::from_millis(500))
        .introspection_cache(Duration::ZERO, 0)
        .build()
        .await
        .expect("verifier");
    assert!(until(Duration::from_secs(5), || v.feed_status().connected)
        .await
        .is_some());
    let tokens = [
        e.token(&e.es256).await,
        e.token(&e.es256).await,
        e.token(&e.es256).await,
        e.token(&e.es256).await,
    ];
    revoke(&e, &tokens[0]).await;
    assert!(until(Duration::from_secs(2), || v
        .verify_at(&tokens[0], now())
        .is_err())
    .await
    .is_some());
    let seen = v.feed_status().last_event_id;

    // Cut the stream and keep it down.
    proxy.block_events.store(true, Ordering::SeqCst);
    proxy.cut();
    assert!(until(Duration::from_secs(2), || !v.feed_status().connected)
        .await
        .is_some());
    // Within the grace period JWTs are still trusted offline.
    let calls = v.introspection_calls();
    assert!(v.verify(&tokens[3]).await.is_ok());
    // Revocations while the stream is down.
    revoke(&e, &tokens[1]).await;
    revoke(&e, &tokens[2]).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!v.feed_status().healthy, "past the grace period");
    // Offline, the verifier cannot know yet; with introspection on suspicion it does.
    assert!(v.verify_at(&tokens[1], now()).is_ok(), "not yet delivered");
    assert_eq!(
        v.verify(&tokens[1]).await,
        Err(portcullis_verify::VerifyError::Revoked)
    );
    assert!(
        v.verify(&tokens[3]).await.is_ok(),
        "a live token is introspected and passes"
    );
    assert!(v.introspection_calls() >= calls + 2);
    // The server unreachable as well: refused, not trusted.
    proxy.block_all.store(true, Ordering::SeqCst);
    proxy.cut();
    assert!(matches!(
        v.verify(&tokens[3]).await,
        Err(portcullis_verify::VerifyError::Unavailable(_))
    ));

    // Back up: the stream resumes after the last id it saw and delivers both.
    proxy.block_all.store(false, Ordering::SeqCst);
    proxy.block_events.store(false, Ordering::SeqCst);
    assert!(
        until(Duration::from_secs(10), || v.feed_status().connected)
            .await
            .is_some(),
        "the feed reconnects"
    );
    assert_eq!(
        v.verify_at(&tokens[1], now()),
        Err(portcullis_verify::VerifyError::Revoked)
    );
    assert_eq!(
        v.verify_at(&tokens[2], now()),
        Err(portcullis_verify::VerifyError::Revoked)
    );
    assert!(v.verify_at(&tokens[3], now()).is_ok());
    let st = v.feed_status();
    assert_eq!(
        st.last_event_id,
        seen + 2,
        "exactly the two missed events, no gap"
    );
    assert!(st.connections >= 2);
    assert_eq!(st.events, 3, "each event applied once");
}

/// Reads an event stream until `event: ready`; returns (id, event) pairs before it.
async fn read_until_ready(res: reqwest::Response) -> Vec<(String, String)> {
    use futures_util::StreamExt;
    let mut text = String::new();
    let mut body = res.bytes_stream();
    while !text.contains("event: ready") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("stream data in time")
            .expect("stream open")
            .expect("chunk");
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
        };
        if let (Some(id), Some(ev)) = (field("id"), field("event")) {
            out.push((id, ev));
        }
    }
    out
}

#[tokio::test]
async fn the_event_stream_authenticates_validates_its_cursor_and_resumes_after_it() {
    let e = env().await;
    let url = e.app.url("/oauth/events");
    let http = reqwest::Client::new();
    let res = http.get(&url).send().await.expect("get");
    assert_eq!(res.status(), 401, "no client credentials");
    let res = http
        .get(&url)
        .basic_auth(&e.rs.id, Some("wrong"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 401);
    for bad in ["abc", "-1", "1.5"] {
        let res = http
            .get(&url)
            .basic_auth(&e.rs.id, Some(&e.rs.secret))
            .header("last-event-id", bad)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 400, "Last-Event-ID {bad}");
        let body: serde_json::Value = res.json().await.expect("json");
        assert_eq!(body["error"], "invalid_request");
    }
    let res = http
        .get(format!("{url}?after=x"))
        .basic_auth(&e.rs.id, Some(&e.rs.secret))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 400);

    for _ in 0..3 {
        let t = e.token(&e.es256).await;
        revoke(&e, &t).await;
    }
    let res = http
        .get(&url)
        .basic_auth(&e.rs.id, Some(&e.rs.secret))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().expect("ascii"),
        "text/event-stream"
    );
    let all = read_until_ready(res).await;
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.iter().all(|(_, ev)| ev == "token_revoked"));
    let first: i64 = all[0].0.parse().expect("id");
    let res = http
        .get(&url)
        .basic_auth(&e.rs.id, Some(&e.rs.secret))
        .header("last-event-id", first.to_string())
        .send()
        .await
        .expect("get");
    let rest = read_until_ready(res).await;
    assert_eq!(
        rest.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        vec![(first + 1).to_string(), (first + 2).to_string()],
        "exactly the events after the cursor"
    );
}

#[tokio::test]
async fn revoking_all_of_a_users_pats_drops_every_cached_answer_about_them() {
    let e = env().await;
    let v = e.verifier().await;
    assert!(until(Duration::from_secs(5), || v.feed_status().connected)
        .await
        .is_some());
    e.app
        .user("grace", "correct horse battery", &["read"])
        .await;
    let mut tokens = Vec::new();
    for name in ["laptop", "ci"] {
        let pat = e
            .app
            .authority
            .create_pat(
                "grace",
                name,
                &["read".to_owned()],
                portcullis_service::pats::PatLifetime::Default,
            )
            .await
            .expect("pat");
        tokens.push(format!("Bearer {}", pat.token));
    }
    for t in &tokens {
        let who = bearer(&v, t).await.expect("a live PAT is let in");
        assert_eq!(who.token_type, "personal_access_token");
    }
    let calls = v.introspection_calls();
    let events = v.feed_status().events;
    e.app
        .authority
        .revoke_all_pats("grace")
        .await
        .expect("offboard");
    assert!(
        until(Duration::from_secs(2), || v.feed_status().events > events)
            .await
            .is_some()
    );
    for t in &tokens {
        assert!(bearer(&v, t).await.is_err(), "refused within the cache TTL");
    }
    assert_eq!(
        v.introspection_calls(),
        calls + 2,
        "the cached answers were dropped, so both were asked again"
    );
}

/// `GET /` with `Authorization: <authorization>`, through the library.
async fn bearer(
    v: &portcullis_verify::Verifier,
    authorization: &str,
) -> Result<portcullis_verify::Principal, portcullis_verify::AuthError> {
    v.authenticate(&portcullis_verify::Presented {
        authorization: Some(authorization),
        dpop: &[],
        method: "GET",
        path: "/",
    })
    .await
}

#[tokio::test]
async fn a_jwt_revoked_through_another_node_is_refused_by_this_one_within_a_second() {
    let e = env().await;
    // A second node on the same database (what a cluster member or the CLI is).
    let other = portcullis_server::prepare(
        &e.app.settings,
        std::sync::Arc::new(portcullis_core::clock::SystemClock),
    )
    .await
    .expect("second node");
    let t = e.token(&e.es256).await;
    assert!(e.server_active(&t).await);
    let caller = other.get_client(&e.es256.id).await.expect("client");
    other
        .revoke(&caller, &t)
        .await
        .expect("revoke on the other node");
    // This node's introspection (its own in-memory deny list) catches up on its poll tick.
    let start = std::time::Instant::now();
    let mut refused = false;
    while start.elapsed() < Duration::from_secs(3) {
        if !e.server_active(&t).await {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = start.elapsed();
    assert!(refused, "never refused");
    assert!(took < Duration::from_millis(1_500), "took {took:?}");
    println!("revocation on another node reached this node's introspection in {took:?}");
}
