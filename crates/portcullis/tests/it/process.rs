//! Tests of the real server process: crash durability (invariant 3), secrets never
//! in logs (invariant 1), graceful shutdown, TLS.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{cli, free_port, json_ok, run};

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    logs: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start(dir: &Path, port: u16, extra: &[(&str, &str)]) -> Server {
        let mut c = cli(dir);
        c.arg("serve")
            .env("PORTCULLIS_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "PORTCULLIS_SERVER_ISSUER",
                format!("http://127.0.0.1:{port}"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            c.env(k, v);
        }
        Self::spawn(c, format!("http://127.0.0.1:{port}"))
    }

    pub(crate) fn spawn(mut c: Command, base: String) -> Server {
        let mut child = c.spawn().expect("spawn server");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let l2 = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l2.lock().expect("lock").push(line);
            }
        });
        let s = Server {
            child,
            base,
            logs,
            reader: Some(reader),
        };
        s.wait_for_log("listening on", Duration::from_secs(30));
        s
    }

    pub(crate) fn wait_for_log(&self, needle: &str, within: Duration) {
        let start = Instant::now();
        while start.elapsed() < within {
            if self
                .logs
                .lock()
                .expect("lock")
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no log line with {needle:?}; logs: {:#?}",
            self.logs.lock().expect("lock")
        );
    }

    pub(crate) fn kill9(mut self) -> String {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
        self.finish()
    }

    fn finish(&mut self) -> String {
        if let Some(r) = self.reader.take() {
            r.join().expect("reader");
        }
        self.logs.lock().expect("lock").join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::new()
}

pub(crate) fn create_client(dir: &Path, format: &str) -> (String, String) {
    create_client_with(dir, format, &[])
}

/// [`create_client`] with extra environment (another database).
pub(crate) fn create_client_with(
    dir: &Path,
    format: &str,
    envs: &[(&str, &str)],
) -> (String, String) {
    let v = json_ok(&run(cli(dir).envs(envs.iter().copied()).args([
        "client",
        "create",
        "--name",
        format,
        "--grant-type",
        "client_credentials",
        "--scope",
        "read",
        "--token-format",
        format,
    ])));
    (
        v["client_id"].as_str().expect("id").into(),
        v["client_secret"].as_str().expect("secret").into(),
    )
}

fn token(s: &Server, id: &str, secret: &str) -> String {
    let r = http()
        .post(format!("{}/oauth/token", s.base))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .expect("token");
    assert_eq!(r.status(), 200);
    r.json::<Value>().expect("json")["access_token"]
        .as_str()
        .expect("token")
        .into()
}

fn post(
    s: &Server,
    path: &str,
    id: &str,
    secret: &str,
    token: &str,
) -> reqwest::blocking::Response {
    http()
        .post(format!("{}{path}", s.base))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .expect("post")
}

fn active(s: &Server, id: &str, secret: &str, token: &str) -> bool {
    post(s, "/oauth/introspect", id, secret, token)
        .json::<Value>()
        .expect("json")["active"]
        == true
}

#[test]
fn an_acknowledged_revocation_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tmp");
    revocation_survives_kill_9(dir.path(), &[]);
    let check = std::process::Command::new("sqlite3")
        .arg(dir.path().join("p.db"))
        .arg("PRAGMA integrity_check")
        .output();
    if let Ok(o) = check {
        if o.status.success() {
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok");
        }
    }
}

/// Invariant 3 on PostgreSQL: the server answers after the commit there as on SQLite.
#[test]
fn an_acknowledged_revocation_survives_kill_9_on_postgres() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(schema) = rt.block_on(portcullis_testkit::PgSchema::create(
        "an_acknowledged_revocation_survives_kill_9_on_postgres",
    )) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    revocation_survives_kill_9(dir.path(), &[("PORTCULLIS_DATABASE_URL", &schema.url)]);
    rt.block_on(schema.drop());
}

