//! What a hostile or broken client can hold: slow request heads (slow-loris), idle
//! connections, oversized heads, deep JSON, and more requests than the server will
//! handle at once. Raw TCP, so the client can misbehave the way a real one would.

use std::time::{Duration, Instant};

use portcullis_testkit::TestApp;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection or `within` passes; returns what
/// arrived and whether the connection was closed.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http.get(app.url(path)).send().await.expect("get")
}

/// Sends one raw request and reads the status line of the answer.
async fn status_of(app: &TestApp, raw: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    s.write_all(raw).await.expect("write");
    let (text, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[tokio::test]
async fn a_slow_loris_client_is_cut_off_and_a_slow_but_honest_one_is_served() {
    let app = TestApp::builder()
        .settings(|s| s.server.header_read_timeout = Duration::from_millis(800))
        .spawn()
        .await;
    // Honest but slow: the head arrives in three pieces within the limit.
    let mut honest = TcpStream::connect(app.addr).await.expect("connect");
    for part in [
        "GET /healthz HTTP/1.1\r\n",
        "Host: x\r\n",
        "Connection: close\r\n\r\n",
    ] {
        honest.write_all(part.as_bytes()).await.expect("write");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (text, _) = read_until_closed(&mut honest, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // Slow-loris: a header byte every 100 ms, never finishing the head.
    let mut loris = TcpStream::connect(app.addr).await.expect("connect");
    loris
        .write_all(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let start = Instant::now();
    let mut cut = None;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if loris.write_all(b"a").await.is_err() {
            cut = Some(start.elapsed());
            break;
        }
        // Anything read (an end of stream, a reset, an error page) means the
        // server has given up on this connection.
        let mut b = [0u8; 256];
        if tokio::time::timeout(Duration::from_millis(1), loris.read(&mut b))
            .await
            .is_ok()
        {
            cut = Some(start.elapsed());
            break;
        }
    }
    let cut = cut.expect("the slow-loris connection was never closed in 6 s");
    assert!(
        cut >= Duration::from_millis(700) && cut < Duration::from_secs(3),
        "closed after {cut:?}, expected about the 800 ms header timeout"
    );

    // A connection that never says anything, and a keep-alive connection left idle
    // after a request, are both closed after the same time.
    let mut silent = TcpStream::connect(app.addr).await.expect("connect");
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(closed, "an idle new connection stays open");
    let mut idle = TcpStream::connect(app.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let start = Instant::now();
    let (text, closed) = read_until_closed(&mut idle, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed, "an idle keep-alive connection stays open");
    assert!(start.elapsed() >= Duration::from_millis(700));

    // The server is unharmed.
    assert_eq!(get(&app, "/healthz").await.status(), 200);
}

#[tokio::test]
async fn oversized_request_heads_are_refused_with_431() {
    let app = TestApp::builder()
        .settings(|s| s.server.max_header_bytes = 8 * 1024)
        .spawn()
        .await;
    let with_header = |len: usize| {
        format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(len)
        )
    };
    let (code, text) = status_of(&app, with_header(7 * 1024).as_bytes()).await;
    assert_eq!(code, 200, "a head under the limit is served: {text}");
    let (code, _) = status_of(&app, with_header(9 * 1024).as_bytes()).await;
    assert_eq!(code, 431, "a head over max_header_bytes");
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let raw = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    let (code, _) = status_of(&app, raw.as_bytes()).await;
    assert_eq!(code, 431, "more than 100 header fields");
    assert_eq!(get(&app, "/healthz").await.status(), 200);
}

#[tokio::test]
async fn deeply_nested_json_is_a_clear_error_not_a_crash() {
    let app = TestApp::spawn().await;
    let token = app
        .authority
        .create_admin_token("test", &["admin".to_owned()])
        .await
        .expect("admin token")
        .token;
    for depth in [200usize, 5_000] {
        let body = format!(
            "{{\"name\":\"n\",\"prefix\":\"deep\",\"meta\":{}1{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let res = app
            .http
            .post(app.url("/api/v1/keyspaces"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        let status = res.status().as_u16();
        let ctype = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let v: Value = res.json().await.expect("json body");
        assert!(matches!(status, 400 | 422), "depth {depth}: {status} {v}");
        assert_eq!(ctype, "application/problem+json", "depth {depth}");
        assert_eq!(v["status"], status, "{v}");
    }
    // Nothing was created, and the server answers.
    let res = app
        .http
        .get(app.url("/api/v1/keyspaces"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list");
    let v: Value = res.json().await.expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(0), "{v}");
}

async fn client_credentials(
    app: &TestApp,
    c: &portcullis_testkit::TestClient,
) -> reqwest::Response {
    app.http
        .post(app.url("/oauth/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send")
}

/// Opens a token request whose body never finishes: the handler is running (and
/// holds an in-flight slot) while it waits for the rest.
async fn hold_a_request(app: &TestApp) -> TcpStream {
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    s.write_all(
        b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=",
    )
    .await
    .expect("write");
    s
}

#[tokio::test]
async fn past_the_in_flight_limit_requests_are_shed_at_once_with_503() {
    let app = TestApp::builder()
        .settings(|s| {
            s.server.max_inflight_requests = 2;
            s.server.request_timeout = Duration::from_secs(3);
        })
        .spawn()
        .await;
    let c = app.client(TestApp::cc("svc")).await;
    let mut held = vec![hold_a_request(&app).await, hold_a_request(&app).await];
    // Let both reach their handlers.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let start = Instant::now();
    let res = client_credentials(&app, &c).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "shed at once, not queued"
    );
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let v: Value = res.json().await.expect("json");
    assert_eq!(v["error"], "temporarily_unavailable", "{v}");

    let res = get(&app, "/api/v1/keyspaces").await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(
        get(&app, "/healthz").await.status(),
        200,
        "probes are never shed"
    );
    assert_eq!(
        get(&app, "/readyz").await.status(),
        200,
        "probes are never shed"
    );

    // One held request finishes: its slot is free again and the next request is served.
    let mut first = held.remove(0);
    // 100 bytes in all; no client credentials, so the answer is 401 invalid_client.
    let rest = format!("client_credentials&pad={}", "a".repeat(100 - 11 - 23));
    first.write_all(rest.as_bytes()).await.expect("finish body");
    let (text, _) = read_until_closed(&mut first, Duration::from_millis(500)).await;
    assert!(
        text.starts_with("HTTP/1.1 401"),
        "the held request got its answer: {text}"
    );
    let res = client_credentials(&app, &c).await;
    assert_eq!(res.status(), 200, "a slot was given back");

    // The other never finishes its body: request_timeout ends it with 503.
    let mut second = held.remove(0);
    let (text, _) = read_until_closed(&mut second, Duration::from_secs(5)).await;
    assert!(
        text.starts_with("HTTP/1.1 503"),
        "a slow body is bounded: {text}"
    );
    // In the token endpoint's own envelope, like every other answer there.
    let head = text.to_ascii_lowercase();
    assert!(head.contains("\r\nretry-after: 1\r\n"), "{text}");
    assert!(
        head.contains("\r\ncontent-type: application/json"),
        "{text}"
    );
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or_default())
        .unwrap_or_else(|e| panic!("a JSON body ({e}): {text}"));
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("request timeout")),
        "{body}"
    );
}

async fn open_event_stream(app: &TestApp, c: &portcullis_testkit::TestClient) -> reqwest::Response {
    app.http
        .get(app.url("/oauth/events"))
        .basic_auth(&c.id, Some(&c.secret))
        .send()
        .await
        .expect("events")
}

#[tokio::test]
async fn past_the_event_stream_limit_a_new_stream_is_refused_until_one_closes() {
    let app = TestApp::builder()
        .settings(|s| {
            s.server.max_event_streams = 2;
            // As many request slots as streams: were an open stream to hold one,
            // the introspection below would be shed.
            s.server.max_inflight_requests = 2;
        })
        .spawn()
        .await;
    let c = app.client(TestApp::cc("subscriber")).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let res = open_event_stream(&app, &c).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        open.push(res);
    }

    let res = open_event_stream(&app, &c).await;
    assert_eq!(res.status(), 503, "a third stream is over the limit");
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let v: Value = res.json().await.expect("json");
    assert_eq!(v["error"], "temporarily_unavailable", "{v}");
    // Open streams hold no in-flight slot: other requests are still served.
    assert_eq!(app.introspect(&c, "not-a-token").await["active"], false);

    // One subscriber goes away: once the server sees the connection closed (at the
    // latest at the next keep-alive comment), its slot is free for a new stream.
    drop(open.remove(0));
    let deadline = Instant::now() + 2 * portcullis_server::http::oauth::events::KEEP_ALIVE;
    loop {
        let res = open_event_stream(&app, &c).await;
        if res.status() == 200 {
            break;
        }
        assert_eq!(res.status(), 503);
        assert!(
            Instant::now() < deadline,
            "the closed stream's slot came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
