//! The audit chain: every edit, deletion and reordering is detected, retention
//! keeps it verifiable, and the anchor cannot be moved by hand.

use portcullis_service::audit::{AuditEvent, Outcome};
use portcullis_store::AuditFilter;
use proptest::prelude::*;
use serde_json::json;

use crate::{env, Env};

async fn raw(e: &Env) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}?mode=rw", e.dir.path().join("t.db").display());
    sqlx::SqlitePool::connect(&url)
        .await
        .expect("raw connection")
}

async fn record_n(e: &Env, n: usize) {
    for i in 0..n {
        e.auth
            .audit(
                AuditEvent::new("test.event")
                    .subject(format!("s{i}"))
                    .credential(format!("c{i}"))
                    .details(json!({"i": i})),
            )
            .await
            .expect("audit");
    }
}

/// Queues `n` records without waiting (as issuance does), subjects `{prefix}0`…
async fn enqueue_n(e: &Env, prefix: &str, n: usize) {
    for i in 0..n {
        e.auth
            .audit_enqueue(AuditEvent::new("test.queued").subject(format!("{prefix}{i}")))
            .await;
    }
}

/// The head before a test adds its own records (first start audits its signing keys).
async fn head(e: &Env) -> i64 {
    e.auth.audit_verify().await.expect("verify").head_seq
}

async fn exec(pool: &sqlx::SqlitePool, sql: &str) {
    sqlx::query(sql).execute(pool).await.expect(sql);
}

