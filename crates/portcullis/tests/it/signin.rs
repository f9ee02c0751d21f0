//! The authorization code flow over real HTTP, and the attacks it must refuse:
//! code replay, PKCE missing/plain/wrong, redirect URI variants, a code redeemed by
//! another client, refresh-token reuse, CSRF, session fixation, open redirect at
//! logout, user enumeration at sign-in.

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use portcullis_testkit::{
    field, location, query_param, totp_code, urlencode, TestApp, TestBrowser, TestClient, VERIFIER,
};
use serde_json::Value;

const PW: &str = "correct horse battery";

async fn app_with_user() -> (TestApp, TestClient, String) {
    let app = TestApp::spawn().await;
    let c = app.client(TestApp::web_app("web")).await;
    let uid = app.user("alice", PW, &["read"]).await;
    (app, c, uid)
}

async fn tokens(app: &TestApp, c: &TestClient, redirect: &str) -> Value {
    let code = query_param(redirect, "code").expect("code in the redirect");
    let res = app.exchange(c, &code).await;
    assert_eq!(res.status(), 200, "code exchange");
    res.json().await.expect("json")
}

/// Alice signs in through the code flow in a new browser (openid, offline_access,
/// read); the browser and the token response.
async fn signed_in_tokens(app: &TestApp, c: &TestClient) -> (TestBrowser, Value) {
    let b = app.browser();
    let redirect = app
        .code_flow(&b, &c.id, "openid offline_access read", ("alice", PW))
        .await;
    let t = tokens(app, c, &redirect).await;
    (b, t)
}

/// Sets a user's `enabled` flag behind the service's back (no revocation runs):
/// the state a disable leaves when its second write never happens. Rows changed.
async fn flag_enabled(app: &TestApp, uid: &str, on: bool) -> u64 {
    app.execute_sql(&format!(
        "UPDATE users SET enabled = {on} WHERE id = '{uid}'"
    ))
    .await
}

/// The status of a refresh grant with `rt` as `c`.
async fn refresh_status(app: &TestApp, c: &TestClient, rt: &str) -> u16 {
    app.post_form(
        "/oauth/token",
        &format!("grant_type=refresh_token&refresh_token={rt}"),
        Some(c),
    )
    .await
    .status()
    .as_u16()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("b64");
    serde_json::from_slice(&raw).expect("claims")
}

