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
        // The cheapest Argon2id the config accepts, so sign-in tests stay fast on
        // two cores; the benchmarks and one test use the production parameters.
        settings.signin.argon2_memory_kib = 8 * 1024;
        settings.signin.argon2_iterations = 1;
        (self.tweak)(&mut settings);
        settings.validate().expect("test settings are valid");
        let clock = ManualClock::starting_now();
        let authority = portcullis_server::prepare(&settings, Arc::new(clock.clone()))
            .await
            .expect("prepare");
        let app = portcullis_server::router(
            AppState::new(authority.clone(), settings.clone()).expect("state"),
        );
        let jobs = portcullis_server::spawn_jobs(authority.clone(), &settings);
        // The production accept loop, with its connection limits and timeouts.
        let limits = portcullis_server::listener::ConnectionLimits::from_settings(&settings.server);
        let server = tokio::spawn(async move {
            let _jobs = AbortOnDrop(jobs);
            let (_stop, stopped) = tokio::sync::watch::channel(false);
            portcullis_server::listener::serve(listener, None, app, limits, stopped)
                .await
                .expect("server");
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

    /// Runs one SQL statement on the server's database through a second
    /// connection, behind the service's back: for putting the store into a state
    /// the service would only pass through (a step of a two-step change that did
    /// not happen). Returns the number of rows changed.
    pub async fn execute_sql(&self, sql: &str) -> u64 {
        let url = format!(
            "sqlite://{}",
            self.dir.path().join("portcullis.db").display()
        );
        let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
        let n = sqlx::query(sql)
            .execute(&pool)
            .await
            .expect("execute")
            .rows_affected();
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

/// A fresh schema on the PostgreSQL server of `PORTCULLIS_TEST_DATABASE_URL`, for
/// servers (`settings.database.url = schema.url.clone()`) that share one database, and
/// for the store's and the service's own PostgreSQL tests (`schema.options()`).
#[derive(Debug)]
pub struct PgSchema {
    /// The database URL with `search_path` set to the schema.
    pub url: String,
    base: String,
    name: String,
}

impl PgSchema {
    /// Creates the schema, or returns `None` (printing `skipped:` on stderr, which
    /// libtest does not capture) when `PORTCULLIS_TEST_DATABASE_URL` is unset.
    pub async fn create(test: &str) -> Option<PgSchema> {
        let Ok(base) = std::env::var("PORTCULLIS_TEST_DATABASE_URL") else {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: postgres (set PORTCULLIS_TEST_DATABASE_URL to run {test})"
            );
            return None;
        };
        let name = format!("pc_app_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&base)
            .await
            .expect("postgres reachable (PORTCULLIS_TEST_DATABASE_URL)");
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&pool)
            .await
            .expect("create schema");
        pool.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(PgSchema {
            url: format!("{base}{sep}options[search_path]={name}"),
            base,
            name,
        })
    }

    /// Connection options for the schema (the store's own tests connect with these).
    pub fn options(&self) -> sqlx::postgres::PgConnectOptions {
        use std::str::FromStr;
        sqlx::postgres::PgConnectOptions::from_str(&self.base)
            .expect("postgres url")
            .options([("search_path", self.name.as_str())])
    }

    /// Drops the schema (after the servers using it have stopped).
    pub async fn drop(self) {
        let pool = sqlx::PgPool::connect(&self.base).await.expect("postgres");
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&pool)
            .await
            .expect("drop schema");
        pool.close().await;
    }
}

/// A browser for sign-in flows: its own cookie jar, no redirects followed.
#[derive(Debug, Clone)]
pub struct TestBrowser {
    /// The HTTP client (cookie-keeping, non-redirecting).
    pub http: reqwest::Client,
    base: String,
}

/// PKCE verifier used by the helpers (43+ unreserved characters).
pub const VERIFIER: &str = "test-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";

impl TestBrowser {
    /// GET a path (or absolute URL) on the server.
    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        self.http.get(url).send().await.expect("get")
    }

    /// POST a form to a path.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .expect("post")
    }

    /// GETs `path` and returns the CSRF token of the page's first form.
    pub async fn csrf(&self, path: &str) -> String {
        let html = self.get(path).await.text().await.expect("html");
        field(&html, "csrf").unwrap_or_else(|| panic!("no csrf field on {path}: {html}"))
    }

    /// Signs in through `/login` and returns where the server sends the browser next.
    pub async fn sign_in(&self, username: &str, password: &str, next: &str) -> reqwest::Response {
        let csrf = self
            .csrf(&format!("/login?continue={}", urlencode(next)))
            .await;
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
                ("continue", next),
            ],
        )
        .await
    }
}