#[tokio::test]
async fn an_untouched_chain_verifies_and_records_carry_their_context() {
    let e = env().await;
    let base = head(&e).await;
    assert!(base >= 4, "the first signing keys were audited");
    record_n(&e, 5).await;
    let ctx = std::sync::Arc::new(portcullis_service::audit::AuditContext::new(
        Some("203.0.113.7".parse().expect("ip")),
        Some("curl/8"),
    ));
    portcullis_service::audit::with_context(ctx, async {
        portcullis_service::audit::set_actor("admin:abc");
        e.auth
            .audit(AuditEvent::new("test.ctx").outcome(Outcome::Refused, "because"))
            .await
            .expect("audit");
    })
    .await;
    let r = e.auth.audit_verify().await.expect("verify");
    assert!(r.ok, "{r:?}");
    assert_eq!((r.checked, r.head_seq), (base as u64 + 6, base + 6));
    let last = e
        .auth
        .audit_list(&AuditFilter {
            kind: Some("test.ctx".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(last.len(), 1);
    let l = &last[0];
    assert_eq!(l.actor.as_deref(), Some("admin:abc"));
    assert_eq!(l.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(l.user_agent.as_deref(), Some("curl/8"));
    assert_eq!(
        (l.outcome.as_str(), l.reason.as_deref()),
        ("refused", Some("because"))
    );
    // Prefix filters.
    let tests = e
        .auth
        .audit_list(&AuditFilter {
            kind: Some("test.".into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(tests.len(), 6);
}

/// Queued records (issuance) are group-committed after a short linger; a record
/// someone waits for closes the batch, and the chain keeps arrival order.
#[tokio::test]
async fn queued_records_are_committed_in_order_and_a_waited_record_takes_them_along() {
    let e = env().await;
    let base = head(&e).await;
    // Queued only: nobody waits, yet they reach the chain on their own.
    enqueue_n(&e, "q", 5).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while head(&e).await < base + 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "queued records never committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // 700 queued (more than one batch) and then one waited: when the wait ends,
    // every record queued before it is in the chain, and the waited one is last.
    enqueue_n(&e, "b", 700).await;
    e.auth
        .audit(AuditEvent::new("test.waited"))
        .await
        .expect("audit");
    let r = e.auth.audit_verify().await.expect("verify");
    assert!(r.ok, "{r:?}");
    assert_eq!(r.head_seq, base + 706);
    let all = e
        .auth
        .audit_list(&AuditFilter {
            kind: Some("test.".into()),
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .expect("list");
    let mut subjects: Vec<(i64, String)> = all
        .iter()
        .map(|r| (r.seq, r.subject.clone().unwrap_or_else(|| r.kind.clone())))
        .collect();
    subjects.sort();
    let expected: Vec<String> = (0..5)
        .map(|i| format!("q{i}"))
        .chain((0..700).map(|i| format!("b{i}")))
        .chain(std::iter::once("test.waited".to_owned()))
        .collect();
    assert_eq!(
        subjects.into_iter().map(|(_, s)| s).collect::<Vec<_>>(),
        expected
    );
}

/// A flush (graceful shutdown) returns only when every queued record is in the
/// chain, well inside the writer's linger, and adds no record of its own.
#[tokio::test]
async fn a_flush_commits_the_queued_records_and_adds_none() {
    let e = env().await;
    let base = head(&e).await;
    enqueue_n(&e, "f", 3).await;
    e.auth.audit_flush().await.expect("flush");
    let r = e.auth.audit_verify().await.expect("verify");
    assert!(r.ok, "{r:?}");
    assert_eq!(r.head_seq, base + 3);
    // Nothing queued: a flush is a no-op.
    e.auth.audit_flush().await.expect("flush");
    assert_eq!(head(&e).await, base + 3);
}

#[tokio::test]
async fn deleting_editing_or_reordering_a_row_is_detected_at_that_row() {
    let cases: &[(&str, &[&str], i64)] = &[
        ("delete", &["DELETE FROM audit_events WHERE seq = #4"], 4),
        (
            "edit",
            &["UPDATE audit_events SET subject = 'someone-else' WHERE seq = #3"],
            3,
        ),
        (
            "edit details",
            &["UPDATE audit_events SET details = '{\"i\":99}' WHERE seq = #6"],
            6,
        ),
        (
            "edit and recompute a plain hash",
            &["UPDATE audit_events SET outcome = 'failure', hash = lower(hex(randomblob(32))) WHERE seq = #2"],
            2,
        ),
        (
            // Swap the contents of rows 3 and 4 (links and all).
            "reorder",
            &[
                "UPDATE audit_events SET seq = -1 WHERE seq = #3",
                "UPDATE audit_events SET seq = #3 WHERE seq = #4",
                "UPDATE audit_events SET seq = #4 WHERE seq = -1",
            ],
            3,
        ),
        ("delete the first", &["DELETE FROM audit_events WHERE seq = #1"], 1),
    ];
    for (name, sql, at) in cases {
        let e = env().await;
        let base = head(&e).await;
        record_n(&e, 8).await;
        assert!(e.auth.audit_verify().await.expect("verify").ok);
        let pool = raw(&e).await;
        // Row numbers in the cases count from the test's own first record.
        // Row numbers in the cases (written #N) count from the test's first record.
        let shift = |sql: &str| {
            let mut out = String::new();
            let mut rest = sql;
            while let Some(i) = rest.find('#') {
                out.push_str(&rest[..i]);
                let digits: String = rest[i + 1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let n: i64 = digits.parse().expect("row number");
                out.push_str(&(base + n).to_string());
                rest = &rest[i + 1 + digits.len()..];
            }
            out.push_str(rest);
            out
        };
        for s in *sql {
            exec(&pool, &shift(s)).await;
        }
        let r = e.auth.audit_verify().await.expect("verify");
        assert!(!r.ok, "{name}: not detected");
        assert_eq!(r.broken_at, Some(base + *at), "{name}: {r:?}");
        assert!(r.problem.is_some());
    }
}

#[tokio::test]
async fn retention_prunes_without_breaking_the_chain_and_the_anchor_is_sealed() {
    let e = env().await;
    let base = head(&e).await;
    record_n(&e, 4).await;
    e.clock.advance(400 * 86_400);
    record_n(&e, 3).await;
    let pruned = e.auth.audit_prune(365 * 86_400_000).await.expect("prune");
    assert_eq!(pruned, base as u64 + 4);
    let r = e.auth.audit_verify().await.expect("verify");
    assert!(r.ok, "{r:?}");
    assert_eq!(
        (r.anchor_seq, r.checked, r.head_seq),
        (base + 4, 3, base + 7)
    );
    // New records chain on.
    record_n(&e, 1).await;
    assert!(e.auth.audit_verify().await.expect("verify").ok);
    // Deleting old rows and moving the anchor by hand is detected.
    let pool = raw(&e).await;
    exec(
        &pool,
        &format!("DELETE FROM audit_events WHERE seq = {}", base + 5),
    )
    .await;
    exec(
        &pool,
        &format!(
            "UPDATE audit_anchor SET seq = {}, hash = (SELECT prev_hash FROM audit_events WHERE seq = {})",
            base + 5,
            base + 6
        ),
    )
    .await;
    let r = e.auth.audit_verify().await.expect("verify");
    assert!(!r.ok, "{r:?}");
    assert!(
        r.problem.as_deref().unwrap_or("").contains("anchor"),
        "{r:?}"
    );
}

#[tokio::test]
async fn pages_follow_the_cursor_and_never_repeat() {
    let e = env().await;
    let base = head(&e).await;
    record_n(&e, 25).await;
    let mut seen = Vec::new();
    let mut filter = AuditFilter {
        limit: 10,
        after_seq: Some(base),
        ..AuditFilter::default()
    };
    loop {
        let page = e.auth.audit_page(filter.clone()).await.expect("page");
        seen.extend(page.events.iter().map(|r| r.seq));
        match page.next_cursor {
            Some(c) => filter.after_seq = Some(c.parse().expect("cursor")),
            None => break,
        }
    }
    assert_eq!(seen, (base + 1..=base + 25).collect::<Vec<i64>>());
    let bad = e
        .auth
        .audit_page(AuditFilter {
            limit: 0,
            ..AuditFilter::default()
        })
        .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn concurrent_writers_from_two_processes_keep_one_chain() {
    let e = env().await;
    let base = head(&e).await;
    // A second authority over the same file stands for the CLI.
    let other = crate::authority_on(e.dir.path(), &e.clock, &e.mk).await;
    let (a, b) = (&e.auth, &other);
    let fa = async {
        for i in 0..30 {
            a.audit(AuditEvent::new("test.a").subject(format!("{i}")))
                .await
                .expect("a");
        }
    };
    let fb = async {
        for i in 0..30 {
            b.audit(AuditEvent::new("test.b").subject(format!("{i}")))
                .await
                .expect("b");
        }
    };
    tokio::join!(fa, fb);
    let r = e.auth.audit_verify().await.expect("verify");
    assert!(r.ok, "{r:?}");
    assert_eq!(r.head_seq, base + 60);
}

const COLUMNS: &[&str] = &[
    "at_ms",
    "kind",
    "outcome",
    "actor",
    "subject",
    "credential_id",
    "client_id",
    "ip",
    "user_agent",
    "reason",
    "details",
    "prev_hash",
    "hash",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn any_single_edit_of_any_column_is_detected(n in 2usize..12, row in 0usize..12, col in 0usize..COLUMNS.len()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(async {
            let e = env().await;
            record_n(&e, n).await;
            let seq = (row % n) as i64 + 1;
            let column = COLUMNS[col];
            let pool = raw(&e).await;
            let sql = if column == "at_ms" {
                format!("UPDATE audit_events SET at_ms = at_ms + 1 WHERE seq = {seq}")
            } else {
                format!("UPDATE audit_events SET {column} = COALESCE({column}, '') || 'x' WHERE seq = {seq}")
            };
            exec(&pool, &sql).await;
            let r = e.auth.audit_verify().await.expect("verify");
            prop_assert!(!r.ok, "edit of {} at {} not detected", column, seq);
            prop_assert_eq!(r.broken_at, Some(seq), "{} at {}", column, seq);
            Ok(())
        })?;
    }
}
