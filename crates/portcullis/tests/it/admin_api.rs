//! The admin REST API over HTTP: keyspaces, keys, verification, problem+json errors.

use portcullis_testkit::TestApp;
use serde_json::{json, Value};

async fn admin(app: &TestApp, scopes: &[&str]) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    app.authority
        .create_admin_token("test", &scopes)
        .await
        .expect("admin token")
        .token
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("send");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

#[tokio::test]
async fn keyspace_key_and_verify_over_http() {
    let app = TestApp::spawn().await;
    let t = admin(&app, &["admin"]).await;
    let (s, ks, _) = call(&app, reqwest::Method::POST, "/api/v1/keyspaces", Some(&t),
        Some(json!({"name": "acme", "prefix": "acme_live", "scopes": ["read", "write"], "default_scopes": ["read"]}))).await;
    assert_eq!(s, 201, "{ks}");
    let (s, k, _) = call(&app, reqwest::Method::POST, "/api/v1/keys", Some(&t),
        Some(json!({"keyspace": "acme", "owner": "cust-1", "uses": 10, "rate_limit": "100/minute", "meta": {"plan": "pro"}}))).await;
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().expect("key").to_owned();
    let id = k["id"].as_str().expect("id").to_owned();
    let (_, _, created_headers) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keys",
        Some(&t),
        Some(json!({"keyspace": "acme", "owner": "cust-2"})),
    )
    .await;
    assert_eq!(
        created_headers["cache-control"], "no-store",
        "a response carrying a new key is never cached"
    );
    let (s, v, h) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keys/verify",
        Some(&t),
        Some(json!({"key": key, "scopes": ["read"]})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["code"], "VALID");
    assert_eq!(v["key_id"], id.as_str());
    assert_eq!(v["owner"], "cust-1");
    assert_eq!(v["remaining"], 9);
    assert_eq!(v["meta"], json!({"plan": "pro"}));
    assert_eq!(v["ratelimit"]["limit"], 100);
    let (_, v, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keys/verify",
        Some(&t),
        Some(json!({"key": "acme_live_nope"})),
    )
    .await;
    assert_eq!(v, json!({"valid": false, "code": "NOT_FOUND"}));
    let (s, list, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/keys?owner=cust-1",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert!(
        !list.to_string().contains(&key),
        "listing never shows the key"
    );
    let (s, _, _) = call(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/v1/keys/{id}"),
        Some(&t),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, v, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keys/verify",
        Some(&t),
        Some(json!({"key": key})),
    )
    .await;
    assert_eq!(v["code"], "DISABLED");
    let (s, r, _) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/keys/{id}/revoke"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(r["revoked_at"].is_i64());
    let (_, v, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keys/verify",
        Some(&t),
        Some(json!({"key": key})),
    )
    .await;
    assert_eq!(v["code"], "REVOKED", "revoked at once");
    let (s, _, _) = call(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/keyspaces/acme",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 409, "a keyspace with keys is not deleted");
}

