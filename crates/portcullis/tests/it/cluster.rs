//! Two Portcullis nodes on one PostgreSQL database (DESIGN §2, "Cluster"): whatever
//! one node issues, the other verifies, and whatever one revokes, the other refuses
//! within one `database.change_poll_interval` (DESIGN §4, invariant 4: 1 s). Each
//! node keeps its own caches, so this is what catches a cache that only the node
//! that changed a row knows to drop.

use std::time::{Duration, Instant};

use portcullis_service::clients::NewClient;
use portcullis_testkit::{urlencode, PgSchema, TestApp, TestClient};
use serde_json::{json, Value};

/// A node on `db`. A second node takes the first's master key file and issuer, as
/// every node of one cluster must (one key seals the signing keys; one issuer is the
/// `iss` every node accepts), and listens on its own port.
async fn node(db: &PgSchema, first: Option<&TestApp>) -> TestApp {
    let url = db.url.clone();
    let shared = first.map(|a| {
        (
            a.settings.keys.master_key_file.clone(),
            a.settings.server.issuer.clone(),
        )
    });
    TestApp::builder()
        .settings(move |s| {
            s.database.url = url;
            if let Some((key, issuer)) = shared {
                s.keys.master_key_file = key;
                s.server.issuer = issuer;
            }
        })
        .spawn()
        .await
}

/// Polls `check` until it holds. DESIGN's invariant 4: a revocation reaches every node
/// within 1 s. The nodes poll every `database.change_poll_interval` (1 s, the
/// default); the bound allows that plus 500 ms for the poll's own queries and a
/// busy test machine.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_millis(1_500),
            "{what}: not seen by the other node within 1.5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn active(app: &TestApp, c: &TestClient, token: &str) -> bool {
    app.introspect(c, token).await["active"] == json!(true)
}

/// Revokes `token` on node `on` (RFC 7009), then waits until node `other` refuses
/// it, while `kept`, a token of the same client, stays active there.
async fn revoked_on_one_refused_on_other(
    on: &TestApp,
    other: &TestApp,
    c: &TestClient,
    token: &str,
    kept: &str,
) {
    let res = on
        .post_form(
            "/oauth/revoke",
            &format!("token={}", urlencode(token)),
            Some(c),
        )
        .await;
    assert_eq!(res.status(), 200);
    eventually("a token revoked on the other node", || async {
        !active(other, c, token).await
    })
    .await;
    assert!(active(other, c, kept).await, "the other token lives");
}

async fn verify_key(app: &TestApp, admin: &str, key: &str) -> Value {
    app.http
        .post(app.url("/api/v1/keys/verify"))
        .bearer_auth(admin)
        .json(&json!({ "key": key }))
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn two_nodes_on_one_postgres_database_share_credentials_and_revocations() {
    let Some(db) =
        PgSchema::create("two_nodes_on_one_postgres_database_share_credentials_and_revocations")
            .await
    else {
        return;
    };
    let a = node(&db, None).await;
    let b = node(&db, Some(&a)).await;

    // A client made on node A gets tokens from node B; a JWT from one introspects
    // as active on the other (same signing keys, same database).
    let jwt_client = a.client(TestApp::cc("jwt")).await;
    let from_b = b.token(&jwt_client, "").await;
    assert!(active(&a, &jwt_client, &from_b).await);
    let from_a = a.token(&jwt_client, "").await;
    assert!(active(&b, &jwt_client, &from_a).await);

    // A JWT revoked on B stops working on A (deny list through the event feed).
    revoked_on_one_refused_on_other(&b, &a, &jwt_client, &from_a, &from_b).await;

    // An opaque token B has introspected (and cached), revoked on A.
    let opaque_client = a
        .client(NewClient {
            token_format: Some("opaque".into()),
            ..TestApp::cc("opaque")
        })
        .await;
    let opaque = a.token(&opaque_client, "").await;
    let kept = a.token(&opaque_client, "").await;
    assert!(active(&b, &opaque_client, &opaque).await);
    assert!(active(&b, &opaque_client, &kept).await);
    revoked_on_one_refused_on_other(&a, &b, &opaque_client, &opaque, &kept).await;

    // An API key B has verified (and cached), revoked through A's admin API.
    let admin = a
        .authority
        .create_admin_token("cluster-test", &["admin".to_owned()])
        .await
        .expect("admin token")
        .token;
    let created: Value = a
        .http
        .post(a.url("/api/v1/keyspaces"))
        .bearer_auth(&admin)
        .json(&json!({"name": "acme", "prefix": "acme_live", "scopes": ["read"]}))
        .send()
        .await
        .expect("keyspace")
        .json()
        .await
        .expect("json");
    assert_eq!(created["name"], "acme", "{created}");
    let key: Value = a
        .http
        .post(a.url("/api/v1/keys"))
        .bearer_auth(&admin)
        .json(&json!({"keyspace": "acme", "owner": "cust-1"}))
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    let secret = key["key"].as_str().expect("key").to_owned();
    let id = key["id"].as_str().expect("id").to_owned();
    assert_eq!(verify_key(&b, &admin, &secret).await["valid"], true);
    let res = a
        .http
        .post(a.url(&format!("/api/v1/keys/{id}/revoke")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    assert_eq!(res.status(), 200);
    eventually("an API key revoked on A", || async {
        verify_key(&b, &admin, &secret).await["valid"] == json!(false)
    })
    .await;

    // A client secret rotated on A: the old one stops working on B.
    let before = b.token(&jwt_client, "").await;
    assert!(!before.is_empty());
    let rotated = a
        .authority
        .rotate_client_secret(&jwt_client.id)
        .await
        .expect("rotate");
    let new_client = TestClient {
        id: jwt_client.id.clone(),
        secret: rotated.client_secret.expect("new secret"),
    };
    eventually("a client secret rotated on A", || async {
        b.post_form(
            "/oauth/token",
            "grant_type=client_credentials",
            Some(&jwt_client),
        )
        .await
        .status()
            == 401
    })
    .await;
    assert_eq!(b.token(&new_client, "").await.split('.').count(), 3);

    // Both nodes appended to one audit chain, and it holds.
    let report = b.authority.audit_verify().await.expect("verify");
    assert!(report.ok, "{report:?}");
    assert!(report.checked > 10, "{report:?}");

    drop(a);
    drop(b);
    db.drop().await;
}
