//! Test harness: [`TestApp::spawn`] runs the real router on `127.0.0.1:0` over a
//! fresh SQLite file in a temp directory, with a [`ManualClock`] the test moves.
//! Its HTTP client keeps cookies and never follows redirects.
//!
//! Fixtures are builders returning typed actors: `app.client(TestApp::cc("svc")).await`.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: a failure here is a failed test"
)]

use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_core::clock::ManualClock;
use portcullis_server::config::Settings;
use portcullis_server::AppState;
use portcullis_service::clients::NewClient;
use portcullis_service::Authority;

/// A running server for one test.
#[derive(Debug)]
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, also the issuer.
    pub base: String,
    /// Cookie-keeping, non-redirecting client.
    pub http: reqwest::Client,
    /// The clock the server reads.
    pub clock: ManualClock,
    /// Direct access to the service layer (for assertions on state).
    pub authority: Arc<Authority>,
    /// The settings the server runs with.
    pub settings: Settings,
    /// The temp directory holding the database and master key.
    pub dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

/// A registered client and its secret.
#[derive(Debug, Clone)]
pub struct TestClient {
    /// client_id
    pub id: String,
    /// client_secret
    pub secret: String,
}

/// Configures a [`TestApp`] before it starts.
pub struct TestAppBuilder {
    tweak: Box<dyn FnOnce(&mut Settings) + Send>,
}

impl std::fmt::Debug for TestAppBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestAppBuilder")
    }
}

impl TestAppBuilder {
    /// Adjusts settings (the issuer and database are set by the harness).
    pub fn settings(mut self, f: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.tweak = Box::new(f);
        self
    }

    /// Starts the server.
    pub async fn spawn(self) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let mut settings = Settings::default();
        settings.server.issuer = base.clone();
        settings.server.listen = addr;
        settings.database.url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("portcullis.db").display()
        );
        settings.keys.master_key_file = dir.path().join("master.key");
        (self.tweak)(&mut settings);
        settings.validate().expect("test settings are valid");
        let clock = ManualClock::starting_now();
        let authority = portcullis_server::prepare(&settings, Arc::new(clock.clone()))
            .await
            .expect("prepare");
        let app = portcullis_server::router(
            AppState::new(authority.clone(), settings.clone()).expect("state"),
        )
        .into_make_service_with_connect_info::<SocketAddr>();
        let jobs = portcullis_server::spawn_jobs(authority.clone(), &settings);
        let server = tokio::spawn(async move {
            let _jobs = AbortOnDrop(jobs);
            axum::serve(listener, app).await.expect("server");
        });
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        TestApp {
            addr,
            base,
            http,
            clock,
            authority,
            settings,
            dir,
            server,
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    /// A builder for non-default settings.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            tweak: Box::new(|_| {}),
        }
    }

    /// Starts a server with default settings.
    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    /// An absolute URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A `client_credentials` client with scopes `read write` and audience `https://api.test`.
    pub fn cc(name: &str) -> NewClient {
        NewClient {
            name: name.into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["read".into(), "write".into()],
            audiences: vec!["https://api.test".into()],
            ..NewClient::default()
        }
    }

    /// Registers a client through the service layer.
    pub async fn client(&self, spec: NewClient) -> TestClient {
        let c = self
            .authority
            .create_client(spec)
            .await
            .expect("create client");
        TestClient {
            id: c.client.client_id,
            secret: c.client_secret.expect("confidential client"),
        }
    }

    /// POSTs a form body with optional Basic credentials.
    pub async fn post_form(
        &self,
        path: &str,
        body: &str,
        basic: Option<&TestClient>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
        if let Some(c) = basic {
            req = req.basic_auth(&c.id, Some(&c.secret));
        }
        req.send().await.expect("request")
    }

    /// Gets a `client_credentials` access token (asserting success).
    pub async fn token(&self, c: &TestClient, extra: &str) -> String {
        let res = self
            .post_form(
                "/oauth/token",
                &format!("grant_type=client_credentials{extra}"),
                Some(c),
            )
            .await;
        assert_eq!(res.status(), 200, "token request failed");
        let v: serde_json::Value = res.json().await.expect("json");
        v["access_token"].as_str().expect("access_token").to_owned()
    }

    /// Rows in a table of the server's database (read through a second connection).
    pub async fn count_rows(&self, table: &str) -> i64 {
        assert!(
            table.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "table name"
        );
        let url = format!(
            "sqlite://{}?mode=ro",
            self.dir.path().join("portcullis.db").display()
        );
        let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .expect("count");
        pool.close().await;
        n
    }

    /// The raw bytes of the server's database files (main file and WAL), for
    /// asserting that no secret is stored in clear.
    pub fn database_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for f in std::fs::read_dir(self.dir.path()).expect("dir") {
            let p = f.expect("entry").path();
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("portcullis.db"))
            {
                bytes.extend(std::fs::read(&p).expect("read"));
            }
        }
        bytes
    }

    /// Introspects `token` as client `c`.
    pub async fn introspect(&self, c: &TestClient, token: &str) -> serde_json::Value {
        let body = format!("token={}", urlencode(token));
        let res = self.post_form("/oauth/introspect", &body, Some(c)).await;
        assert_eq!(res.status(), 200, "introspection failed");
        res.json().await.expect("json")
    }
}

/// Percent-encodes a form value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
