use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use portcullis_service::clients::NewClient;
use portcullis_testkit::TestApp;
use serde_json::Value;

#[tokio::test]
async fn both_discovery_documents_list_real_endpoints_only() {
    let app = TestApp::spawn().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let res = app.http.get(app.url(path)).send().await.expect("get");
        assert_eq!(res.status(), 200);
        let d: Value = res.json().await.expect("json");
        assert_eq!(d["issuer"], app.base.as_str());
        assert_eq!(
            d["grant_types_supported"],
            serde_json::json!([
                "authorization_code",
                "refresh_token",
                "client_credentials",
                "password"
            ])
        );
        assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(
            d["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(d["authorization_response_iss_parameter_supported"], true);
        assert_eq!(
            d["id_token_signing_alg_values_supported"],
            serde_json::json!(["RS256"])
        );
        // The browser-facing endpoints exist (a bare GET is an error page or a
        // challenge, never a 404).
        for ep in [
            "authorization_endpoint",
            "userinfo_endpoint",
            "end_session_endpoint",
        ] {
            let url = d[ep].as_str().expect(ep);
            let r = app.http.get(url).send().await.expect("get");
            assert!(
                matches!(r.status().as_u16(), 200 | 400 | 401),
                "{ep} -> {}",
                r.status()
            );
        }
        for ep in [
            "token_endpoint",
            "introspection_endpoint",
            "revocation_endpoint",
        ] {
            let url = d[ep].as_str().expect(ep);
            // Each endpoint exists: an empty POST gets an OAuth error, not a 404.
            let r = app
                .http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .send()
                .await
                .expect("post");
            assert!(
                matches!(r.status().as_u16(), 400 | 401),
                "{ep} -> {}",
                r.status()
            );
        }
        let jwks = app
            .http
            .get(d["jwks_uri"].as_str().expect("jwks_uri"))
            .send()
            .await
            .expect("jwks");
        assert_eq!(jwks.status(), 200);
    }
}

#[tokio::test]
async fn the_jwks_is_cacheable_and_verifies_tokens_with_a_third_party_library() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .get(app.url("/jwks.json"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    let set: JwkSet = res.json().await.expect("jwks");
    assert_eq!(set.keys.len(), 4);
    for jwk in &set.keys {
        assert!(jwk.common.key_id.is_some());
        assert!(jwk.common.key_algorithm.is_some());
        let s = serde_json::to_string(jwk).expect("json");
        for private in ["\"d\"", "\"p\"", "\"q\"", "\"dp\""] {
            assert!(!s.contains(private), "private member {private} published");
        }
    }
    for alg in ["EdDSA", "ES256", "RS256", "PS256"] {
        let c = app
            .client(NewClient {
                access_token_alg: Some(alg.into()),
                ..TestApp::cc(alg)
            })
            .await;
        let t = app.token(&c, "").await;
        let header = jsonwebtoken::decode_header(&t).expect("header");
        let jwk = set
            .find(header.kid.as_deref().expect("kid"))
            .expect("kid published");
        let key = DecodingKey::from_jwk(jwk).expect("key");
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&app.base]);
        v.set_audience(&[&app.base]);
        let data = jsonwebtoken::decode::<Value>(&t, &key, &v).expect("verifies");
        assert_eq!(data.claims["client_id"], c.id.as_str(), "{alg}");
    }
}
