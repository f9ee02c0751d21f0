//! The attack catalogue: every forged or wrong token is refused by the library,
//! by the server's introspection and by forward-auth. A hand-made *valid* token
//! built the same way passes all three, so each refusal is the attack's doing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::clock::Clock as _;
use portcullis_core::dpop::DpopKey;
use portcullis_core::jose::{SigningAlg, SigningKey};
use serde_json::{json, Value};

use crate::support::{env, Env, AUD};

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Signs `header.claims` with a key the server does not know.
fn foreign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let msg = format!("{}.{}", b64(header), b64(claims));
    let sig = key.sign_raw(msg.as_bytes()).expect("sign");
    format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn catalogue(e: &Env) -> Vec<(&'static str, String)> {
    let es = SigningAlg::ES256;
    let h = e.header(es);
    let c = e.claims();
    let kid = e.kid(es);
    let mut out: Vec<(&'static str, String)> = Vec::new();
    // alg none, any case, with our kid and with no signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let hn = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        out.push(("alg none", format!("{}.{}.", b64(&hn), b64(&c))));
    }
    // HS256 keyed with the public key's bytes (key confusion).
    let ring = e.app.authority.keyring();
    let public = serde_json::to_string(ring.signer(es).expect("key").public_jwk()).expect("jwk");
    let hh = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let msg = format!("{}.{}", b64(&hh), b64(&c));
    for secret in [public.as_bytes().to_vec(), kid.as_bytes().to_vec()] {
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
        let tag = aws_lc_rs::hmac::sign(&k, msg.as_bytes());
        out.push((
            "HS256 with the public key",
            format!("{msg}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())),
        ));
    }
    // An attacker's key: embedded as jwk, named by jku/x5u, or just used with our kid.
    let (evil, _) = SigningKey::generate(es).expect("key");
    let evil_jwk = serde_json::to_value(evil.public_jwk()).expect("jwk");
    out.push((
        "embedded jwk",
        foreign(
            &evil,
            &json!({"alg": "ES256", "typ": "at+jwt", "kid": evil.kid(), "jwk": evil_jwk}),
            &c,
        ),
    ));
    out.push((
        "embedded jwk with our kid",
        foreign(
            &evil,
            &json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "jwk": evil_jwk}),
            &c,
        ),
    ));
    for (name, member) in [("jku elsewhere", "jku"), ("x5u elsewhere", "x5u")] {
        let mut hx = h.clone();
        hx[member] = json!("https://evil.test/keys");
        // Signed by the server's own key: the header alone must make it fail.
        out.push((name, e.sign(es, &hx, &c)));
        let mut he = hx.clone();
        he["kid"] = json!(evil.kid());
        out.push((name, foreign(&evil, &he, &c)));
    }
    for bad_kid in ["../../../../etc/passwd", "' OR '1'='1' --", "kid\u{0}", ""] {
        out.push((
            "kid traversal or SQL",
            foreign(
                &evil,
                &json!({"alg": "ES256", "typ": "at+jwt", "kid": bad_kid}),
                &c,
            ),
        ));
    }
    out.push(("signature of another key", foreign(&evil, &h, &c)));
    // CVE-2022-21449: r = s = 0.
    let msg = format!("{}.{}", b64(&h), b64(&c));
    out.push((
        "ECDSA r = s = 0",
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode([0u8; 64])),
    ));
    out.push(("stripped signature", format!("{msg}.")));
    out.push(("no signature part", msg.clone()));
    // Right key, wrong token.
    let mut ht = h.clone();
    ht["typ"] = json!("JWT");
    out.push(("ID-token typ", e.sign(es, &ht, &c)));
    let mut hno = h.clone();
    hno.as_object_mut().expect("obj").remove("typ");
    out.push(("no typ", e.sign(es, &hno, &c)));
    let now = e.app.clock.now();
    for (name, field, value) in [
        ("wrong iss", "iss", json!("https://evil.test")),
        ("wrong aud", "aud", json!("https://other.test")),
        ("expired", "exp", json!(now - 3600)),
        ("nbf in the future", "nbf", json!(now + 3600)),
        ("iat in the future", "iat", json!(now + 3600)),
    ] {
        let mut cx = c.clone();
        cx[field] = value;
        out.push((name, e.sign(es, &h, &cx)));
    }
    let mut hc = h.clone();
    hc["crit"] = json!(["urn:evil:ext"]);
    hc["urn:evil:ext"] = json!("x");
    out.push(("crit with an unknown extension", e.sign(es, &hc, &c)));
    // Duplicate members: a parser that keeps the last would read scope=admin.
    let claims_text = c.to_string();
    let dup = format!(r#"{},"scope":"admin"}}"#, claims_text.trim_end_matches('}'));
    out.push((
        "duplicate claim",
        e.sign_message(es, &format!("{}.{}", b64(&h), URL_SAFE_NO_PAD.encode(dup))),
    ));
    let h_text = h.to_string();
    let dup_h = format!(r#"{},"alg":"none"}}"#, h_text.trim_end_matches('}'));
    out.push((
        "duplicate header member",
        e.sign_message(
            es,
            &format!("{}.{}", URL_SAFE_NO_PAD.encode(dup_h), b64(&c)),
        ),
    ));
    // 1 MB.
    let mut big = c.clone();
    big["pad"] = json!("A".repeat(1024 * 1024));
    out.push(("1 MB token", e.sign(es, &h, &big)));
    // Non-canonical base64url of a valid token: padding, the standard alphabet, and
    // non-zero trailing bits (all decode to the same bytes in lax decoders).
    let good = e.sign(es, &h, &c);
    let (message, sig) = good.rsplit_once('.').expect("sig");
    out.push(("padded signature", format!("{message}.{sig}==")));
    let (hd, rest) = good.split_once('.').expect("parts");
    out.push(("padded header", format!("{hd}=.{rest}")));
    let last = sig.chars().last().expect("char");
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let i = alphabet.find(last).expect("b64 char");
    // 64 bytes: the last character carries 2 bits and 4 zero bits.
    let noncanonical = alphabet.as_bytes()[i | 1] as char;
    out.push((
        "non-zero trailing bits",
        format!("{message}.{}{noncanonical}", &sig[..sig.len() - 1]),
    ));
    let std_alphabet = {
        let s = sig.replace('-', "+").replace('_', "/");
        if s == sig {
            // Make sure the variant differs: re-sign until a '-' or '_' appears.
            let mut alt = None;
            for _ in 0..64 {
                let t = e.sign(es, &h, &c);
                let s2 = t.rsplit_once('.').expect("sig").1.to_owned();
                if s2.contains(['-', '_']) {
                    alt = Some(format!(
                        "{}.{}",
                        t.rsplit_once('.').expect("m").0,
                        s2.replace('-', "+").replace('_', "/")
                    ));
                    break;
                }
            }
            alt.expect("a signature with - or _")
        } else {
            format!("{message}.{s}")
        }
    };
    out.push(("standard base64 alphabet", std_alphabet));
    // A DPoP proof is not an access token either.
    let dk = DpopKey::generate(es).expect("dpop key");
    out.push((
        "DPoP proof as access token",
        dk.proof("GET", "https://api.test/x", None, None, now)
            .expect("proof"),
    ));
    out
}

#[tokio::test]
async fn every_attack_is_refused_by_the_library_introspection_and_forward_auth() {
    let e = env().await;
    let v = e.verifier().await;
    // Control: hand-made, valid, and the server's own token pass all three.
    let valid = e.sign(SigningAlg::ES256, &e.header(SigningAlg::ES256), &e.claims());
    let issued = e.token(&e.es256).await;
    for t in [&valid, &issued] {
        assert!(v.verify(t).await.is_ok(), "the control token verifies");
        assert!(e.server_active(t).await, "the control token introspects");
        assert_eq!(e.forward_auth("Bearer", t).await, 200);
    }
    let list = catalogue(&e);
    assert!(list.len() >= 35, "{} attacks", list.len());
    for (name, token) in &list {
        let lib = v.verify(token).await;
        assert!(lib.is_err(), "library accepted: {name}");
        assert!(
            !e.server_active(token).await,
            "introspection accepted: {name}"
        );
        let fa = e.forward_auth("Bearer", token).await;
        assert!(
            fa == 401 || fa == 431 || fa == 400,
            "forward-auth answered {fa} to: {name}"
        );
    }
    println!(
        "attack catalogue: {} tokens refused by library, introspection and forward-auth",
        list.len()
    );
}

#[tokio::test]
async fn an_eddsa_token_verifies_and_its_key_cannot_sign_for_es256() {
    let e = env().await;
    let v = e.verifier().await;
    let t = e.token(&e.eddsa).await;
    let claims = v.verify(&t).await.expect("EdDSA token");
    assert_eq!(claims.aud.to_vec(), vec![AUD.to_owned()]);
    // The EdDSA key's kid with an ES256 header: the key pins the algorithm.
    let mut h = e.header(SigningAlg::ES256);
    h["kid"] = json!(e.kid(SigningAlg::EdDSA));
    let forged = e.sign(SigningAlg::EdDSA, &h, &e.claims());
    assert!(v.verify(&forged).await.is_err());
    assert!(!e.server_active(&forged).await);
}

#[tokio::test]
async fn random_kids_fetch_the_jwks_at_most_once_per_interval() {
    let e = env().await;
    let v = e
        .builder()
        .unknown_kid_interval(std::time::Duration::from_secs(3600))
        .build()
        .await
        .expect("verifier");
    let (evil, _) = SigningKey::generate(SigningAlg::ES256).expect("key");
    let before = v.jwks_fetches();
    for i in 0..50 {
        let t = foreign(
            &evil,
            &json!({"alg": "ES256", "typ": "at+jwt", "kid": format!("random-{i}")}),
            &e.claims(),
        );
        assert!(v.verify(&t).await.is_err());
    }
    assert!(
        v.jwks_fetches() - before <= 1,
        "{} fetches for 50 unknown kids",
        v.jwks_fetches() - before
    );
}

#[tokio::test]
async fn a_key_published_after_start_is_found_by_one_refetch() {
    let e = env().await;
    let v = e
        .builder()
        .unknown_kid_interval(std::time::Duration::from_millis(1))
        .build()
        .await
        .expect("verifier");
    let old = v.key_ids();
    // An immediate rotation: a new ES256 key signs from now on.
    e.app
        .authority
        .rotate_now(SigningAlg::ES256, true)
        .await
        .expect("rotate");
    let new_kid = e.kid(SigningAlg::ES256);
    assert!(!old.contains(&new_kid), "the rotation made a new key");
    let t = e.sign(SigningAlg::ES256, &e.header(SigningAlg::ES256), &e.claims());
    let fetches = v.jwks_fetches();
    assert!(v.verify(&t).await.is_ok(), "the new kid is fetched once");
    assert_eq!(v.jwks_fetches(), fetches + 1);
    assert!(v.key_ids().contains(&new_kid));
}

#[tokio::test]
async fn the_jwks_is_refreshed_in_the_background_before_its_max_age() {
    let app = portcullis_testkit::TestApp::builder()
        .settings(|s| s.keys.jwks_max_age = std::time::Duration::from_secs(5))
        .spawn()
        .await;
    let v = portcullis_verify::Verifier::builder(app.settings.server.issuer.clone(), AUD)
        .build()
        .await
        .expect("verifier");
    assert_eq!(v.jwks_fetches(), 0, "the first fetch is part of build");
    let kid = app
        .authority
        .rotate_now(SigningAlg::ES256, true)
        .await
        .expect("rotate");
    assert!(!v.key_ids().contains(&kid));
    // max-age=5 s: the refresh comes at 80% of it, with no request to verify.
    let took = crate::support::until(std::time::Duration::from_secs(8), || {
        v.key_ids().contains(&kid)
    })
    .await
    .expect("the new key arrives by the background refresh");
    assert!(v.jwks_fetches() >= 1);
    assert!(
        took < std::time::Duration::from_secs(5),
        "refreshed before the 5 s max-age ran out (took {took:?})"
    );
    println!("background JWKS refresh picked up the new key after {took:?}");
}
