//! The `examples/protected_api.rs` service, run against a real server.

#[allow(dead_code)]
#[path = "../../examples/protected_api.rs"]
mod protected_api;

use crate::support::{env, Env};

/// Serves the example on 127.0.0.1:0 with a verifier for `e`; returns its base URL.
pub(crate) async fn serve(e: &Env) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let verifier = e
        .builder()
        .resource_url(base.clone())
        .build()
        .await
        .expect("verifier");
    let app = protected_api::app(verifier);
    let h = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (base, h)
}

async fn get(url: &str, auth: Option<&str>) -> (u16, Vec<String>, serde_json::Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = req.send().await.expect("get");
    let status = res.status().as_u16();
    let www = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    let body = res.json().await.unwrap_or(serde_json::Value::Null);
    (status, www, body)
}

#[tokio::test]
async fn the_example_service_admits_valid_tokens_and_answers_rfc_6750_otherwise() {
    let e = env().await;
    let (base, _h) = serve(&e).await;
    // No token: 401 with bare Bearer and DPoP challenges.
    let (status, www, _) = get(&format!("{base}/hello"), None).await;
    assert_eq!(status, 401);
    assert_eq!(www[0], r#"Bearer realm="api""#);
    assert!(www[1].starts_with("DPoP realm=\"api\""));
    // A JWT (offline) and an opaque token (introspected) both get in.
    let jwt = e.token(&e.es256).await;
    let (status, _, body) = get(&format!("{base}/hello"), Some(&format!("Bearer {jwt}"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["hello"], e.es256.id);
    assert_eq!(body["token_type"], "Bearer");
    let opaque_client = e
        .app
        .client(portcullis_service::clients::NewClient {
            token_format: Some("opaque".into()),
            default_audience: Some(crate::support::AUD.into()),
            ..portcullis_testkit::TestApp::cc("opaque")
        })
        .await;
    let opaque = e.token(&opaque_client).await;
    let (status, _, body) = get(&format!("{base}/hello"), Some(&format!("Bearer {opaque}"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hello"], opaque_client.id);
    // Garbage, a bad scheme, and a token for another audience.
    let (status, www, body) = get(&format!("{base}/hello"), Some("Bearer nope.nope.nope")).await;
    assert_eq!(status, 401);
    assert!(www[0].contains(r#"error="invalid_token""#), "{www:?}");
    assert_eq!(body["error"], "invalid_token");
    let (status, _, body) = get(&format!("{base}/hello"), Some("Basic abc")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    let elsewhere = e
        .app
        .client(portcullis_service::clients::NewClient {
            default_audience: Some("https://other.test".into()),
            audiences: vec!["https://other.test".into()],
            ..portcullis_testkit::TestApp::cc("elsewhere")
        })
        .await;
    let foreign = e.token(&elsewhere).await;
    let (status, _, _) = get(&format!("{base}/hello"), Some(&format!("Bearer {foreign}"))).await;
    assert_eq!(status, 401);
    // The admin route's layer wants `admin`: 403 insufficient_scope with the scope named.
    let (status, www, body) = get(
        &format!("{base}/admin/stats"),
        Some(&format!("Bearer {jwt}")),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        www[0].contains(r#"error="insufficient_scope""#) && www[0].contains(r#"scope="admin""#),
        "{www:?}"
    );
    assert_eq!(body["error"], "insufficient_scope");
    let admin_client = e
        .app
        .client(portcullis_service::clients::NewClient {
            default_audience: Some(crate::support::AUD.into()),
            scopes: vec!["admin".into()],
            ..portcullis_testkit::TestApp::cc("admin")
        })
        .await;
    let admin = e.app.token(&admin_client, "&scope=admin").await;
    let (status, _, body) = get(
        &format!("{base}/admin/stats"),
        Some(&format!("Bearer {admin}")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["admin"], admin_client.id);
}
