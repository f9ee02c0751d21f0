//! Fixtures: a server with a resource-server client and callers, a verifier
//! built against it, hand-made tokens signed with the server's own keys, and a
//! TCP proxy that can cut the event stream.

use portcullis_core::clock::Clock as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::jose::SigningAlg;
use portcullis_service::clients::NewClient;
use portcullis_testkit::{TestApp, TestClient};
use portcullis_verify::{Verifier, VerifierBuilder};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The resource server's audience.
pub(crate) const AUD: &str = "https://api.test";

pub(crate) struct Env {
    pub(crate) app: TestApp,
    /// The resource server: introspects and reads the feed.
    pub(crate) rs: TestClient,
    /// Callers getting client_credentials tokens for `AUD`, ES256 and EdDSA.
    pub(crate) es256: TestClient,
    pub(crate) eddsa: TestClient,
    /// Only with [`env_behind_proxy`].
    pub(crate) proxy: Option<Proxy>,
}

fn caller(name: &str, alg: &str) -> NewClient {
    NewClient {
        default_audience: Some(AUD.into()),
        access_token_alg: Some(alg.into()),
        ..TestApp::cc(name)
    }
}

async fn clients(app: TestApp, proxy: Option<Proxy>) -> Env {
    let rs = app.client(TestApp::cc("resource server")).await;
    let es256 = app.client(caller("caller es256", "ES256")).await;
    let eddsa = app.client(caller("caller eddsa", "EdDSA")).await;
    Env {
        app,
        rs,
        es256,
        eddsa,
        proxy,
    }
}

pub(crate) async fn env() -> Env {
    let app = TestApp::builder()
        .settings(|s| s.forwardauth.audiences = vec![AUD.into()])
        .spawn()
        .await;
    clients(app, None).await
}

/// A server whose issuer is a proxy in front of it: everything the library does
/// goes through the proxy.
pub(crate) async fn env_behind_proxy() -> Env {
    let proxy = Proxy::bind().await;
    let issuer = proxy.url();
    let target = proxy.target.clone();
    let app = TestApp::builder()
        .settings(move |s| {
            s.server.issuer = issuer;
            s.forwardauth.audiences = vec![AUD.into()];
        })
        .spawn()
        .await;
    match target.lock() {
        Ok(mut t) => *t = Some(app.addr),
        Err(p) => *p.into_inner() = Some(app.addr),
    }
    clients(app, Some(proxy)).await
}

impl Env {
    pub(crate) fn issuer(&self) -> String {
        self.app.settings.server.issuer.clone()
    }

    pub(crate) fn builder(&self) -> VerifierBuilder {
        Verifier::builder(self.issuer(), AUD).client_credentials(&self.rs.id, &self.rs.secret)
    }

    pub(crate) async fn verifier(&self) -> Verifier {
        self.builder().build().await.expect("verifier")
    }

    /// A verifier that only checks offline (no feed, no introspection).
    pub(crate) async fn offline_verifier(&self) -> Verifier {
        Verifier::builder(self.issuer(), AUD)
            .build()
            .await
            .expect("verifier")
    }

    pub(crate) async fn token(&self, c: &TestClient) -> String {
        self.app.token(c, "").await
    }

    /// Signs any header and claims with the server's active key for `alg`.
    pub(crate) fn sign(&self, alg: SigningAlg, header: &Value, claims: &Value) -> String {
        let msg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        self.sign_message(alg, &msg)
    }

    /// Signs a `header.payload` string (for payloads that are not canonical JSON).
    pub(crate) fn sign_message(&self, alg: SigningAlg, msg: &str) -> String {
        let ring = self.app.authority.keyring();
        let key = ring.signer(alg).expect("active key");
        let sig = key.sign_raw(msg.as_bytes()).expect("sign");
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    pub(crate) fn kid(&self, alg: SigningAlg) -> String {
        self.app
            .authority
            .keyring()
            .signer(alg)
            .expect("key")
            .kid()
            .to_owned()
    }

    /// Valid claims for `AUD`, issued by the server, now.
    pub(crate) fn claims(&self) -> Value {
        let now = self.app.clock.now();
        json!({
            "iss": self.issuer(), "sub": self.es256.id, "aud": AUD, "exp": now + 600,
            "iat": now, "jti": format!("hand-{}", uuid_like()), "client_id": self.es256.id,
            "scope": "read",
        })
    }

    pub(crate) fn header(&self, alg: SigningAlg) -> Value {
        json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": self.kid(alg)})
    }

    /// What the server's introspection says of `token`, asked by the resource server.
    /// A token too large for the request body limit is refused with 413 before it is read.
    pub(crate) async fn server_active(&self, token: &str) -> bool {
        let body = format!("token={}", portcullis_testkit::urlencode(token));
        let res = self
            .app
            .post_form("/oauth/introspect", &body, Some(&self.rs))
            .await;
        match res.status().as_u16() {
            200 => res.json::<Value>().await.expect("json")["active"] == true,
            413 => false,
            other => panic!("introspection answered {other}"),
        }
    }

    /// The forward-auth status for `Authorization: <scheme> token`.
    pub(crate) async fn forward_auth(&self, scheme: &str, token: &str) -> u16 {
        self.app
            .http
            .get(self.app.url("/auth/verify"))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .expect("forward-auth")
            .status()
            .as_u16()
    }
}

fn uuid_like() -> String {
    let mut b = [0u8; 12];
    aws_lc_rs::rand::fill(&mut b).expect("rand");
    URL_SAFE_NO_PAD.encode(b)
}

/// A loopback TCP proxy. `block_events` drops connections that request the event
/// stream (and cuts the open ones); `block_all` drops everything.
#[derive(Clone)]
pub(crate) struct Proxy {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    pub(crate) block_events: Arc<AtomicBool>,
    pub(crate) block_all: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn bind() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let p = Self {
            addr: listener.local_addr().expect("addr"),
            target: Arc::new(Mutex::new(None)),
            block_events: Arc::new(AtomicBool::new(false)),
            block_all: Arc::new(AtomicBool::new(false)),
            open: Arc::new(Mutex::new(Vec::new())),
        };
        let me = p.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let me = me.clone();
                let open = me.open.clone();
                let handle = tokio::spawn(async move {
                    let mut first = vec![0u8; 4096];
                    let Ok(n) = inbound.read(&mut first).await else {
                        return;
                    };
                    let is_events = first[..n].starts_with(b"GET /oauth/events");
                    if me.block_all.load(Ordering::SeqCst)
                        || (is_events && me.block_events.load(Ordering::SeqCst))
                    {
                        return;
                    }
                    let target = match me.target.lock() {
                        Ok(t) => *t,
                        Err(p) => *p.into_inner(),
                    };
                    let Some(target) = target else { return };
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    if outbound.write_all(&first[..n]).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                let mut g = match open.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                g.retain(|h| !h.is_finished());
                g.push(handle);
            }
        });
        p
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every open connection through the proxy.
    pub(crate) fn cut(&self) {
        let mut g = match self.open.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for h in g.drain(..) {
            h.abort();
        }
    }
}

/// Polls `f` every 10 ms until it is true or `limit` passes; returns the time taken.
pub(crate) async fn until(
    limit: std::time::Duration,
    mut f: impl FnMut() -> bool,
) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    f().then(|| start.elapsed())
}