#[tokio::test]
async fn the_code_flow_yields_access_refresh_and_a_valid_id_token() {
    let (app, c, uid) = app_with_user().await;
    let b = app.browser();
    let scope = "openid profile email offline_access read write";
    let redirect = app.code_flow(&b, &c.id, scope, ("alice", PW)).await;
    assert!(redirect.starts_with("https://app.test/cb?"), "{redirect}");
    assert_eq!(query_param(&redirect, "state").as_deref(), Some("st-123"));
    assert_eq!(
        query_param(&redirect, "iss").as_deref(),
        Some(app.base.as_str())
    );
    let t = tokens(&app, &c, &redirect).await;
    assert_eq!(t["token_type"], "Bearer");
    // `write` is beyond alice's role: dropped, not granted.
    assert_eq!(t["scope"], "email offline_access openid profile read");
    assert!(t["refresh_token"]
        .as_str()
        .expect("rt")
        .starts_with("pcrt_"));
    let id = t["id_token"].as_str().expect("id_token");
    // Verified by a third-party JOSE library against our JWKS, with RS256.
    let jwks: JwkSet = app
        .http
        .get(app.url("/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let header = jsonwebtoken::decode_header(id).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("key in jwks");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[&c.id]);
    v.set_issuer(&[&app.base]);
    let data = jsonwebtoken::decode::<Value>(
        id,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
        &v,
    )
    .expect("id token verifies");
    let idc = data.claims;
    assert_eq!(idc["sub"], uid.as_str());
    assert_eq!(idc["nonce"], "n-456");
    assert_eq!(idc["amr"], serde_json::json!(["pwd"]));
    assert_eq!(idc["acr"], "urn:portcullis:acr:pwd");
    assert_eq!(idc["azp"], c.id.as_str());
    let access = t["access_token"].as_str().expect("at");
    assert_eq!(
        idc["at_hash"],
        portcullis_core::claims::at_hash(access, portcullis_core::jose::SigningAlg::RS256)
    );
    assert!(idc["auth_time"].as_i64().expect("auth_time") <= idc["iat"].as_i64().expect("iat"));
    // The access token is for alice, and works at userinfo.
    assert_eq!(claims(access)["sub"], uid.as_str());
    let ui: Value = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(ui["sub"], uid.as_str());
    assert_eq!(ui["preferred_username"], "alice");
    assert_eq!(ui["email"], "alice@example.com");
    // A second authorization is silent: the session and the consent are remembered.
    let res = b.get(&app.authorize_url(&c.id, scope, "")).await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("https://app.test/cb?code="));
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let (app, c, _) = app_with_user().await;
    let b = app.browser();
    let redirect = app
        .code_flow(&b, &c.id, "openid offline_access read", ("alice", PW))
        .await;
    let code = query_param(&redirect, "code").expect("code");
    let first: Value = app.exchange(&c, &code).await.json().await.expect("json");
    let at = first["access_token"].as_str().expect("at");
    assert_eq!(app.introspect(&c, at).await["active"], true);
    let again = app.exchange(&c, &code).await;
    assert_eq!(again.status(), 400);
    let e: Value = again.json().await.expect("json");
    assert_eq!(e["error"], "invalid_grant");
    assert_eq!(
        app.introspect(&c, at).await["active"],
        false,
        "the replay revoked the access token"
    );
    let rt = first["refresh_token"].as_str().expect("rt");
    assert_eq!(
        refresh_status(&app, &c, rt).await,
        400,
        "and the refresh token"
    );
}

#[tokio::test]
async fn pkce_is_required_s256_only_and_checked() {
    let (app, c, _) = app_with_user().await;
    let b = app.browser();
    b.sign_in("alice", PW, "/account").await;
    let base = format!(
        "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope=read&state=s1",
        c.id,
        urlencode("https://app.test/cb")
    );
    for (extra, why) in [
        ("", "missing"),
        ("&code_challenge=abc&code_challenge_method=plain", "plain"),
        (
            "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "no method means plain",
        ),
        (
            "&code_challenge=short&code_challenge_method=S256",
            "malformed",
        ),
    ] {
        let res = b.get(&format!("{base}{extra}")).await;
        assert_eq!(res.status(), 303, "{why}");
        let l = location(&res);
        assert!(l.starts_with("https://app.test/cb?"), "{why}: {l}");
        assert_eq!(
            query_param(&l, "error").as_deref(),
            Some("invalid_request"),
            "{why}"
        );
        assert_eq!(query_param(&l, "state").as_deref(), Some("s1"), "{why}");
        assert!(query_param(&l, "code").is_none());
    }
    // A real code, then wrong and missing verifiers.
    let redirect = app
        .code_flow(&app.browser(), &c.id, "read", ("alice", PW))
        .await;
    let code = query_param(&redirect, "code").expect("code");
    for (verifier, why) in [
        (
            "&code_verifier=wrong-verifier-0123456789-abcdefghijklmnopqrstuvwxyz",
            "wrong",
        ),
        ("", "missing"),
        (
            &format!("&code_verifier={}", &VERIFIER[..42])[..],
            "too short",
        ),
    ] {
        let res = app
            .post_form(
                "/oauth/token",
                &format!(
                    "grant_type=authorization_code&code={code}&redirect_uri={}{verifier}",
                    urlencode("https://app.test/cb")
                ),
                Some(&c),
            )
            .await;
        assert_eq!(res.status(), 400, "{why}");
        let e: Value = res.json().await.expect("json");
        assert_eq!(e["error"], "invalid_grant", "{why}");
    }
    // The failed attempts did not spend the code.
    assert_eq!(app.exchange(&c, &code).await.status(), 200);
}

#[tokio::test]
async fn redirect_uri_variants_and_unknown_clients_get_a_page_never_a_redirect() {
    let (app, c, _) = app_with_user().await;
    let b = app.browser();
    let challenge = portcullis_core::pkce::CodeChallenge::of_verifier(VERIFIER);
    for uri in [
        "https://app.test/cb/extra",
        "https://app.test/cb/",
        "https://APP.test/cb",
        "https://app.test/CB",
        "https://app.test/cb?x=1",
        "https://app.test:8443/cb",
        "http://app.test/cb",
        "https://app.test/c",
        "https://evil.test/cb",
    ] {
        let res = b
            .get(&format!(
                "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope=read&state=s&code_challenge={}&code_challenge_method=S256",
                c.id,
                urlencode(uri),
                challenge.as_str()
            ))
            .await;
        assert_eq!(res.status(), 400, "{uri}");
        assert!(
            res.headers().get("location").is_none(),
            "{uri} must not redirect"
        );
        let html = res.text().await.expect("page");
        assert!(
            html.contains("redirect_uri does not match"),
            "{uri}: {html}"
        );
    }
    for client in ["nope", "00000000-0000-0000-0000-000000000000"] {
        let res = b
            .get(&format!(
                "/oauth/authorize?response_type=code&client_id={client}&redirect_uri={}",
                urlencode("https://evil.test/cb")
            ))
            .await;
        assert_eq!(res.status(), 400);
        assert!(res.headers().get("location").is_none());
    }
    // A valid redirect URI with a bad response_type redirects with the error.
    let res = b
        .get(&format!(
            "/oauth/authorize?response_type=token&client_id={}&redirect_uri={}&state=s",
            c.id,
            urlencode("https://app.test/cb")
        ))
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        query_param(&location(&res), "error").as_deref(),
        Some("unsupported_response_type")
    );
}

