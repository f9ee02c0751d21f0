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
use portcullis_testkit::{query_param, urlencode, TestApp, TestClient, VERIFIER};
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

fn totp_now(secret_b32: &str, at: i64) -> String {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .expect("base32");
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret,
        None,
        "ada".into(),
    )
    .expect("totp")
    .generate(at as u64)
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
    let shots = artifacts();
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
    std::fs::write(shots.join("login.png"), b.screenshot().await.expect("shot")).expect("save");
    let label = b
        .find(Locator::Css("label[for=password]"))
        .await
        .expect("label");
    assert_eq!(label.text().await.expect("text"), "Password");
    b.find(Locator::Css("#username"))
        .await
        .expect("u")
        .send_keys("ada")
        .await
        .expect("type");
    b.find(Locator::Css("#password"))
        .await
        .expect("p")
        .send_keys("analytical-engine-1843")
        .await
        .expect("type");
    b.find(Locator::Css("button[type=submit]"))
        .await
        .expect("btn")
        .click()
        .await
        .expect("submit");

    // 2. Consent, listing the scopes in words.
    b.wait()
        .for_element(Locator::Css("#allow"))
        .await
        .expect("consent page");
    let scopes = b
        .find(Locator::Css("#scopes"))
        .await
        .expect("scopes")
        .text()
        .await
        .expect("text");
    assert!(
        scopes.contains("Confirm who you are") && scopes.contains("Read your photos"),
        "{scopes}"
    );
    std::fs::write(
        shots.join("consent.png"),
        b.screenshot().await.expect("shot"),
    )
    .expect("save");
    b.find(Locator::Css("#allow"))
        .await
        .expect("allow")
        .click()
        .await
        .expect("click");

    // 3. The app got a code (and the state), and exchanges it.
    b.wait()
        .for_element(Locator::Css("#app"))
        .await
        .expect("back at the app");
    let q = seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("callback");
    let url = format!("{cb}?{q}");
    assert_eq!(query_param(&url, "state").as_deref(), Some("xyz"));
    let t = exchange(
        &app,
        &client,
        &cb,
        &query_param(&url, "code").expect("code"),
    )
    .await;
    assert_eq!(
        id_claims(t["id_token"].as_str().expect("id"))["amr"],
        json!(["pwd"])
    );

    // 4. Enrol TOTP on the account page.
    b.goto(&format!("{}/account/mfa", app.base))
        .await
        .expect("enrol");
    b.wait()
        .for_element(Locator::Css("#secret"))
        .await
        .expect("enrol page");
    assert!(
        b.find(Locator::Css("figure.qr svg")).await.is_ok(),
        "the QR code is an inline SVG"
    );
    std::fs::write(
        shots.join("enrol-totp.png"),
        b.screenshot().await.expect("shot"),
    )
    .expect("save");
    let secret = b
        .find(Locator::Css("#secret"))
        .await
        .expect("secret")
        .text()
        .await
        .expect("text");
    let code = totp_now(&secret, app.clock.now());
    b.find(Locator::Css("#code"))
        .await
        .expect("code")
        .send_keys(&code)
        .await
        .expect("type");
    b.find(Locator::Css("button[type=submit]"))
        .await
        .expect("btn")
        .click()
        .await
        .expect("submit");
    b.wait()
        .for_element(Locator::Css("#recovery-codes"))
        .await
        .expect("recovery codes");
    let codes = b
        .find_all(Locator::Css("#recovery-codes li"))
        .await
        .expect("codes");
    assert_eq!(codes.len(), 10);

    // 5. Sign out from the account page.
    b.goto(&format!("{}/account", app.base))
        .await
        .expect("account");
    b.wait()
        .for_element(Locator::Css("#logout"))
        .await
        .expect("account page");
    b.find(Locator::Css("#logout"))
        .await
        .expect("logout")
        .click()
        .await
        .expect("click");
    b.wait()
        .for_element(Locator::Css("#signed-out"))
        .await
        .expect("signed out");

    // 6. Sign in again: password, then a code from the authenticator (the next time
    //    step: the enrolment code is spent); consent is remembered.
    app.clock.advance(30);
    b.goto(&authorize.replace("state=xyz", "state=second"))
        .await
        .expect("authorize");
    b.wait()
        .for_element(Locator::Css("#username"))
        .await
        .expect("login page");
    b.find(Locator::Css("#username"))
        .await
        .expect("u")
        .send_keys("ada")
        .await
        .expect("type");
    b.find(Locator::Css("#password"))
        .await
        .expect("p")
        .send_keys("analytical-engine-1843")
        .await
        .expect("type");
    b.find(Locator::Css("button[type=submit]"))
        .await
        .expect("btn")
        .click()
        .await
        .expect("submit");
    b.wait()
        .for_element(Locator::Css("#code"))
        .await
        .expect("second factor page");
    let code = totp_now(&secret, app.clock.now());
    b.find(Locator::Css("#code"))
        .await
        .expect("code")
        .send_keys(&code)
        .await
        .expect("type");
    b.find(Locator::Css("button[type=submit]"))
        .await
        .expect("btn")
        .click()
        .await
        .expect("submit");
    b.wait()
        .for_element(Locator::Css("#app"))
        .await
        .expect("back at the app");
    let q = seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("callback");
    let url = format!("{cb}?{q}");
    assert_eq!(query_param(&url, "state").as_deref(), Some("second"));
    let t = exchange(
        &app,
        &client,
        &cb,
        &query_param(&url, "code").expect("code"),
    )
    .await;
    let idc = id_claims(t["id_token"].as_str().expect("id"));
    assert_eq!(idc["amr"], json!(["pwd", "otp"]));
    assert_eq!(idc["acr"], "urn:portcullis:acr:mfa");
    b.close().await.expect("close");
}
