use std::time::Duration;

use portcullis_core::secret::SecretString;
use portcullis_service::clients::NewClient;
use portcullis_service::ServiceError;

use crate::{cc_client, env};

#[tokio::test]
async fn a_client_secret_is_shown_once_and_authenticates() {
    let e = env().await;
    let c = e
        .auth
        .create_client(cc_client("svc"))
        .await
        .expect("create");
    let secret = c.client_secret.clone().expect("confidential");
    assert!(secret.starts_with("pcs_"));
    let row = e
        .auth
        .store()
        .get_client(&c.client.client_id)
        .await
        .expect("get")
        .expect("row");
    assert_ne!(
        row.secret_digest.as_deref(),
        Some(secret.as_str()),
        "stored hashed"
    );
    assert!(!format!("{row:?}").contains(&secret));
    let got = e
        .auth
        .authenticate_client(&c.client.client_id, &SecretString::new(secret.clone()))
        .await
        .expect("auth");
    assert_eq!(got.id.to_string(), c.client.client_id);
    for (id, s) in [
        (c.client.client_id.as_str(), "pcs_wrong"),
        ("not-a-uuid", secret.as_str()),
        ("01890a5d-ac96-774b-bcce-b302099a8057", secret.as_str()),
    ] {
        let r = e.auth.authenticate_client(id, &SecretString::new(s)).await;
        assert!(matches!(r, Err(ServiceError::InvalidClient)), "{id}");
    }
}

#[tokio::test]
async fn rotating_the_secret_kills_the_old_one() {
    let e = env().await;
    let c = e
        .auth
        .create_client(cc_client("svc"))
        .await
        .expect("create");
    let old = SecretString::new(c.client_secret.expect("secret"));
    let r = e
        .auth
        .rotate_client_secret(&c.client.client_id)
        .await
        .expect("rotate");
    let new = SecretString::new(r.client_secret.expect("secret"));
    assert!(e
        .auth
        .authenticate_client(&c.client.client_id, &old)
        .await
        .is_err());
    assert!(e
        .auth
        .authenticate_client(&c.client.client_id, &new)
        .await
        .is_ok());
}

#[tokio::test]
async fn bad_registrations_name_the_field_and_write_nothing() {
    let e = env().await;
    let cases: Vec<(NewClient, &str)> = vec![
        (
            NewClient {
                name: "".into(),
                ..cc_client("x")
            },
            "name",
        ),
        (
            NewClient {
                grant_types: vec![],
                ..cc_client("x")
            },
            "grant_type",
        ),
        (
            NewClient {
                grant_types: vec!["implicit".into()],
                ..cc_client("x")
            },
            "grant_type",
        ),
        (
            NewClient {
                public: true,
                ..cc_client("x")
            },
            "public",
        ),
        (
            NewClient {
                scopes: vec!["a b".into()],
                ..cc_client("x")
            },
            "scope",
        ),
        (
            NewClient {
                default_scopes: vec!["admin".into()],
                ..cc_client("x")
            },
            "default_scope",
        ),
        (
            NewClient {
                audiences: vec!["not a uri".into()],
                ..cc_client("x")
            },
            "audience",
        ),
        (
            NewClient {
                audiences: vec!["https://a.test/#frag".into()],
                ..cc_client("x")
            },
            "audience",
        ),
        (
            NewClient {
                default_audience: Some("https://other.test".into()),
                ..cc_client("x")
            },
            "default_audience",
        ),
        (
            NewClient {
                redirect_uris: vec!["/relative".into()],
                ..cc_client("x")
            },
            "redirect_uri",
        ),
        (
            NewClient {
                token_format: Some("paseto".into()),
                ..cc_client("x")
            },
            "token_format",
        ),
        (
            NewClient {
                access_token_alg: Some("HS256".into()),
                ..cc_client("x")
            },
            "access_token_alg",
        ),
        (
            NewClient {
                access_token_ttl: Some(Duration::from_secs(5)),
                ..cc_client("x")
            },
            "access_token_ttl",
        ),
        (
            NewClient {
                access_token_ttl: Some(Duration::from_secs(2 * 86_400)),
                ..cc_client("x")
            },
            "access_token_ttl",
        ),
    ];
    for (req, field) in cases {
        match e.auth.create_client(req).await {
            Err(ServiceError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected Invalid, got {other:?}"),
        }
    }
    assert!(e.auth.list_clients().await.expect("list").is_empty());
}

#[tokio::test]
async fn unknown_clients_are_not_found() {
    let e = env().await;
    assert!(matches!(
        e.auth.get_client("nope").await,
        Err(ServiceError::NotFound(_))
    ));
    assert!(matches!(
        e.auth
            .delete_client("01890a5d-ac96-774b-bcce-b302099a8057")
            .await,
        Err(ServiceError::NotFound(_))
    ));
}

#[tokio::test]
async fn changes_by_another_process_are_noticed_at_the_next_sync() {
    let e = env().await;
    let cli = crate::authority_on(e.dir.path(), &e.clock, &e.mk).await;
    let c = e
        .auth
        .create_client(cc_client("svc"))
        .await
        .expect("create");
    let secret = SecretString::new(c.client_secret.expect("secret"));
    let id = c.client.client_id.clone();
    assert!(
        e.auth.authenticate_client(&id, &secret).await.is_ok(),
        "now cached"
    );
    // The CLI rotates the secret in its own process.
    let new = SecretString::new(
        cli.rotate_client_secret(&id)
            .await
            .expect("rotate")
            .client_secret
            .expect("s"),
    );
    assert!(
        e.auth.sync_changes().await.expect("sync"),
        "the change counter moved"
    );
    assert!(
        e.auth.authenticate_client(&id, &secret).await.is_err(),
        "old secret dead after sync"
    );
    assert!(e.auth.authenticate_client(&id, &new).await.is_ok());
    assert!(!e.auth.sync_changes().await.expect("sync"), "nothing new");
    // The CLI deletes the client.
    cli.delete_client(&id).await.expect("delete");
    e.auth.sync_changes().await.expect("sync");
    assert!(
        e.auth.authenticate_client(&id, &new).await.is_err(),
        "deleted client refused after sync"
    );
}
