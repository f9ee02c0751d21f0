use portcullis_testkit::TestApp;

#[tokio::test]
async fn health_readiness_and_request_ids() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let r = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("healthz");
    assert_eq!(
        r.headers()["x-request-id"],
        "abc-123",
        "a caller's request id is kept"
    );
    let r = app.http.get(app.url("/nope")).send().await.expect("404");
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn metrics_count_requests_by_endpoint_and_tokens_by_grant() {
    let app = TestApp::spawn().await;
    let c = app.client(TestApp::cc("svc")).await;
    app.token(&c, "").await;
    app.post_form("/oauth/token", "grant_type=nope", Some(&c))
        .await;
    // Any token is a valid method on the wire; each must not become a new series.
    for m in ["BREW", "PROPFIND"] {
        let r = app
            .http
            .request(
                reqwest::Method::from_bytes(m.as_bytes()).expect("method"),
                app.url("/healthz"),
            )
            .send()
            .await
            .expect("odd method");
        assert_eq!(r.status(), 405, "{m}");
    }
    let m = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(m.contains(r#"portcullis_http_requests_total{endpoint="/oauth/token",method="POST",status="200"} 1"#), "{m}");
    assert!(m.contains(r#"portcullis_http_requests_total{endpoint="/oauth/token",method="POST",status="400"} 1"#), "{m}");
    assert!(
        m.contains(
            r#"portcullis_tokens_issued_total{grant_type="client_credentials",format="jwt"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains("portcullis_http_request_duration_seconds_bucket"),
        "{m}"
    );
    assert!(
        m.contains(
            r#"portcullis_http_requests_total{endpoint="/healthz",method="other",status="405"} 2"#
        ),
        "{m}"
    );
    assert!(!m.contains("BREW") && !m.contains("PROPFIND"), "{m}");
}

#[tokio::test]
async fn security_headers_and_cors_only_where_browsers_may_call() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(h["cache-control"], "no-store");
    assert!(
        !h.contains_key("strict-transport-security"),
        "no HSTS over plain http"
    );
    let r = app
        .http
        .get(app.url("/jwks.json"))
        .send()
        .await
        .expect("jwks");
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=300",
        "cacheable documents keep their own policy"
    );
    let r = app
        .http
        .get(app.url("/jwks.json"))
        .header("origin", "https://spa.example")
        .send()
        .await
        .expect("jwks from a page");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(
        !r.headers().contains_key("vary"),
        "the answer is the same for every origin"
    );
    let preflight = |path: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", "https://spa.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    for path in [
        "/oauth/token",
        "/.well-known/openid-configuration",
        "/jwks.json",
    ] {
        let r = preflight(path).await.expect("preflight");
        assert_eq!(
            r.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().ok()),
            Some(Some("*")),
            "{path}"
        );
    }
    // The documents answer their preflight themselves, the token endpoint through
    // tower-http's layer: the answers must not drift apart.
    let cors_of = |r: &reqwest::Response| {
        [
            "access-control-allow-origin",
            "access-control-allow-methods",
            "access-control-allow-headers",
            "access-control-max-age",
        ]
        .map(|name| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.to_ascii_lowercase().replace(' ', ""))
        })
    };
    let token = preflight("/oauth/token").await.expect("preflight");
    assert_eq!(token.status(), 200);
    assert!(cors_of(&token).iter().all(Option::is_some), "{token:?}");
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/jwks.json",
    ] {
        let r = preflight(path).await.expect("preflight");
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(cors_of(&r), cors_of(&token), "{path}");
        assert!(!r.headers().contains_key("vary"), "{path}");
    }
    for path in ["/api/v1/keys", "/oauth/introspect", "/oauth/revoke"] {
        let r = preflight(path).await.expect("preflight");
        assert!(
            !r.headers().contains_key("access-control-allow-origin"),
            "{path} must not allow cross-origin calls"
        );
    }
}
