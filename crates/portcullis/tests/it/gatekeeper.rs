//! Rate limits, IP rules and forward-auth over real HTTP.

use portcullis_core::limits::RateLimit;
use portcullis_service::apikeys::{NewApiKey, NewKeyspace};
use portcullis_service::clients::NewClient;
use portcullis_service::pats::{NewUser, PatLifetime};
use portcullis_testkit::{urlencode, TestApp};

fn rl(s: &str) -> Option<RateLimit> {
    Some(s.parse().expect("rate limit"))
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii"))
        .unwrap_or("")
}

#[tokio::test]
async fn the_token_endpoint_is_limited_per_ip_exactly_with_headers() {
    let app = TestApp::builder()
        .settings(|s| s.ratelimit.token_per_ip = rl("3/minute"))
        .spawn()
        .await;
    let c = app.client(TestApp::cc("svc")).await;
    for i in 0..3 {
        let res = app
            .post_form("/oauth/token", "grant_type=client_credentials", Some(&c))
            .await;
        assert_eq!(res.status(), 200, "request {i}");
        let policies: Vec<&str> = res
            .headers()
            .get_all("ratelimit-policy")
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect();
        assert!(policies.contains(&r#""token-ip";q=3;w=60"#), "{policies:?}");
        assert!(
            policies.contains(&r#""token-credential";q=3000;w=60"#),
            "the per-client default applies too: {policies:?}"
        );
        let state: Vec<String> = res
            .headers()
            .get_all("ratelimit")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect();
        assert!(
            state
                .iter()
                .any(|v| v.starts_with(&format!("\"token-ip\";r={};", 2 - i))),
            "{state:?}"
        );
    }
    // Failed authentications count against the IP too: the 4th is refused before auth.
    let res = app
        .post_form("/oauth/token", "grant_type=client_credentials", None)
        .await;
    assert_eq!(res.status(), 429);
    let retry: u64 = header(&res, "retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(header(&res, "cache-control"), "no-store");
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"], "too_many_requests");
    assert!(body["error_description"]
        .as_str()
        .expect("desc")
        .contains("token-ip"));
    // Other routes have their own budget.
    assert_eq!(
        app.http
            .get(app.url("/jwks.json"))
            .send()
            .await
            .expect("jwks")
            .status(),
        200
    );
}

#[tokio::test]
async fn a_clients_own_limit_overrides_the_default_per_client_limit() {
    let app = TestApp::builder()
        .settings(|s| s.ratelimit.token_per_ip = None)
        .spawn()
        .await;
    let slow = app
        .client(NewClient {
            rate_limit: Some("2/hour".into()),
            ..TestApp::cc("slow")
        })
        .await;
    let other = app.client(TestApp::cc("other")).await;
    for _ in 0..2 {
        app.token(&slow, "").await;
    }
    let res = app
        .post_form("/oauth/token", "grant_type=client_credentials", Some(&slow))
        .await;
    assert_eq!(res.status(), 429);
    assert!(header(&res, "ratelimit-policy").contains(r#""token-credential";q=2;w=3600"#));
    // Another client is not affected.
    app.token(&other, "").await;
    // A bad limit is refused when the client is registered.
    let e = app
        .authority
        .create_client(NewClient {
            rate_limit: Some("lots".into()),
            ..TestApp::cc("bad")
        })
        .await
        .expect_err("bad limit");
    assert!(e.to_string().contains("rate_limit"), "{e}");
}

#[tokio::test]
async fn denied_networks_get_403_but_health_checks_pass() {
    let app = TestApp::builder()
        .settings(|s| s.ip.deny = vec!["127.0.0.0/8".into()])
        .spawn()
        .await;
    let res = app
        .http
        .get(app.url("/jwks.json"))
        .send()
        .await
        .expect("jwks");
    assert_eq!(res.status(), 403);
    assert_eq!(header(&res, "content-type"), "application/problem+json");
    let res = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.status(), 200);
    // An allow list that does not include loopback refuses too.
    let app = TestApp::builder()
        .settings(|s| s.ip.allow = vec!["10.0.0.0/8".into(), "2001:db8::/32".into()])
        .spawn()
        .await;
    let res = app
        .http
        .get(app.url("/jwks.json"))
        .send()
        .await
        .expect("jwks");
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    // Without trusted proxies, a client cannot claim another address.
    let app = TestApp::builder()
        .settings(|s| s.ip.deny = vec!["203.0.113.0/24".into()])
        .spawn()
        .await;
    let res = app
        .http
        .get(app.url("/jwks.json"))
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .expect("jwks");
    assert_eq!(res.status(), 200, "header ignored; loopback is not denied");
    // With loopback trusted, the forwarded address is the client.
    let app = TestApp::builder()
        .settings(|s| {
            s.ip.trusted_proxies = vec!["127.0.0.1".into()];
            s.ip.deny = vec!["203.0.113.0/24".into()];
        })
        .spawn()
        .await;
    for (xff, status) in [
        ("203.0.113.9", 403),
        ("198.51.100.1", 200),
        // The client claimed a clean address; the proxy appended the real one.
        ("198.51.100.1, 203.0.113.9", 403),
        ("203.0.113.9, 198.51.100.1", 200),
    ] {
        let res = app
            .http
            .get(app.url("/jwks.json"))
            .header("x-forwarded-for", xff)
            .send()
            .await
            .expect("jwks");
        assert_eq!(res.status(), status, "{xff}");
    }
}

async fn fa(app: &TestApp, auth: Option<&str>, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.http.get(app.url("/auth/verify"));
    if let Some(t) = auth {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.expect("forward-auth")
}

#[tokio::test]
async fn forward_auth_accepts_every_bearer_kind_and_refuses_per_rfc_6750() {
    let app = TestApp::builder()
        .settings(|s| {
            s.ip.trusted_proxies = vec!["127.0.0.1".into()];
            s.forwardauth.routes = vec![portcullis_server::config::ForwardAuthRoute {
                prefix: "/admin/".into(),
                methods: vec![],
                scopes: vec!["write".into()],
            }];
        })
        .spawn()
        .await;
    let a = &app.authority;
    // No credential: 401 with a bare challenge (RFC 6750 §3.1: no error code).
    let res = fa(&app, None, &[]).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        header(&res, "www-authenticate"),
        r#"Bearer realm="portcullis""#
    );
    // Garbage: invalid_token.
    let res = fa(&app, Some("garbage"), &[]).await;
    assert_eq!(res.status(), 401);
    assert!(header(&res, "www-authenticate").contains(r#"error="invalid_token""#));

    // JWT.
    let c = app.client(TestApp::cc("svc")).await;
    let jwt = app.token(&c, "&scope=read").await;
    let res = fa(&app, Some(&jwt), &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-auth-client"), c.id);
    assert_eq!(header(&res, "x-auth-subject"), c.id);
    assert_eq!(header(&res, "x-auth-scopes"), "read");
    assert_eq!(header(&res, "x-auth-kind"), "jwt");
    assert!(!header(&res, "x-auth-token-id").is_empty());
    // The route table: /admin/ needs write.
    let res = fa(&app, Some(&jwt), &[("x-original-uri", "/admin/users?x=1")]).await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        header(&res, "www-authenticate"),
        r#"Bearer realm="portcullis", error="insufficient_scope", scope="write""#
    );
    // A header set by the proxy adds required scopes.
    let res = fa(
        &app,
        Some(&jwt),
        &[("x-auth-required-scopes", "read write")],
    )
    .await;
    assert_eq!(res.status(), 403);
    // Revoked: 401.
    let res = app
        .post_form(
            "/oauth/revoke",
            &format!("token={}", urlencode(&jwt)),
            Some(&c),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = fa(&app, Some(&jwt), &[]).await;
    assert_eq!(res.status(), 401, "revoked JWT refused at once");

    // Opaque access token.
    let oc = app
        .client(NewClient {
            token_format: Some("opaque".into()),
            ..TestApp::cc("opaque")
        })
        .await;
    let opaque = app.token(&oc, "").await;
    let res = fa(&app, Some(&opaque), &[("x-original-uri", "/admin/x")]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-auth-kind"), "opaque");
    assert_eq!(header(&res, "x-auth-scopes"), "read write");

    // PAT.
    a.put_role("dev", &["repo:read".into()])
        .await
        .expect("role");
    a.create_user(NewUser {
        username: "ada".into(),
        roles: vec!["dev".into()],
        ..Default::default()
    })
    .await
    .expect("user");
    let pat = a
        .create_pat("ada", "laptop", &["repo:read".into()], PatLifetime::Default)
        .await
        .expect("pat");
    let res = fa(
        &app,
        Some(&pat.token),
        &[("x-auth-required-scopes", "repo:read")],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-auth-kind"), "personal_access_token");
    assert_eq!(header(&res, "x-auth-client"), "");

    // API keys: bearer or X-Api-Key, with the key's allow list checked against the
    // address the trusted proxy reports.
    a.create_keyspace(NewKeyspace {
        name: "acme".into(),
        prefix: "acme_live".into(),
        scopes: vec!["read".into()],
        ..Default::default()
    })
    .await
    .expect("ks");
    let key = a
        .create_api_key(NewApiKey {
            keyspace: "acme".into(),
            owner: "org-7".into(),
            scopes: Some(vec!["read".into()]),
            allow_ips: vec!["203.0.113.0/24".into()],
            rate_limit: Some("2/minute".into()),
            ..Default::default()
        })
        .await
        .expect("key");
    let from_ok = [("x-forwarded-for", "203.0.113.5")];
    let res = app
        .http
        .get(app.url("/auth/verify"))
        .header("x-api-key", &key.key)
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .expect("fa");
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-auth-subject"), "org-7");
    assert_eq!(header(&res, "x-auth-kind"), "api_key");
    assert!(header(&res, "ratelimit-policy").contains(r#""api-key";q=2;w=60"#));
    let res = fa(&app, Some(&key.key), &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(res.status(), 403, "outside the key's allow list");
    let res = fa(
        &app,
        Some(&key.key),
        &[("x-original-uri", "/admin/"), from_ok[0]],
    )
    .await;
    assert_eq!(res.status(), 403, "key lacks write");
    assert!(header(&res, "www-authenticate").contains("insufficient_scope"));
    let res = fa(&app, Some(&key.key), &from_ok).await;
    assert_eq!(res.status(), 200, "second use within 2/minute");
    let res = fa(&app, Some(&key.key), &from_ok).await;
    assert_eq!(res.status(), 429, "third use over 2/minute");
    assert!(header(&res, "retry-after").parse::<u64>().is_ok());
    a.revoke_api_key(&key.view.id).await.expect("revoke");
    let res = fa(&app, Some(&key.key), &from_ok).await;
    assert_eq!(res.status(), 401, "revoked key");
}

#[tokio::test]
async fn forward_auth_enforces_audiences_and_the_default_per_credential_limit() {
    let app = TestApp::builder()
        .settings(|s| {
            s.forwardauth.audiences = vec!["https://api.test".into()];
            s.ratelimit.forward_auth_per_credential = rl("3/minute");
        })
        .spawn()
        .await;
    let other_api = app
        .client(NewClient {
            audiences: vec!["https://other.test".into()],
            ..TestApp::cc("other")
        })
        .await;
    let t = app.token(&other_api, "").await;
    let res = fa(&app, Some(&t), &[]).await;
    assert_eq!(res.status(), 401, "meant for another API");
    assert!(header(&res, "www-authenticate").contains("another audience"));
    let c = app.client(TestApp::cc("svc")).await;
    let t = app.token(&c, "&resource=https%3A%2F%2Fapi.test").await;
    for _ in 0..3 {
        assert_eq!(fa(&app, Some(&t), &[]).await.status(), 200);
    }
    let res = fa(&app, Some(&t), &[]).await;
    assert_eq!(res.status(), 429);
    assert!(header(&res, "ratelimit-policy").contains(r#""forward-auth-credential";q=3;w=60"#));
    // A fresh token of the same client has its own budget.
    let t2 = app.token(&c, "&resource=https%3A%2F%2Fapi.test").await;
    assert_eq!(fa(&app, Some(&t2), &[]).await.status(), 200);
}

fn geo_fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../portcullis-service/tests/fixtures")
        .join(name)
}

/// An admin token that may read and change IP blocks.
async fn ip_blocks_admin(app: &TestApp) -> String {
    app.authority
        .create_admin_token("sec", &["ipblocks:read".into(), "ipblocks:write".into()])
        .await
        .expect("admin")
        .token
}

async fn post_ip_block(app: &TestApp, admin: &str, body: serde_json::Value) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/ip-blocks"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .expect("post")
}

/// Lifts a block; `network` is already percent-encoded for the path.
async fn delete_ip_block(app: &TestApp, admin: &str, network: &str) -> reqwest::Response {
    app.http
        .delete(app.url(&format!("/api/v1/ip-blocks/{network}")))
        .bearer_auth(admin)
        .send()
        .await
        .expect("delete")
}

#[tokio::test]
async fn a_credential_stuffing_burst_blocks_the_address_until_an_admin_lifts_it() {
    use portcullis_service::anomaly::Action;
    let app = TestApp::builder()
        .settings(|s| {
            s.ip.trusted_proxies = vec!["127.0.0.1".into()];
            s.anomaly.failures_per_ip = 3;
            s.anomaly.failure_burst_actions = vec![Action::Log, Action::Alert, Action::DenyIp];
            s.anomaly.geoip_db = Some(geo_fixture("test-city.mmdb"));
        })
        .spawn()
        .await;
    let attacker = [("x-forwarded-for", "203.0.113.9")];
    for _ in 0..3 {
        let res = fa(&app, Some("pcat_not-a-real-token"), &attacker).await;
        assert_eq!(res.status(), 401);
    }
    // Now the address is refused everywhere, before any credential is looked at.
    let res = fa(&app, Some("pcat_not-a-real-token"), &attacker).await;
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .get(app.url("/jwks.json"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .expect("jwks");
    assert_eq!(res.status(), 403);
    // Others are not.
    let res = fa(
        &app,
        Some("pcat_not-a-real-token"),
        &[("x-forwarded-for", "198.51.100.1")],
    )
    .await;
    assert_eq!(res.status(), 401);
    // The alert is in the audit trail, explained.
    let alerts = app
        .authority
        .audit_list(&portcullis_store::AuditFilter {
            kind: Some("anomaly.alert".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].reason.as_deref(), Some("failure_burst"));
    assert_eq!(alerts[0].details["failures_this_minute"], 3);
    assert_eq!(alerts[0].details["observed_ip"], "203.0.113.9");
    // An admin sees the deny and lifts it.
    let admin = ip_blocks_admin(&app).await;
    let list: serde_json::Value = app
        .http
        .get(app.url("/api/v1/ip-blocks"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list[0]["network"], "203.0.113.9/32", "{list}");
    assert_eq!(list[0]["reason"], "failure_burst");
    let res = delete_ip_block(&app, &admin, "203.0.113.9%2F32").await;
    assert_eq!(res.status(), 204);
    let res = fa(&app, Some("pcat_not-a-real-token"), &attacker).await;
    assert_eq!(res.status(), 401, "lifted");
    // Bad input is refused and changes nothing.
    let res = post_ip_block(
        &app,
        &admin,
        serde_json::json!({"network": "300.1.1.1", "reason": "x", "duration": "1h"}),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(app.count_rows("ip_blocks").await, 0);
}

#[tokio::test]
async fn an_address_blocked_in_ipv4_mapped_form_is_refused_in_either_form() {
    let app = TestApp::builder()
        .settings(|s| s.ip.trusted_proxies = vec!["127.0.0.1".into()])
        .spawn()
        .await;
    let admin = ip_blocks_admin(&app).await;
    let res = post_ip_block(
        &app,
        &admin,
        serde_json::json!({"network": "::ffff:203.0.113.20", "reason": "abuse", "duration": "1h"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let view: serde_json::Value = res.json().await.expect("json");
    assert_eq!(
        view["network"], "203.0.113.20/32",
        "kept in its IPv4 form: {view}"
    );
    for spelled in ["203.0.113.20", "::ffff:203.0.113.20"] {
        let res = fa(&app, None, &[("x-forwarded-for", spelled)]).await;
        assert_eq!(res.status(), 403, "{spelled}");
    }
    let res = fa(&app, None, &[("x-forwarded-for", "203.0.113.21")]).await;
    assert_eq!(res.status(), 401, "a neighbour is not blocked");
    // Lifted by either spelling of the network.
    let res = delete_ip_block(&app, &admin, "%3A%3Affff%3A203.0.113.20%2F128").await;
    assert_eq!(res.status(), 204);
    let res = fa(&app, None, &[("x-forwarded-for", "203.0.113.20")]).await;
    assert_eq!(res.status(), 401, "lifted");
    assert_eq!(app.count_rows("ip_blocks").await, 0);
}

#[tokio::test]
async fn a_token_used_from_the_other_side_of_the_world_minutes_later_is_flagged() {
    let app = TestApp::builder()
        .settings(|s| {
            s.ip.trusted_proxies = vec!["127.0.0.1".into()];
            s.anomaly.geoip_db = Some(geo_fixture("test-city.mmdb"));
        })
        .spawn()
        .await;
    let c = app.client(TestApp::cc("svc")).await;
    let t = app.token(&c, "").await;
    assert_eq!(
        fa(&app, Some(&t), &[("x-forwarded-for", "192.0.2.10")])
            .await
            .status(),
        200
    );
    app.clock.advance(300);
    assert_eq!(
        fa(&app, Some(&t), &[("x-forwarded-for", "198.51.100.7")])
            .await
            .status(),
        200
    );
    let got: Vec<String> = app
        .authority
        .audit_list(&portcullis_store::AuditFilter {
            kind: Some("anomaly.".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_iter()
        .map(|r| r.reason.unwrap_or_default())
        .collect();
    let mut got = got;
    got.sort();
    assert_eq!(got, ["impossible_travel", "new_country"]);
}
