use crate::util::{cli, json_ok, run};

#[test]
fn client_lifecycle_through_the_cli() {
    let dir = tempfile::tempdir().expect("tmp");
    let created = json_ok(&run(cli(dir.path()).args([
        "client",
        "create",
        "--name",
        "billing",
        "--grant-type",
        "client_credentials",
        "--scope",
        "read",
        "--scope",
        "write",
        "--token-format",
        "opaque",
        "--access-token-ttl",
        "10m",
    ])));
    let id = created["client_id"].as_str().expect("id").to_owned();
    let secret = created["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(secret.starts_with("pcs_"));
    assert_eq!(created["access_token_ttl"], 600);
    assert_eq!(created["token_format"], "opaque");

    let list = run(cli(dir.path()).args(["client", "list"]));
    let listed = json_ok(&list);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&secret),
        "list never shows the secret"
    );
    let shown = json_ok(&run(cli(dir.path()).args(["client", "show", &id])));
    assert_eq!(shown["name"], "billing");
    assert!(shown.get("client_secret").is_none());

    let table = run(cli(dir.path()).args(["--output", "table", "client", "list"]));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("CLIENT_ID"), "{text}");
    assert!(text.contains("billing"));

    let rotated = json_ok(&run(cli(dir.path()).args(["client", "rotate-secret", &id])));
    assert_ne!(rotated["client_secret"].as_str(), Some(secret.as_str()));

    json_ok(&run(cli(dir.path()).args(["client", "delete", &id])));
    let gone = run(cli(dir.path()).args(["client", "show", &id]));
    assert!(!gone.status.success());
    let err = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn bad_cli_input_fails_with_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tmp");
    // First use creates the master key and says so loudly; that warning is checked elsewhere.
    let first = run(cli(dir.path()).args(["signing-key", "list"]));
    assert!(String::from_utf8_lossy(&first.stderr).contains("CREATED A NEW MASTER KEY"));
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "client",
                "create",
                "--name",
                "x",
                "--grant-type",
                "implicit",
            ],
            "grant_type",
        ),
        (
            &[
                "client",
                "create",
                "--name",
                "x",
                "--grant-type",
                "client_credentials",
                "--access-token-ttl",
                "soon",
            ],
            "--access-token-ttl",
        ),
        (
            &[
                "client",
                "create",
                "--name",
                "x",
                "--grant-type",
                "client_credentials",
                "--access-token-alg",
                "HS256",
            ],
            "access_token_alg",
        ),
        (
            &[
                "client",
                "create",
                "--name",
                "x",
                "--grant-type",
                "client_credentials",
                "--audience",
                "nope",
            ],
            "audience",
        ),
        (&["signing-key", "rotate", "--alg", "none"], "--alg"),
    ];
    for (args, needle) in cases {
        let out = run(cli(dir.path()).args(*args));
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    }
    let listed = json_ok(&run(cli(dir.path()).args(["client", "list"])));
    assert_eq!(listed, serde_json::json!([]), "nothing was written");
    let out = run(cli(dir.path()).args(["client", "create", "--grant-type", "client_credentials"]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap usage error for a missing --name"
    );
}

#[test]
fn signing_keys_list_and_rotate() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = json_ok(&run(cli(dir.path()).args(["signing-key", "list"])));
    let keys = keys.as_array().expect("array");
    assert_eq!(keys.len(), 4);
    let algs: Vec<&str> = keys
        .iter()
        .map(|k| k["alg"].as_str().expect("alg"))
        .collect();
    for a in ["EdDSA", "ES256", "RS256", "PS256"] {
        assert!(algs.contains(&a), "{a}");
    }
    let r = json_ok(&run(cli(dir.path()).args([
        "signing-key",
        "rotate",
        "--alg",
        "ES256",
    ])));
    assert_eq!(r[0]["alg"], "ES256");
    let keys = json_ok(&run(cli(dir.path()).args(["signing-key", "list"])));
    let next: Vec<_> = keys
        .as_array()
        .expect("array")
        .iter()
        .filter(|k| k["state"] == "next")
        .collect();
    assert_eq!(next.len(), 1);
    let again = run(cli(dir.path()).args(["signing-key", "rotate", "--alg", "ES256"]));
    assert!(!again.status.success(), "second scheduled rotation refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--immediate"));
    json_ok(&run(cli(dir.path()).args([
        "signing-key",
        "rotate",
        "--alg",
        "ES256",
        "--immediate",
    ])));
    let keys = json_ok(&run(cli(dir.path()).args(["signing-key", "list"])));
    let states: Vec<(&str, &str)> = keys
        .as_array()
        .expect("array")
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .map(|k| {
            (
                k["state"].as_str().expect("s"),
                k["kid"].as_str().expect("k"),
            )
        })
        .collect();
    assert_eq!(states.iter().filter(|(s, _)| *s == "active").count(), 1);
    assert_eq!(states.iter().filter(|(s, _)| *s == "retired").count(), 1);
}