#[tokio::test]
async fn without_state_the_response_has_none_and_prompt_none_reports_login_required() {
    let (app, c, _) = app_with_user().await;
    let b = app.browser();
    let url = app
        .authorize_url(&c.id, "read", "&prompt=none")
        .replace("&state=st-123", "");
    let res = b.get(&url).await;
    assert_eq!(res.status(), 303);
    let l = location(&res);
    assert_eq!(query_param(&l, "error").as_deref(), Some("login_required"));
    assert!(
        query_param(&l, "state").is_none(),
        "no state was sent, none comes back"
    );
    // Signed in and consented: a stateless request gets a code without state.
    app.code_flow(&b, &c.id, "read", ("alice", PW)).await;
    let res = b
        .get(
            &app.authorize_url(&c.id, "read", "")
                .replace("&state=st-123", ""),
        )
        .await;
    let l = location(&res);
    assert!(query_param(&l, "code").is_some(), "{l}");
    assert!(query_param(&l, "state").is_none());
    // prompt=login sends a signed-in browser to sign in again; prompt=consent asks again.
    let res = b
        .get(&app.authorize_url(&c.id, "read", "&prompt=login"))
        .await;
    assert!(location(&res).starts_with("/login?"));
    let res = b
        .get(&app.authorize_url(&c.id, "read", "&prompt=consent"))
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.expect("html").contains("Allow access?"));
    // max_age=0 also demands a fresh sign-in.
    let res = b.get(&app.authorize_url(&c.id, "read", "&max_age=0")).await;
    assert!(location(&res).starts_with("/login?"));
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let (app, c, _) = app_with_user().await;
    let (_, t) = signed_in_tokens(&app, &c).await;
    let rt1 = t["refresh_token"].as_str().expect("rt").to_owned();
    let refresh = |rt: String| {
        let app = &app;
        let c = &c;
        async move {
            app.post_form(
                "/oauth/token",
                &format!("grant_type=refresh_token&refresh_token={rt}"),
                Some(c),
            )
            .await
        }
    };
    let r2: Value = refresh(rt1.clone()).await.json().await.expect("json");
    let rt2 = r2["refresh_token"].as_str().expect("rotated").to_owned();
    assert_ne!(rt1, rt2);
    assert!(
        r2["id_token"].is_string(),
        "openid grants get an ID token on refresh too"
    );
    let at2 = r2["access_token"].as_str().expect("at").to_owned();
    assert_eq!(app.introspect(&c, &at2).await["active"], true);
    // Narrowing the scope is allowed, widening is not.
    let wide = app
        .post_form(
            "/oauth/token",
            &format!("grant_type=refresh_token&refresh_token={rt2}&scope=read%20write"),
            Some(&c),
        )
        .await;
    assert_eq!(wide.status(), 400);
    assert_eq!(
        wide.json::<Value>().await.expect("json")["error"],
        "invalid_scope"
    );
    // The old token again: refused, and the whole family with it.
    let reuse = refresh(rt1).await;
    assert_eq!(reuse.status(), 400);
    assert_eq!(
        reuse.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );
    let after = refresh(rt2).await;
    assert_eq!(
        after.status(),
        400,
        "the current token of the family is revoked too"
    );
    assert_eq!(
        app.introspect(&c, &at2).await["active"],
        false,
        "and the access tokens of the family"
    );
}

