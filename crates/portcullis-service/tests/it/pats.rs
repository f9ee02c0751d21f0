use std::time::Duration;

use portcullis_service::pats::{NewUser, PatLifetime};
use portcullis_service::ServiceError;

use crate::{cc_client, env};

#[tokio::test]
async fn personal_access_tokens_live_within_roles_and_policy_and_die_on_offboarding() {
    let e = env().await;
    e.auth
        .put_role("developer", &["repo:read".into(), "repo:write".into()])
        .await
        .expect("role");
    e.auth
        .put_role("viewer", &["repo:read".into()])
        .await
        .expect("role");
    let u = e
        .auth
        .create_user(NewUser {
            username: "ada".into(),
            email: Some("ada@example.com".into()),
            roles: vec!["viewer".into()],
            ..NewUser::default()
        })
        .await
        .expect("user");
    // Scopes beyond the user's roles are refused.
    let r = e
        .auth
        .create_pat("ada", "ci", &["repo:write".into()], PatLifetime::Default)
        .await;
    assert!(
        matches!(r, Err(ServiceError::Invalid { field: "scope", .. })),
        "{r:?}"
    );
    // Lifetime policy: default 90d max; longer and "never" refused by default.
    assert!(matches!(
        e.auth
            .create_pat(
                "ada",
                "x",
                &[],
                PatLifetime::For(Duration::from_secs(91 * 86_400))
            )
            .await,
        Err(ServiceError::Invalid { .. })
    ));
    assert!(matches!(
        e.auth.create_pat("ada", "x", &[], PatLifetime::Never).await,
        Err(ServiceError::Invalid { .. })
    ));
    let t1 = e
        .auth
        .create_pat("ada", "laptop", &["repo:read".into()], PatLifetime::Default)
        .await
        .expect("pat");
    assert!(t1.token.starts_with("pcpat_"));
    assert_eq!(t1.view.expires_at, Some(1_800_000_000 + 90 * 86_400));
    let t2 = e
        .auth
        .create_pat(
            &u.id,
            "ci",
            &[],
            PatLifetime::For(Duration::from_secs(3600)),
        )
        .await
        .expect("pat");
    assert!(
        !serde_json::to_string(&e.auth.list_pats("ada").await.expect("list"))
            .expect("json")
            .contains(&t1.token)
    );
    // Accepted wherever a bearer is: introspection.
    let c = e.auth.create_client(cc_client("rs")).await.expect("client");
    let rs = e
        .auth
        .get_client(&c.client.client_id)
        .await
        .expect("client");
    let i = e.auth.introspect(&rs, &t1.token).await.expect("introspect");
    assert!(i.active);
    assert_eq!(i.token_type.as_deref(), Some("personal_access_token"));
    assert_eq!(
        (i.sub.as_deref(), i.username.as_deref()),
        (Some(u.id.as_str()), Some("ada"))
    );
    assert_eq!(i.scope.as_deref(), Some("repo:read"));
    // Expiry.
    e.clock.advance(3600);
    assert!(!e.auth.introspect(&rs, &t2.token).await.expect("i").active);
    // One revoked; then offboarding revokes the rest at once.
    let t3 = e
        .auth
        .create_pat("ada", "spare", &[], PatLifetime::Default)
        .await
        .expect("pat");
    e.auth.revoke_pat(&t3.view.id).await.expect("revoke");
    assert!(!e.auth.introspect(&rs, &t3.token).await.expect("i").active);
    assert!(
        e.auth.introspect(&rs, &t1.token).await.expect("i").active,
        "cached now"
    );
    assert_eq!(
        e.auth.revoke_all_pats("ada").await.expect("offboard"),
        2,
        "t1 and the expired t2; t3 was already revoked"
    );
    assert!(
        !e.auth.introspect(&rs, &t1.token).await.expect("i").active,
        "offboarding takes effect at once"
    );
    // Last use is recorded (flushed in batches).
    e.auth.flush_pat_usage().await.expect("flush");
    let listed = e.auth.list_pats("ada").await.expect("list");
    assert!(listed
        .iter()
        .find(|p| p.id == t1.view.id)
        .and_then(|p| p.last_used_at)
        .is_some());
}

#[tokio::test]
async fn bad_users_and_tokens_are_refused_and_write_nothing() {
    let e = env().await;
    e.auth
        .put_role("viewer", &["read".into()])
        .await
        .expect("role");
    for (req, field) in [
        (
            NewUser {
                username: "".into(),
                ..Default::default()
            },
            "username",
        ),
        (
            NewUser {
                username: "has space".into(),
                ..Default::default()
            },
            "username",
        ),
        (
            NewUser {
                username: "ok".into(),
                email: Some("nope".into()),
                roles: vec![],
                ..NewUser::default()
            },
            "email",
        ),
        (
            NewUser {
                username: "ok".into(),
                email: None,
                roles: vec!["ghost".into()],
                ..NewUser::default()
            },
            "role",
        ),
    ] {
        match e.auth.create_user(req).await {
            Err(ServiceError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(e.auth.list_users().await.expect("list").is_empty());
    e.auth
        .create_user(NewUser {
            username: "bob".into(),
            ..Default::default()
        })
        .await
        .expect("user");
    assert!(matches!(
        e.auth
            .create_user(NewUser {
                username: "bob".into(),
                ..Default::default()
            })
            .await,
        Err(ServiceError::Conflict(_))
    ));
    assert!(matches!(
        e.auth
            .create_pat("ghost", "x", &[], PatLifetime::Default)
            .await,
        Err(ServiceError::NotFound(_))
    ));
    assert!(matches!(
        e.auth
            .create_pat("bob", "", &[], PatLifetime::Default)
            .await,
        Err(ServiceError::Invalid { field: "name", .. })
    ));
    assert!(matches!(
        e.auth.revoke_pat("nope").await,
        Err(ServiceError::NotFound(_))
    ));
    assert!(e.auth.list_pats("bob").await.expect("list").is_empty());
}