/// Revokes a JWT and an opaque token, kills the server with SIGKILL right after the
/// 200s, restarts it on the same database (`envs` names another than `dir`'s SQLite
/// file) and checks the revocations, the other token and their audit records.
fn revocation_survives_kill_9(dir: &Path, envs: &[(&str, &str)]) {
    let (jid, jsec) = create_client_with(dir, "jwt", envs);
    let (oid, osec) = create_client_with(dir, "opaque", envs);
    let port = free_port();
    let s = Server::start(dir, port, envs);
    let jwt = token(&s, &jid, &jsec);
    let keep = token(&s, &jid, &jsec);
    let opaque = token(&s, &oid, &osec);
    assert_eq!(post(&s, "/oauth/revoke", &jid, &jsec, &jwt).status(), 200);
    assert_eq!(
        post(&s, "/oauth/revoke", &oid, &osec, &opaque).status(),
        200
    );
    // SIGKILL right after the 200s: no shutdown hook runs.
    s.kill9();
    let s = Server::start(dir, port, envs);
    assert!(
        !active(&s, &jid, &jsec, &jwt),
        "revoked JWT still revoked after kill -9"
    );
    assert!(
        !active(&s, &oid, &osec, &opaque),
        "revoked opaque token still revoked after kill -9"
    );
    assert!(
        active(&s, &jid, &jsec, &keep),
        "the unrevoked token and the signing keys survived too"
    );
    // Their audit records were acknowledged with them, so they survived too, and
    // the chain still verifies.
    let out = run(cli(dir)
        .envs(envs.iter().copied())
        .args(["audit", "export", "--format", "json"]));
    let records = json_ok(&out);
    let records = records.as_array().expect("array");
    let of = |kind: &str| -> Vec<&Value> { records.iter().filter(|r| r["kind"] == kind).collect() };
    let revoked = of("token.revoked");
    assert_eq!(revoked.len(), 2, "{records:#?}");
    assert!(revoked.iter().any(|r| r["client_id"] == jid.as_str()));
    assert!(revoked.iter().any(|r| r["client_id"] == oid.as_str()));
    assert!(revoked.iter().all(|r| r["ip"] == "127.0.0.1"));
    assert_eq!(of("token.issued").len(), 3);
    assert_eq!(of("client.created").len(), 2);
    assert!(of("client.created")
        .iter()
        .all(|r| r["actor"].as_str().is_some_and(|a| a.starts_with("cli"))));
    let v = json_ok(&run(cli(dir)
        .envs(envs.iter().copied())
        .args(["audit", "verify"])));
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn no_secret_ever_appears_in_a_log_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let (id, secret) = create_client(dir.path(), "opaque");
    let (jid, jsecret) = create_client(dir.path(), "jwt");
    let port = free_port();
    let s = Server::start(dir.path(), port, &[("PORTCULLIS_LOG_LEVEL", "trace")]);
    let opaque = token(&s, &id, &secret);
    let jwt = token(&s, &jid, &jsecret);
    // client_secret_post too, and a failed authentication with a near-miss secret.
    let r = http()
        .post(format!("{}/oauth/token", s.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send()
        .expect("post");
    assert_eq!(r.status(), 200);
    let last = if secret.ends_with('x') { 'y' } else { 'x' };
    let near_miss = format!("{}{last}", &secret[..secret.len() - 1]);
    assert_eq!(
        post(&s, "/oauth/introspect", &id, &near_miss, &opaque).status(),
        401
    );
    assert!(active(&s, &id, &secret, &opaque));
    assert!(active(&s, &jid, &jsecret, &jwt));
    assert_eq!(
        post(&s, "/oauth/revoke", &id, &secret, &opaque).status(),
        200
    );
    assert_eq!(
        post(&s, "/oauth/revoke", &jid, &jsecret, &jwt).status(),
        200
    );
    let logs = s.kill9();
    assert!(
        logs.lines().count() > 10,
        "trace logging produced output: {logs}"
    );
    let master = std::fs::read_to_string(dir.path().join("master.key")).expect("mk");
    let jwt_sig = jwt.rsplit('.').next().expect("sig");
    for (what, needle) in [
        ("client secret", secret.as_str()),
        ("client secret body", &secret[4..]),
        ("near-miss secret", near_miss.as_str()),
        ("other client secret", jsecret.as_str()),
        ("opaque token", opaque.as_str()),
        ("opaque token body", &opaque[5..]),
        ("JWT signature", jwt_sig),
        ("master key", master.trim()),
    ] {
        assert!(!logs.contains(needle), "{what} leaked into the logs");
    }
}

/// Every line logged while a request runs names its method, path and request id (in
/// both formats), never its query string.
#[test]
fn log_lines_name_the_request_they_were_written_in() {
    for format in ["json", "text"] {
        let dir = tempfile::tempdir().expect("tmp");
        let port = free_port();
        let s = Server::start(
            dir.path(),
            port,
            &[
                ("PORTCULLIS_LOG_LEVEL", "debug"),
                ("PORTCULLIS_LOG_FORMAT", format),
            ],
        );
        let r = http()
            .get(format!("{}/jwks.json?token=do-not-log", s.base))
            .header("x-request-id", format!("log-{format}-1"))
            .send()
            .expect("jwks");
        assert_eq!(r.status(), 200);
        s.wait_for_log(&format!("log-{format}-1"), Duration::from_secs(10));
        let logs = s.kill9();
        assert!(!logs.contains("do-not-log"), "a query string was logged");
        let line = logs
            .lines()
            .find(|l| l.contains("request finished") && l.contains(&format!("log-{format}-1")))
            .unwrap_or_else(|| panic!("no finished line for the request: {logs}"));
        if format == "json" {
            let v: Value = serde_json::from_str(line).expect("one JSON object per line");
            assert_eq!(
                v["request"],
                serde_json::json!({"method": "GET", "path": "/jwks.json", "request_id": "log-json-1"}),
                "{line}"
            );
            assert_eq!(v["fields"]["status"], 200, "{line}");
            assert_eq!(v["level"], "DEBUG");
        } else {
            assert!(
                line.contains(
                    " DEBUG request{method=GET path=/jwks.json request_id=log-text-1}: \
                     portcullis_server::edge: request finished status=200 latency_us="
                ),
                "{line}"
            );
        }
    }
}

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let dir = tempfile::tempdir().expect("tmp");
    let (id, secret) = create_client(dir.path(), "jwt");
    let port = free_port();
    let mut s = Server::start(dir.path(), port, &[]);
    let body = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        conn,
        "POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .expect("write head");
    conn.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(200));
    let pid = s.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    s.wait_for_log("shutdown requested", Duration::from_secs(10));
    conn.write_all(&body.as_bytes()[10..])
        .expect("rest of body");
    let mut resp = String::new();
    conn.read_to_string(&mut resp).expect("response");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let status = s.child.wait().expect("exit");
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    let logs = s.finish();
    assert!(logs.contains("stopped"));
    // New connections are refused once it has stopped.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // The token answered during the shutdown has its (queued) audit record. (The
    // server flushes the audit queue before it exits; the service test
    // `a_flush_commits_the_queued_records_and_adds_none` pins the flush itself,
    // since here the shutdown is usually slower than the writer's linger anyway.)
    let issued = json_ok(&run(cli(dir.path()).args([
        "audit",
        "tail",
        "-n",
        "10",
        "--kind",
        "token.issued",
    ])));
    assert_eq!(issued.as_array().map(Vec::len), Some(1), "{issued}");
}

