use portcullis_core::jose::SigningAlg;

use portcullis_core::clock::ManualClock;
use portcullis_core::keys::MasterKey;
use portcullis_testkit::PgSchema;

use crate::{authority_on_postgres, env};

const DAY: i64 = 86_400;

#[tokio::test]
async fn first_start_creates_one_active_key_per_algorithm_and_only_once() {
    let e = env().await;
    let keys = e.auth.list_signing_keys().await.expect("list");
    assert_eq!(keys.len(), 4);
    assert!(keys.iter().all(|k| k.state == "active"));
    assert!(e
        .auth
        .ensure_signing_keys()
        .await
        .expect("again")
        .is_empty());
    for alg in SigningAlg::ALL {
        assert!(e.auth.keyring().signer(alg).is_some(), "{alg}");
    }
}

#[tokio::test]
async fn scheduled_rotation_publishes_ahead_switches_then_drops_the_old_key() {
    let e = env().await;
    let old = e
        .auth
        .keyring()
        .signer(SigningAlg::ES256)
        .expect("es256")
        .kid()
        .to_owned();
    // Day 88: nothing yet (interval 90d, publish ahead 1d).
    e.clock.advance(88 * DAY);
    assert!(e.auth.rotate_due().await.expect("rotate").is_empty());
    // Day 89: a next key per algorithm is published but does not sign.
    e.clock.advance(DAY);
    let r = e.auth.rotate_due().await.expect("rotate");
    assert_eq!(r.created.len(), 4);
    let ring = e.auth.keyring();
    assert_eq!(ring.jwks().len(), 8, "next keys are in the JWKS");
    assert_eq!(
        ring.signer(SigningAlg::ES256).expect("es256").kid(),
        old,
        "old key still signs"
    );
    // Day 90: the next key signs; the old one is retired but still published.
    e.clock.advance(DAY);
    let r = e.auth.rotate_due().await.expect("rotate");
    assert_eq!(r.activated.len(), 4);
    let ring = e.auth.keyring();
    assert_ne!(ring.signer(SigningAlg::ES256).expect("es256").kid(), old);
    assert!(ring
        .jwks()
        .iter()
        .any(|j| j.common.key_id.as_deref() == Some(old.as_str())));
    // After max token lifetime (24h) + leeway, the retired key is dropped.
    e.clock.advance(DAY + 31);
    let r = e.auth.rotate_due().await.expect("rotate");
    assert_eq!(r.removed.len(), 4);
    assert_eq!(e.auth.keyring().jwks().len(), 4);
    assert!(!e
        .auth
        .keyring()
        .jwks()
        .iter()
        .any(|j| j.common.key_id.as_deref() == Some(old.as_str())));
}

#[tokio::test]
async fn manual_rotation_schedules_a_next_key_or_switches_immediately() {
    let e = env().await;
    let old = e
        .auth
        .keyring()
        .signer(SigningAlg::EdDSA)
        .expect("eddsa")
        .kid()
        .to_owned();
    let next = e
        .auth
        .rotate_now(SigningAlg::EdDSA, false)
        .await
        .expect("rotate");
    assert_eq!(
        e.auth
            .keyring()
            .signer(SigningAlg::EdDSA)
            .expect("eddsa")
            .kid(),
        old,
        "published ahead, not yet signing"
    );
    let again = e.auth.rotate_now(SigningAlg::EdDSA, false).await;
    assert!(again.is_err(), "a second scheduled rotation is refused");
    let now_kid = e
        .auth
        .rotate_now(SigningAlg::EdDSA, true)
        .await
        .expect("immediate");
    assert_eq!(now_kid, next, "--immediate promotes the pending key");
    assert_eq!(
        e.auth
            .keyring()
            .signer(SigningAlg::EdDSA)
            .expect("eddsa")
            .kid(),
        next
    );
}

#[tokio::test]
async fn two_nodes_on_one_postgres_database_create_and_rotate_each_key_once() {
    let Some(schema) =
        PgSchema::create("two_nodes_on_one_postgres_database_create_and_rotate_each_key_once")
            .await
    else {
        return;
    };
    let clock = ManualClock::new(1_800_000_000);
    let mk = MasterKey::generate().expect("master key");
    let a = authority_on_postgres(&schema, &clock, &mk).await;
    let b = authority_on_postgres(&schema, &clock, &mk).await;

    // Both start on the empty database at once: one set of keys between them.
    let (ka, kb) = tokio::join!(a.ensure_signing_keys(), b.ensure_signing_keys());
    let (ka, kb) = (ka.expect("a"), kb.expect("b"));
    assert_eq!(ka.len() + kb.len(), 4, "a: {ka:?}, b: {kb:?}");
    assert_eq!(a.list_signing_keys().await.expect("list").len(), 4);

    // Both reach the due rotation in the same instant: one next key per algorithm.
    clock.advance(89 * DAY);
    let (ra, rb) = tokio::join!(a.rotate_due(), b.rotate_due());
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    assert_eq!(
        ra.created.len() + rb.created.len(),
        4,
        "a: {ra:?}, b: {rb:?}"
    );
    assert_eq!(b.list_signing_keys().await.expect("list").len(), 8);

    // And one activation each, seen by both.
    clock.advance(DAY);
    let (ra, rb) = tokio::join!(a.rotate_due(), b.rotate_due());
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    assert_eq!(
        ra.activated.len() + rb.activated.len(),
        4,
        "a: {ra:?}, b: {rb:?}"
    );
    // The node that found the job taken reloads at its next check.
    a.rotate_due().await.expect("a again");
    b.rotate_due().await.expect("b again");
    for alg in SigningAlg::ALL {
        let signer = |n: &portcullis_service::Authority| {
            n.keyring().signer(alg).expect("signer").kid().to_owned()
        };
        assert_eq!(
            signer(&a),
            signer(&b),
            "{alg}: both nodes sign with the same key"
        );
    }
    drop((a, b));
    schema.drop().await;
}