#[tokio::test]
async fn admin_api_errors_are_problem_json_and_change_nothing() {
    let app = TestApp::spawn().await;
    let t = admin(&app, &["admin"]).await;
    let verify_only = admin(&app, &["keys:verify"]).await;
    let ks = json!({"name": "acme", "prefix": "acme_live"});
    let cases: Vec<(Option<&str>, Value, u16, Option<&str>)> = vec![
        (None, ks.clone(), 401, None),
        (Some("pcadm_notarealtoken"), ks.clone(), 401, None),
        (Some(verify_only.as_str()), ks.clone(), 403, None),
        (
            Some(t.as_str()),
            json!({"name": "acme", "prefix": "Bad Prefix"}),
            422,
            Some("prefix"),
        ),
        (
            Some(t.as_str()),
            json!({"name": "acme", "prefix": "pcs"}),
            422,
            Some("prefix"),
        ),
        (
            Some(t.as_str()),
            json!({"name": "acme", "prefix": "acme", "rate_limit": "0/second"}),
            422,
            Some("rate_limit"),
        ),
        (
            Some(t.as_str()),
            json!({"name": "acme", "prefix": "acme", "max_ttl": "soon"}),
            422,
            Some("max_ttl"),
        ),
        (
            Some(t.as_str()),
            json!({"name": "acme", "prefix": "acme", "bogus": 1}),
            422,
            None,
        ),
        (Some(t.as_str()), json!(["not", "an", "object"]), 422, None),
    ];
    for (token, body, status, field) in cases {
        let (s, b, h) = call(
            &app,
            reqwest::Method::POST,
            "/api/v1/keyspaces",
            token,
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, status, "{body}: {b}");
        assert_eq!(h["content-type"], "application/problem+json", "{body}");
        assert_eq!(b["status"], status);
        assert!(b["title"].is_string());
        if status == 401 || status == 403 {
            assert!(
                h["www-authenticate"]
                    .to_str()
                    .expect("ascii")
                    .starts_with("Bearer"),
                "{body}"
            );
        }
        if let Some(f) = field {
            assert_eq!(b["field"], f, "{b}");
        }
    }
    // Malformed JSON, wrong content type, oversized body.
    let raw = |ct: &'static str, body: String| {
        app.http
            .post(app.url("/api/v1/keyspaces"))
            .bearer_auth(&t)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    assert_eq!(
        raw("application/json", "{".into())
            .await
            .expect("send")
            .status(),
        400
    );
    assert_eq!(
        raw("text/plain", ks.to_string())
            .await
            .expect("send")
            .status(),
        415
    );
    assert_eq!(
        raw(
            "application/json",
            format!("{{\"name\":\"{}\"}}", "a".repeat(20_000))
        )
        .await
        .expect("send")
        .status(),
        413
    );
    // Key bad input: unknown keyspace, not-an-object meta, negative uses, bad CIDR, past expiry.
    let (s, _, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keyspaces",
        Some(&t),
        Some(json!({"name": "acme", "prefix": "acme_live", "scopes": ["read"]})),
    )
    .await;
    assert_eq!(s, 201);
    for (body, status) in [
        (json!({"keyspace": "nope", "owner": "o"}), 404),
        (json!({"keyspace": "acme", "owner": "o", "meta": "x"}), 422),
        (json!({"keyspace": "acme", "owner": "o", "uses": -1}), 422),
        (
            json!({"keyspace": "acme", "owner": "o", "allow_ips": ["1.2.3.4/99"]}),
            422,
        ),
        (
            json!({"keyspace": "acme", "owner": "o", "expires_at": 1}),
            422,
        ),
        (
            json!({"keyspace": "acme", "owner": "o", "scopes": ["admin"]}),
            422,
        ),
        (json!({"keyspace": "acme", "owner": "   "}), 422),
    ] {
        let (s, b, _) = call(
            &app,
            reqwest::Method::POST,
            "/api/v1/keys",
            Some(&t),
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, status, "{body}: {b}");
    }
    assert_eq!(app.count_rows("api_keys").await, 0, "nothing was written");
    assert_eq!(app.count_rows("keyspaces").await, 1);
    let (s, _, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/keys/does-not-exist",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 404);
    // The verify-only token cannot list keys.
    let (s, _, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/keys",
        Some(&verify_only),
        None,
    )
    .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn roll_leak_usage_and_oauth_introspection_of_api_keys_over_http() {
    let app = TestApp::spawn().await;
    let t = admin(&app, &["admin"]).await;
    call(&app, reqwest::Method::POST, "/api/v1/keyspaces", Some(&t), Some(json!({"name": "acme", "prefix": "acme_live", "scopes": ["read"], "default_scopes": ["read"]}))).await;
    let (_, k, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keys",
        Some(&t),
        Some(json!({"keyspace": "acme", "owner": "o"})),
    )
    .await;
    let (id, key) = (
        k["id"].as_str().expect("id").to_owned(),
        k["key"].as_str().expect("key").to_owned(),
    );
    // A resource server (an OAuth client) introspects the API key like any bearer.
    let rs = app.client(TestApp::cc("rs")).await;
    let i = app.introspect(&rs, &key).await;
    assert_eq!(
        (
            i["active"].as_bool(),
            i["token_type"].as_str(),
            i["sub"].as_str()
        ),
        (Some(true), Some("api_key"), Some("o"))
    );
    // Roll with a grace period: both secrets verify.
    let (s, rolled, _) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/keys/{id}/roll"),
        Some(&t),
        Some(json!({"grace": "1h"})),
    )
    .await;
    assert_eq!(s, 200, "{rolled}");
    let new_key = rolled["key"].as_str().expect("key").to_owned();
    for k in [&key, &new_key] {
        let (_, v, _) = call(
            &app,
            reqwest::Method::POST,
            "/api/v1/keys/verify",
            Some(&t),
            Some(json!({"key": k})),
        )
        .await;
        assert_eq!(v["valid"], true);
    }
    let (s, _, _) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/keys/{id}/roll"),
        Some(&t),
        Some(json!({"grace": "forever"})),
    )
    .await;
    assert_eq!(s, 422);
    // Usage (flushed explicitly here; the server flushes every 5 s).
    app.authority.flush_key_usage().await.expect("flush");
    let (s, u, _) = call(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/keys/{id}/usage?granularity=day"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u[0]["counts"]["VALID"], 2);
    let (s, _, _) = call(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/keys/{id}/usage?granularity=week"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 422);
    // A secret scanner reports the new key: it is revoked and reported.
    let (s, r, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keys/leaked",
        Some(&t),
        Some(json!({"candidates": [new_key, "junk"]})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["revoked"][0]["key_id"], id.as_str());
    assert_eq!(r["dropped"], 1);
    let (_, v, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keys/verify",
        Some(&t),
        Some(json!({"key": new_key})),
    )
    .await;
    assert_eq!(v["code"], "REVOKED");
    assert_eq!(app.introspect(&rs, &key).await, json!({"active": false}));
}

#[tokio::test]
async fn the_admin_api_is_described_by_an_openapi_3_1_document() {
    let app = TestApp::spawn().await;
    let (s, doc, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/openapi.json",
        None,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        doc["openapi"].as_str().expect("version").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for (path, method) in [
        ("/api/v1/keyspaces", "post"),
        ("/api/v1/keys", "post"),
        ("/api/v1/keys/verify", "post"),
        ("/api/v1/keys/{id}/roll", "post"),
        ("/api/v1/keys/{id}/usage", "get"),
        ("/api/v1/keys/leaked", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["VerifyResponse"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn users_and_personal_access_tokens_over_http() {
    let app = TestApp::spawn().await;
    let t = admin(&app, &["users:write", "users:read"]).await;
    app.authority
        .put_role("dev", &["repo:read".into(), "repo:write".into()])
        .await
        .expect("role");
    let (s, u, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/users",
        Some(&t),
        Some(json!({"username": "ada", "roles": ["dev"]})),
    )
    .await;
    assert_eq!(s, 201, "{u}");
    let (s, p, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/users/ada/tokens",
        Some(&t),
        Some(json!({"name": "laptop", "scopes": ["repo:read"], "expires_in": "30d"})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let token = p["token"].as_str().expect("token").to_owned();
    let rs = app.client(TestApp::cc("rs")).await;
    let i = app.introspect(&rs, &token).await;
    assert_eq!(
        (i["active"].as_bool(), i["username"].as_str()),
        (Some(true), Some("ada"))
    );
    for (body, status) in [
        (json!({"name": "x", "scopes": ["admin"]}), 422),
        (json!({"name": "x", "expires_in": "never"}), 422),
        (json!({"name": "x", "expires_in": "365d"}), 422),
        (json!({"name": ""}), 422),
    ] {
        let (s, b, _) = call(
            &app,
            reqwest::Method::POST,
            "/api/v1/users/ada/tokens",
            Some(&t),
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, status, "{body}: {b}");
    }
    let (s, l, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/users/ada/tokens",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(
        (s, l.as_array().map(Vec::len)),
        (200, Some(1)),
        "failed requests created nothing"
    );
    let (s, r, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/users/ada/tokens/revoke-all",
        Some(&t),
        None,
    )
    .await;
    assert_eq!((s, r["revoked"].as_i64()), (200, Some(1)));
    assert_eq!(
        app.introspect(&rs, &token).await,
        json!({"active": false}),
        "offboarding is immediate"
    );
    let (s, _, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/users/ghost/tokens",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let keys_only = admin(&app, &["keys:read"]).await;
    let (s, _, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/users/ada",
        Some(&keys_only),
        None,
    )
    .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn keys_can_be_deleted_keyspaces_patched_and_garbage_bytes_are_refused() {
    let app = TestApp::spawn().await;
    let t = admin(&app, &["admin"]).await;
    call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keyspaces",
        Some(&t),
        Some(json!({"name": "acme", "prefix": "acme_live", "scopes": ["read"]})),
    )
    .await;
    let (s, ks, _) = call(
        &app,
        reqwest::Method::PATCH,
        "/api/v1/keyspaces/acme",
        Some(&t),
        Some(json!({"rate_limit": "10/second", "max_ttl": "30d"})),
    )
    .await;
    assert_eq!(
        (s, ks["rate_limit"].as_str(), ks["max_ttl"].as_i64()),
        (200, Some("10/second"), Some(30 * 86_400))
    );
    let (s, ks, _) = call(
        &app,
        reqwest::Method::PATCH,
        "/api/v1/keyspaces/acme",
        Some(&t),
        Some(json!({"rate_limit": null, "max_ttl": null})),
    )
    .await;
    assert_eq!(
        (s, ks["rate_limit"].is_null(), ks["max_ttl"].is_null()),
        (200, true, true),
        "null removes"
    );
    let (_, k, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keys",
        Some(&t),
        Some(json!({"keyspace": "acme", "owner": "o"})),
    )
    .await;
    let (id, key) = (
        k["id"].as_str().expect("id").to_owned(),
        k["key"].as_str().expect("key").to_owned(),
    );
    let (_, v, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keys/verify",
        Some(&t),
        Some(json!({"key": key})),
    )
    .await;
    assert_eq!(v["valid"], true);
    let (s, _, _) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/v1/keys/{id}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (_, v, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keys/verify",
        Some(&t),
        Some(json!({"key": key})),
    )
    .await;
    assert_eq!(
        v,
        json!({"valid": false, "code": "NOT_FOUND"}),
        "a deleted key stops at once"
    );
    let (s, _, _) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/v1/keys/{id}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 404);
    // Non-UTF-8 bytes in a JSON body: a clear 400, not a crash.
    let res = app
        .http
        .post(app.url("/api/v1/keys/verify"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body(vec![
            b'{', b'"', b'k', b'e', b'y', b'"', b':', b'"', 0xff, 0xfe, b'"', b'}',
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(app.count_rows("api_keys").await, 0);
}

#[tokio::test]
async fn a_user_lists_and_revokes_their_own_tokens_only() {
    use portcullis_service::pats::{NewUser, PatLifetime};
    let app = TestApp::spawn().await;
    let a = &app.authority;
    a.put_role("dev", &["repo:read".into()])
        .await
        .expect("role");
    for u in ["ada", "bob"] {
        a.create_user(NewUser {
            username: u.into(),
            roles: vec!["dev".into()],
            ..Default::default()
        })
        .await
        .expect("user");
    }
    let ada1 = a
        .create_pat("ada", "laptop", &[], PatLifetime::Default)
        .await
        .expect("pat");
    let ada2 = a
        .create_pat("ada", "ci", &[], PatLifetime::Default)
        .await
        .expect("pat");
    let bob1 = a
        .create_pat("bob", "laptop", &[], PatLifetime::Default)
        .await
        .expect("pat");
    let (s, list, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/me/tokens",
        Some(&ada1.token),
        None,
    )
    .await;
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(2)), "{list}");
    assert!(
        !list.to_string().contains(&ada2.token),
        "never the tokens themselves"
    );
    // Bob's token is invisible to Ada: "not found", like an unknown id.
    let (s, _, _) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/me/tokens/{}/revoke", bob1.view.id),
        Some(&ada1.token),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _, _) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/me/tokens/{}/revoke", ada2.view.id),
        Some(&ada1.token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/me/tokens",
        Some(&ada2.token),
        None,
    )
    .await;
    assert_eq!(s, 401, "a revoked token no longer authenticates");
    for bad in [None, Some("pcpat_nope"), Some("Basic abc")] {
        let (s, b, h) = call(&app, reqwest::Method::GET, "/api/v1/me/tokens", bad, None).await;
        assert_eq!(s, 401, "{bad:?}: {b}");
        assert!(h.contains_key("www-authenticate"));
    }
    let bob = app
        .introspect(&app.client(TestApp::cc("rs")).await, &bob1.token)
        .await;
    assert_eq!(bob["active"], true, "Bob's token untouched");
}

#[tokio::test]
async fn no_secret_is_stored_in_clear_anywhere_in_the_database_files() {
    use portcullis_service::apikeys::{NewApiKey, NewKeyspace};
    use portcullis_service::pats::{NewUser, PatLifetime};
    let app = TestApp::spawn().await;
    let a = &app.authority;
    let client = app
        .client(portcullis_service::clients::NewClient {
            token_format: Some("opaque".into()),
            ..TestApp::cc("c")
        })
        .await;
    let opaque = app.token(&client, "").await;
    let admin_token = admin(&app, &["admin"]).await;
    a.create_keyspace(NewKeyspace {
        name: "acme".into(),
        prefix: "acme_live".into(),
        ..Default::default()
    })
    .await
    .expect("ks");
    let key = a
        .create_api_key(NewApiKey {
            keyspace: "acme".into(),
            owner: "o".into(),
            ..Default::default()
        })
        .await
        .expect("key")
        .key;
    a.put_role("dev", &[]).await.expect("role");
    a.create_user(NewUser {
        username: "ada".into(),
        roles: vec!["dev".into()],
        ..Default::default()
    })
    .await
    .expect("user");
    let pat = a
        .create_pat("ada", "t", &[], PatLifetime::Default)
        .await
        .expect("pat")
        .token;
    let master = std::fs::read_to_string(app.dir.path().join("master.key")).expect("master key");
    let bytes = app.database_bytes();
    assert!(bytes.len() > 10_000, "database and WAL read");
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(
        haystack.contains(&client.id),
        "positive control: clear identifiers are found"
    );
    for (what, secret) in [
        ("client secret", client.secret.as_str()),
        ("opaque access token", opaque.as_str()),
        ("admin token", admin_token.as_str()),
        ("API key", key.as_str()),
        ("personal access token", pat.as_str()),
        ("master key", master.trim()),
    ] {
        // The random body (after the prefix) is what must never appear.
        let body = &secret[secret.len() - 30..];
        assert!(
            !haystack.contains(body),
            "{what} found in clear in the database files"
        );
    }
}

#[tokio::test]
async fn bad_query_parameters_are_problem_json_too() {
    let app = TestApp::spawn().await;
    let t = admin(&app, &["admin"]).await;
    for path in [
        "/api/v1/keys?bogus=1",
        "/api/v1/keys/x/usage?from=yesterday",
    ] {
        let (s, b, h) = call(&app, reqwest::Method::GET, path, Some(&t), None).await;
        assert_eq!(s, 400, "{path}: {b}");
        assert_eq!(h["content-type"], "application/problem+json", "{path}");
        assert_eq!(b["status"], 400);
    }
}

#[tokio::test]
async fn the_audit_trail_over_http_names_the_admin_and_pages_with_a_cursor() {
    let app = TestApp::spawn().await;
    let writer = admin(&app, &["keyspaces:write", "keys:write"]).await;
    let reader = admin(&app, &["audit:read"]).await;
    let (s, _, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/keyspaces",
        Some(&writer),
        Some(json!({"name": "acme", "prefix": "acme_live"})),
    )
    .await;
    assert_eq!(s, 201);
    for owner in ["o1", "o2", "o3"] {
        let (s, _, _) = call(
            &app,
            reqwest::Method::POST,
            "/api/v1/keys",
            Some(&writer),
            Some(json!({"keyspace": "acme", "owner": owner})),
        )
        .await;
        assert_eq!(s, 201);
    }
    // The writer may not read the trail.
    let (s, body, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/audit",
        Some(&writer),
        None,
    )
    .await;
    assert_eq!(s, 403, "{body}");
    let (s, page, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/audit?kind=apikey.created&limit=2",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(s, 200, "{page}");
    let events = page["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    let writer_id = app
        .authority
        .list_admin_tokens()
        .await
        .expect("tokens")
        .into_iter()
        .find(|t| t.scopes.contains(&"keys:write".to_owned()))
        .expect("writer")
        .id;
    for e in events {
        assert_eq!(e["actor"], format!("admin:{writer_id}"));
        assert_eq!(e["ip"], "127.0.0.1");
        assert_eq!(e["outcome"], "success");
        assert!(e["time"].as_str().expect("time").ends_with('Z'));
        assert!(
            !e.to_string().contains("acme_live_"),
            "never the key itself"
        );
    }
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let (s, page2, _) = call(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/audit?kind=apikey.created&limit=2&cursor={cursor}"),
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(page2["events"].as_array().map(Vec::len), Some(1));
    assert!(page2.get("next_cursor").is_none());
    assert_eq!(page2["events"][0]["subject"], "o3");
    // Newest first, prefix filter, time filter.
    let (_, desc, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/audit?kind=apikey.&order=desc&since=1h&limit=1",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(desc["events"][0]["subject"], "o3", "{desc}");
    // Bad filters are problem+json and name the parameter.
    for (q, status, field) in [
        ("order=sideways", 422, "order"),
        ("cursor=abc", 422, "cursor"),
        ("since=last-tuesday", 422, "since"),
        ("limit=0", 422, "limit"),
        ("outcome=maybe", 422, "outcome"),
        ("colour=blue", 400, "colour"),
    ] {
        let (s, body, h) = call(
            &app,
            reqwest::Method::GET,
            &format!("/api/v1/audit?{q}"),
            Some(&reader),
            None,
        )
        .await;
        assert_eq!(s, status, "{q}: {body}");
        assert_eq!(h["content-type"], "application/problem+json");
        assert!(body.to_string().contains(field), "{q}: {body}");
    }
}

#[tokio::test]
async fn users_are_updated_disabled_given_passwords_and_deleted_over_http() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let t = admin(&app, &["users:write", "users:read"]).await;
    let read_only = admin(&app, &["users:read"]).await;
    app.authority
        .put_role("dev", &["repo:read".into()])
        .await
        .expect("role");
    let (s, u, _) = call(
        &app,
        Method::POST,
        "/api/v1/users",
        Some(&t),
        Some(json!({"username": "ada", "password": "long enough pw", "roles": ["dev"]})),
    )
    .await;
    assert_eq!(s, 201, "{u}");
    assert_eq!(u["has_password"], true);
    assert!(
        !u.to_string().contains("long enough pw"),
        "the password is never echoed"
    );
    // Bad inputs: each a problem+json naming the field, nothing changed.
    for (body, field) in [
        (json!({"username": "bob", "password": "short"}), "password"),
        (json!({"username": "bob", "roles": ["ghost"]}), "role"),
    ] {
        let (s, p, h) = call(&app, Method::POST, "/api/v1/users", Some(&t), Some(body)).await;
        assert_eq!(s, 422, "{p}");
        assert_eq!(h["content-type"], "application/problem+json");
        assert!(p["detail"].as_str().expect("detail").contains(field), "{p}");
    }
    let (s, list, _) = call(&app, Method::GET, "/api/v1/users", Some(&t), None).await;
    assert_eq!(
        (s, list.as_array().map(Vec::len)),
        (200, Some(1)),
        "bob was not created"
    );
    let (s, _, _) = call(
        &app,
        Method::PATCH,
        "/api/v1/users/ada",
        Some(&read_only),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(s, 403, "users:read may not write");
    let (s, p, _) = call(
        &app,
        Method::PATCH,
        "/api/v1/users/ada",
        Some(&t),
        Some(json!({"enabled": false, "surprise": 1})),
    )
    .await;
    assert_eq!(s, 422, "unknown fields are refused: {p}");
    let (s, u, _) = call(
        &app,
        Method::PATCH,
        "/api/v1/users/ada",
        Some(&t),
        Some(json!({"enabled": false, "mfa_required": true, "email": "ada@example.com"})),
    )
    .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(
        (
            u["enabled"].clone(),
            u["mfa_required"].clone(),
            u["email"].clone()
        ),
        (json!(false), json!(true), json!("ada@example.com"))
    );
    let (s, u, _) = call(
        &app,
        Method::PATCH,
        "/api/v1/users/ada",
        Some(&t),
        Some(json!({"email": null, "enabled": true})),
    )
    .await;
    assert_eq!(
        (s, u["email"].clone(), u["enabled"].clone()),
        (200, Value::Null, json!(true))
    );
    let (s, p, _) = call(
        &app,
        Method::PUT,
        "/api/v1/users/ada/password",
        Some(&t),
        Some(json!({"password": "x"})),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    let (s, _, _) = call(
        &app,
        Method::PUT,
        "/api/v1/users/ada/password",
        Some(&t),
        Some(json!({"password": "a different long one"})),
    )
    .await;
    assert_eq!(s, 204);
    let b = app.browser();
    assert_eq!(
        b.sign_in("ada", "a different long one", "/account")
            .await
            .status(),
        303,
        "the new password signs in"
    );
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/users/ghost/mfa/reset",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/users/ada/mfa/reset",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        b.get("/account").await.status(),
        303,
        "an MFA reset ends the user's sessions"
    );
    let (s, _, _) = call(&app, Method::DELETE, "/api/v1/users/ada", Some(&t), None).await;
    assert_eq!(s, 204);
    let (s, _, _) = call(&app, Method::DELETE, "/api/v1/users/ada", Some(&t), None).await;
    assert_eq!(s, 404);
}