#[test]
fn tls_is_served_when_a_certificate_is_configured() {
    let dir = tempfile::tempdir().expect("tmp");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).expect("cert");
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).expect("key");
    let port = free_port();
    let mut c = cli(dir.path());
    c.arg("serve")
        .env("PORTCULLIS_SERVER_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "PORTCULLIS_SERVER_ISSUER",
            format!("https://localhost:{port}"),
        )
        .env(
            "PORTCULLIS_SERVER_TLS_CERT_FILE",
            dir.path().join("cert.pem"),
        )
        .env("PORTCULLIS_SERVER_TLS_KEY_FILE", dir.path().join("key.pem"))
        .env("PORTCULLIS_SERVER_HEADER_READ_TIMEOUT", "1s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let s = Server::spawn(c, format!("https://localhost:{port}"));
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .expect("client");
    let d: Value = client
        .get(format!("{}/.well-known/oauth-authorization-server", s.base))
        .send()
        .expect("https")
        .json()
        .expect("json");
    assert_eq!(d["issuer"], format!("https://localhost:{port}"));
    let plain = http()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send();
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP is not served on the TLS port"
    );
    // A client that connects and never starts the handshake is dropped after
    // server.header_read_timeout.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let r = silent.read(&mut buf);
    assert!(
        matches!(r, Ok(0))
            || r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "closed, not timed out on our side: {r:?}"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "dropped after {took:?}"
    );
    // The server still serves TLS.
    let r = client
        .get(format!("{}/healthz", s.base))
        .send()
        .expect("https");
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("strict-transport-security"));
}

