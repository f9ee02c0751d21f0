use portcullis_store::{ClientRow, OpaqueTokenRow, RevokedJti, SigningKeyRow, StoreError};

use crate::store_test;

fn client(id: &str) -> ClientRow {
    ClientRow {
        id: id.into(),
        name: "svc".into(),
        secret_digest: Some("ab".repeat(32)),
        secret_hint: Some("pcs_…abcd".into()),
        grant_types: "client_credentials".into(),
        redirect_uris: "[]".into(),
        scopes: "read write".into(),
        default_scopes: "read".into(),
        audiences: r#"["https://api.test"]"#.into(),
        default_audience: None,
        token_format: "jwt".into(),
        access_token_alg: "ES256".into(),
        access_token_ttl: 900,
        created_at: 1,
        updated_at: 1,
        rate_limit: None,
        post_logout_redirect_uris: "[]".into(),
        refresh_token_ttl: 1_209_600,
        refresh_token_max_ttl: 7_776_000,
        require_mfa: false,
        first_party: false,
        require_dpop: false,
    }
}

fn token(id: &str, client_id: &str, expires_at: i64) -> OpaqueTokenRow {
    OpaqueTokenRow {
        id: id.into(),
        digest: format!("digest-{id}"),
        kind: "access_token".into(),
        client_id: client_id.into(),
        subject: client_id.into(),
        scope: "read".into(),
        audience: "[]".into(),
        issued_at: 0,
        expires_at,
        revoked_at: None,
        jkt: None,
    }
}

fn key(kid: &str, alg: &str, state: &str, created_at: i64) -> SigningKeyRow {
    SigningKeyRow {
        kid: kid.into(),
        alg: alg.into(),
        public_jwk: "{}".into(),
        private_key_sealed: "sealed".into(),
        state: state.into(),
        created_at,
        activate_at: created_at,
        retired_at: None,
    }
}

store_test!(clients_round_trip_and_ids_are_unique, |store| {
    store.insert_client(&client("c1")).await.expect("insert");
    assert_eq!(
        store.get_client("c1").await.expect("get"),
        Some(client("c1"))
    );
    assert_eq!(store.get_client("nope").await.expect("get"), None);
    let dup = store.insert_client(&client("c1")).await;
    assert!(matches!(dup, Err(StoreError::Conflict { .. })), "{dup:?}");
    assert_eq!(store.list_clients().await.expect("list").len(), 1);
});

store_test!(a_bad_token_format_is_refused_by_the_schema, |store| {
    let mut c = client("c2");
    c.token_format = "paseto".into();
    assert!(matches!(
        store.insert_client(&c).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(
        store.list_clients().await.expect("list").is_empty(),
        "nothing written"
    );
});

store_test!(rotating_a_secret_replaces_the_digest, |store| {
    store.insert_client(&client("c1")).await.expect("insert");
    assert!(store
        .set_client_secret("c1", "new", "pcs_…new1", 5)
        .await
        .expect("set"));
    assert!(!store
        .set_client_secret("ghost", "x", "y", 5)
        .await
        .expect("set"));
    let c = store.get_client("c1").await.expect("get").expect("exists");
    assert_eq!((c.secret_digest.as_deref(), c.updated_at), (Some("new"), 5));
});

store_test!(deleting_a_client_takes_its_tokens_with_it, |store| {
    store.insert_client(&client("c1")).await.expect("insert");
    store
        .insert_opaque_token(&token("t1", "c1", 100))
        .await
        .expect("token");
    store
        .insert_opaque_token(&token("t2", "other", 100))
        .await
        .expect("token");
    assert!(store.delete_client("c1").await.expect("delete"));
    assert!(!store.delete_client("c1").await.expect("delete again"));
    assert_eq!(
        store.find_opaque_token("digest-t1").await.expect("find"),
        None
    );
    assert!(store
        .find_opaque_token("digest-t2")
        .await
        .expect("find")
        .is_some());
});

store_test!(opaque_tokens_revoke_once, |store| {
    store
        .insert_opaque_token(&token("t1", "c1", 100))
        .await
        .expect("token");
    assert!(store.revoke_opaque_token("t1", 7).await.expect("revoke"));
    assert!(!store
        .revoke_opaque_token("t1", 8)
        .await
        .expect("revoke again"));
    let t = store
        .find_opaque_token("digest-t1")
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(t.revoked_at, Some(7), "first revocation time is kept");
    // One feed event, written with the revocation, for the other nodes' caches.
    let events = store.security_events_after(0, 10).await.expect("events");
    let seen: Vec<(&str, &str, i64)> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.subject.as_str(), e.expires_at))
        .collect();
    assert_eq!(seen, [("token_revoked", "t1", 100)]);
    assert_eq!(events[0].at_ms, 7_000);
    assert!(!store
        .revoke_opaque_token("ghost", 9)
        .await
        .expect("unknown token"));
    assert_eq!(store.security_event_head().await.expect("head"), 1);
});

