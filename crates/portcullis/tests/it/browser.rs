//! A real browser (Debian's headless Chromium, driven by chromedriver through
//! fantoccini) signs in, consents, enrols TOTP, signs in again with a code, and
//! the app — a tiny axum server on loopback — receives codes it exchanges for
//! tokens. Screenshots of the login, consent and enrolment pages are saved under
//! `target/test-artifacts/`.
//!
//! Needs `chromium` and `chromium-driver` (`.ci/run` installs them); elsewhere it
//! says it skipped, unless `CI` is set, where a missing browser fails the test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use portcullis_testkit::{query_param, totp_code, urlencode, TestApp, TestClient, VERIFIER};
use serde_json::{json, Value};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<PathBuf> {
    let p = std::env::var_os("PORTCULLIS_TEST_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    (p.exists() && PathBuf::from("/usr/bin/chromium").exists()).then_some(p)
}

fn artifacts() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&d).expect("artifact dir");
    d
}

/// The relying party: records the query of every request to `/cb`.
async fn app_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let router = axum::Router::new().route(
        "/cb",
        axum::routing::get(move |axum::extract::RawQuery(q): axum::extract::RawQuery| {
            let s = s.clone();
            async move {
                s.lock().expect("lock").push(q.unwrap_or_default());
                axum::response::Html(
                    "<!doctype html><title>App</title><h1 id=\"app\">Signed in to the app</h1>",
                )
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(l, router).await;
    });
    (base, seen)
}

async fn wait_for(b: &fantoccini::Client, css: &str) {
    b.wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("waiting for {css}: {e}"));
}

async fn text(b: &fantoccini::Client, css: &str) -> String {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

async fn fill(b: &fantoccini::Client, css: &str, value: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(value)
        .await
        .expect("type");
}

async fn click(b: &fantoccini::Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .expect("click");
}

async fn shot(b: &fantoccini::Client, name: &str) {
    std::fs::write(
        artifacts().join(name),
        b.screenshot().await.expect("screenshot"),
    )
    .expect("save screenshot");
}

async fn sign_in(b: &fantoccini::Client, user: &str, password: &str) {
    fill(b, "#username", user).await;
    fill(b, "#password", password).await;
    click(b, "button[type=submit]").await;
}

/// Waits for the app's page, checks the callback's `state`, and exchanges its code.
async fn at_the_app(
    b: &fantoccini::Client,
    app: &TestApp,
    client: &TestClient,
    cb: &str,
    seen: &Mutex<Vec<String>>,
    state: &str,
) -> Value {
    wait_for(b, "#app").await;
    let q = seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("callback");
    let url = format!("{cb}?{q}");
    assert_eq!(query_param(&url, "state").as_deref(), Some(state));
    exchange(app, client, cb, &query_param(&url, "code").expect("code")).await
}

async fn exchange(app: &TestApp, c: &TestClient, cb: &str, code: &str) -> Value {
    let res = app
        .post_form(
            "/oauth/token",
            &format!(
                "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}",
                urlencode(code),
                urlencode(cb)
            ),
            Some(c),
        )
        .await;
    assert_eq!(res.status(), 200, "the app exchanges its code");
    res.json().await.expect("json")
}

fn id_claims(jwt: &str) -> Value {
    use base64::Engine;
    let p = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .expect("b64"),
    )
    .expect("json")
}

