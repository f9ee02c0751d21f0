use portcullis_core::scope::ScopeSet;
use portcullis_service::clients::NewClient;
use portcullis_service::tokens::{ClientCredentialsRequest, Revoked};
use portcullis_service::ServiceError;

use crate::{cc_client, env};

async fn setup(
    format: &str,
) -> (
    crate::Env,
    portcullis_service::clients::Client,
    portcullis_service::clients::Client,
) {
    let e = env().await;
    let a = e
        .auth
        .create_client(NewClient {
            token_format: Some(format.into()),
            ..cc_client("a")
        })
        .await
        .expect("a");
    let b = e.auth.create_client(cc_client("b")).await.expect("b");
    let a = e.auth.get_client(&a.client.client_id).await.expect("a");
    let b = e.auth.get_client(&b.client.client_id).await.expect("b");
    (e, a, b)
}

#[tokio::test]
async fn tokens_of_both_formats_introspect_expire_and_revoke() {
    for format in ["jwt", "opaque"] {
        let (e, a, b) = setup(format).await;
        let req = ClientCredentialsRequest {
            scope: Some(ScopeSet::parse("read").expect("scope")),
            resources: vec![],
            ..Default::default()
        };
        let t = e
            .auth
            .issue_client_credentials(&a, req)
            .await
            .expect("issue");
        let tok = t.access_token.expose().to_owned();
        assert_eq!(tok.starts_with("pcat_"), format == "opaque", "{format}");
        let i = e.auth.introspect(&a, &tok).await.expect("introspect");
        assert!(i.active, "{format}");
        assert_eq!(i.scope.as_deref(), Some("read"));
        assert_eq!(
            i.aud.as_ref().map(|a| a.to_vec()),
            Some(vec!["https://issuer.test".to_owned()])
        );
        // b's audiences are not the token's audience (the issuer): inactive for b.
        assert!(
            !e.auth
                .introspect(&b, &tok)
                .await
                .expect("introspect")
                .active
        );
        // b may not revoke a's token.
        assert!(matches!(
            e.auth.revoke(&b, &tok).await,
            Err(ServiceError::UnauthorizedClient(_))
        ));
        assert!(
            e.auth
                .introspect(&a, &tok)
                .await
                .expect("introspect")
                .active
        );
        assert_eq!(e.auth.revoke(&a, &tok).await.expect("revoke"), Revoked::Now);
        assert!(
            !e.auth
                .introspect(&a, &tok)
                .await
                .expect("introspect")
                .active,
            "{format}: revoked at once"
        );
        assert_eq!(
            e.auth.revoke(&a, &tok).await.expect("revoke again"),
            Revoked::Nothing
        );
        // Expiry.
        let t = e
            .auth
            .issue_client_credentials(&a, ClientCredentialsRequest::default())
            .await
            .expect("issue");
        let live = |i: portcullis_service::tokens::Introspection| i.active;
        assert!(
            live(
                e.auth
                    .introspect(&a, t.access_token.expose())
                    .await
                    .expect("i")
            ),
            "now cached"
        );
        e.clock.advance(899);
        assert!(
            live(
                e.auth
                    .introspect(&a, t.access_token.expose())
                    .await
                    .expect("i")
            ),
            "{format}: not yet expired"
        );
        e.clock.advance(31);
        assert!(
            !e.auth
                .introspect(&a, t.access_token.expose())
                .await
                .expect("introspect")
                .active,
            "{format}: expired"
        );
    }
}

#[tokio::test]
async fn scope_and_resource_rules() {
    let (e, a, _) = setup("jwt").await;
    let too_much = ClientCredentialsRequest {
        scope: Some(ScopeSet::parse("read admin").expect("s")),
        resources: vec![],
        ..Default::default()
    };
    assert!(matches!(
        e.auth.issue_client_credentials(&a, too_much).await,
        Err(ServiceError::InvalidScope(_))
    ));
    let t = e
        .auth
        .issue_client_credentials(&a, ClientCredentialsRequest::default())
        .await
        .expect("default scopes");
    assert_eq!(t.scope.to_string(), "read write");
    let bad = ClientCredentialsRequest {
        scope: None,
        resources: vec!["https://evil.test".into()],
        ..Default::default()
    };
    assert!(matches!(
        e.auth.issue_client_credentials(&a, bad).await,
        Err(ServiceError::InvalidTarget(_))
    ));
    let ok = ClientCredentialsRequest {
        scope: None,
        resources: vec!["https://api.test".into()],
        ..Default::default()
    };
    let t = e
        .auth
        .issue_client_credentials(&a, ok)
        .await
        .expect("resource");
    let i = e
        .auth
        .introspect(&a, t.access_token.expose())
        .await
        .expect("introspect");
    assert_eq!(
        i.aud.map(|a| a.to_vec()),
        Some(vec!["https://api.test".to_owned()])
    );
}

#[tokio::test]
async fn a_resource_server_sees_tokens_for_its_audience_only() {
    let (e, a, b) = setup("opaque").await;
    // b registered https://api.test as one of its audiences: it may introspect tokens for it.
    let req = ClientCredentialsRequest {
        scope: None,
        resources: vec!["https://api.test".into()],
        ..Default::default()
    };
    let t = e
        .auth
        .issue_client_credentials(&a, req)
        .await
        .expect("issue");
    assert!(
        e.auth
            .introspect(&b, t.access_token.expose())
            .await
            .expect("introspect")
            .active
    );
}

#[tokio::test]
async fn deleting_a_client_deactivates_its_tokens() {
    for format in ["jwt", "opaque"] {
        let (e, a, _) = setup(format).await;
        let t = e
            .auth
            .issue_client_credentials(&a, ClientCredentialsRequest::default())
            .await
            .expect("issue");
        assert!(
            e.auth
                .introspect(&a, t.access_token.expose())
                .await
                .expect("i")
                .active,
            "now cached"
        );
        e.auth
            .delete_client(&a.id.to_string())
            .await
            .expect("delete");
        assert!(
            !e.auth
                .introspect(&a, t.access_token.expose())
                .await
                .expect("introspect")
                .active,
            "{format}"
        );
    }
}

#[tokio::test]
async fn garbage_tokens_are_simply_inactive() {
    let (e, a, _) = setup("jwt").await;
    for junk in [
        "",
        "x",
        "a.b.c",
        "pcat_notreal",
        "pcs_",
        &"x".repeat(10_000),
    ] {
        assert!(
            !e.auth
                .introspect(&a, junk)
                .await
                .expect("introspect")
                .active,
            "{junk}"
        );
        assert_eq!(
            e.auth.revoke(&a, junk).await.expect("revoke"),
            Revoked::Nothing
        );
    }
}