store_test!(the_jti_deny_list_is_idempotent_and_expires, |store| {
    let e = RevokedJti {
        jti: "j1".into(),
        client_id: "c1".into(),
        expires_at: 100,
        revoked_at: 1,
    };
    store.insert_revoked_jti(&e).await.expect("insert");
    store
        .insert_revoked_jti(&e)
        .await
        .expect("insert twice is fine");
    assert_eq!(store.list_revoked_jtis(50).await.expect("list"), vec![e]);
    assert!(store.list_revoked_jtis(100).await.expect("list").is_empty());
    // One feed event, written with the deny-list entry; the second insert adds none.
    let events = store.security_events_after(0, 10).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind.as_str(), events[0].subject.as_str()),
        ("token_revoked", "j1")
    );
    assert_eq!(events[0].expires_at, 100);
    assert_eq!(store.security_event_head().await.expect("head"), 1);
    store
        .insert_opaque_token(&token("t1", "c1", 100))
        .await
        .expect("token");
    // The token, the deny-list entry and its event.
    assert_eq!(store.purge_expired(101).await.expect("purge"), 3);
    assert!(store
        .security_events_after(0, 10)
        .await
        .expect("events")
        .is_empty());
    // Sequence numbers keep growing after a purge: a resumed reader never sees one twice.
    let seq = store
        .append_security_event(&portcullis_store::NewSecurityEvent {
            kind: "key_revoked",
            subject: "k1".into(),
            details: "{}".into(),
            at_ms: 0,
            expires_at: 500,
        })
        .await
        .expect("append");
    assert_eq!(seq, 2);
});

store_test!(
    activating_a_key_retires_the_previous_one_of_its_algorithm,
    |store| {
        store
            .insert_signing_key(&key("a", "ES256", "active", 1))
            .await
            .expect("a");
        store
            .insert_signing_key(&key("b", "ES256", "next", 2))
            .await
            .expect("b");
        store
            .insert_signing_key(&key("e", "EdDSA", "active", 3))
            .await
            .expect("e");
        store.activate_signing_key("b", 10).await.expect("activate");
        let keys = store.list_signing_keys().await.expect("list");
        let state = |kid: &str| {
            keys.iter()
                .find(|k| k.kid == kid)
                .map(|k| (k.state.clone(), k.retired_at))
        };
        assert_eq!(state("a"), Some(("retired".into(), Some(10))));
        assert_eq!(state("b"), Some(("active".into(), None)));
        assert_eq!(
            state("e"),
            Some(("active".into(), None)),
            "other algorithms untouched"
        );
        assert!(matches!(
            store.activate_signing_key("ghost", 11).await,
            Err(StoreError::NotFound)
        ));
        store.delete_signing_key("a").await.expect("delete");
        assert_eq!(store.list_signing_keys().await.expect("list").len(), 2);
    }
);

store_test!(every_client_change_bumps_the_change_counter, |store| {
    let s0 = store.change_seq().await.expect("seq");
    store.insert_client(&client("c1")).await.expect("insert");
    let s1 = store.change_seq().await.expect("seq");
    store
        .set_client_secret("c1", "d", "h", 2)
        .await
        .expect("secret");
    let s2 = store.change_seq().await.expect("seq");
    store.delete_client("c1").await.expect("delete");
    let s3 = store.change_seq().await.expect("seq");
    assert!(s0 < s1 && s1 < s2 && s2 < s3, "{s0} {s1} {s2} {s3}");
    let _ = store.insert_client(&client("c2")).await;
    let failed = store.insert_client(&client("c2")).await;
    assert!(failed.is_err());
    assert_eq!(
        store.change_seq().await.expect("seq"),
        s3 + 1,
        "a failed write bumps nothing"
    );
});