#[tokio::test]
async fn chromium_signs_in_consents_enrols_totp_and_signs_in_with_a_code() {
    use portcullis_core::clock::Clock;
    let Some(driver_bin) = chromedriver() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium and chromium-driver are required in CI (.ci/run installs them)"
        );
        eprintln!("skipped: browser (install Debian's chromium and chromium-driver)");
        return;
    };
    let app = TestApp::spawn().await;
    let (rp, seen) = app_server().await;
    let cb = format!("{rp}/cb");
    let mut spec = TestApp::web_app("Photo Printer");
    spec.redirect_uris = vec![cb.clone()];
    spec.scopes.push("photos:read".into());
    let client = app.client(spec).await;
    app.user("ada", "analytical-engine-1843", &["photos:read"])
        .await;

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let _driver = Driver(
        Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let profile = tempfile::tempdir().expect("profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=900,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }),
    );
    let mut browser = None;
    for _ in 0..100 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                browser = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let b = browser.expect("chromedriver session");
    let challenge = portcullis_core::pkce::CodeChallenge::of_verifier(VERIFIER);
    let authorize = format!(
        "{}/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state=xyz&nonce=abc&code_challenge={}&code_challenge_method=S256",
        app.base,
        client.id,
        urlencode(&cb),
        urlencode("openid profile photos:read"),
        challenge.as_str()
    );

    // 1. Sign in with the password; the login page has labelled fields.
    b.goto(&authorize).await.expect("authorize");
    if b.wait()
        .for_element(Locator::Css("#username"))
        .await
        .is_err()
    {
        let url = b.current_url().await.expect("url");
        let src = b.source().await.unwrap_or_default();
        panic!("no login page at {url}: {}", &src[..src.len().min(2000)]);
    }
    assert_eq!(b.title().await.expect("title"), "Sign in · Portcullis");
    shot(&b, "login.png").await;
    assert_eq!(text(&b, "label[for=password]").await, "Password");
    sign_in(&b, "ada", "analytical-engine-1843").await;

    // 2. Consent, listing the scopes in words.
    wait_for(&b, "#allow").await;
    let scopes = text(&b, "#scopes").await;
    assert!(
        scopes.contains("Confirm who you are") && scopes.contains("Read your photos"),
        "{scopes}"
    );
    shot(&b, "consent.png").await;
    click(&b, "#allow").await;

    // 3. The app got a code (and the state), and exchanges it.
    let t = at_the_app(&b, &app, &client, &cb, &seen, "xyz").await;
    assert_eq!(
        id_claims(t["id_token"].as_str().expect("id"))["amr"],
        json!(["pwd"])
    );

    // 4. Enrol TOTP on the account page.
    b.goto(&format!("{}/account/mfa", app.base))
        .await
        .expect("enrol");
    wait_for(&b, "#secret").await;
    assert!(
        b.find(Locator::Css("figure.qr svg")).await.is_ok(),
        "the QR code is an inline SVG"
    );
    shot(&b, "enrol-totp.png").await;
    let secret = text(&b, "#secret").await;
    fill(&b, "#code", &totp_code(&secret, app.clock.now())).await;
    click(&b, "button[type=submit]").await;
    wait_for(&b, "#recovery-codes").await;
    let codes = b
        .find_all(Locator::Css("#recovery-codes li"))
        .await
        .expect("codes");
    assert_eq!(codes.len(), 10);

    // 5. Sign out from the account page.
    b.goto(&format!("{}/account", app.base))
        .await
        .expect("account");
    wait_for(&b, "#logout").await;
    click(&b, "#logout").await;
    wait_for(&b, "#signed-out").await;

    // 6. Sign in again: password, then a code from the authenticator (the next time
    //    step: the enrolment code is spent); consent is remembered.
    app.clock.advance(30);
    b.goto(&authorize.replace("state=xyz", "state=second"))
        .await
        .expect("authorize");
    wait_for(&b, "#username").await;
    sign_in(&b, "ada", "analytical-engine-1843").await;
    wait_for(&b, "#code").await;
    fill(&b, "#code", &totp_code(&secret, app.clock.now())).await;
    click(&b, "button[type=submit]").await;
    let t = at_the_app(&b, &app, &client, &cb, &seen, "second").await;
    let idc = id_claims(t["id_token"].as_str().expect("id"));
    assert_eq!(idc["amr"], json!(["pwd", "otp"]));
    assert_eq!(idc["acr"], "urn:portcullis:acr:mfa");
    b.close().await.expect("close");
}
