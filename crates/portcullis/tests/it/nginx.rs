//! A real nginx (`auth_request`) in front of a tiny upstream, with Portcullis as
//! the forward-auth service, all on loopback. The nginx snippet is the one the
//! README documents.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::HeaderMap;
use portcullis_core::clock::Clock as _;
use portcullis_service::apikeys::{NewApiKey, NewKeyspace};
use portcullis_testkit::{urlencode, TestApp};

fn nginx_binary() -> Option<PathBuf> {
    let p = std::env::var_os("PORTCULLIS_TEST_NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"));
    p.exists().then_some(p)
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server block from the README, with ports and paths filled in.
fn config(dir: &Path, listen: u16, portcullis: &str, upstream: &str) -> String {
    let d = dir.display();
    let readme_block = include_str!("../../../../docs/nginx-forward-auth.conf")
        .replace("PORTCULLIS", portcullis)
        .replace("UPSTREAM", upstream)
        .replace("LISTEN", &format!("127.0.0.1:{listen}"));
    format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         {readme_block}\n}}\n"
    )
}

async fn upstream() -> String {
    let app = axum::Router::new().fallback(|h: HeaderMap| async move {
        let get = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        format!(
            "subject={} scopes={} auth={}",
            get("x-auth-subject"),
            get("x-auth-scopes"),
            get("authorization")
        )
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await.expect("upstream") });
    format!("127.0.0.1:{}", addr.port())
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_an_upstream() {
    let Some(bin) = nginx_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is required in CI (.ci/run installs it)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "skipped: nginx (install Debian's nginx-light or set PORTCULLIS_TEST_NGINX)"
        );
        return;
    };
    let app = TestApp::builder()
        .settings(|s| {
            s.ip.trusted_proxies = vec!["127.0.0.1".into()];
            s.forwardauth.routes = vec![portcullis_server::config::ForwardAuthRoute {
                prefix: "/admin/".into(),
                methods: vec![],
                scopes: vec!["write".into()],
            }];
        })
        .spawn()
        .await;
    let up = upstream().await;
    let dir = tempfile::tempdir().expect("tmp");
    let port = crate::util::free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config(dir.path(), port, &app.addr.to_string(), &up)).expect("conf");
    let child = Command::new(&bin)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx");
    let _nginx = Nginx(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if http.get(format!("{base}/")).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = || std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert!(ready, "nginx did not start: {}", log());
    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(format!("{base}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };

    // No token: 401 with the challenge passed through.
    let res = get("/things", None).await.expect("req");
    assert_eq!(res.status(), 401, "{}", log());
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="portcullis""#
    );

    // A valid token: 200, the identity reaches the upstream, the bearer does not.
    let c = app.client(TestApp::cc("svc")).await;
    let jwt = app.token(&c, "&scope=read").await;
    let res = get("/things?x=1", Some(&jwt)).await.expect("req");
    assert_eq!(res.status(), 200, "{}", log());
    let body = res.text().await.expect("body");
    assert_eq!(body, format!("subject={} scopes=read auth=", c.id));

    // Wrong scope for the route: 403.
    let res = get("/admin/users", Some(&jwt)).await.expect("req");
    assert_eq!(res.status(), 403, "{}", log());

    // Over the limit: 429 with Retry-After.
    app.authority
        .create_keyspace(NewKeyspace {
            name: "acme".into(),
            prefix: "acme_live".into(),
            ..Default::default()
        })
        .await
        .expect("ks");
    let key = app
        .authority
        .create_api_key(NewApiKey {
            keyspace: "acme".into(),
            owner: "org-1".into(),
            rate_limit: Some("1/minute".into()),
            ..Default::default()
        })
        .await
        .expect("key");
    let res = get("/things", Some(&key.key)).await.expect("req");
    assert_eq!(res.status(), 200, "{}", log());
    let res = get("/things", Some(&key.key)).await.expect("req");
    assert_eq!(res.status(), 429, "{}", log());
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));

    // A DPoP-bound token: accepted with a proof for the URL the client called (nginx
    // forwards the DPoP header and X-Forwarded-Proto/-Host), refused without one.
    let key_pair =
        portcullis_core::dpop::DpopKey::generate(portcullis_core::jose::SigningAlg::ES256)
            .expect("dpop key");
    let now = app.clock.now();
    let token_proof = key_pair
        .proof("POST", &app.url("/oauth/token"), None, None, now)
        .expect("proof");
    let bound: serde_json::Value = http
        .post(app.url("/oauth/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .header("dpop", token_proof)
        .form(&[("grant_type", "client_credentials"), ("scope", "read")])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    assert_eq!(bound["token_type"], "DPoP");
    let at = bound["access_token"].as_str().expect("token");
    let proof = key_pair
        .proof("GET", &format!("{base}/things"), Some(at), None, now)
        .expect("proof");
    let res = http
        .get(format!("{base}/things?page=2"))
        .header("authorization", format!("DPoP {at}"))
        .header("dpop", &proof)
        .send()
        .await
        .expect("req");
    assert_eq!(res.status(), 200, "{}", log());
    for (scheme, proof) in [("DPoP", None), ("Bearer", Some(&proof))] {
        let mut r = http
            .get(format!("{base}/things"))
            .header("authorization", format!("{scheme} {at}"));
        if let Some(p) = proof {
            r = r.header("dpop", p);
        }
        let res = r.send().await.expect("req");
        assert_eq!(res.status(), 401, "{scheme} without a fresh proof");
        assert!(res.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("DPoP"));
    }

    // Revoked: 401.
    let res = app
        .post_form(
            "/oauth/revoke",
            &format!("token={}", urlencode(&jwt)),
            Some(&c),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = get("/things", Some(&jwt)).await.expect("req");
    assert_eq!(res.status(), 401, "{}", log());
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .contains("invalid_token"));
}
