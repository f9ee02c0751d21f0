//! Crash durability under load (invariant 3): a mixed workload runs against the real
//! server process from several threads, the process is killed with SIGKILL at a
//! random moment, restarted, and everything acknowledged with a 2xx before the kill
//! must be there: revocations above all, but also issued tokens, created keys and
//! refresh rotations. The database must pass SQLite's integrity and foreign-key
//! checks and the audit chain must still verify, after every kill.
//!
//! An operation in flight at the kill (request sent, no answer) may or may not have
//! happened; the ledger marks it ambiguous and checks nothing about it.
//!
//! The seed is printed; `CRASH_SEED=N cargo test crash` replays a run's kill times
//! and operation mix (thread timing still varies).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::process::{create_client, user_and_password_client_with, Server};
use crate::util::{cli, free_port, json_ok, run};

const ROUNDS: usize = 8;
const WORKERS: usize = 4;

/// xorshift64*: a reproducible stream from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Cheap Argon2id for the server and the CLI alike (the stored hash carries its
/// parameters, so both must agree for the password grant to be fast in debug builds).
const CHEAP_ARGON2: [(&str, &str); 2] = [
    ("PORTCULLIS_SIGNIN_ARGON2_MEMORY_KIB", "8192"),
    ("PORTCULLIS_SIGNIN_ARGON2_ITERATIONS", "1"),
];

/// What the workload was told happened, checked after each restart.
#[derive(Default)]
struct Ledger {
    jwt_live: Vec<String>,
    jwt_revoked: Vec<String>,
    opaque_live: Vec<String>,
    opaque_revoked: Vec<String>,
    keys_live: Vec<(String, String)>,
    keys_revoked: Vec<(String, String)>,
    /// Refresh families: the newest acknowledged token and the ones it replaced.
    families: Vec<Family>,
    /// Operations whose outcome the kill made unknown.
    ambiguous: usize,
    acknowledged: usize,
}

#[derive(Clone, Default)]
struct Family {
    newest: String,
    spent: Vec<String>,
    /// A rotation was in flight at a kill: `newest` may be spent.
    ambiguous: bool,
}

struct Env {
    jwt: (String, String),
    opaque: (String, String),
    legacy: (String, String),
    admin: String,
}

fn setup(dir: &Path) -> Env {
    let jwt = create_client(dir, "jwt");
    let opaque = create_client(dir, "opaque");
    let legacy = user_and_password_client_with(dir, &CHEAP_ARGON2);
    let v = json_ok(&run(cli(dir).args([
        "admin-token",
        "create",
        "--name",
        "crash",
    ])));
    let admin = v["token"].as_str().expect("admin token").to_owned();
    json_ok(&run(cli(dir).args([
        "keyspace", "create", "--name", "crash", "--prefix", "crash", "--scope", "read",
    ])));
    Env {
        jwt,
        opaque,
        legacy,
        admin,
    }
}

