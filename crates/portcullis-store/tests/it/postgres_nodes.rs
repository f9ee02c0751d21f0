//! Two stores on one PostgreSQL schema, as two Portcullis nodes of a cluster see it:
//! what SQLite gets from its single writer, PostgreSQL must get from its row locks.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use portcullis_store::{AuditFilter, AuditRow, GrantWrite, RefreshWrite, Store};

use crate::contract::{grant_token, plain_user, refresh_row};

fn link(r: &AuditRow) -> String {
    let mut h = DefaultHasher::new();
    (r.seq, &r.prev_hash, &r.kind).hash(&mut h);
    format!("{:016x}", h.finish())
}

#[tokio::test]
async fn two_nodes_appending_at_once_keep_one_unbroken_audit_chain() {
    let Some(pg) =
        crate::postgres("two_nodes_appending_at_once_keep_one_unbroken_audit_chain").await
    else {
        return;
    };
    let nodes: [Arc<dyn Store>; 2] = [
        Arc::new(pg.store.clone()),
        Arc::new(pg.another_node().await),
    ];
    let mut set = tokio::task::JoinSet::new();
    for task in 0..40 {
        let node = nodes[task % 2].clone();
        set.spawn(async move {
            let rows = (0..5)
                .map(|i| crate::audit_row(0, &format!("t{task}.r{i}"), None))
                .collect();
            node.append_audit(rows, &[], &link).await.expect("append")
        });
    }
    let mut seqs = Vec::new();
    while let Some(r) = set.join_next().await {
        let batch = r.expect("join");
        // A batch's records are consecutive: no other writer got in between.
        assert!(batch.windows(2).all(|w| w[1] == w[0] + 1), "{batch:?}");
        seqs.extend(batch);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<i64>>());

    let all = nodes[1]
        .list_audit(&AuditFilter {
            limit: 1_000,
            ..AuditFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 200);
    let anchor = nodes[0].audit_anchor().await.expect("anchor");
    let mut prev = anchor.hash;
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1);
        assert_eq!(
            r.prev_hash, prev,
            "record {} links to the one before",
            r.seq
        );
        assert_eq!(r.hash, link(r), "record {}", r.seq);
        prev = r.hash.clone();
    }
    drop(nodes);
    pg.drop().await;
}

#[tokio::test]
async fn a_refresh_token_presented_on_two_nodes_at_once_rotates_once() {
    let Some(pg) =
        crate::postgres("a_refresh_token_presented_on_two_nodes_at_once_rotates_once").await
    else {
        return;
    };
    let second = pg.another_node().await;
    let nodes: [Arc<dyn Store>; 2] = [Arc::new(pg.store.clone()), Arc::new(second)];
    nodes[0]
        .insert_user(&plain_user("u1", true))
        .await
        .expect("user");
    for round in 0..10usize {
        let family = format!("fam-{round}");
        let first = GrantWrite {
            token: grant_token(round * 100, &family),
            refresh: RefreshWrite::Insert(refresh_row(round * 100, &family)),
        };
        assert_eq!(
            nodes[0].record_grants(&[first]).await.expect("first"),
            [true]
        );
        // Sixteen redemptions of the same token, eight through each node, at once.
        let mut set = tokio::task::JoinSet::new();
        for attempt in 1..=16 {
            let node = nodes[attempt % 2].clone();
            let family = family.clone();
            set.spawn(async move {
                let write = GrantWrite {
                    token: grant_token(round * 100 + attempt, &family),
                    refresh: RefreshWrite::Rotate {
                        old_id: format!("rt-{:03}", round * 100),
                        now: 100,
                        new: refresh_row(round * 100 + attempt, &family),
                    },
                };
                node.record_grants(&[write]).await.expect("rotate")[0]
            });
        }
        let mut won = 0;
        while let Some(r) = set.join_next().await {
            won += usize::from(r.expect("join"));
        }
        assert_eq!(won, 1, "round {round}: exactly one redemption wins");
        let tokens = nodes[1]
            .list_grant_tokens(portcullis_store::GrantScope::Family(&family), 0)
            .await
            .expect("tokens");
        assert_eq!(
            tokens.len(),
            2,
            "round {round}: the first grant and the winner's"
        );
    }
    drop(nodes);
    pg.drop().await;
}

#[tokio::test]
async fn a_job_lock_is_held_by_one_node_at_a_time_and_freed_on_release_or_drop() {
    let Some(pg) = crate::postgres("a_job_lock_is_held_by_one_node_at_a_time").await else {
        return;
    };
    let first: Arc<dyn Store> = Arc::new(pg.store.clone());
    let second: Arc<dyn Store> = Arc::new(pg.another_node().await);

    let held = first.lock_job("rotation", false).await.expect("lock");
    let held = held.expect("a free lock is granted");
    assert!(
        second
            .lock_job("rotation", false)
            .await
            .expect("try")
            .is_none(),
        "the other node is refused while the first holds it"
    );
    let other_job = second.lock_job("cleanup", false).await.expect("try");
    assert!(other_job.is_some(), "another job's lock is separate");

    // A waiting node gets it once the holder releases.
    let waiter = {
        let second = second.clone();
        tokio::spawn(async move { second.lock_job("rotation", true).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "it waits while the lock is held");
    held.release().await;
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("granted after release")
        .expect("join")
        .expect("lock");
    // Dropped without release (a job that panicked): its session ends, the lock frees.
    drop(got);
    let mut again = None;
    for _ in 0..50 {
        again = first.lock_job("rotation", false).await.expect("try");
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    again
        .expect("free again after the guard was dropped")
        .release()
        .await;
    if let Some(l) = other_job {
        l.release().await;
    }

    // Another installation (schema) on the same server has its own locks.
    let elsewhere = crate::postgres("a_job_lock_is_held_by_one_node_at_a_time (second schema)")
        .await
        .expect("postgres");
    let mine = first
        .lock_job("rotation", false)
        .await
        .expect("lock")
        .expect("mine");
    let theirs = elsewhere
        .store
        .lock_job("rotation", false)
        .await
        .expect("lock");
    assert!(
        theirs.is_some(),
        "a second schema's job is not blocked by the first's"
    );
    mine.release().await;
    if let Some(l) = theirs {
        l.release().await;
    }
    elsewhere.drop().await;
    drop((first, second));
    pg.drop().await;
}

#[tokio::test]
async fn sqlite_grants_every_job_lock_at_once() {
    let (store, _dir) = crate::sqlite().await;
    let a = store.lock_job("rotation", false).await.expect("lock");
    let b = store.lock_job("rotation", true).await.expect("lock");
    assert!(a.is_some() && b.is_some(), "one node per SQLite database");
}
