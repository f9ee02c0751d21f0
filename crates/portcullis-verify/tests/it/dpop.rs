//! DPoP (RFC 9449) end to end: the token endpoint binds tokens to the proof's
//! key, and a bound token is refused without a valid proof by that key, by the
//! library (through the example service) and by forward-auth.

use portcullis_core::clock::Clock as _;
use portcullis_core::dpop::DpopKey;
use portcullis_core::jose::SigningAlg;
use portcullis_service::clients::NewClient;
use portcullis_testkit::{query_param, urlencode, TestApp, TestClient, VERIFIER};
use serde_json::{json, Value};

use crate::support::{env, Env, AUD};

async fn dpop_token(
    app: &TestApp,
    c: &TestClient,
    proofs: &[String],
) -> (u16, Value, Option<String>) {
    let mut req = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials");
    for p in proofs {
        req = req.header("dpop", p);
    }
    let res = req.send().await.expect("token");
    let status = res.status().as_u16();
    let nonce = res
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (status, res.json().await.expect("json"), nonce)
}

fn token_url(app: &TestApp) -> String {
    format!("{}/oauth/token", app.settings.server.issuer)
}

#[tokio::test]
async fn the_token_endpoint_binds_tokens_to_the_proof_key() {
    let e = env().await;
    let key = DpopKey::generate(SigningAlg::ES256).expect("key");
    let now = e.app.clock.now();
    let proof = key
        .proof("POST", &token_url(&e.app), None, None, now)
        .expect("proof");
    let (status, body, _) = dpop_token(&e.app, &e.es256, std::slice::from_ref(&proof)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let at = body["access_token"].as_str().expect("token");
    let v = e.offline_verifier().await;
    let claims = v.verify(at).await.expect("claims");
    assert_eq!(claims.jkt(), Some(key.jkt().as_str()));
    let intro = e.app.introspect(&e.rs, at).await;
    assert_eq!(intro["token_type"], "DPoP");
    assert_eq!(intro["cnf"]["jkt"], key.jkt());

    // Refusals at the token endpoint, each `invalid_dpop_proof` with 400.
    let wrong_htu = key
        .proof(
            "POST",
            &format!("{}/elsewhere", e.issuer()),
            None,
            None,
            now,
        )
        .expect("p");
    let wrong_htm = key
        .proof("GET", &token_url(&e.app), None, None, now)
        .expect("p");
    let stale = key
        .proof("POST", &token_url(&e.app), None, None, now - 3600)
        .expect("p");
    let fine = key
        .proof("POST", &token_url(&e.app), None, None, now)
        .expect("p");
    for (name, proofs) in [
        ("replayed", vec![proof.clone()]),
        ("wrong htu", vec![wrong_htu]),
        ("wrong htm", vec![wrong_htm]),
        ("stale iat", vec![stale]),
        ("garbage", vec!["not.a.proof".to_owned()]),
        ("two headers", vec![fine.clone(), fine]),
    ] {
        let (status, body, _) = dpop_token(&e.app, &e.es256, &proofs).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error"], "invalid_dpop_proof", "{name}");
    }
}

#[tokio::test]
async fn clients_that_require_dpop_get_no_token_without_a_proof_and_opaque_tokens_bind_too() {
    let e = env().await;
    let strict = e
        .app
        .client(NewClient {
            require_dpop: true,
            token_format: Some("opaque".into()),
            default_audience: Some(AUD.into()),
            ..TestApp::cc("strict")
        })
        .await;
    let (status, body, _) = dpop_token(&e.app, &strict, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_dpop_proof");
    let key = DpopKey::generate(SigningAlg::EdDSA).expect("key");
    let now = e.app.clock.now();
    let proof = key
        .proof("POST", &token_url(&e.app), None, None, now)
        .expect("p");
    let (status, body, _) = dpop_token(&e.app, &strict, &[proof]).await;
    assert_eq!(status, 200, "{body}");
    let at = body["access_token"].as_str().expect("token");
    assert!(at.starts_with("pcat_"));
    let intro = e.app.introspect(&e.rs, at).await;
    assert_eq!(intro["cnf"]["jkt"], key.jkt());
    assert_eq!(intro["token_type"], "DPoP");
}

#[tokio::test]
async fn a_required_nonce_is_handed_out_and_then_accepted() {
    let app = TestApp::builder()
        .settings(|s| s.dpop.require_nonce = true)
        .spawn()
        .await;
    let c = app
        .client(NewClient {
            default_audience: Some(AUD.into()),
            ..TestApp::cc("nonce")
        })
        .await;
    let key = DpopKey::generate(SigningAlg::ES256).expect("key");
    let now = app.clock.now();
    let first = key
        .proof("POST", &token_url(&app), None, None, now)
        .expect("p");
    let (status, body, nonce) = dpop_token(&app, &c, &[first]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "use_dpop_nonce");
    let nonce = nonce.expect("DPoP-Nonce header");
    let wrong = key
        .proof("POST", &token_url(&app), None, Some("0.nope"), now)
        .expect("p");
    assert_eq!(
        dpop_token(&app, &c, &[wrong]).await.1["error"],
        "use_dpop_nonce"
    );
    let good = key
        .proof("POST", &token_url(&app), None, Some(&nonce), now)
        .expect("p");
    let (status, body, next) = dpop_token(&app, &c, &[good]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        next.is_some(),
        "successful responses carry the current nonce"
    );
}

#[tokio::test]
async fn a_public_clients_refresh_token_is_bound_to_its_key() {
    let app = TestApp::spawn().await;
    app.user("ada", "correct horse battery", &["read"]).await;
    let spa = app
        .authority
        .create_client(NewClient {
            public: true,
            ..TestApp::web_app("spa")
        })
        .await
        .expect("public client")
        .client
        .client_id;
    let b = app.browser();
    let redirect = app
        .code_flow(
            &b,
            &spa,
            "openid offline_access read",
            ("ada", "correct horse battery"),
        )
        .await;
    let code = query_param(&redirect, "code").expect("code");
    let key = DpopKey::generate(SigningAlg::ES256).expect("key");
    let post = |body: String, proof: Option<String>| {
        let mut req = app
            .http
            .post(app.url("/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        req.send()
    };
    let now = app.clock.now();
    let res = post(
        format!(
            "grant_type=authorization_code&client_id={spa}&code={}&redirect_uri={}&code_verifier={VERIFIER}",
            urlencode(&code),
            urlencode("https://app.test/cb")
        ),
        Some(key.proof("POST", &token_url(&app), None, None, now).expect("p")),
    )
    .await
    .expect("exchange");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["token_type"], "DPoP");
    let rt = body["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let refresh = |rt: &str| {
        format!(
            "grant_type=refresh_token&client_id={spa}&refresh_token={}",
            urlencode(rt)
        )
    };
    // Without a proof, and with another key's proof: refused, and the token stays usable.
    let res = post(refresh(&rt), None).await.expect("refresh");
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "invalid_dpop_proof"
    );
    let other = DpopKey::generate(SigningAlg::ES256).expect("key");
    let res = post(
        refresh(&rt),
        Some(
            other
                .proof("POST", &token_url(&app), None, None, now)
                .expect("p"),
        ),
    )
    .await
    .expect("refresh");
    assert_eq!(res.status(), 400);
    // With the bound key: rotated, and the successor is bound too.
    let res = post(
        refresh(&rt),
        Some(
            key.proof("POST", &token_url(&app), None, None, now)
                .expect("p"),
        ),
    )
    .await
    .expect("refresh");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    let next = body["refresh_token"].as_str().expect("successor");
    let res = post(refresh(next), None).await.expect("refresh");
    assert_eq!(res.status(), 400, "the successor is bound as well");
}

/// Requests to the example service: `GET /hello` with an Authorization header and proofs.
async fn hello(base: &str, auth: &str, proofs: &[String]) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .get(format!("{base}/hello"))
        .header("authorization", auth);
    for p in proofs {
        req = req.header("dpop", p);
    }
    let res = req.send().await.expect("hello");
    let status = res.status().as_u16();
    let www: Vec<String> = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    (status, www.join(" | "))
}

/// Forward-auth for a request the proxy saw as `GET https://api.test/hello`.
async fn forward(e: &Env, auth: &str, proof: Option<&str>) -> (u16, String) {
    let mut req = e
        .app
        .http
        .get(e.app.url("/auth/verify"))
        .header("authorization", auth)
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "api.test")
        .header("x-forwarded-uri", "/hello");
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    let res = req.send().await.expect("forward-auth");
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    (res.status().as_u16(), www)
}