/// One HTTP answer (`Null` for an empty body), or `None` when the server went away
/// before the whole answer arrived.
fn answer(r: reqwest::Result<reqwest::blocking::Response>) -> Option<(u16, Value)> {
    let r = r.ok()?;
    let status = r.status().as_u16();
    let body = r.bytes().ok()?;
    if body.is_empty() {
        return Some((status, Value::Null));
    }
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Some((status, v))
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// One worker: random operations until the server disappears.
fn worker(base: &str, env: &Env, ledger: &Mutex<Ledger>, seed: u64, family: Option<usize>) {
    let http = client();
    let mut rng = Rng(seed | 1);
    let token = |(id, secret): &(String, String)| {
        answer(
            http.post(format!("{base}/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send(),
        )
    };
    let revoke = |(id, secret): &(String, String), t: &str| {
        answer(
            http.post(format!("{base}/oauth/revoke"))
                .basic_auth(id, Some(secret))
                .form(&[("token", t)])
                .send(),
        )
        .map(|(s, _)| s)
    };
    loop {
        let op = rng.below(100);
        let alive = match op {
            0..=19 => match token(&env.jwt) {
                Some((200, v)) => {
                    let mut l = ledger.lock().expect("lock");
                    l.jwt_live
                        .push(v["access_token"].as_str().expect("at").into());
                    l.acknowledged += 1;
                    true
                }
                Some((s, v)) => panic!("token: {s} {v}"),
                None => false,
            },
            20..=34 => match token(&env.opaque) {
                Some((200, v)) => {
                    let mut l = ledger.lock().expect("lock");
                    l.opaque_live
                        .push(v["access_token"].as_str().expect("at").into());
                    l.acknowledged += 1;
                    true
                }
                Some((s, v)) => panic!("token: {s} {v}"),
                None => false,
            },
            35..=49 => {
                let (creds, pick) = if op.is_multiple_of(2) {
                    (&env.jwt, take_random(&mut rng, ledger, |l| &mut l.jwt_live))
                } else {
                    (
                        &env.opaque,
                        take_random(&mut rng, ledger, |l| &mut l.opaque_live),
                    )
                };
                match pick {
                    None => true,
                    Some(t) => match revoke(creds, &t) {
                        Some(200) => {
                            let mut l = ledger.lock().expect("lock");
                            if op.is_multiple_of(2) {
                                l.jwt_revoked.push(t);
                            } else {
                                l.opaque_revoked.push(t);
                            }
                            l.acknowledged += 1;
                            true
                        }
                        Some(s) => panic!("revoke: {s}"),
                        None => {
                            ledger.lock().expect("lock").ambiguous += 1;
                            false
                        }
                    },
                }
            }
            50..=64 => match answer(
                http.post(format!("{base}/api/v1/keys"))
                    .bearer_auth(&env.admin)
                    .json(&json!({"keyspace": "crash", "owner": format!("o{op}")}))
                    .send(),
            ) {
                Some((201, v)) => {
                    let mut l = ledger.lock().expect("lock");
                    l.keys_live.push((
                        v["id"].as_str().expect("id").into(),
                        v["key"].as_str().expect("key").into(),
                    ));
                    l.acknowledged += 1;
                    true
                }
                Some((s, v)) => panic!("create key: {s} {v}"),
                None => false,
            },
            65..=74 => match take_random(&mut rng, ledger, |l| &mut l.keys_live) {
                None => true,
                Some((id, key)) => match answer(
                    http.post(format!("{base}/api/v1/keys/{id}/revoke"))
                        .bearer_auth(&env.admin)
                        .send(),
                ) {
                    Some((200, _)) => {
                        let mut l = ledger.lock().expect("lock");
                        l.keys_revoked.push((id, key));
                        l.acknowledged += 1;
                        true
                    }
                    Some((s, v)) => panic!("revoke key: {s} {v}"),
                    None => {
                        ledger.lock().expect("lock").ambiguous += 1;
                        false
                    }
                },
            },
            _ => match family {
                None => true,
                Some(f) => {
                    let rt = ledger.lock().expect("lock").families[f].newest.clone();
                    match answer(
                        http.post(format!("{base}/oauth/token"))
                            .basic_auth(&env.legacy.0, Some(&env.legacy.1))
                            .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
                            .send(),
                    ) {
                        Some((200, v)) => {
                            let mut l = ledger.lock().expect("lock");
                            let fam = &mut l.families[f];
                            fam.spent.push(std::mem::replace(
                                &mut fam.newest,
                                v["refresh_token"].as_str().expect("rt").into(),
                            ));
                            l.acknowledged += 1;
                            true
                        }
                        Some((s, v)) => panic!("refresh: {s} {v}"),
                        None => {
                            let mut l = ledger.lock().expect("lock");
                            l.families[f].ambiguous = true;
                            l.ambiguous += 1;
                            false
                        }
                    }
                }
            },
        };
        if !alive {
            return;
        }
    }
}

/// Removes a random element from one of the ledger's lists (so no two workers act
/// on the same token).
fn take_random<T>(
    rng: &mut Rng,
    ledger: &Mutex<Ledger>,
    list: impl Fn(&mut Ledger) -> &mut Vec<T>,
) -> Option<T> {
    let mut l = ledger.lock().expect("lock");
    let v = list(&mut l);
    if v.is_empty() {
        return None;
    }
    let i = rng.below(v.len() as u64) as usize;
    Some(v.swap_remove(i))
}

/// A new refresh family for `ada`.
fn new_family(base: &str, env: &Env) -> Family {
    let (s, v) = answer(
        client()
            .post(format!("{base}/oauth/token"))
            .basic_auth(&env.legacy.0, Some(&env.legacy.1))
            .form(&[
                ("grant_type", "password"),
                ("username", "ada"),
                ("password", "a long password"),
                ("scope", "read offline_access"),
            ])
            .send(),
    )
    .expect("password grant");
    assert_eq!(s, 200, "{v}");
    Family {
        newest: v["refresh_token"].as_str().expect("rt").into(),
        ..Family::default()
    }
}

fn introspect(base: &str, creds: &(String, String), t: &str) -> bool {
    let (s, v) = answer(
        client()
            .post(format!("{base}/oauth/introspect"))
            .basic_auth(&creds.0, Some(&creds.1))
            .form(&[("token", t)])
            .send(),
    )
    .expect("introspect");
    assert_eq!(s, 200, "{v}");
    v["active"] == true
}

fn key_valid(base: &str, admin: &str, key: &str) -> bool {
    let (s, v) = answer(
        client()
            .post(format!("{base}/api/v1/keys/verify"))
            .bearer_auth(admin)
            .json(&json!({"key": key}))
            .send(),
    )
    .expect("verify");
    assert_eq!(s, 200, "{v}");
    v["valid"] == true
}

/// Counts of what one check looked at.
#[derive(Default, Debug)]
struct Checked {
    revocations: usize,
    live: usize,
}

/// Checks every acknowledged fact from `from` onwards in each list.
fn check(base: &str, env: &Env, l: &Ledger, from: &Marks, checked: &mut Checked) {
    for t in &l.jwt_revoked[from.jwt_revoked..] {
        assert!(
            !introspect(base, &env.jwt, t),
            "an acknowledged JWT revocation was lost"
        );
    }
    for t in &l.opaque_revoked[from.opaque_revoked..] {
        assert!(
            !introspect(base, &env.opaque, t),
            "an acknowledged opaque-token revocation was lost"
        );
    }
    for (_, k) in &l.keys_revoked[from.keys_revoked..] {
        assert!(
            !key_valid(base, &env.admin, k),
            "an acknowledged key revocation was lost"
        );
    }
    for t in &l.jwt_live[from.jwt_live.min(l.jwt_live.len())..] {
        assert!(
            introspect(base, &env.jwt, t),
            "an issued JWT stopped working"
        );
    }
    for t in &l.opaque_live[from.opaque_live.min(l.opaque_live.len())..] {
        assert!(
            introspect(base, &env.opaque, t),
            "an acknowledged opaque token was lost"
        );
    }
    for (_, k) in &l.keys_live[from.keys_live.min(l.keys_live.len())..] {
        assert!(
            key_valid(base, &env.admin, k),
            "an acknowledged API key was lost"
        );
    }
    let tail = |len: usize, from: usize| len - from.min(len);
    checked.revocations += tail(l.jwt_revoked.len(), from.jwt_revoked)
        + tail(l.opaque_revoked.len(), from.opaque_revoked)
        + tail(l.keys_revoked.len(), from.keys_revoked);
    checked.live += tail(l.jwt_live.len(), from.jwt_live)
        + tail(l.opaque_live.len(), from.opaque_live)
        + tail(l.keys_live.len(), from.keys_live);
}

/// Where each list stood when the last check ran (lists of live items shrink when a
/// worker takes one to revoke, so those are re-checked in full at the end).
#[derive(Default, Clone, Copy)]
struct Marks {
    jwt_revoked: usize,
    opaque_revoked: usize,
    keys_revoked: usize,
    jwt_live: usize,
    opaque_live: usize,
    keys_live: usize,
}

fn marks(l: &Ledger) -> Marks {
    Marks {
        jwt_revoked: l.jwt_revoked.len(),
        opaque_revoked: l.opaque_revoked.len(),
        keys_revoked: l.keys_revoked.len(),
        jwt_live: l.jwt_live.len(),
        opaque_live: l.opaque_live.len(),
        keys_live: l.keys_live.len(),
    }
}

fn database_checks(dir: &Path) {
    let db = dir.join("p.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use sqlx::Row;
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open database");
        let ok: String = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .expect("integrity_check")
            .get(0);
        assert_eq!(ok, "ok", "SQLite integrity check after kill -9");
        let broken = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&pool)
            .await
            .expect("foreign_key_check");
        assert!(broken.is_empty(), "foreign keys broken after kill -9");
        pool.close().await;
    });
    let v = json_ok(&run(cli(dir).args(["audit", "verify"])));
    assert_eq!(v["ok"], true, "audit chain after kill -9: {v}");
}

#[test]
fn acknowledged_writes_survive_repeated_kill_9_under_a_mixed_workload() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("crash durability: seed {seed} (CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().expect("tmp");
    let env = Arc::new(setup(dir.path()));
    let port = free_port();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut mark = Marks::default();
    let mut checked = Checked::default();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let s = Server::start(dir.path(), port, &CHEAP_ARGON2);
        // What the previous kill left must be there, before any new work.
        {
            let l = ledger.lock().expect("lock");
            check(&s.base, &env, &l, &mark, &mut checked);
        }
        database_checks(dir.path());
        // Families that survived are rotated once more (their newest token must
        // work); ambiguous ones are dropped, and every worker has a family.
        {
            let mut l = ledger.lock().expect("lock");
            for f in l.families.iter_mut().filter(|f| !f.ambiguous) {
                let (st, v) = answer(
                    client()
                        .post(format!("{}/oauth/token", s.base))
                        .basic_auth(&env.legacy.0, Some(&env.legacy.1))
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", &f.newest),
                        ])
                        .send(),
                )
                .expect("refresh");
                assert_eq!(
                    st, 200,
                    "the newest acknowledged refresh token was lost: {v}"
                );
                f.spent.push(std::mem::replace(
                    &mut f.newest,
                    v["refresh_token"].as_str().expect("rt").into(),
                ));
            }
        }
        let mut workers = Vec::new();
        for w in 0..WORKERS {
            let family = {
                let l = ledger.lock().expect("lock");
                let live: Vec<usize> = (0..l.families.len())
                    .filter(|i| !l.families[*i].ambiguous)
                    .collect();
                match live.get(w) {
                    Some(i) => *i,
                    None => {
                        drop(l);
                        let f = new_family(&s.base, &env);
                        let mut l = ledger.lock().expect("lock");
                        l.families.push(f);
                        l.families.len() - 1
                    }
                }
            };
            let (base, env, ledger) = (s.base.clone(), env.clone(), ledger.clone());
            let wseed = rng.next();
            workers.push(std::thread::spawn(move || {
                worker(&base, &env, &ledger, wseed, Some(family));
            }));
        }
        mark = marks(&ledger.lock().expect("lock"));
        // The kill lands anywhere from the first requests to well into the load.
        let after = Duration::from_millis(150 + rng.below(1_350));
        std::thread::sleep(after);
        s.kill9();
        for w in workers {
            w.join().expect("worker");
        }
        let l = ledger.lock().expect("lock");
        eprintln!(
            "round {round}: killed after {after:?}; acknowledged so far {}, ambiguous {}",
            l.acknowledged, l.ambiguous
        );
    }
    // Last restart: everything acknowledged in the whole run, live lists in full.
    let s = Server::start(dir.path(), port, &CHEAP_ARGON2);
    let l = ledger.lock().expect("lock");
    check(&s.base, &env, &l, &mark, &mut checked);
    check(&s.base, &env, &l, &Marks::default(), &mut checked);
    database_checks(dir.path());
    // A spent refresh token stays spent across every kill: presenting one is a
    // reuse, which revokes its family.
    for f in l
        .families
        .iter()
        .filter(|f| !f.ambiguous && !f.spent.is_empty())
    {
        let old = &f.spent[f.spent.len() / 2];
        let (st, _) = answer(
            client()
                .post(format!("{}/oauth/token", s.base))
                .basic_auth(&env.legacy.0, Some(&env.legacy.1))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", old)])
                .send(),
        )
        .expect("refresh");
        assert_eq!(st, 400, "a spent refresh token worked again after kill -9");
    }
    assert!(
        l.acknowledged >= ROUNDS * 10,
        "the workload did too little to prove anything: {} acknowledged",
        l.acknowledged
    );
    eprintln!(
        "crash durability: {ROUNDS} kills, {} acknowledged writes, {} revocation and {} live checks after restarts, {} ambiguous, 0 lost, in {:?}",
        l.acknowledged,
        checked.revocations,
        checked.live,
        l.ambiguous,
        started.elapsed()
    );
}