#[test]
fn a_secret_rotated_by_the_cli_stops_working_on_the_running_server_within_seconds() {
    let dir = tempfile::tempdir().expect("tmp");
    let (id, secret) = create_client(dir.path(), "jwt");
    let port = free_port();
    let s = Server::start(dir.path(), port, &[]);
    token(&s, &id, &secret);
    let rotated = json_ok(&run(cli(dir.path()).args(["client", "rotate-secret", &id])));
    let new = rotated["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let start = Instant::now();
    loop {
        let r = http()
            .post(format!("{}/oauth/token", s.base))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .expect("token");
        if r.status() == 401 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "old secret still accepted after 3 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    token(&s, &id, &new);
}

/// A user `ada` (password `a long password`, role `r` with `read`) and a client
/// allowed the password and refresh grants; returns its id and secret.
pub(crate) fn user_and_password_client(dir: &Path) -> (String, String) {
    user_and_password_client_with(dir, &[])
}

/// [`user_and_password_client`], with extra variables for the CLI (Argon2 settings).
pub(crate) fn user_and_password_client_with(dir: &Path, envs: &[(&str, &str)]) -> (String, String) {
    json_ok(&run(
        cli(dir).args(["role", "put", "--name", "r", "--scope", "read"])
    ));
    let mut c = cli(dir);
    c.envs(envs.iter().copied())
        .args([
            "user",
            "create",
            "--username",
            "ada",
            "--role",
            "r",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"a long password\n")
        .expect("write");
    assert!(child.wait().expect("wait").success());
    let v = json_ok(&run(cli(dir).args([
        "client",
        "create",
        "--name",
        "legacy",
        "--grant-type",
        "password",
        "--grant-type",
        "refresh_token",
        "--scope",
        "read",
        "--scope",
        "offline_access",
    ])));
    let (id, secret) = (
        v["client_id"].as_str().expect("id").to_owned(),
        v["client_secret"].as_str().expect("secret").to_owned(),
    );
    (id, secret)
}

#[test]
fn acknowledged_refresh_rotations_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tmp");
    let (id, secret) = user_and_password_client(dir.path());
    let port = free_port();
    let s = Server::start(dir.path(), port, &[]);
    let grant = |s: &Server, form: &[(&str, &str)]| {
        http()
            .post(format!("{}/oauth/token", s.base))
            .basic_auth(&id, Some(&secret))
            .form(form)
            .send()
            .expect("token")
    };
    let first: Value = grant(
        &s,
        &[
            ("grant_type", "password"),
            ("username", "ada"),
            ("password", "a long password"),
            ("scope", "read offline_access"),
        ],
    )
    .json()
    .expect("json");
    let rt1 = first["refresh_token"].as_str().expect("rt").to_owned();
    // Ten rotations, each acknowledged; SIGKILL right after the last 200.
    let mut rt = rt1.clone();
    let mut old = Vec::new();
    for _ in 0..10 {
        let r = grant(
            &s,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        );
        assert_eq!(r.status(), 200);
        old.push(rt);
        rt = r.json::<Value>().expect("json")["refresh_token"]
            .as_str()
            .expect("rt")
            .to_owned();
    }
    s.kill9();
    let s = Server::start(dir.path(), port, &[]);
    // The newest token works (its insert survived), so rotation goes on from it…
    let r = grant(
        &s,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    );
    assert_eq!(
        r.status(),
        200,
        "the last acknowledged rotation survived kill -9"
    );
    let next = r.json::<Value>().expect("json")["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    // …and a rotated one is still spent: using it is a reuse, which revokes the family.
    let r = grant(
        &s,
        &[("grant_type", "refresh_token"), ("refresh_token", &old[9])],
    );
    assert_eq!(
        r.status(),
        400,
        "a spent refresh token stays spent after kill -9"
    );
    let r = grant(
        &s,
        &[("grant_type", "refresh_token"), ("refresh_token", &next)],
    );
    assert_eq!(r.status(), 400, "the family was revoked by the reuse");
}

#[test]
fn no_sign_in_secret_appears_in_a_log_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let (id, secret) = user_and_password_client(dir.path());
    let port = free_port();
    let s = Server::start(dir.path(), port, &[("PORTCULLIS_LOG_LEVEL", "trace")]);
    let grant = |form: &[(&str, &str)]| -> Value {
        http()
            .post(format!("{}/oauth/token", s.base))
            .basic_auth(&id, Some(&secret))
            .form(form)
            .send()
            .expect("token")
            .json()
            .expect("json")
    };
    let first = grant(&[
        ("grant_type", "password"),
        ("username", "ada"),
        ("password", "a long password"),
        ("scope", "read offline_access"),
    ]);
    let rt1 = first["refresh_token"].as_str().expect("rt").to_owned();
    let rt2 = grant(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)])["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    let wrong = grant(&[
        ("grant_type", "password"),
        ("username", "ada"),
        ("password", "a wrong password guess"),
    ]);
    assert_eq!(wrong["error"], "invalid_grant");
    // The browser sign-in: the form's password and the session cookie it sets.
    let browser = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = browser
        .get(format!("{}/login", s.base))
        .send()
        .expect("login page")
        .text()
        .expect("html");
    let csrf = portcullis_testkit::field(&page, "csrf").expect("csrf");
    let res = browser
        .post(format!("{}/login", s.base))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "ada"),
            ("password", "a long password"),
            ("continue", "/account"),
        ])
        .send()
        .expect("sign in");
    assert_eq!(res.status(), 303);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("portcullis_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned();
    let logs = s.kill9();
    assert!(logs.lines().count() > 10, "trace logging produced output");
    for (what, needle) in [
        ("password", "a long password"),
        ("wrong password", "a wrong password guess"),
        ("refresh token", &rt1[5..]),
        ("rotated refresh token", &rt2[5..]),
        (
            "access token signature",
            first["access_token"]
                .as_str()
                .expect("at")
                .rsplit('.')
                .next()
                .expect("sig"),
        ),
        ("session cookie", &cookie[7..]),
    ] {
        assert!(!logs.contains(needle), "{what} leaked into the logs");
    }
}