#[tokio::test]
async fn bound_tokens_need_a_fresh_proof_by_their_key_at_the_library_and_forward_auth() {
    let e = env().await;
    let (base, _server) = crate::example::serve(&e).await;
    let key = DpopKey::generate(SigningAlg::ES256).expect("key");
    let now = e.app.clock.now();
    let proof = key
        .proof("POST", &token_url(&e.app), None, None, now)
        .expect("p");
    let (_, body, _) = dpop_token(&e.app, &e.es256, &[proof]).await;
    let at = body["access_token"].as_str().expect("token").to_owned();
    let auth = format!("DPoP {at}");
    let lib_htu = format!("{base}/hello");
    let fa_htu = "https://api.test/hello";

    // Accepted: a fresh proof for this request and token, at each verifier.
    let ok = key.proof("GET", &lib_htu, Some(&at), None, now).expect("p");
    assert_eq!(hello(&base, &auth, std::slice::from_ref(&ok)).await.0, 200);
    let ok_fa = key.proof("GET", fa_htu, Some(&at), None, now).expect("p");
    assert_eq!(forward(&e, &auth, Some(&ok_fa)).await.0, 200);

    let other = DpopKey::generate(SigningAlg::ES256).expect("key");
    for (htu, is_lib) in [(lib_htu.as_str(), true), (fa_htu, false)] {
        let cases: Vec<(&str, String, Option<String>)> = vec![
            (
                "replayed proof",
                auth.clone(),
                Some(if is_lib { ok.clone() } else { ok_fa.clone() }),
            ),
            (
                "wrong htm",
                auth.clone(),
                Some(key.proof("POST", htu, Some(&at), None, now).expect("p")),
            ),
            (
                "wrong htu",
                auth.clone(),
                Some(
                    key.proof("GET", "https://evil.test/hello", Some(&at), None, now)
                        .expect("p"),
                ),
            ),
            (
                "stale iat",
                auth.clone(),
                Some(
                    key.proof("GET", htu, Some(&at), None, now - 600)
                        .expect("p"),
                ),
            ),
            (
                "proof key is not cnf.jkt",
                auth.clone(),
                Some(other.proof("GET", htu, Some(&at), None, now).expect("p")),
            ),
            (
                "missing ath",
                auth.clone(),
                Some(key.proof("GET", htu, None, None, now).expect("p")),
            ),
            (
                "ath of another token",
                auth.clone(),
                Some(key.proof("GET", htu, Some("other"), None, now).expect("p")),
            ),
            ("no proof", auth.clone(), None),
            (
                "bound token as Bearer",
                format!("Bearer {at}"),
                Some(key.proof("GET", htu, Some(&at), None, now).expect("p")),
            ),
        ];
        for (name, authz, proof) in cases {
            let (status, www) = if is_lib {
                hello(&base, &authz, &proof.into_iter().collect::<Vec<_>>()).await
            } else {
                forward(&e, &authz, proof.as_deref()).await
            };
            let at_what = if is_lib { "library" } else { "forward-auth" };
            assert_eq!(status, 401, "{at_what} accepted: {name}");
            assert!(www.contains("DPoP"), "{at_what}, {name}: challenge {www:?}");
        }
    }
    // An unbound token may not claim the DPoP scheme.
    let plain = e.token(&e.es256).await;
    let p = key
        .proof("GET", &lib_htu, Some(&plain), None, now)
        .expect("p");
    assert_eq!(hello(&base, &format!("DPoP {plain}"), &[p]).await.0, 401);
    assert_eq!(hello(&base, &format!("Bearer {plain}"), &[]).await.0, 200);
    let _ = json!({});
}

#[tokio::test]
async fn a_code_presented_without_the_required_proof_is_not_spent() {
    let app = TestApp::spawn().await;
    app.user("ada", "correct horse battery", &["read"]).await;
    let c = app
        .client(NewClient {
            require_dpop: true,
            ..TestApp::web_app("strict web app")
        })
        .await;
    let b = app.browser();
    let redirect = app
        .code_flow(&b, &c.id, "openid read", ("ada", "correct horse battery"))
        .await;
    let code = query_param(&redirect, "code").expect("code");
    let res = app.exchange(&c, &code).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "invalid_dpop_proof"
    );
    // The refusal changed nothing: the same code, now with a proof, is exchanged.
    let key = DpopKey::generate(SigningAlg::EdDSA).expect("key");
    let proof = key
        .proof("POST", &token_url(&app), None, None, app.clock.now())
        .expect("p");
    let res = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .header("dpop", proof)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://app.test/cb"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("exchange");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.expect("json")["token_type"],
        "DPoP"
    );
}
