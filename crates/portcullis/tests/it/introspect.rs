use portcullis_service::clients::NewClient;
use portcullis_testkit::{TestApp, TestClient};
use serde_json::json;

#[tokio::test]
async fn an_active_token_carries_the_rfc7662_members() {
    let app = TestApp::spawn().await;
    let c = app.client(TestApp::cc("svc")).await;
    let t = app.token(&c, "&scope=read%20write").await;
    let i = app.introspect(&c, &t).await;
    assert_eq!(i["active"], true);
    for k in [
        "scope",
        "client_id",
        "sub",
        "exp",
        "iat",
        "iss",
        "aud",
        "jti",
        "token_type",
    ] {
        assert!(!i[k].is_null(), "{k} missing: {i}");
    }
    assert_eq!(i["scope"], "read write");
    assert_eq!(i["token_type"], "Bearer");
}

#[tokio::test]
async fn unknown_malformed_expired_and_foreign_tokens_are_just_inactive() {
    let app = TestApp::spawn().await;
    let a = app.client(TestApp::cc("a")).await;
    let b = app
        .client(NewClient {
            audiences: vec!["https://other.test".into()],
            ..TestApp::cc("b")
        })
        .await;
    let t = app.token(&a, "&resource=https%3A%2F%2Fapi.test").await;
    for junk in [
        "x",
        "a.b.c",
        "pcat_0000",
        &format!("{t}x"),
        &t.replace('.', ""),
    ] {
        assert_eq!(
            app.introspect(&a, junk).await,
            json!({"active": false}),
            "{junk}"
        );
    }
    // b's audiences do not include the token's: it cannot see it.
    assert_eq!(app.introspect(&b, &t).await, json!({"active": false}));
    // Expiry (900 s + 30 s leeway).
    app.clock.advance(931);
    assert_eq!(app.introspect(&a, &t).await, json!({"active": false}));
}

#[tokio::test]
async fn introspection_requires_client_authentication_and_a_token() {
    let app = TestApp::spawn().await;
    let a = app.client(TestApp::cc("a")).await;
    let res = app.post_form("/oauth/introspect", "token=abc", None).await;
    assert_eq!(res.status(), 401);
    let bad = TestClient {
        id: a.id.clone(),
        secret: "pcs_nope".into(),
    };
    let res = app
        .post_form("/oauth/introspect", "token=abc", Some(&bad))
        .await;
    assert_eq!(res.status(), 401);
    let res = app
        .post_form(
            "/oauth/introspect",
            "token_type_hint=access_token",
            Some(&a),
        )
        .await;
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(
        body,
        json!({"error": "invalid_request", "error_description": "missing required parameter \"token\""})
    );
}

#[tokio::test]
async fn an_opaque_token_is_seen_by_its_client_and_its_audiences_whether_cached_or_not() {
    let app = TestApp::spawn().await;
    let op = app
        .client(NewClient {
            token_format: Some("opaque".into()),
            audiences: vec!["https://api.test".into(), "https://two.test".into()],
            ..TestApp::cc("op")
        })
        .await;
    let rs = app
        .client(NewClient {
            audiences: vec!["https://two.test".into()],
            ..TestApp::cc("rs")
        })
        .await;
    let other = app
        .client(NewClient {
            audiences: vec!["https://other.test".into()],
            ..TestApp::cc("other")
        })
        .await;
    let t = app
        .token(
            &op,
            "&resource=https%3A%2F%2Fapi.test&resource=https%3A%2F%2Ftwo.test",
        )
        .await;
    assert!(t.starts_with("pcat_"), "{t}");
    // The first answer reads the row from the database, the second from the cache.
    for round in ["first", "cached"] {
        let res = app
            .post_form("/oauth/introspect", &format!("token={t}"), Some(&op))
            .await;
        assert_eq!(res.status(), 200, "{round}");
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert_eq!(res.headers()["pragma"], "no-cache");
        let own: serde_json::Value = res.json().await.expect("json");
        assert_eq!(own["active"], true, "{round}: {own}");
        assert_eq!(
            own["aud"],
            json!(["https://api.test", "https://two.test"]),
            "{round}"
        );
        assert_eq!(own["client_id"], op.id.as_str(), "{round}");
        let seen = app.introspect(&rs, &t).await;
        assert_eq!(seen, own, "{round}: one of the token's audiences sees it");
        assert_eq!(
            app.introspect(&other, &t).await,
            json!({"active": false}),
            "{round}"
        );
    }
    let res = app
        .post_form("/oauth/revoke", &format!("token={t}"), Some(&op))
        .await;
    assert_eq!(res.status(), 200);
    for c in [&op, &rs] {
        assert_eq!(app.introspect(c, &t).await, json!({"active": false}));
    }
}