/// The value of the first `<input name="{name}" value="…">` of a page.
pub fn field(html: &str, name: &str) -> Option<String> {
    let pat = format!("name=\"{name}\" value=\"");
    let start = html.find(&pat)? + pat.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The `Location` header of a response.
pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on a {} response", res.status()))
        .to_str()
        .expect("location")
        .to_owned()
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let u = reqwest::Url::parse(url)
        .or_else(|_| reqwest::Url::parse(&format!("http://x{url}")))
        .ok()?;
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl TestApp {
    /// A fresh browser (empty cookie jar).
    pub fn browser(&self) -> TestBrowser {
        TestBrowser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            base: self.base.clone(),
        }
    }

    /// Creates a user with a password, and a role `member` allowing `scopes`.
    pub async fn user(&self, username: &str, password: &str, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.authority
            .put_role("member", &scopes)
            .await
            .expect("role");
        self.authority
            .create_user(portcullis_service::pats::NewUser {
                username: username.into(),
                email: Some(format!("{username}@example.com")),
                roles: vec!["member".into()],
                password: Some(portcullis_core::secret::SecretString::new(password)),
                mfa_required: false,
            })
            .await
            .expect("user")
            .id
    }

    /// A confidential web-app client for the code flow with redirect URI
    /// `https://app.test/cb`, scopes `openid profile email offline_access read write`.
    pub fn web_app(name: &str) -> NewClient {
        NewClient {
            name: name.into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: vec!["https://app.test/cb".into()],
            post_logout_redirect_uris: vec!["https://app.test/bye".into()],
            scopes: [
                "openid",
                "profile",
                "email",
                "offline_access",
                "read",
                "write",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            ..NewClient::default()
        }
    }

    /// The authorization URL for `client` with `scope`, state `st` and PKCE [`VERIFIER`].
    pub fn authorize_url(&self, client_id: &str, scope: &str, extra: &str) -> String {
        let challenge = portcullis_core::pkce::CodeChallenge::of_verifier(VERIFIER);
        format!(
            "/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope={}&state=st-123&nonce=n-456&code_challenge={}&code_challenge_method=S256{extra}",
            urlencode("https://app.test/cb"),
            urlencode(scope),
            challenge.as_str()
        )
    }

    /// Runs the whole browser side of the code flow for a signed-out browser: sign
    /// in, allow on the consent page when asked; returns the redirect to the client.
    pub async fn code_flow(
        &self,
        b: &TestBrowser,
        client_id: &str,
        scope: &str,
        user: (&str, &str),
    ) -> String {
        let start = self.authorize_url(client_id, scope, "");
        let res = b.get(&start).await;
        assert_eq!(
            res.status(),
            303,
            "authorize sends a signed-out browser to sign in"
        );
        let login = location(&res);
        let next = query_param(&login, "continue").expect("continue");
        let res = b.sign_in(user.0, user.1, &next).await;
        assert_eq!(res.status(), 303, "sign-in succeeds");
        let res = b.get(&location(&res)).await;
        let res = if res.status() == 200 {
            let html = res.text().await.expect("consent page");
            let csrf = field(&html, "csrf").expect("consent csrf");
            let request = field(&html, "request").expect("consent request");
            b.post(
                "/oauth/authorize",
                &[
                    ("csrf", &csrf),
                    ("request", &request),
                    ("decision", "allow"),
                ],
            )
            .await
        } else {
            res
        };
        assert_eq!(res.status(), 303, "consent or remembered consent redirects");
        location(&res)
    }

    /// Exchanges `code` at the token endpoint as `c` (Basic) with [`VERIFIER`].
    pub async fn exchange(&self, c: &TestClient, code: &str) -> reqwest::Response {
        self.post_form(
            "/oauth/token",
            &format!(
                "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}",
                urlencode(code),
                urlencode("https://app.test/cb")
            ),
            Some(c),
        )
        .await
    }
}

/// The TOTP code (RFC 6238: SHA-1, 6 digits, 30 s) of a base32 seed at time `at`.
pub fn totp_code(secret_b32: &str, at: i64) -> String {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .expect("base32 seed");
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret,
        None,
        "test".into(),
    )
    .expect("totp")
    .generate(at as u64)
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