#[test]
fn a_lost_master_key_is_refused_rather_than_replaced() {
    let dir = tempfile::tempdir().expect("tmp");
    json_ok(&run(cli(dir.path()).args(["signing-key", "list"])));
    let mk = dir.path().join("master.key");
    let mode = std::fs::metadata(&mk).expect("master key exists");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }
    let _ = mode;
    std::fs::remove_file(&mk).expect("rm");
    let out = run(cli(dir.path()).args(["client", "list"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("keys.master_key_file"));
    assert!(!mk.exists(), "no new key was written over the old state");
    // A different master key cannot open the sealed signing keys.
    std::fs::write(&mk, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").expect("write");
    let out = run(cli(dir.path()).args(["signing-key", "list"]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("master key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_invalid_configuration_is_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    for (var, val, key) in [
        (
            "PORTCULLIS_SERVER_LISTEN",
            "not-an-address",
            "server.listen",
        ),
        ("PORTCULLIS_TOKENS_LEEWAY", "forever", "tokens.leeway"),
        ("PORTCULLIS_SERVER_ISSUER", "ftp://x", "server.issuer"),
        ("PORTCULLIS_SERVER_NOPE", "1", "nope"),
    ] {
        let out = run(cli(dir.path()).arg("serve").env(var, val));
        assert!(!out.status.success(), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{var}: {err}");
    }
    let cfg = dir.path().join("p.toml");
    std::fs::write(&cfg, "[server]\nlisten = 5\n").expect("write");
    let out = run(cli(dir.path()).args(["--config", cfg.to_str().expect("utf8"), "serve"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

#[test]
fn keyspaces_api_keys_and_admin_tokens_through_the_cli() {
    let dir = tempfile::tempdir().expect("tmp");
    json_ok(&run(cli(dir.path()).args([
        "keyspace",
        "create",
        "--name",
        "acme",
        "--prefix",
        "acme_live",
        "--scope",
        "read",
    ])));
    let out = run(cli(dir.path()).args([
        "apikey",
        "create",
        "--keyspace",
        "acme",
        "--owner",
        "cust-1",
        "--scope",
        "read",
        "--expires-in",
        "90d",
        "--rate-limit",
        "100/minute",
        "--uses",
        "5",
        "--allow-ip",
        "203.0.113.0/24",
        "--meta",
        r#"{"plan":"pro"}"#,
    ]));
    let created = json_ok(&out);
    let key = created["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("acme_live_"));
    assert_eq!(created["remaining"], 5);
    assert_eq!(created["allow_ips"], serde_json::json!(["203.0.113.0/24"]));
    let list = run(cli(dir.path()).args(["apikey", "list", "--owner", "cust-1"]));
    assert_eq!(json_ok(&list).as_array().map(Vec::len), Some(1));
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&key));
    let id = created["id"].as_str().expect("id");
    let revoked = json_ok(&run(cli(dir.path()).args(["apikey", "revoke", id])));
    assert!(revoked["revoked_at"].is_i64());
    json_ok(&run(cli(dir.path()).args(["apikey", "delete", id])));
    assert!(
        !run(cli(dir.path()).args(["apikey", "show", id]))
            .status
            .success(),
        "deleted"
    );
    let ks = json_ok(&run(cli(dir.path()).args([
        "keyspace",
        "update",
        "acme",
        "--rate-limit",
        "5/second",
        "--max-ttl",
        "30d",
    ])));
    assert_eq!(
        (ks["rate_limit"].as_str(), ks["max_ttl"].as_i64()),
        (Some("5/second"), Some(30 * 86_400))
    );
    let ks = json_ok(&run(cli(dir.path()).args([
        "keyspace",
        "update",
        "acme",
        "--rate-limit",
        "none",
        "--max-ttl",
        "none",
    ])));
    assert!(ks["rate_limit"].is_null());
    for (args, needle) in [
        (
            vec![
                "apikey",
                "create",
                "--keyspace",
                "acme",
                "--owner",
                "o",
                "--rate-limit",
                "0/minute",
            ],
            "rate_limit",
        ),
        (
            vec![
                "apikey",
                "create",
                "--keyspace",
                "acme",
                "--owner",
                "o",
                "--allow-ip",
                "nope",
            ],
            "allow_ip",
        ),
        (
            vec![
                "apikey",
                "create",
                "--keyspace",
                "acme",
                "--owner",
                "o",
                "--meta",
                "{",
            ],
            "--meta",
        ),
        (
            vec!["apikey", "create", "--keyspace", "nope", "--owner", "o"],
            "not found",
        ),
        (
            vec!["keyspace", "create", "--name", "x", "--prefix", "pcat"],
            "prefix",
        ),
        (vec!["admin-token", "create", "--scope", "root"], "scope"),
    ] {
        let out = run(cli(dir.path()).args(&args));
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let t = json_ok(&run(cli(dir.path()).args([
        "admin-token",
        "create",
        "--scope",
        "keys:verify",
        "--name",
        "gateway",
    ])));
    assert!(t["token"].as_str().expect("token").starts_with("pcadm_"));
    let listed = run(cli(dir.path()).args(["admin-token", "list"]));
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(t["token"].as_str().expect("token")));
    json_ok(&run(cli(dir.path()).args([
        "admin-token",
        "revoke",
        t["id"].as_str().expect("id"),
    ])));
}

#[test]
fn roles_users_and_personal_access_tokens_through_the_cli() {
    let dir = tempfile::tempdir().expect("tmp");
    json_ok(&run(cli(dir.path()).args([
        "role",
        "put",
        "--name",
        "dev",
        "--scope",
        "repo:read",
    ])));
    let u = json_ok(&run(cli(dir.path()).args([
        "user",
        "create",
        "--username",
        "ada",
        "--role",
        "dev",
    ])));
    assert_eq!(u["roles"], serde_json::json!(["dev"]));
    let p = json_ok(&run(cli(dir.path()).args([
        "pat",
        "create",
        "--user",
        "ada",
        "--name",
        "laptop",
        "--scope",
        "repo:read",
        "--expires-in",
        "7d",
    ])));
    let token = p["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("pcpat_"));
    let list = run(cli(dir.path()).args(["pat", "list", "--user", "ada"]));
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&token));
    let r = json_ok(&run(cli(dir.path()).args([
        "pat",
        "revoke-all",
        "--user",
        "ada",
    ])));
    assert_eq!(r["revoked"], 1);
    let bad = run(cli(dir.path()).args([
        "pat",
        "create",
        "--user",
        "ada",
        "--name",
        "x",
        "--scope",
        "repo:write",
    ]));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("scope"));
    let bad = run(cli(dir.path()).args(["user", "create", "--username", "bo b"]));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("username"));
}

#[test]
fn audit_verify_tail_and_export_and_a_tampered_row_is_named() {
    let dir = tempfile::tempdir().expect("tmp");
    for name in ["a", "b"] {
        json_ok(&run(cli(dir.path()).args([
            "client",
            "create",
            "--name",
            name,
            "--grant-type",
            "client_credentials",
        ])));
    }
    let v = json_ok(&run(cli(dir.path()).args(["audit", "verify"])));
    assert_eq!(v["ok"], true);
    let head = v["head_seq"].as_i64().expect("head");
    assert_eq!(head, 2, "two clients created: {v}");
    let tail = json_ok(&run(cli(dir.path()).args(["audit", "tail", "-n", "2"])));
    let tail = tail.as_array().expect("array");
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[0]["seq"], head, "newest first");
    assert_eq!(tail[0]["kind"], "client.created");
    let out = run(cli(dir.path()).args(["audit", "export", "--since", "1h", "--kind", "client."]));
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    let out = run(cli(dir.path()).args(["audit", "export", "--since", "yesterday-ish"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("since"));

    // Edit one row behind the server's back.
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=rw", dir.path().join("p.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("db");
        sqlx::query("UPDATE audit_events SET actor = 'nobody' WHERE seq = ?")
            .bind(head - 1)
            .execute(&pool)
            .await
            .expect("tamper");
        pool.close().await;
    });
    let out = run(cli(dir.path()).args(["audit", "verify"]));
    assert!(!out.status.success(), "a tampered chain must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("audit chain broken at record {}", head - 1)),
        "{err}"
    );
}

/// Runs the CLI with `input` on standard input.
fn run_with_stdin(c: &mut std::process::Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

#[test]
fn users_get_passwords_from_stdin_and_are_updated_disabled_and_deleted() {
    let dir = tempfile::tempdir().expect("tmp");
    let create = |input: &str, name: &str| {
        run_with_stdin(
            cli(dir.path()).args(["user", "create", "--username", name, "--password-stdin"]),
            input,
        )
    };
    // Bad input: no password, a short one; nothing is created.
    let out = create("", "ada");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("standard input is empty"));
    let out = create("short\n", "ada");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid password: must be at least 8"));
    let list = json_ok(&run(cli(dir.path()).args(["user", "list"])));
    assert_eq!(list, serde_json::json!([]), "nothing half-written");
    // The first line is the password; it never appears in the output.
    let u = json_ok(&create("long enough password\nsecond line\n", "ada"));
    assert_eq!(u["has_password"], true);
    assert_eq!(u["mfa_enrolled"], false);
    let u = json_ok(&run(cli(dir.path()).args([
        "user",
        "update",
        "ada",
        "--require-mfa",
        "true",
        "--email",
        "ada@example.com",
    ])));
    assert_eq!(
        (u["mfa_required"].clone(), u["email"].clone()),
        (
            serde_json::json!(true),
            serde_json::json!("ada@example.com")
        )
    );
    let out = run_with_stdin(
        cli(dir.path()).args(["user", "set-password", "ada", "--password-stdin"]),
        "another long password\n",
    );
    assert_eq!(json_ok(&out)["password_set"], true);
    let u = json_ok(&run(cli(dir.path()).args(["user", "disable", "ada"])));
    assert_eq!(u["enabled"], false);
    let u = json_ok(&run(cli(dir.path()).args(["user", "enable", "ada"])));
    assert_eq!(u["enabled"], true);
    let bad = run(cli(dir.path()).args(["user", "update", "ada", "--role", "ghost"]));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown role"));
    json_ok(&run(cli(dir.path()).args(["user", "delete", "ada"])));
    let gone = run(cli(dir.path()).args(["user", "show", "ada"]));
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not found"));
}