fn keyspace(id: &str, prefix: &str) -> portcullis_store::KeyspaceRow {
    portcullis_store::KeyspaceRow {
        id: id.into(),
        name: format!("ks-{id}"),
        prefix: prefix.into(),
        scopes: "read write".into(),
        default_scopes: "read".into(),
        rate_limit: None,
        default_ttl: None,
        max_ttl: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn api_key(id: &str, ks: &str, remaining: Option<i64>) -> portcullis_store::ApiKeyRow {
    portcullis_store::ApiKeyRow {
        id: id.into(),
        keyspace_id: ks.into(),
        digest: format!("digest-{id}"),
        hint: "acme_…abcd".into(),
        owner: "user-1".into(),
        name: "k".into(),
        scopes: "read".into(),
        meta: "{}".into(),
        remaining,
        rate_limit: None,
        allow_ips: "[]".into(),
        enabled: true,
        created_at: 1,
        updated_at: 1,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
        previous_digest: None,
        previous_expires_at: None,
    }
}

store_test!(keyspace_names_and_prefixes_are_unique, |store| {
    store
        .insert_keyspace(&keyspace("k1", "acme_live"))
        .await
        .expect("insert");
    let mut dup = keyspace("k2", "acme_live");
    dup.name = "other".into();
    assert!(matches!(
        store.insert_keyspace(&dup).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store
            .get_keyspace("ks-k1")
            .await
            .expect("by name")
            .map(|k| k.id),
        Some("k1".into())
    );
    assert_eq!(
        store
            .get_keyspace("k1")
            .await
            .expect("by id")
            .map(|k| k.prefix),
        Some("acme_live".into())
    );
});

store_test!(api_keys_filter_by_keyspace_and_owner, |store| {
    store
        .insert_keyspace(&keyspace("k1", "a"))
        .await
        .expect("ks");
    store
        .insert_keyspace(&keyspace("k2", "b"))
        .await
        .expect("ks");
    store
        .insert_api_key(&api_key("a1", "k1", None))
        .await
        .expect("key");
    let mut other = api_key("a2", "k2", None);
    other.owner = "user-2".into();
    store.insert_api_key(&other).await.expect("key");
    assert_eq!(store.list_api_keys(None, None).await.expect("all").len(), 2);
    assert_eq!(
        store
            .list_api_keys(Some("k1"), None)
            .await
            .expect("k1")
            .len(),
        1
    );
    assert_eq!(
        store
            .list_api_keys(None, Some("user-2"))
            .await
            .expect("owner")[0]
            .id,
        "a2"
    );
    assert!(store
        .list_api_keys(Some("k1"), Some("user-2"))
        .await
        .expect("both")
        .is_empty());
    assert_eq!(store.count_keys("k1").await.expect("count"), 1);
    assert!(store.revoke_api_key("a1", 5).await.expect("revoke"));
    assert!(!store.revoke_api_key("a1", 6).await.expect("idempotent"));
    store
        .touch_api_keys(&[("a2".into(), 9), ("a2".into(), 7)])
        .await
        .expect("touch");
    assert_eq!(
        store
            .get_api_key("a2")
            .await
            .expect("get")
            .and_then(|k| k.last_used_at),
        Some(9)
    );
});

#[tokio::test]
async fn a_quota_is_exact_under_concurrency_on_sqlite() {
    let (owned, _dir) = crate::sqlite().await;
    a_quota_is_exact_under_concurrency(std::sync::Arc::new(owned)).await;
}

#[tokio::test]
async fn a_quota_is_exact_under_concurrency_on_postgres() {
    let Some(pg) = crate::postgres("a_quota_is_exact_under_concurrency").await else {
        return;
    };
    a_quota_is_exact_under_concurrency(std::sync::Arc::new(pg.store.clone())).await;
    pg.drop().await;
}

/// 200 concurrent takes of a 50-use key: each its own task, so on PostgreSQL they
/// run on the pool's eight connections at once.
async fn a_quota_is_exact_under_concurrency(shared: std::sync::Arc<dyn portcullis_store::Store>) {
    let store = shared.as_ref();
    store
        .insert_keyspace(&keyspace("k1", "a"))
        .await
        .expect("ks");
    store
        .insert_api_key(&api_key("q", "k1", Some(50)))
        .await
        .expect("key");
    store
        .insert_api_key(&api_key("u", "k1", None))
        .await
        .expect("key");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let s = shared.clone();
        set.spawn(async move { s.take_api_key_use("q").await.expect("take") });
    }
    let mut taken = 0;
    while let Some(r) = set.join_next().await {
        if matches!(r.expect("join"), portcullis_store::UseOutcome::Taken(_)) {
            taken += 1;
        }
    }
    assert_eq!(taken, 50, "exactly the quota, never more");
    assert_eq!(
        store
            .get_api_key("q")
            .await
            .expect("get")
            .and_then(|k| k.remaining),
        Some(0)
    );
    assert_eq!(
        store.take_api_key_use("u").await.expect("unlimited"),
        portcullis_store::UseOutcome::Taken(None)
    );
    assert!(matches!(
        store.take_api_key_use("ghost").await,
        Err(StoreError::NotFound)
    ));
}

store_test!(
    a_rolled_key_is_found_by_both_digests_and_usage_sums_by_bucket,
    |store| {
        store
            .insert_keyspace(&keyspace("k1", "a"))
            .await
            .expect("ks");
        store
            .insert_api_key(&api_key("r", "k1", None))
            .await
            .expect("key");
        assert!(store
            .roll_api_key("r", "digest-new", "a_…new1", 100, 5)
            .await
            .expect("roll"));
        assert_eq!(
            store
                .find_api_key("digest-new")
                .await
                .expect("new")
                .map(|k| k.id),
            Some("r".into())
        );
        let old = store
            .find_api_key("digest-r")
            .await
            .expect("old")
            .expect("still found");
        assert_eq!(
            (old.previous_digest.as_deref(), old.previous_expires_at),
            (Some("digest-r"), Some(100))
        );
        store.revoke_api_key("r", 6).await.expect("revoke");
        assert!(
            !store
                .roll_api_key("r", "digest-newer", "h", 100, 7)
                .await
                .expect("roll"),
            "a revoked key does not roll"
        );
        let rows = vec![
            ("r".to_owned(), 60, "VALID".to_owned(), 3),
            ("r".to_owned(), 120, "VALID".to_owned(), 2),
            ("r".to_owned(), 120, "RATE_LIMITED".to_owned(), 1),
            ("other".to_owned(), 60, "VALID".to_owned(), 9),
        ];
        store.add_key_usage(&rows).await.expect("add");
        store
            .add_key_usage(&rows[..1])
            .await
            .expect("add again sums");
        let per_minute = store.key_usage("r", 0, 3_600, 60).await.expect("usage");
        assert_eq!(per_minute.len(), 3);
        assert_eq!((per_minute[0].bucket_start, per_minute[0].count), (60, 6));
        let per_hour = store.key_usage("r", 0, 3_600, 3_600).await.expect("usage");
        let valid: i64 = per_hour
            .iter()
            .filter(|r| r.outcome == "VALID")
            .map(|r| r.count)
            .sum();
        assert_eq!(valid, 8);
        assert_eq!(store.purge_key_usage(100).await.expect("purge"), 2);
    }
);

// One group commit of 127 records goes through every INSERT shape once (64, 32, 16,
// 8, 4, 2, 1 rows): every record comes back with its own values, in order, each
// linked to the one before; the next commit continues the chain.
store_test!(
    a_large_group_commit_keeps_every_record_in_order_and_linked,
    |store| {
        let link = |r: &portcullis_store::AuditRow| {
            format!(
                "{:x}:{}",
                r.seq,
                r.prev_hash.get(..6).unwrap_or(&r.prev_hash)
            )
        };
        let input: Vec<_> = (1..=127)
            .map(|i| crate::audit_row(i, "token.issued", Some(&format!("tok-{i}"))))
            .collect();
        let seqs = store
            .append_audit(input.clone(), &[], &link)
            .await
            .expect("append 127");
        assert_eq!(seqs, (1..=127).collect::<Vec<i64>>());
        let one = crate::audit_row(128, "token.revoked", Some("tok-128"));
        let seqs = store
            .append_audit(vec![one.clone()], &[], &link)
            .await
            .expect("append 1");
        assert_eq!(seqs, [128]);

        let got = store
            .list_audit(&portcullis_store::AuditFilter {
                limit: 1_000,
                ..portcullis_store::AuditFilter::default()
            })
            .await
            .expect("list");
        assert_eq!(got.len(), 128);
        // The first record links to the anchor's genesis hash.
        let mut prev = store.audit_anchor().await.expect("anchor").hash;
        for (want, got) in input.iter().chain([&one]).zip(&got) {
            assert_eq!(got.seq, want.seq);
            assert_eq!(
                (
                    &got.kind,
                    &got.subject,
                    &got.credential_id,
                    &got.details,
                    got.at_ms
                ),
                (
                    &want.kind,
                    &want.subject,
                    &want.credential_id,
                    &want.details,
                    want.at_ms
                ),
                "record {}",
                want.seq
            );
            assert_eq!(got.prev_hash, prev, "record {}", want.seq);
            assert_eq!(got.hash, link(got), "record {}", want.seq);
            prev = got.hash.clone();
        }
    }
);

pub(crate) fn refresh_row(n: usize, family: &str) -> portcullis_store::RefreshRow {
    portcullis_store::RefreshRow {
        id: format!("rt-{n:03}"),
        digest: format!("rt-digest-{n:03}"),
        family_id: family.to_owned(),
        client_id: "app".to_owned(),
        user_id: "u1".to_owned(),
        session_id: n.is_multiple_of(2).then(|| format!("sess-{n}")),
        scope: format!("read s{n}"),
        auth_time: 1_000 + n as i64,
        amr: "pwd".to_owned(),
        issued_at: 2_000 + n as i64,
        expires_at: 3_000 + n as i64,
        family_expires_at: 4_000 + n as i64,
        used_at: None,
        revoked_at: None,
        jkt: n.is_multiple_of(3).then(|| format!("jkt-{n}")),
    }
}

pub(crate) fn grant_token(n: usize, family: &str) -> portcullis_store::GrantTokenRow {
    portcullis_store::GrantTokenRow {
        jti: format!("jti-{n:03}"),
        family_id: family.to_owned(),
        user_id: "u1".to_owned(),
        session_id: (n % 2 == 1).then(|| format!("sess-{n}")),
        client_id: "app".to_owned(),
        format: if n.is_multiple_of(2) { "jwt" } else { "opaque" }.to_owned(),
        expires_at: 5_000 + n as i64,
    }
}

/// A plain user `id` (no password, no MFA).
pub(crate) fn plain_user(id: &str, enabled: bool) -> portcullis_store::UserRow {
    portcullis_store::UserRow {
        id: id.into(),
        username: format!("name-{id}"),
        email: None,
        roles: String::new(),
        enabled,
        created_at: 1,
        updated_at: 1,
        password_hash: None,
        mfa_required: false,
        totp_secret_sealed: None,
        totp_confirmed_at: None,
        totp_last_step: None,
    }
}

/// Grant `n` rotating refresh token `old` of family `fam` at `now`.
fn rotation(n: usize, old: usize, fam: &str, now: i64) -> portcullis_store::GrantWrite {
    portcullis_store::GrantWrite {
        token: grant_token(n, fam),
        refresh: portcullis_store::RefreshWrite::Rotate {
            old_id: format!("rt-{old:03}"),
            now,
            new: refresh_row(n, fam),
        },
    }
}

store_test!(
    one_batch_of_grants_rotates_each_token_once_and_records_only_what_it_issued,
    |store| {
        use portcullis_store::{GrantScope, GrantWrite, RefreshWrite};
        store
            .insert_user(&plain_user("u1", true))
            .await
            .expect("user");
        // 80 live tokens (one family each), one already used, one revoked.
        let first: Vec<GrantWrite> = (0..82)
            .map(|n| GrantWrite {
                token: grant_token(n, &format!("fam-{n}")),
                refresh: RefreshWrite::Insert(refresh_row(n, &format!("fam-{n}"))),
            })
            .collect();
        assert_eq!(
            store.record_grants(&first).await.expect("first"),
            [true; 82]
        );
        let used = store
            .record_grants(&[rotation(200, 80, "fam-80", 7_000)])
            .await
            .expect("rotate 80");
        assert_eq!(used, [true]);
        assert_eq!(
            store
                .revoke_refresh(GrantScope::Family("fam-81"), 7_001)
                .await
                .expect("revoke"),
            1
        );

        // One batch over every chunk size (64 + 16 + …): 80 rotations of live tokens,
        // token 5 presented twice more, the used and the revoked one, a new family and
        // a grant without a refresh token.
        let mut batch: Vec<GrantWrite> = (0..80)
            .map(|n| rotation(300 + n, n, &format!("fam-{n}"), 8_000 + n as i64))
            .collect();
        for (n, old) in [(400, 5), (401, 5), (402, 80), (403, 81)] {
            batch.push(rotation(n, old, &format!("fam-{old}"), 9_000));
        }
        batch.push(GrantWrite {
            token: grant_token(404, "fam-new"),
            refresh: RefreshWrite::Insert(refresh_row(404, "fam-new")),
        });
        batch.push(GrantWrite {
            token: grant_token(405, "fam-none"),
            refresh: RefreshWrite::None,
        });
        let done = store.record_grants(&batch).await.expect("batch");
        let mut want = vec![true; 80];
        want.extend([false, false, false, false, true, true]);
        assert_eq!(done, want);

        for n in 0..80 {
            let old = store
                .find_refresh(&format!("rt-digest-{n:03}"))
                .await
                .expect("old")
                .expect("old row");
            assert_eq!(old.used_at, Some(8_000 + n as i64), "token {n}");
            assert_eq!(
                store
                    .find_refresh(&format!("rt-digest-{:03}", 300 + n))
                    .await
                    .expect("successor"),
                Some(refresh_row(300 + n, &format!("fam-{n}"))),
                "successor of {n}"
            );
            let tokens = store
                .list_grant_tokens(GrantScope::Family(&format!("fam-{n}")), 0)
                .await
                .expect("tokens");
            let jtis: Vec<&str> = tokens.iter().map(|t| t.jti.as_str()).collect();
            assert_eq!(jtis.len(), 2, "family {n}: {jtis:?}");
            assert!(tokens.contains(&grant_token(300 + n, &format!("fam-{n}"))));
        }
        // The losers left nothing behind, and the used token keeps its first use.
        for n in 400..404 {
            assert_eq!(
                store
                    .find_refresh(&format!("rt-digest-{n}"))
                    .await
                    .expect("loser"),
                None,
                "{n}"
            );
        }
        let reused = store
            .find_refresh("rt-digest-080")
            .await
            .expect("80")
            .expect("row");
        assert_eq!(reused.used_at, Some(7_000));
        let revoked = store
            .find_refresh("rt-digest-081")
            .await
            .expect("81")
            .expect("row");
        assert_eq!((revoked.used_at, revoked.revoked_at), (None, Some(7_001)));
        assert_eq!(
            store
                .list_grant_tokens(GrantScope::Family("fam-81"), 0)
                .await
                .expect("fam-81")
                .len(),
            1
        );
        assert_eq!(
            store.find_refresh("rt-digest-404").await.expect("new"),
            Some(refresh_row(404, "fam-new"))
        );
        assert_eq!(
            store
                .list_grant_tokens(GrantScope::Family("fam-none"), 0)
                .await
                .expect("none"),
            [grant_token(405, "fam-none")]
        );
    }
);

store_test!(
    a_refresh_token_comes_back_with_its_user_in_one_read,
    |store| {
        use portcullis_store::{GrantWrite, RefreshWrite};
        let ana = portcullis_store::UserRow {
            id: "u1".into(),
            username: "ana".into(),
            email: Some("ana@example.test".into()),
            roles: "reader writer".into(),
            enabled: true,
            created_at: 11,
            updated_at: 12,
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            mfa_required: true,
            totp_secret_sealed: None,
            totp_confirmed_at: None,
            totp_last_step: None,
        };
        store.insert_user(&ana).await.expect("user");
        store
            .set_totp("u1", Some("sealed-seed"), Some(13))
            .await
            .expect("totp");
        assert!(store.take_totp_step("u1", 14).await.expect("step"));
        let token = refresh_row(1, "fam-1");
        let recorded = store
            .record_grants(&[GrantWrite {
                token: grant_token(1, "fam-1"),
                refresh: RefreshWrite::Insert(token.clone()),
            }])
            .await
            .expect("insert");
        assert_eq!(recorded, [true]);
        // Disabled after the grant: the token's read still brings the user.
        assert!(store
            .update_user(&portcullis_store::UserRow {
                enabled: false,
                updated_at: 15,
                ..ana
            })
            .await
            .expect("disable"));

        // Every column of the user as the user table's own read gives it.
        let user = store.get_user("u1").await.expect("get").expect("user");
        assert_eq!(
            (
                user.totp_secret_sealed.as_deref(),
                user.totp_confirmed_at,
                user.totp_last_step
            ),
            (Some("sealed-seed"), Some(13), Some(14))
        );
        assert_eq!(
            store
                .find_refresh_with_user("rt-digest-001")
                .await
                .expect("joined"),
            Some((token.clone(), Some(user)))
        );
        assert_eq!(
            store.find_refresh("rt-digest-001").await.expect("plain"),
            Some(token)
        );
        assert_eq!(
            store
                .find_refresh_with_user("rt-digest-999")
                .await
                .expect("unknown"),
            None
        );
    }
);

store_test!(
    a_new_grant_is_not_written_for_an_ended_session_or_a_disabled_user,
    |store| {
        use portcullis_store::{GrantScope, GrantWrite, RefreshWrite, SessionRow};
        store
            .insert_user(&plain_user("u1", true))
            .await
            .expect("u1");
        store
            .insert_user(&plain_user("u2", false))
            .await
            .expect("u2");
        for id in ["sess-live", "sess-ended"] {
            store
                .insert_session(&SessionRow {
                    id: id.into(),
                    digest: format!("digest-{id}"),
                    user_id: "u1".into(),
                    amr: "pwd".into(),
                    auth_time: 1,
                    created_at: 1,
                    last_seen_at: 1,
                    expires_at: 10_000,
                    ended_at: None,
                })
                .await
                .expect("session");
        }
        assert!(store.end_session("sess-ended", 2).await.expect("end"));
        // A grant of user `user`, from `session`, starting family `fam`.
        let grant = |n: usize, user: &str, session: Option<&str>, refresh: bool| {
            let fam = format!("fam-{n}");
            let mut token = grant_token(n, &fam);
            token.user_id = user.into();
            token.session_id = session.map(str::to_owned);
            let mut row = refresh_row(n, &fam);
            row.user_id = user.into();
            row.session_id = session.map(str::to_owned);
            GrantWrite {
                token,
                refresh: if refresh {
                    RefreshWrite::Insert(row)
                } else {
                    RefreshWrite::None
                },
            }
        };
        let done = store
            .record_grants(&[
                grant(1, "u1", Some("sess-live"), true),
                grant(2, "u1", Some("sess-ended"), true),
                grant(3, "u1", Some("sess-ended"), false),
                grant(4, "u2", None, true),
                grant(5, "u2", None, false),
                grant(6, "nobody", None, true),
                grant(7, "u1", None, false),
                // A session that is not (or no longer) stored has not ended.
                grant(8, "u1", Some("sess-purged"), true),
            ])
            .await
            .expect("batch");
        assert_eq!(done, [true, false, false, false, false, false, true, true]);
        for (n, written) in [1, 2, 3, 4, 5, 6, 7, 8].into_iter().zip(done) {
            let fam = format!("fam-{n}");
            let tokens = store
                .list_grant_tokens(GrantScope::Family(&fam), 0)
                .await
                .expect("tokens");
            assert_eq!(tokens.len(), usize::from(written), "grant {n}: {tokens:?}");
            let refresh = store
                .find_refresh(&format!("rt-digest-{n:03}"))
                .await
                .expect("refresh");
            assert_eq!(
                refresh.is_some(),
                written && n != 7,
                "grant {n}: {refresh:?}"
            );
        }
        // A rotation is not held back by its user's state: the disable that ends a
        // user revokes their refresh tokens, and a rotation of a revoked token
        // fails by itself (the service also refuses a disabled user's refresh).
        store
            .update_user(&plain_user("u1", false))
            .await
            .expect("disable u1");
        let rotated = store
            .record_grants(&[rotation(9, 1, "fam-1", 3)])
            .await
            .expect("rotate");
        assert_eq!(rotated, [true]);
    }
);