#[tokio::test]
async fn a_code_issued_to_one_client_is_refused_to_another() {
    let (app, a, _) = app_with_user().await;
    let other = app.client(TestApp::web_app("other")).await;
    let redirect = app
        .code_flow(&app.browser(), &a.id, "read", ("alice", PW))
        .await;
    let code = query_param(&redirect, "code").expect("code");
    let res = app.exchange(&other, &code).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );
    assert_eq!(
        app.exchange(&a, &code).await.status(),
        200,
        "still good for its own client"
    );
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused_and_change_nothing() {
    let (app, c, _) = app_with_user().await;
    let b = app.browser();
    let _ = b.csrf("/login").await;
    for token in [None, Some("0".repeat(64))] {
        let mut form = vec![
            ("username", "alice"),
            ("password", PW),
            ("continue", "/account"),
        ];
        if let Some(t) = &token {
            form.push(("csrf", t));
        }
        let res = b.post("/login", &form).await;
        assert_eq!(res.status(), 403);
        assert!(res.headers().get("set-cookie").is_none_or(|v| !v
            .to_str()
            .unwrap_or("")
            .contains("portcullis_session=pcsess")));
    }
    // A token of another browser does not pass either.
    let other = app.browser().csrf("/login").await;
    let res = b
        .post(
            "/login",
            &[
                ("csrf", &other),
                ("username", "alice"),
                ("password", PW),
                ("continue", "/account"),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(app.count_rows("sessions").await, 0, "no session was made");
    // Consent with a wrong token issues no code.
    let start = app.authorize_url(&c.id, "read", "");
    let login = location(&b.get(&start).await);
    b.sign_in(
        "alice",
        PW,
        &query_param(&login, "continue").expect("continue"),
    )
    .await;
    let html = b.get(&start).await.text().await.expect("consent");
    let request = field(&html, "request").expect("request");
    let res = b
        .post(
            "/oauth/authorize",
            &[
                ("csrf", "nope"),
                ("request", &request),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(app.count_rows("authorization_codes").await, 0);
    assert_eq!(app.count_rows("consents").await, 0);
}

fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let v = v.strip_prefix("portcullis_session=")?;
            Some(v.split(';').next().unwrap_or("").to_owned())
        })
}

#[tokio::test]
async fn sign_in_always_issues_a_new_session_id() {
    let (app, _c, _) = app_with_user().await;
    let b = app.browser();
    let csrf = b.csrf("/login").await;
    let res = b
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", PW),
                ("continue", "/account"),
            ],
        )
        .await;
    let first = session_cookie(&res).expect("session cookie");
    let set = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"),
        "{set}"
    );
    // A second sign-in in the same browser: a new id, and the old one is dead.
    let csrf = b.csrf("/login").await;
    let res = b
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", PW),
                ("continue", "/account"),
            ],
        )
        .await;
    let second = session_cookie(&res).expect("session cookie");
    assert_ne!(first, second);
    let planted = app.browser();
    let res = planted
        .http
        .get(app.url("/account"))
        .header("cookie", format!("portcullis_session={first}"))
        .send()
        .await
        .expect("get");
    assert_eq!(
        res.status(),
        303,
        "the replaced session no longer signs anyone in"
    );
    // An attacker-chosen cookie value is never adopted.
    let victim = app.browser();
    let fixed = "pcsess_attackerchosenvalue";
    let csrf = victim.csrf("/login").await;
    let res = victim
        .http
        .post(app.url("/login"))
        .header("cookie", format!("portcullis_session={fixed}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", PW),
            ("continue", "/account"),
        ])
        .send()
        .await
        .expect("post");
    // reqwest sends its own jar's cookies too; what matters is what the server sets.
    let _ = res.status();
    assert_ne!(session_cookie(&res).as_deref(), Some(fixed));
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_look_the_same_and_lock_out_alike() {
    let app = TestApp::builder()
        .settings(|s| s.signin.lockout_threshold = 3)
        .spawn()
        .await;
    app.user("alice", PW, &["read"]).await;
    let b = app.browser();
    let attempt = |user: &'static str, pw: &'static str| {
        let b = b.clone();
        async move {
            let csrf = b.csrf("/login").await;
            let res = b
                .post(
                    "/login",
                    &[
                        ("csrf", &csrf),
                        ("username", user),
                        ("password", pw),
                        ("continue", "/account"),
                    ],
                )
                .await;
            let status = res.status();
            let body = res.text().await.expect("body");
            let body = body.replace(&csrf, "CSRF").replace(user, "USER");
            (status, body)
        }
    };
    let wrong = attempt("alice", "wrong password!").await;
    let unknown = attempt("mallory", "wrong password!").await;
    assert_eq!(wrong.0, 401);
    assert_eq!(
        wrong, unknown,
        "same status and page for an unknown user and a wrong password"
    );
    assert!(wrong.1.contains("Invalid username or password."));
    // Lockout after 3 failures, for a real and a made-up account alike.
    for _ in 0..2 {
        attempt("alice", "wrong password!").await;
        attempt("mallory", "wrong password!").await;
    }
    let (s1, b1) = attempt("alice", PW).await;
    let (s2, b2) = attempt("mallory", "x").await;
    assert_eq!(
        (s1, s2),
        (
            reqwest::StatusCode::TOO_MANY_REQUESTS,
            reqwest::StatusCode::TOO_MANY_REQUESTS
        )
    );
    assert_eq!(b1, b2);
    assert!(b1.contains("Too many failed attempts"));
    // Every failure is in the audit trail.
    let page = app
        .authority
        .audit_page(portcullis_store::AuditFilter {
            kind: Some("login.failed".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert!(
        page.events.len() >= 6,
        "{} failures audited",
        page.events.len()
    );
    // The lockout passes with time.
    app.clock.advance(31);
    let (s, _) = attempt("alice", PW).await;
    assert_eq!(s, 303);
}

#[tokio::test]
async fn logout_ends_the_session_and_only_redirects_to_registered_uris() {
    let (app, c, _) = app_with_user().await;
    let (b, t) = signed_in_tokens(&app, &c).await;
    let id_token = t["id_token"].as_str().expect("id").to_owned();
    // Unregistered targets: a page, never a redirect, and the session lives on.
    for target in [
        "https://evil.test/",
        "https://app.test/bye/",
        "https://app.test/byeX",
    ] {
        let res = b
            .get(&format!(
                "/oauth/logout?id_token_hint={id_token}&post_logout_redirect_uri={}",
                urlencode(target)
            ))
            .await;
        assert_eq!(res.status(), 400, "{target}");
        assert!(res.headers().get("location").is_none(), "{target}");
    }
    let res = b
        .get(&format!(
            "/oauth/logout?client_id={}&post_logout_redirect_uri={}",
            "someone-else",
            urlencode("https://app.test/bye")
        ))
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(b.get("/account").await.status(), 200, "still signed in");
    // Without a hint: a confirmation page, not a logout.
    let res = b.get("/oauth/logout").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        b.get("/account").await.status(),
        200,
        "a bare GET signs nobody out"
    );
    // With the session's own ID token and a registered URI: signed out, sent back with state.
    let res = b
        .get(&format!(
            "/oauth/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye1",
            urlencode("https://app.test/bye")
        ))
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "https://app.test/bye?state=bye1");
    assert_eq!(b.get("/account").await.status(), 303, "signed out");
    let rt = t["refresh_token"].as_str().expect("rt");
    assert_eq!(
        refresh_status(&app, &c, rt).await,
        400,
        "the session's refresh tokens are revoked"
    );
    assert_eq!(
        app.introspect(&c, t["access_token"].as_str().expect("at"))
            .await["active"],
        false
    );
}

#[tokio::test]
async fn a_password_change_or_disable_revokes_sessions_refresh_tokens_and_pats() {
    let (app, c, uid) = app_with_user().await;
    let (b, t) = signed_in_tokens(&app, &c).await;
    let pat = app
        .authority
        .create_pat(
            "alice",
            "cli",
            &["read".into()],
            portcullis_service::pats::PatLifetime::Default,
        )
        .await
        .expect("pat");
    app.authority
        .set_password(
            &uid,
            &portcullis_core::secret::SecretString::new("a new long password"),
        )
        .await
        .expect("set");
    assert_eq!(b.get("/account").await.status(), 303, "session ended");
    let rt = t["refresh_token"].as_str().expect("rt");
    assert_eq!(
        refresh_status(&app, &c, rt).await,
        400,
        "refresh token revoked"
    );
    assert_eq!(
        app.introspect(&c, t["access_token"].as_str().expect("at"))
            .await["active"],
        false
    );
    assert_eq!(
        app.introspect(&c, &pat.token).await["active"],
        false,
        "PAT revoked"
    );
    // The old password no longer works; the new one does. Then disable.
    let b2 = app.browser();
    assert_eq!(b2.sign_in("alice", PW, "/account").await.status(), 401);
    assert_eq!(
        b2.sign_in("alice", "a new long password", "/account")
            .await
            .status(),
        303
    );
    assert_eq!(b2.get("/account").await.status(), 200);
    app.authority
        .update_user(
            "alice",
            portcullis_service::users::UserUpdate {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("disable");
    assert_eq!(
        b2.get("/account").await.status(),
        303,
        "disabling ends the session"
    );
    assert_eq!(
        app.browser()
            .sign_in("alice", "a new long password", "/account")
            .await
            .status(),
        401
    );
}

/// Disabling a user is two steps: the user row, then revoking what the user
/// holds. A refresh token that outlives the first step (the second failed or has
/// not run yet) must still be refused, and the refusal must consume nothing.
#[tokio::test]
async fn a_disabled_user_cannot_refresh_even_with_a_live_refresh_token() {
    let (app, c, uid) = app_with_user().await;
    let (_, t) = signed_in_tokens(&app, &c).await;
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    assert_eq!(
        flag_enabled(&app, &uid, false).await,
        1,
        "one user disabled"
    );
    let refused = app
        .post_form(
            "/oauth/token",
            &format!("grant_type=refresh_token&refresh_token={rt}"),
            Some(&c),
        )
        .await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert!(body.get("access_token").is_none(), "nothing issued: {body}");
    // The refusal neither used the token nor revoked its family: once the user is
    // enabled again, the same token rotates as if the refusal never happened.
    assert_eq!(flag_enabled(&app, &uid, true).await, 1);
    assert_eq!(refresh_status(&app, &c, &rt).await, 200);
    assert_eq!(
        refresh_status(&app, &c, &rt).await,
        400,
        "and is used up by that rotation"
    );
}

/// A disable sent again for a user already disabled revokes what the first one
/// left live (here: the flag was written, the revocation never ran).
#[tokio::test]
async fn disabling_an_already_disabled_user_finishes_the_revocation() {
    let (app, c, uid) = app_with_user().await;
    let (b, t) = signed_in_tokens(&app, &c).await;
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    let pat = app
        .authority
        .create_pat(
            "alice",
            "cli",
            &["read".into()],
            portcullis_service::pats::PatLifetime::Default,
        )
        .await
        .expect("pat");
    assert_eq!(flag_enabled(&app, &uid, false).await, 1);
    let view = app
        .authority
        .update_user(
            &uid,
            portcullis_service::users::UserUpdate {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("disable again");
    assert!(!view.enabled);
    // Enabled again behind the service's back, nothing of before comes back to life:
    // the second disable revoked it.
    assert_eq!(flag_enabled(&app, &uid, true).await, 1);
    assert_eq!(
        refresh_status(&app, &c, &rt).await,
        400,
        "refresh token revoked"
    );
    assert_eq!(
        app.introspect(&c, &pat.token).await["active"],
        false,
        "PAT revoked"
    );
    assert_eq!(
        app.introspect(&c, t["access_token"].as_str().expect("at"))
            .await["active"],
        false,
        "access token revoked"
    );
    assert_eq!(b.get("/account").await.status(), 303, "session ended");
}

#[tokio::test]
async fn the_password_grant_is_off_unless_a_client_opts_in() {
    let (app, web, _) = app_with_user().await;
    let r = app
        .post_form(
            "/oauth/token",
            &format!(
                "grant_type=password&username=alice&password={}",
                urlencode(PW)
            ),
            Some(&web),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "unauthorized_client"
    );
    let mut spec = TestApp::web_app("legacy");
    spec.grant_types = vec!["password".into(), "refresh_token".into()];
    spec.redirect_uris.clear();
    let legacy = app.client(spec).await;
    let ok: Value = app
        .post_form(
            "/oauth/token",
            &format!(
                "grant_type=password&username=alice&password={}&scope=read%20offline_access",
                urlencode(PW)
            ),
            Some(&legacy),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ok["scope"], "offline_access read");
    assert!(ok["refresh_token"].is_string());
    let bad = app
        .post_form(
            "/oauth/token",
            "grant_type=password&username=alice&password=nope-nope",
            Some(&legacy),
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn a_public_client_redeems_its_code_with_pkce_and_no_secret() {
    let app = TestApp::spawn().await;
    app.user("alice", PW, &["read"]).await;
    let mut spec = TestApp::web_app("spa");
    spec.public = true;
    let created = app.authority.create_client(spec).await.expect("client");
    let id = created.client.client_id;
    let redirect = app
        .code_flow(&app.browser(), &id, "openid read", ("alice", PW))
        .await;
    let code = query_param(&redirect, "code").expect("code");
    let body = format!(
        "grant_type=authorization_code&client_id={id}&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
        urlencode("https://app.test/cb")
    );
    let res = app.post_form("/oauth/token", &body, None).await;
    assert_eq!(res.status(), 200);
    // A confidential client cannot skip its secret.
    let conf = app.client(TestApp::web_app("conf")).await;
    let res = app
        .post_form("/oauth/token", &body.replace(&id, &conf.id), None)
        .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn userinfo_refuses_tokens_without_a_user() {
    let app = TestApp::spawn().await;
    let cc = app.client(TestApp::cc("svc")).await;
    let t = app.token(&cc, "").await;
    let res = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .expect("h")
        .contains("invalid_token"));
    let res = app
        .http
        .get(app.url("/userinfo"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 401);
}

fn secret_of(html: &str) -> String {
    let start =
        html.find("<code id=\"secret\">").expect("secret shown") + "<code id=\"secret\">".len();
    html[start..start + html[start..].find('<').expect("end")].to_owned()
}

#[tokio::test]
async fn totp_enrolment_then_sign_in_with_a_code_and_a_recovery_code() {
    use portcullis_core::clock::Clock;
    let app = TestApp::spawn().await;
    let uid = app.user("alice", PW, &["read"]).await;
    let mut spec = TestApp::web_app("bank");
    spec.require_mfa = true;
    let c = app.client(spec).await;
    let b = app.browser();
    // Sign in with the password: the client requires MFA, so enrolment comes next.
    let start = app.authorize_url(&c.id, "openid read", "");
    let res = b.get(&start).await;
    let next = query_param(&location(&res), "continue").expect("continue");
    let res = b.sign_in("alice", PW, &next).await;
    let res = b.get(&location(&res)).await;
    assert_eq!(res.status(), 303);
    let enrol = location(&res);
    assert!(enrol.starts_with("/account/mfa?"), "{enrol}");
    let html = b.get(&enrol).await.text().await.expect("enrol page");
    assert!(html.contains("<svg"), "an inline SVG QR code");
    let secret = secret_of(&html);
    let csrf = field(&html, "csrf").expect("csrf");
    let now = app.clock.now();
    // A wrong code does not enrol.
    let res = b
        .post(
            "/account/mfa",
            &[("csrf", &csrf), ("code", "000000"), ("continue", &next)],
        )
        .await;
    assert_eq!(res.status(), 401);
    let res = b
        .post(
            "/account/mfa",
            &[
                ("csrf", &csrf),
                ("code", &totp_code(&secret, now)),
                ("continue", &next),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("codes page");
    let codes: Vec<String> = html
        .split("<li>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes");
    assert!(
        app.authority
            .get_user(&uid)
            .await
            .expect("user")
            .mfa_enrolled
    );
    // Continue to the app: the session passed both factors.
    let res = b.get(&next).await;
    let res = if res.status() == 200 {
        let html = res.text().await.expect("consent");
        b.post(
            "/oauth/authorize",
            &[
                ("csrf", &field(&html, "csrf").expect("c")),
                ("request", &field(&html, "request").expect("r")),
                ("decision", "allow"),
            ],
        )
        .await
    } else {
        res
    };
    let t = tokens(&app, &c, &location(&res)).await;
    let idc = claims(t["id_token"].as_str().expect("id"));
    assert_eq!(idc["amr"], serde_json::json!(["pwd", "otp"]));
    assert_eq!(idc["acr"], "urn:portcullis:acr:mfa");
    // A new browser: password, then the second factor is asked for.
    app.clock.advance(60);
    let b2 = app.browser();
    let res = b2.get(&start).await;
    let next = query_param(&location(&res), "continue").expect("continue");
    let res = b2.sign_in("alice", PW, &next).await;
    let res = b2.get(&location(&res)).await;
    let mfa = location(&res);
    assert!(mfa.starts_with("/login/mfa?"), "{mfa}");
    let csrf = b2.csrf(&mfa).await;
    let code = totp_code(&secret, app.clock.now());
    assert_eq!(
        b2.post(
            "/login/mfa",
            &[("csrf", &csrf), ("code", "123456"), ("continue", &next)]
        )
        .await
        .status(),
        401
    );
    let res = b2
        .post(
            "/login/mfa",
            &[("csrf", &csrf), ("code", &code), ("continue", &next)],
        )
        .await;
    assert_eq!(res.status(), 303, "the current code passes");
    let res = b2.get(&location(&res)).await;
    assert!(
        location(&res).starts_with("https://app.test/cb?code="),
        "consent was remembered"
    );
    // The same code again, in a third browser: refused (each step once).
    let b3 = app.browser();
    b3.sign_in("alice", PW, "/account").await;
    let csrf = b3.csrf("/login/mfa?continue=/account").await;
    assert_eq!(
        b3.post(
            "/login/mfa",
            &[("csrf", &csrf), ("code", &code), ("continue", "/account")]
        )
        .await
        .status(),
        401,
        "a spent code"
    );
    // A recovery code works once.
    let res = b3
        .post(
            "/login/mfa",
            &[
                ("csrf", &csrf),
                ("code", &codes[0]),
                ("continue", "/account"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(b3.get("/account").await.status(), 200);
    let b4 = app.browser();
    b4.sign_in("alice", PW, "/account").await;
    let csrf = b4.csrf("/login/mfa?continue=/account").await;
    assert_eq!(
        b4.post(
            "/login/mfa",
            &[
                ("csrf", &csrf),
                ("code", &codes[0]),
                ("continue", "/account")
            ]
        )
        .await
        .status(),
        401
    );
    assert_eq!(
        b4.get("/account").await.status(),
        303,
        "a password alone does not open the account of an enrolled user"
    );
}

#[tokio::test]
async fn step_up_with_acr_values_asks_for_the_second_factor() {
    let (app, c, _) = app_with_user().await;
    let b = app.browser();
    app.code_flow(&b, &c.id, "openid read", ("alice", PW)).await;
    let res = b
        .get(&app.authorize_url(
            &c.id,
            "openid read",
            &format!("&acr_values={}", urlencode("urn:portcullis:acr:mfa")),
        ))
        .await;
    assert!(
        location(&res).starts_with("/account/mfa?"),
        "not enrolled yet: enrol to step up"
    );
    let res = b
        .get(&app.authorize_url(
            &c.id,
            "openid read",
            &format!(
                "&prompt=none&acr_values={}",
                urlencode("urn:portcullis:acr:mfa")
            ),
        ))
        .await;
    assert_eq!(
        query_param(&location(&res), "error").as_deref(),
        Some("interaction_required")
    );
}

#[tokio::test]
async fn no_sign_in_secret_is_stored_in_clear() {
    use portcullis_core::clock::Clock;
    let (app, c, _) = app_with_user().await;
    let b = app.browser();
    let redirect = app
        .code_flow(&b, &c.id, "openid offline_access read", ("alice", PW))
        .await;
    let code = query_param(&redirect, "code").expect("code");
    let t: Value = app.exchange(&c, &code).await.json().await.expect("json");
    // Enrol TOTP to have a seed and recovery codes stored.
    let html = b.get("/account/mfa").await.text().await.expect("enrol");
    let secret = secret_of(&html);
    let csrf = field(&html, "csrf").expect("csrf");
    let codes = b
        .post(
            "/account/mfa",
            &[
                ("csrf", &csrf),
                ("code", &totp_code(&secret, app.clock.now())),
                ("continue", "/account"),
            ],
        )
        .await
        .text()
        .await
        .expect("codes");
    let recovery = codes
        .split("<li>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("a code")
        .replace('-', "");
    let bytes = app.database_bytes();
    let hay = String::from_utf8_lossy(&bytes);
    assert!(
        hay.contains("$argon2id$"),
        "positive control: the password hash is there"
    );
    for (what, s) in [
        ("password", PW),
        ("authorization code", &code[code.len() - 30..]),
        (
            "refresh token",
            &t["refresh_token"].as_str().expect("rt")[20..],
        ),
        ("TOTP seed (base32)", &secret),
        ("recovery code", &recovery),
    ] {
        assert!(
            !hay.contains(s),
            "{what} found in clear in the database files"
        );
    }
    // The TOTP seed is not there in raw bytes either.
    let raw = totp_rs::Secret::Encoded(secret).to_bytes().expect("b32");
    assert!(
        !bytes.windows(raw.len()).any(|w| w == raw.as_slice()),
        "raw TOTP seed in the database"
    );
}

#[tokio::test]
async fn sessions_end_when_idle_or_too_old() {
    let app = TestApp::builder()
        .settings(|s| {
            s.signin.session_idle = std::time::Duration::from_secs(600);
            s.signin.session_ttl = std::time::Duration::from_secs(1_500);
        })
        .spawn()
        .await;
    app.user("alice", PW, &["read"]).await;
    let b = app.browser();
    b.sign_in("alice", PW, "/account").await;
    // Used every 9 minutes: it lives on, up to its absolute lifetime.
    for _ in 0..2 {
        app.clock.advance(540);
        assert_eq!(b.get("/account").await.status(), 200);
    }
    app.clock.advance(540);
    assert_eq!(b.get("/account").await.status(), 303, "past session_ttl");
    let b = app.browser();
    b.sign_in("alice", PW, "/account").await;
    app.clock.advance(601);
    assert_eq!(
        b.get("/account").await.status(),
        303,
        "idle past session_idle"
    );
}

#[tokio::test]
async fn withdrawing_consent_on_the_account_page_revokes_the_apps_tokens() {
    let (app, c, uid) = app_with_user().await;
    let (b, t) = signed_in_tokens(&app, &c).await;
    let page = b.get("/account").await.text().await.expect("account");
    assert!(page.contains("web"), "the app is listed: {page}");
    let csrf = field(&page, "csrf").expect("csrf");
    let res = b
        .post(
            "/account/consents/revoke",
            &[("csrf", &csrf), ("client_id", &c.id)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(app
        .authority
        .list_consents(&uid)
        .await
        .expect("consents")
        .is_empty());
    assert_eq!(
        app.introspect(&c, t["access_token"].as_str().expect("at"))
            .await["active"],
        false
    );
    let rt = t["refresh_token"].as_str().expect("rt");
    assert_eq!(refresh_status(&app, &c, rt).await, 400);
    // The next authorization asks again.
    let res = b.get(&app.authorize_url(&c.id, "openid read", "")).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.expect("html").contains("Allow access?"));
}

#[tokio::test]
async fn refresh_tokens_slide_within_an_absolute_family_lifetime() {
    let app = TestApp::spawn().await;
    app.user("alice", PW, &["read"]).await;
    let mut spec = TestApp::web_app("short");
    spec.refresh_token_ttl = Some(std::time::Duration::from_secs(120));
    spec.refresh_token_max_ttl = Some(std::time::Duration::from_secs(300));
    let c = app.client(spec).await;
    let redirect = app
        .code_flow(&app.browser(), &c.id, "offline_access read", ("alice", PW))
        .await;
    let mut rt = tokens(&app, &c, &redirect).await["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    let refresh = |rt: String| {
        let (app, c) = (&app, &c);
        async move {
            app.post_form(
                "/oauth/token",
                &format!("grant_type=refresh_token&refresh_token={rt}"),
                Some(c),
            )
            .await
        }
    };
    // Used every 100 s, it slides past its own 120 s lifetime…
    for _ in 0..2 {
        app.clock.advance(100);
        let r = refresh(rt.clone()).await;
        assert_eq!(r.status(), 200);
        rt = r.json::<Value>().await.expect("json")["refresh_token"]
            .as_str()
            .expect("rt")
            .to_owned();
    }
    // …but never past the family's 300 s.
    app.clock.advance(101);
    let r = refresh(rt.clone()).await;
    assert_eq!(r.status(), 400, "past refresh_token_max_ttl");
    // An unused token expires after its sliding lifetime.
    let redirect = app
        .code_flow(&app.browser(), &c.id, "offline_access read", ("alice", PW))
        .await;
    let rt = tokens(&app, &c, &redirect).await["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    app.clock.advance(121);
    assert_eq!(refresh(rt).await.status(), 400, "past refresh_token_ttl");
}

#[tokio::test]
async fn the_password_grant_has_the_same_lockout_as_the_sign_in_page() {
    let app = TestApp::builder()
        .settings(|s| s.signin.lockout_threshold = 3)
        .spawn()
        .await;
    app.user("alice", PW, &["read"]).await;
    let mut spec = TestApp::web_app("legacy");
    spec.grant_types = vec!["password".into()];
    spec.redirect_uris.clear();
    let c = app.client(spec).await;
    let grant = |pw: &'static str| {
        let (app, c) = (&app, &c);
        async move {
            let r = app
                .post_form(
                    "/oauth/token",
                    &format!(
                        "grant_type=password&username=alice&password={}",
                        urlencode(pw)
                    ),
                    Some(c),
                )
                .await;
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    for _ in 0..3 {
        assert_eq!(grant("wrong password").await.0, 400);
    }
    let (s, e) = grant(PW).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "locked out: {e}"
    );
    assert!(e["error_description"]
        .as_str()
        .expect("d")
        .contains("too many"));
    // And the sign-in page of the same account is locked too.
    assert_eq!(
        app.browser()
            .sign_in("alice", PW, "/account")
            .await
            .status(),
        429
    );
}

#[tokio::test]
async fn a_code_from_a_session_that_signed_out_is_refused() {
    let (app, c, _) = app_with_user().await;
    let b = app.browser();
    let redirect = app.code_flow(&b, &c.id, "read", ("alice", PW)).await;
    let csrf = b.csrf("/account").await;
    assert_eq!(
        b.post("/oauth/logout", &[("csrf", &csrf)]).await.status(),
        200
    );
    let res = app
        .exchange(&c, &query_param(&redirect, "code").expect("code"))
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn a_user_changes_their_own_password_and_is_signed_out_everywhere() {
    let (app, c, _) = app_with_user().await;
    let b = app.browser();
    let redirect = app
        .code_flow(&b, &c.id, "offline_access read", ("alice", PW))
        .await;
    let t = tokens(&app, &c, &redirect).await;
    let other = app.browser();
    other.sign_in("alice", PW, "/account").await;
    let csrf = b.csrf("/account/password").await;
    let post = |current: &'static str, new: &'static str, confirm: &'static str| {
        let (b, csrf) = (b.clone(), csrf.clone());
        async move {
            b.post(
                "/account/password",
                &[
                    ("csrf", &csrf),
                    ("current", current),
                    ("new", new),
                    ("confirm", confirm),
                ],
            )
            .await
            .status()
            .as_u16()
        }
    };
    // Bad inputs change nothing.
    assert_eq!(
        post("wrong password", "brand new password", "brand new password").await,
        401
    );
    assert_eq!(
        post(PW, "brand new password", "brand new passw0rd").await,
        400
    );
    assert_eq!(post(PW, "short", "short").await, 422);
    assert_eq!(
        other.get("/account").await.status(),
        200,
        "still signed in elsewhere"
    );
    // The real change: every session ends, tokens are revoked, the new password works.
    assert_eq!(
        post(PW, "brand new password", "brand new password").await,
        200
    );
    assert_eq!(other.get("/account").await.status(), 303);
    assert_eq!(b.get("/account").await.status(), 303);
    assert_eq!(
        app.introspect(&c, t["access_token"].as_str().expect("at"))
            .await["active"],
        false
    );
    assert_eq!(
        app.browser()
            .sign_in("alice", PW, "/account")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.browser()
            .sign_in("alice", "brand new password", "/account")
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn concurrent_uses_of_one_refresh_token_rotate_it_once_and_revoke_the_family() {
    let (app, c, _) = app_with_user().await;
    let redirect = app
        .code_flow(&app.browser(), &c.id, "offline_access read", ("alice", PW))
        .await;
    let rt = tokens(&app, &c, &redirect).await["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    // Eight requests with the same token, racing at the token endpoint.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, url, c, rt) = (
            app.http.clone(),
            app.url("/oauth/token"),
            c.clone(),
            rt.clone(),
        );
        set.spawn(async move {
            http.post(url)
                .basic_auth(&c.id, Some(&c.secret))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .expect("post")
                .json::<Value>()
                .await
                .expect("json")
        });
    }
    let answers = set.join_all().await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|a| a["refresh_token"].is_string())
        .collect();
    assert_eq!(won.len(), 1, "exactly one rotation: {answers:?}");
    assert!(
        answers
            .iter()
            .filter(|a| a["error"] == "invalid_grant")
            .count()
            == 7,
        "{answers:?}"
    );
    // The losers were reuses: the winner's new token is revoked with its family.
    let next = won[0]["refresh_token"].as_str().expect("rt");
    assert_eq!(refresh_status(&app, &c, next).await, 400);
}

#[tokio::test]
async fn an_oversized_state_gets_a_page_not_a_redirect_carrying_it() {
    let (app, c, _) = app_with_user().await;
    let big = "s".repeat(3_000);
    let url = app
        .authorize_url(&c.id, "read", "")
        .replace("st-123", &big)
        .replace("response_type=code", "response_type=token");
    let res = app.browser().get(&url).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
}

#[tokio::test]
async fn an_authorization_request_may_be_a_form_post() {
    let (app, c, _) = app_with_user().await;
    let b = app.browser();
    let get = app.authorize_url(&c.id, "openid read", "");
    let query = get.split_once('?').expect("query").1.to_owned();
    let pairs: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x/?{query}"))
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let res = b
        .http
        .post(app.url("/oauth/authorize"))
        .form(&pairs)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 303);
    let next = location(&res);
    assert!(next.starts_with("/oauth/authorize?"), "{next}");
    // It is the same request: signed out, it leads to the sign-in page.
    let res = b.get(&next).await;
    assert!(location(&res).starts_with("/login?"));
    // A login_hint fills in the username (escaped).
    let res = b
        .get(&app.authorize_url(&c.id, "read", "&login_hint=%22alice%3C"))
        .await;
    let html = b
        .get(&location(&res))
        .await
        .text()
        .await
        .expect("login page");
    assert!(html.contains("value=\"&quot;alice&lt;\""), "{html}");
}
