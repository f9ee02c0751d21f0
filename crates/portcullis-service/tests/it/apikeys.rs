use std::sync::Arc;
use std::time::Duration;

use portcullis_service::apikeys::{
    ApiKeyUpdate, NewApiKey, NewKeyspace, VerifyCode, VerifyRequest,
};
use portcullis_service::ServiceError;
use serde_json::json;

use crate::env;

fn ks(name: &str, prefix: &str) -> NewKeyspace {
    NewKeyspace {
        name: name.into(),
        prefix: prefix.into(),
        scopes: vec!["read".into(), "write".into()],
        default_scopes: vec!["read".into()],
        ..NewKeyspace::default()
    }
}

fn key(owner: &str) -> NewApiKey {
    NewApiKey {
        keyspace: "acme".into(),
        owner: owner.into(),
        ..NewApiKey::default()
    }
}

fn verify(key: &str) -> VerifyRequest {
    VerifyRequest {
        key: key.into(),
        ..VerifyRequest::default()
    }
}

#[tokio::test]
async fn a_key_is_shown_once_stored_hashed_and_verifies() {
    let e = env().await;
    e.auth
        .create_keyspace(ks("acme", "acme_live"))
        .await
        .expect("keyspace");
    let k = e
        .auth
        .create_api_key(NewApiKey {
            meta: Some(json!({"plan": "pro"})),
            ..key("user-1")
        })
        .await
        .expect("key");
    assert!(k.key.starts_with("acme_live_"), "{}", k.key);
    assert!(k.view.hint.starts_with("acme_live_…"));
    let row = e
        .auth
        .store()
        .get_api_key(&k.view.id)
        .await
        .expect("get")
        .expect("row");
    assert_ne!(row.digest, k.key);
    assert!(!format!("{row:?}").contains(&k.key));
    let v = e
        .auth
        .verify_api_key(&verify(&k.key))
        .await
        .expect("verify");
    assert!(v.valid);
    assert_eq!(v.code, VerifyCode::Valid);
    assert_eq!(v.owner.as_deref(), Some("user-1"));
    assert_eq!(
        v.scopes,
        Some(vec!["read".to_owned()]),
        "keyspace default scopes"
    );
    assert_eq!(v.meta, Some(json!({"plan": "pro"})));
    let listed = e
        .auth
        .list_api_keys(Some("acme"), Some("user-1"))
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert!(
        !serde_json::to_string(&listed)
            .expect("json")
            .contains(&k.key),
        "listing never shows the key"
    );
}

