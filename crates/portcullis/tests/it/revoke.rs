use portcullis_service::clients::NewClient;
use portcullis_testkit::{urlencode, TestApp};
use serde_json::json;

#[tokio::test]
async fn revocation_takes_effect_at_once_for_both_formats() {
    let app = TestApp::spawn().await;
    for format in ["jwt", "opaque"] {
        let c = app
            .client(NewClient {
                token_format: Some(format.into()),
                ..TestApp::cc(format)
            })
            .await;
        let t = app.token(&c, "").await;
        let other = app.token(&c, "").await;
        assert_eq!(app.introspect(&c, &t).await["active"], true);
        let res = app
            .post_form(
                "/oauth/revoke",
                &format!("token={}&token_type_hint=access_token", urlencode(&t)),
                Some(&c),
            )
            .await;
        assert_eq!(res.status(), 200, "{format}");
        assert_eq!(
            app.introspect(&c, &t).await,
            json!({"active": false}),
            "{format}"
        );
        assert_eq!(
            app.introspect(&c, &other).await["active"],
            true,
            "{format}: other tokens unaffected"
        );
    }
    assert_eq!(
        app.count_rows("revoked_jtis").await,
        1,
        "the JWT's jti is deny-listed durably"
    );
}

#[tokio::test]
async fn unknown_tokens_answer_200_and_another_clients_token_is_refused() {
    let app = TestApp::spawn().await;
    let a = app.client(TestApp::cc("a")).await;
    let b = app.client(TestApp::cc("b")).await;
    let res = app
        .post_form("/oauth/revoke", "token=not-a-token", Some(&a))
        .await;
    assert_eq!(res.status(), 200);
    let t = app.token(&a, "").await;
    let res = app
        .post_form(
            "/oauth/revoke",
            &format!("token={}", urlencode(&t)),
            Some(&b),
        )
        .await;
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(
        app.introspect(&a, &t).await["active"],
        true,
        "b's attempt changed nothing"
    );
    assert_eq!(app.count_rows("revoked_jtis").await, 0);
    let res = app.post_form("/oauth/revoke", "", Some(&a)).await;
    assert_eq!(res.status(), 400, "missing token");
    let res = app.post_form("/oauth/revoke", "token=x", None).await;
    assert_eq!(res.status(), 401, "unauthenticated");
}