#[tokio::test]
async fn every_refusal_code() {
    let e = env().await;
    e.auth
        .create_keyspace(ks("acme", "acme_live"))
        .await
        .expect("keyspace");
    let code = |r: portcullis_service::apikeys::VerifyResponse| (r.valid, r.code);
    // NOT_FOUND: junk, bad checksum, well-formed but unknown.
    let k = e.auth.create_api_key(key("u")).await.expect("key").key;
    let mut flipped = k.clone().into_bytes();
    let i = flipped.len() - 10;
    flipped[i] = if flipped[i] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).expect("utf8");
    let unknown = portcullis_core::secret::OpaqueSecret::generate("acme_live");
    for junk in [
        "",
        "   ",
        "acme_live_",
        &"x".repeat(10_000),
        "' OR 1=1 --",
        &flipped,
        unknown.expose(),
        &k[..k.len() - 1],
    ] {
        assert_eq!(
            code(e.auth.verify_api_key(&verify(junk)).await.expect("verify")),
            (false, VerifyCode::NotFound),
            "{junk:.40}"
        );
    }
    // INSUFFICIENT_SCOPE
    let r = VerifyRequest {
        key: k.clone(),
        scopes: vec!["write".into()],
        ip: None,
    };
    assert_eq!(
        code(e.auth.verify_api_key(&r).await.expect("verify")),
        (false, VerifyCode::InsufficientScope)
    );
    // FORBIDDEN_IP
    let ipk = e
        .auth
        .create_api_key(NewApiKey {
            allow_ips: vec!["203.0.113.0/24".into()],
            ..key("u")
        })
        .await
        .expect("k")
        .key;
    assert_eq!(
        code(e.auth.verify_api_key(&verify(&ipk)).await.expect("v")),
        (false, VerifyCode::ForbiddenIp),
        "no ip given"
    );
    let from = |ip: &str| VerifyRequest {
        key: ipk.clone(),
        scopes: vec![],
        ip: Some(ip.parse().expect("ip")),
    };
    assert_eq!(
        code(
            e.auth
                .verify_api_key(&from("198.51.100.1"))
                .await
                .expect("v")
        ),
        (false, VerifyCode::ForbiddenIp)
    );
    assert_eq!(
        code(
            e.auth
                .verify_api_key(&from("203.0.113.9"))
                .await
                .expect("v")
        ),
        (true, VerifyCode::Valid)
    );
    // DISABLED, then enabled again — the cache follows at once.
    let d = e.auth.create_api_key(key("u")).await.expect("k");
    assert!(
        e.auth
            .verify_api_key(&verify(&d.key))
            .await
            .expect("v")
            .valid
    );
    e.auth
        .update_api_key(
            &d.view.id,
            ApiKeyUpdate {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(
        code(e.auth.verify_api_key(&verify(&d.key)).await.expect("v")),
        (false, VerifyCode::Disabled)
    );
    e.auth
        .update_api_key(
            &d.view.id,
            ApiKeyUpdate {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert!(
        e.auth
            .verify_api_key(&verify(&d.key))
            .await
            .expect("v")
            .valid
    );
    // REVOKED, at once, and revoking twice is fine.
    e.auth.revoke_api_key(&d.view.id).await.expect("revoke");
    e.auth
        .revoke_api_key(&d.view.id)
        .await
        .expect("revoke again");
    assert_eq!(
        code(e.auth.verify_api_key(&verify(&d.key)).await.expect("v")),
        (false, VerifyCode::Revoked)
    );
    assert!(matches!(
        e.auth
            .update_api_key(
                &d.view.id,
                ApiKeyUpdate {
                    enabled: Some(true),
                    ..Default::default()
                }
            )
            .await,
        Err(ServiceError::Conflict(_))
    ));
    // EXPIRED
    let x = e
        .auth
        .create_api_key(NewApiKey {
            expires_in: Some(Duration::from_secs(60)),
            ..key("u")
        })
        .await
        .expect("k")
        .key;
    assert!(e.auth.verify_api_key(&verify(&x)).await.expect("v").valid);
    e.clock.advance(60);
    assert_eq!(
        code(e.auth.verify_api_key(&verify(&x)).await.expect("v")),
        (false, VerifyCode::Expired)
    );
    // RATE_LIMITED
    let rl = e
        .auth
        .create_api_key(NewApiKey {
            rate_limit: Some("2/minute".into()),
            ..key("u")
        })
        .await
        .expect("k")
        .key;
    let first = e.auth.verify_api_key(&verify(&rl)).await.expect("v");
    assert_eq!(
        first.ratelimit.as_ref().map(|r| (r.limit, r.remaining)),
        Some((2, 1))
    );
    assert!(e.auth.verify_api_key(&verify(&rl)).await.expect("v").valid);
    assert_eq!(
        code(e.auth.verify_api_key(&verify(&rl)).await.expect("v")),
        (false, VerifyCode::RateLimited)
    );
    // USAGE_EXCEEDED
    let q = e
        .auth
        .create_api_key(NewApiKey {
            uses: Some(2),
            ..key("u")
        })
        .await
        .expect("k")
        .key;
    assert_eq!(
        e.auth
            .verify_api_key(&verify(&q))
            .await
            .expect("v")
            .remaining,
        Some(1)
    );
    assert_eq!(
        e.auth
            .verify_api_key(&verify(&q))
            .await
            .expect("v")
            .remaining,
        Some(0)
    );
    assert_eq!(
        code(e.auth.verify_api_key(&verify(&q)).await.expect("v")),
        (false, VerifyCode::UsageExceeded)
    );
}

#[tokio::test]
async fn the_quota_is_exact_under_1000_parallel_verifications() {
    let e = env().await;
    e.auth
        .create_keyspace(ks("acme", "acme_live"))
        .await
        .expect("keyspace");
    let k = e
        .auth
        .create_api_key(NewApiKey {
            uses: Some(100),
            ..key("u")
        })
        .await
        .expect("k")
        .key;
    let auth = Arc::new(e.auth);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..1_000 {
        let (a, k) = (auth.clone(), k.clone());
        set.spawn(async move { a.verify_api_key(&verify(&k)).await.expect("verify").valid });
    }
    let mut valid = 0;
    while let Some(v) = set.join_next().await {
        valid += usize::from(v.expect("join"));
    }
    assert_eq!(valid, 100);
}

#[tokio::test]
async fn bad_keyspace_and_key_input_is_refused_and_writes_nothing() {
    let e = env().await;
    e.auth
        .create_keyspace(ks("acme", "acme_live"))
        .await
        .expect("keyspace");
    let ks_cases: Vec<(NewKeyspace, &str)> = vec![
        (ks("", "x"), "name"),
        (ks("bad name", "x"), "name"),
        (ks("ok", "Bad"), "prefix"),
        (ks("ok", "pcs"), "prefix"),
        (
            NewKeyspace {
                default_scopes: vec!["admin".into()],
                ..ks("ok", "okp")
            },
            "default_scope",
        ),
        (
            NewKeyspace {
                rate_limit: Some("0/minute".into()),
                ..ks("ok", "okp")
            },
            "rate_limit",
        ),
        (
            NewKeyspace {
                default_ttl: Some(Duration::from_secs(100)),
                max_ttl: Some(Duration::from_secs(10)),
                ..ks("ok", "okp")
            },
            "default_ttl",
        ),
    ];
    for (req, field) in ks_cases {
        match e.auth.create_keyspace(req).await {
            Err(ServiceError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(matches!(
        e.auth.create_keyspace(ks("acme", "other")).await,
        Err(ServiceError::Conflict(_))
    ));
    assert!(matches!(
        e.auth.create_keyspace(ks("other", "acme_live")).await,
        Err(ServiceError::Conflict(_))
    ));
    let key_cases: Vec<(NewApiKey, &str)> = vec![
        (key(""), "owner"),
        (key(&"o".repeat(300)), "owner"),
        (
            NewApiKey {
                scopes: Some(vec!["admin".into()]),
                ..key("u")
            },
            "scope",
        ),
        (
            NewApiKey {
                meta: Some(json!([1, 2])),
                ..key("u")
            },
            "meta",
        ),
        (
            NewApiKey {
                meta: Some(json!({"big": "x".repeat(5000)})),
                ..key("u")
            },
            "meta",
        ),
        (
            NewApiKey {
                uses: Some(0),
                ..key("u")
            },
            "uses",
        ),
        (
            NewApiKey {
                uses: Some(-5),
                ..key("u")
            },
            "uses",
        ),
        (
            NewApiKey {
                uses: Some(i64::MAX),
                ..key("u")
            },
            "uses",
        ),
        (
            NewApiKey {
                rate_limit: Some("-1/second".into()),
                ..key("u")
            },
            "rate_limit",
        ),
        (
            NewApiKey {
                rate_limit: Some("99999999999/second".into()),
                ..key("u")
            },
            "rate_limit",
        ),
        (
            NewApiKey {
                allow_ips: vec!["10.0.0.0/33".into()],
                ..key("u")
            },
            "allow_ip",
        ),
        (
            NewApiKey {
                expires_at: Some(1),
                ..key("u")
            },
            "expires_at",
        ),
    ];
    for (req, field) in key_cases {
        match e.auth.create_api_key(req).await {
            Err(ServiceError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(matches!(
        e.auth
            .create_api_key(NewApiKey {
                keyspace: "nope".into(),
                ..key("u")
            })
            .await,
        Err(ServiceError::NotFound(_))
    ));
    assert!(matches!(
        e.auth.get_api_key("nope").await,
        Err(ServiceError::NotFound(_))
    ));
    assert!(
        e.auth
            .list_api_keys(None, None)
            .await
            .expect("list")
            .is_empty(),
        "nothing written"
    );
    assert_eq!(e.auth.list_keyspaces().await.expect("list").len(), 1);
}

#[tokio::test]
async fn a_keyspace_with_keys_cannot_be_deleted_and_max_ttl_binds() {
    let e = env().await;
    let ksv = e
        .auth
        .create_keyspace(NewKeyspace {
            max_ttl: Some(Duration::from_secs(3600)),
            ..ks("acme", "acme_live")
        })
        .await
        .expect("keyspace");
    assert!(
        e.auth.create_api_key(key("u")).await.is_err(),
        "no expiry given but the keyspace requires one"
    );
    let k = e
        .auth
        .create_api_key(NewApiKey {
            expires_in: Some(Duration::from_secs(60)),
            ..key("u")
        })
        .await
        .expect("k");
    assert!(matches!(
        e.auth.delete_keyspace("acme").await,
        Err(ServiceError::Conflict(_))
    ));
    assert_eq!(
        e.auth.get_keyspace(&ksv.id).await.expect("get").name,
        "acme"
    );
    let _ = k;
}

#[tokio::test]
async fn admin_tokens_authenticate_until_revoked() {
    let e = env().await;
    let t = e
        .auth
        .create_admin_token("ci", &["keys:verify".into()])
        .await
        .expect("token");
    assert!(t.token.starts_with("pcadm_"));
    let s = portcullis_core::secret::SecretString::new(t.token.clone());
    let p = e
        .auth
        .authenticate_admin(&s)
        .await
        .expect("auth")
        .expect("principal");
    assert!(p.allows("keys:verify") && !p.allows("keys:write"));
    assert!(e
        .auth
        .create_admin_token("x", &["root".into()])
        .await
        .is_err());
    e.auth.revoke_admin_token(&t.view.id).await.expect("revoke");
    assert!(
        e.auth.authenticate_admin(&s).await.expect("auth").is_none(),
        "revoked at once"
    );
    assert!(e
        .auth
        .authenticate_admin(&portcullis_core::secret::SecretString::new("pcadm_x"))
        .await
        .expect("a")
        .is_none());
}

#[tokio::test]
async fn a_rolled_key_keeps_the_old_secret_for_the_grace_period_only() {
    let e = env().await;
    e.auth
        .create_keyspace(ks("acme", "acme_live"))
        .await
        .expect("keyspace");
    let k = e.auth.create_api_key(key("u")).await.expect("key");
    assert!(
        e.auth
            .verify_api_key(&verify(&k.key))
            .await
            .expect("v")
            .valid,
        "old secret cached"
    );
    let rolled = e
        .auth
        .roll_api_key(&k.view.id, Duration::from_secs(3600))
        .await
        .expect("roll");
    assert_eq!(rolled.view.id, k.view.id, "same key, new secret");
    assert_ne!(rolled.key, k.key);
    assert!(
        e.auth
            .verify_api_key(&verify(&rolled.key))
            .await
            .expect("v")
            .valid
    );
    assert!(
        e.auth
            .verify_api_key(&verify(&k.key))
            .await
            .expect("v")
            .valid,
        "old secret inside the grace period"
    );
    e.clock.advance(3600);
    assert_eq!(
        e.auth
            .verify_api_key(&verify(&k.key))
            .await
            .expect("v")
            .code,
        VerifyCode::Expired
    );
    assert!(
        e.auth
            .verify_api_key(&verify(&rolled.key))
            .await
            .expect("v")
            .valid
    );
    // No grace: the old secret dies at once.
    let again = e
        .auth
        .roll_api_key(&k.view.id, Duration::ZERO)
        .await
        .expect("roll");
    assert_eq!(
        e.auth
            .verify_api_key(&verify(&rolled.key))
            .await
            .expect("v")
            .code,
        VerifyCode::Expired
    );
    assert!(
        e.auth
            .verify_api_key(&verify(&again.key))
            .await
            .expect("v")
            .valid
    );
    assert!(matches!(
        e.auth
            .roll_api_key(&k.view.id, Duration::from_secs(31 * 86_400))
            .await,
        Err(ServiceError::Invalid { .. })
    ));
    e.auth.revoke_api_key(&k.view.id).await.expect("revoke");
    assert!(
        matches!(
            e.auth.roll_api_key(&k.view.id, Duration::ZERO).await,
            Err(ServiceError::Conflict(_))
        ),
        "roll of a revoked key"
    );
}

#[tokio::test]
async fn leaked_keys_are_revoked_and_reported_and_junk_is_dropped_unlooked() {
    let e = env().await;
    e.auth
        .create_keyspace(ks("acme", "acme_live"))
        .await
        .expect("keyspace");
    let a = e.auth.create_api_key(key("alice")).await.expect("key");
    let b = e.auth.create_api_key(key("bob")).await.expect("key");
    e.auth.revoke_api_key(&b.view.id).await.expect("revoke");
    let untouched = e.auth.create_api_key(key("carol")).await.expect("key");
    let unknown = portcullis_core::secret::OpaqueSecret::generate("acme_live");
    let candidates = vec![
        a.key.clone(),
        a.key.clone(),
        b.key.clone(),
        unknown.expose().to_owned(),
        "acme_live_short".into(),
        format!(
            "{}{}",
            &a.key[..a.key.len() - 1],
            if a.key.ends_with('x') { 'y' } else { 'x' }
        ),
    ];
    let r = e.auth.report_leaked(&candidates).await.expect("report");
    assert_eq!(r.checked, 6);
    assert_eq!(r.dropped, 2, "bad checksum and malformed dropped");
    assert_eq!(
        r.revoked
            .iter()
            .map(|k| k.key_id.as_str())
            .collect::<Vec<_>>(),
        vec![a.view.id.as_str()]
    );
    assert_eq!(r.revoked[0].owner, "alice");
    assert_eq!(r.already_revoked.len(), 1);
    assert_eq!(
        e.auth
            .verify_api_key(&verify(&a.key))
            .await
            .expect("v")
            .code,
        VerifyCode::Revoked
    );
    assert!(
        e.auth
            .verify_api_key(&verify(&untouched.key))
            .await
            .expect("v")
            .valid
    );
    let too_many = vec!["x".to_owned(); 1001];
    assert!(matches!(
        e.auth.report_leaked(&too_many).await,
        Err(ServiceError::Invalid { .. })
    ));
}

#[tokio::test]
async fn usage_is_counted_by_outcome_and_bucket() {
    use portcullis_service::apikeys::Granularity;
    let e = env().await;
    e.auth
        .create_keyspace(ks("acme", "acme_live"))
        .await
        .expect("keyspace");
    let k = e
        .auth
        .create_api_key(NewApiKey {
            uses: Some(2),
            ..key("u")
        })
        .await
        .expect("key");
    for _ in 0..3 {
        e.auth.verify_api_key(&verify(&k.key)).await.expect("v");
    }
    e.clock.advance(3600);
    e.auth.verify_api_key(&verify(&k.key)).await.expect("v");
    e.auth.flush_key_usage().await.expect("flush");
    let hours = e
        .auth
        .api_key_usage(&k.view.id, None, None, Granularity::Hour)
        .await
        .expect("usage");
    assert_eq!(hours.len(), 2, "{hours:?}");
    assert_eq!(hours[0].counts.get("VALID"), Some(&2));
    assert_eq!(hours[0].counts.get("USAGE_EXCEEDED"), Some(&1));
    assert_eq!(hours[1].counts.get("USAGE_EXCEEDED"), Some(&1));
    let row = e.auth.get_api_key(&k.view.id).await.expect("get");
    assert!(row.last_used_at.is_some(), "last use flushed");
    assert!(matches!(
        Granularity::parse("week"),
        Err(ServiceError::Invalid { .. })
    ));
    let now = 1_800_000_000 + 3600;
    assert!(e
        .auth
        .api_key_usage(&k.view.id, Some(now), Some(now - 1), Granularity::Hour)
        .await
        .is_err());
    assert!(matches!(
        e.auth
            .api_key_usage("nope", None, None, Granularity::Hour)
            .await,
        Err(ServiceError::NotFound(_))
    ));
}

#[tokio::test]
async fn api_keys_introspect_as_one_more_kind_of_bearer() {
    let e = env().await;
    e.auth
        .create_keyspace(ks("acme", "acme_live"))
        .await
        .expect("keyspace");
    let k = e.auth.create_api_key(key("cust-9")).await.expect("key");
    let c = e
        .auth
        .create_client(crate::cc_client("rs"))
        .await
        .expect("client");
    let caller = e
        .auth
        .get_client(&c.client.client_id)
        .await
        .expect("client");
    let i = e
        .auth
        .introspect(&caller, &k.key)
        .await
        .expect("introspect");
    assert!(i.active);
    assert_eq!(i.token_type.as_deref(), Some("api_key"));
    assert_eq!(i.sub.as_deref(), Some("cust-9"));
    assert_eq!(i.scope.as_deref(), Some("read"));
    assert_eq!(i.jti.as_deref(), Some(k.view.id.as_str()));
    e.auth.revoke_api_key(&k.view.id).await.expect("revoke");
    assert!(
        !e.auth
            .introspect(&caller, &k.key)
            .await
            .expect("introspect")
            .active
    );
}
