//! Command-line interface (DESIGN.md §3).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use portcullis_core::clock::SystemClock;
use portcullis_core::duration::parse_duration;
use portcullis_core::jose::SigningAlg;
use portcullis_server::config::{LogFormat, Settings};
use portcullis_service::clients::{ClientView, NewClient};
use portcullis_service::Authority;
use serde_json::json;

use crate::output::{print, Output};

/// Portcullis: a self-hosted API token authority.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
pub(crate) struct Cli {
    /// TOML configuration file; every key can also be set as PORTCULLIS_<SECTION>_<KEY>.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Output of admin commands.
    #[arg(long, global = true, value_enum, default_value = "json")]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (creates and migrates the database, keys and master key on first start).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCmd),
    /// Manage signing keys.
    #[command(subcommand, name = "signing-key")]
    SigningKey(KeyCmd),
    /// Manage admin API tokens (bearer tokens for /api/v1).
    #[command(subcommand, name = "admin-token")]
    AdminToken(AdminTokenCmd),
    /// Manage keyspaces (groups of API keys sharing a prefix).
    #[command(subcommand)]
    Keyspace(KeyspaceCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApikeyCmd),
    /// Manage roles (named sets of scopes users may hold).
    #[command(subcommand)]
    Role(RoleCmd),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage personal access tokens.
    #[command(subcommand)]
    Pat(PatCmd),
    /// Read and verify the tamper-evident audit trail.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Manage webhook subscriptions to audit events.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Temporary denies of client networks.
    #[command(subcommand, name = "ip-block")]
    IpBlock(IpBlockCmd),
}

#[derive(Debug, Subcommand)]
enum IpBlockCmd {
    /// Denies in force.
    List,
    /// Deny an address or CIDR for a while.
    Add {
        /// Address or CIDR.
        network: String,
        /// How long, like 1h or 7d.
        #[arg(long = "for", value_name = "DURATION", default_value = "1h")]
        duration: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Lift a deny.
    Remove {
        /// Address or CIDR, as listed.
        network: String,
    },
}

#[derive(Debug, Subcommand)]
enum WebhookCmd {
    /// Subscribe a URL; prints the signing secret once.
    Create {
        /// Where events are POSTed.
        #[arg(long)]
        url: String,
        /// Event type (token.revoked), prefix (anomaly.) or * (repeatable).
        #[arg(long = "event", value_name = "E", required = true, num_args = 1..)]
        events: Vec<String>,
    },
    /// List subscriptions.
    List,
    /// Delete a subscription and its pending deliveries.
    Delete {
        /// Webhook id.
        id: String,
    },
    /// Show the delivery log, newest first.
    Deliveries {
        /// Webhook id.
        id: String,
        /// How many attempts.
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Check every link of the chain from the retention anchor to the newest record;
    /// exits non-zero naming the first broken link. Keep the printed head_seq and
    /// head_hash elsewhere to detect later removal of the newest records.
    Verify,
    /// The newest records, newest first.
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
        /// Event type, or a prefix ending in '.' (token.).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Every record in a time range, oldest first.
    Export {
        /// From (RFC 3339, or an age such as 24h or 30d).
        #[arg(long)]
        since: Option<String>,
        /// Until (RFC 3339, or an age).
        #[arg(long)]
        until: Option<String>,
        /// Event type, or a prefix ending in '.'.
        #[arg(long)]
        kind: Option<String>,
        /// jsonl (one record per line) or json (one array).
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "json"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
enum RoleCmd {
    /// Create a role, or replace its scopes.
    Put {
        /// Name.
        #[arg(long)]
        name: String,
        /// Scope the role allows (repeatable).
        #[arg(long = "scope", value_name = "S", num_args = 1..)]
        scopes: Vec<String>,
    },
    /// List roles.
    List,
}

#[derive(Debug, Subcommand)]
enum UserCmd {
    /// Create a user.
    Create {
        /// Username.
        #[arg(long)]
        username: String,
        /// Email.
        #[arg(long)]
        email: Option<String>,
        /// Role (repeatable).
        #[arg(long = "role", value_name = "R", num_args = 1..)]
        roles: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Require MFA at every sign-in.
        #[arg(long)]
        require_mfa: bool,
    },
    /// List users.
    List,
    /// Show a user (id or username).
    Show {
        /// Id or username.
        user: String,
    },
    /// Change a user's email, roles or MFA requirement.
    Update {
        /// Id or username.
        user: String,
        /// New email (`none` clears it).
        #[arg(long)]
        email: Option<String>,
        /// Roles, replacing the current ones (repeatable).
        #[arg(long = "role", value_name = "R", num_args = 1..)]
        roles: Option<Vec<String>>,
        /// Require MFA (true or false).
        #[arg(long, value_name = "BOOL")]
        require_mfa: Option<bool>,
    },
    /// Disable a user: every session, refresh token, access token and PAT is revoked at once.
    Disable {
        /// Id or username.
        user: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Id or username.
        user: String,
    },
    /// Set a user's password (first line of standard input); revokes everything the user holds.
    SetPassword {
        /// Id or username.
        user: String,
        /// Read the password from standard input (required: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Remove a user's authenticator and recovery codes.
    ResetMfa {
        /// Id or username.
        user: String,
    },
    /// Delete a user (after revoking everything they hold).
    Delete {
        /// Id or username.
        user: String,
    },
}

/// The first line of standard input, without its line ending.
fn password_from_stdin() -> anyhow::Result<portcullis_core::secret::SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        anyhow::bail!(
            "--password-stdin: standard input is empty (send the password as its first line)"
        );
    }
    Ok(portcullis_core::secret::SecretString::new(pw))
}

#[derive(Debug, Subcommand)]
enum PatCmd {
    /// Create a personal access token for a user; prints it once.
    Create {
        /// User id or username.
        #[arg(long)]
        user: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// Scope (repeatable), within the user's roles.
        #[arg(long = "scope", value_name = "S", num_args = 1..)]
        scopes: Vec<String>,
        /// Lifetime like 30d, or `never` where policy allows (default: pats.max_ttl).
        #[arg(long = "expires-in", value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// List a user's tokens.
    List {
        /// User id or username.
        #[arg(long)]
        user: String,
    },
    /// Revoke one token.
    Revoke {
        /// Token id.
        id: String,
    },
    /// Revoke every token of a user (offboarding).
    RevokeAll {
        /// User id or username.
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
enum AdminTokenCmd {
    /// Create a token; prints it once.
    Create {
        /// Scope (repeatable): admin, keyspaces:read, keyspaces:write, keys:read, keys:write, keys:verify. Default: admin.
        #[arg(long = "scope", value_name = "S", num_args = 1..)]
        scopes: Vec<String>,
        /// What the token is for.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token.
    Revoke {
        /// Token id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeyspaceCmd {
    /// Create a keyspace.
    Create {
        /// Unique name.
        #[arg(long)]
        name: String,
        /// Key prefix, e.g. acme_live.
        #[arg(long)]
        prefix: String,
        /// Scope keys may have (repeatable).
        #[arg(long = "scope", value_name = "S", num_args = 1..)]
        scopes: Vec<String>,
        /// Scope of keys created without --scope (repeatable).
        #[arg(long = "default-scope", value_name = "S", num_args = 1..)]
        default_scopes: Vec<String>,
        /// Default rate limit of new keys, N/second|minute|hour|day.
        #[arg(long = "rate-limit", value_name = "N/PERIOD")]
        rate_limit: Option<String>,
        /// Default lifetime of new keys, like 90d.
        #[arg(long = "default-ttl", value_name = "DURATION")]
        default_ttl: Option<String>,
        /// Longest lifetime of keys, like 365d.
        #[arg(long = "max-ttl", value_name = "DURATION")]
        max_ttl: Option<String>,
    },
    /// List keyspaces.
    List,
    /// Show a keyspace (id or name).
    Show {
        /// Id or name.
        keyspace: String,
    },
    /// Delete a keyspace that holds no keys.
    Delete {
        /// Id or name.
        keyspace: String,
    },
    /// Change a keyspace's scopes, defaults and lifetimes.
    Update {
        /// Id or name.
        keyspace: String,
        /// Replace the scopes keys may have (repeatable).
        #[arg(long = "scope", value_name = "S", num_args = 1..)]
        scopes: Option<Vec<String>>,
        /// Replace the default scopes (repeatable).
        #[arg(long = "default-scope", value_name = "S", num_args = 1..)]
        default_scopes: Option<Vec<String>>,
        /// Replace the default rate limit (`none` removes it).
        #[arg(long = "rate-limit", value_name = "N/PERIOD")]
        rate_limit: Option<String>,
        /// Replace the default lifetime (`none` removes it).
        #[arg(long = "default-ttl", value_name = "DURATION")]
        default_ttl: Option<String>,
        /// Replace the maximum lifetime (`none` removes it).
        #[arg(long = "max-ttl", value_name = "DURATION")]
        max_ttl: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ApikeyCmd {
    /// Create a key; prints it once.
    Create(Box<CreateKey>),
    /// List keys (never the keys themselves).
    List {
        /// Only this keyspace (id or name).
        #[arg(long)]
        keyspace: Option<String>,
        /// Only this owner.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Show a key.
    Show {
        /// Key id.
        id: String,
    },
    /// Delete a key for good.
    Delete {
        /// Key id.
        id: String,
    },
    /// Revoke a key (effective at once on this node; on a running server within database.change_poll_interval).
    Revoke {
        /// Key id.
        id: String,
    },
    /// Give a key a new secret; the old one keeps working for --grace (prints the new key once).
    Roll {
        /// Key id.
        id: String,
        /// How long the old secret keeps working, like 24h (default: it stops now).
        #[arg(long, value_name = "DURATION")]
        grace: Option<String>,
    },
    /// Verification counts of a key by bucket and outcome.
    Usage {
        /// Key id.
        id: String,
        /// minute, hour or day.
        #[arg(long, default_value = "hour")]
        granularity: String,
        /// Start, seconds since the epoch (default: 24 h before --to).
        #[arg(long)]
        from: Option<i64>,
        /// End, seconds since the epoch (default: now).
        #[arg(long)]
        to: Option<i64>,
    },
    /// Enable or disable a key.
    Update {
        /// Key id.
        id: String,
        /// Enable (true) or disable (false).
        #[arg(long)]
        enabled: Option<bool>,
        /// Replace the remaining uses.
        #[arg(long)]
        uses: Option<i64>,
        /// Replace the rate limit.
        #[arg(long = "rate-limit", value_name = "N/PERIOD")]
        rate_limit: Option<String>,
    },
}

#[derive(Debug, Args)]
struct CreateKey {
    /// Keyspace id or name.
    #[arg(long)]
    keyspace: String,
    /// Owner (an external id: user, team, customer).
    #[arg(long)]
    owner: String,
    /// Name.
    #[arg(long)]
    name: Option<String>,
    /// Scope (repeatable; default: the keyspace's default scopes).
    #[arg(long = "scope", value_name = "S", num_args = 1..)]
    scopes: Option<Vec<String>>,
    /// Lifetime, like 90d.
    #[arg(long = "expires-in", value_name = "DURATION")]
    expires_in: Option<String>,
    /// Rate limit, N/second|minute|hour|day.
    #[arg(long = "rate-limit", value_name = "N/PERIOD")]
    rate_limit: Option<String>,
    /// Uses allowed (quota).
    #[arg(long)]
    uses: Option<i64>,
    /// Allowed client network (repeatable CIDR).
    #[arg(long = "allow-ip", value_name = "CIDR", num_args = 1..)]
    allow_ips: Vec<String>,
    /// Metadata, a JSON object.
    #[arg(long)]
    meta: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ClientCmd {
    /// Register a client; prints its client_secret once.
    Create(Box<CreateClient>),
    /// List clients (never their secrets).
    List,
    /// Show one client.
    Show {
        /// Client id.
        id: String,
    },
    /// Delete a client; its tokens stop working.
    Delete {
        /// Client id.
        id: String,
    },
    /// Replace a client's secret; prints the new one once. The old one stops working at once.
    RotateSecret {
        /// Client id.
        id: String,
    },
}

#[derive(Debug, Args)]
struct CreateClient {
    /// Display name.
    #[arg(long)]
    name: String,
    /// Allowed grant type (repeatable): client_credentials, authorization_code,
    /// refresh_token, password (the last only for clients that must have it).
    #[arg(long = "grant-type", value_name = "G", required = true, num_args = 1..)]
    grant_types: Vec<String>,
    /// Redirect URI (repeatable), matched exactly.
    #[arg(long = "redirect-uri", value_name = "U", num_args = 1..)]
    redirect_uris: Vec<String>,
    /// Scope the client may be granted (repeatable).
    #[arg(long = "scope", value_name = "S", num_args = 1..)]
    scopes: Vec<String>,
    /// Scope granted when none is requested (repeatable; default: all of --scope).
    #[arg(long = "default-scope", value_name = "S", num_args = 1..)]
    default_scopes: Vec<String>,
    /// Audience the client may request with `resource` (repeatable, absolute URI).
    #[arg(long = "audience", value_name = "URI", num_args = 1..)]
    audiences: Vec<String>,
    /// Audience used when no `resource` is requested (default: the issuer).
    #[arg(long = "default-audience", value_name = "URI")]
    default_audience: Option<String>,
    /// A public client (no secret).
    #[arg(long)]
    public: bool,
    /// Access-token format.
    #[arg(long = "token-format", value_name = "jwt|opaque")]
    token_format: Option<String>,
    /// JWT signing algorithm: EdDSA, ES256, RS256 or PS256 (default: keys.access_token_alg).
    #[arg(long = "access-token-alg", value_name = "ALG")]
    access_token_alg: Option<String>,
    /// Access-token lifetime, like 15m or 1h (default: tokens.access_token_ttl).
    #[arg(long = "access-token-ttl", value_name = "DURATION")]
    access_token_ttl: Option<String>,
    /// The client's own rate limit on the token endpoint and forward-auth, N/PERIOD
    /// (default: ratelimit.token_per_client / forward_auth_per_credential).
    #[arg(long = "rate-limit", value_name = "N/PERIOD")]
    rate_limit: Option<String>,
    /// Where RP-initiated logout may send the browser (repeatable, matched exactly).
    #[arg(long = "post-logout-redirect-uri", value_name = "U", num_args = 1..)]
    post_logout_redirect_uris: Vec<String>,
    /// Sliding refresh-token lifetime (default 14d).
    #[arg(long = "refresh-token-ttl", value_name = "DURATION")]
    refresh_token_ttl: Option<String>,
    /// Absolute lifetime of a refresh-token family (default 90d).
    #[arg(long = "refresh-token-max-ttl", value_name = "DURATION")]
    refresh_token_max_ttl: Option<String>,
    /// Users must pass MFA to sign in to this client.
    #[arg(long)]
    require_mfa: bool,
    /// A first-party client: users are not asked for consent.
    #[arg(long)]
    first_party: bool,
    /// Every token request must carry a DPoP proof (RFC 9449); all its tokens are bound.
    #[arg(long)]
    require_dpop: bool,
}

#[derive(Debug, Subcommand)]
enum KeyCmd {
    /// List signing keys (public information only).
    List,
    /// Rotate: publish a next key now and switch to it after keys.publish_ahead.
    Rotate {
        /// Only this algorithm (default: all).
        #[arg(long, value_name = "ALG")]
        alg: Option<String>,
        /// Switch signing now (for a compromised key) instead of publishing ahead.
        #[arg(long)]
        immediate: bool,
    },
}

/// The filter of `log.level`.
#[derive(Debug)]
enum LogFilter {
    /// A plain level or `target=level` list.
    Static(Box<tracing_subscriber::filter::Targets>),
    /// Span or field directives (`[request]=debug`): EnvFilter, which keeps per-span
    /// bookkeeping, a lock taken each time a request's span is entered, so only a
    /// filter that needs it pays for it.
    Dynamic(Box<tracing_subscriber::EnvFilter>),
}

fn log_filter(level: &str) -> anyhow::Result<LogFilter> {
    // Targets would read `[span]` as part of a target name: span directives go to
    // EnvFilter, which understands them.
    if !level.contains(['[', '{']) {
        if let Ok(t) = level.parse::<tracing_subscriber::filter::Targets>() {
            return Ok(LogFilter::Static(Box::new(t)));
        }
    }
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|f| LogFilter::Dynamic(Box::new(f)))
        .with_context(|| format!("log.level: invalid filter {level:?}"))
}

fn init_logging(settings: &Settings, admin: bool) -> anyhow::Result<()> {
    // Admin commands keep stderr for their one-line failure reason unless asked.
    let level = if admin && std::env::var_os("PORTCULLIS_LOG_LEVEL").is_none() {
        "warn"
    } else {
        settings.log.level.as_str()
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter: Box<dyn tracing_subscriber::Layer<_> + Send + Sync> = match log_filter(level)? {
        LogFilter::Static(t) => t,
        LogFilter::Dynamic(f) => f,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let fmt: Box<dyn tracing_subscriber::Layer<_> + Send + Sync> = match settings.log.format {
        LogFormat::Json => Box::new(
            fmt.fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(crate::logfmt::Json::default()),
        ),
        LogFormat::Text => Box::new(fmt.event_format(crate::logfmt::Text)),
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
}

async fn authority(settings: &Settings) -> anyhow::Result<Arc<Authority>> {
    portcullis_server::bootstrap::open(settings, Arc::new(SystemClock)).await
}

const CLIENT_COLUMNS: &[&str] = &[
    "client_id",
    "name",
    "grant_types",
    "scopes",
    "token_format",
    "access_token_alg",
    "secret_hint",
];

/// Runs one command.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    let out = cli.output;
    init_logging(&settings, !matches!(cli.command, Command::Serve))?;
    match cli.command {
        Command::Serve => {
            portcullis_server::serve(settings, portcullis_server::shutdown_signal()).await
        }
        Command::Migrate => {
            authority(&settings).await?;
            print(
                out,
                &json!({"migrated": true, "database": settings.database.redacted_url()}),
                &["migrated", "database"],
            )
        }
        cmd => {
            // Every change an admin command makes is audited with this actor.
            let who = std::env::var("USER").unwrap_or_default();
            let actor = if who.is_empty() {
                "cli".to_owned()
            } else {
                format!("cli:{who}")
            };
            let ctx = Arc::new(portcullis_service::audit::AuditContext::with_actor(&actor));
            portcullis_service::audit::with_context(ctx, admin_command(cmd, &settings, out)).await
        }
    }
}

async fn admin_command(cmd: Command, settings: &Settings, out: Output) -> anyhow::Result<()> {
    match cmd {
        Command::Serve | Command::Migrate => anyhow::bail!("not an admin command"),
        Command::Client(cmd) => client(cmd, settings, out).await,
        Command::SigningKey(cmd) => signing_key(cmd, settings, out).await,
        Command::AdminToken(cmd) => admin_token(cmd, settings, out).await,
        Command::Keyspace(cmd) => keyspace(cmd, settings, out).await,
        Command::Apikey(cmd) => apikey(cmd, settings, out).await,
        Command::Role(cmd) => role(cmd, settings, out).await,
        Command::User(cmd) => user(cmd, settings, out).await,
        Command::Pat(cmd) => pat(cmd, settings, out).await,
        Command::Audit(cmd) => audit(cmd, settings, out).await,
        Command::Webhook(cmd) => webhook(cmd, settings, out).await,
        Command::IpBlock(cmd) => ip_block(cmd, settings, out).await,
    }
}

async fn ip_block(cmd: IpBlockCmd, settings: &Settings, out: Output) -> anyhow::Result<()> {
    let auth = authority(settings).await?;
    let cols = &["network", "reason", "created_at", "expires_at"];
    match cmd {
        IpBlockCmd::List => print(out, &auth.list_ip_blocks().await?, cols),
        IpBlockCmd::Add {
            network,
            duration,
            reason,
        } => {
            let d = parse_duration(&duration).context("--for")?;
            print(out, &auth.block(&network, &reason, d).await?, cols)
        }
        IpBlockCmd::Remove { network } => {
            auth.unblock_ip(&network).await?;
            print(out, &json!({"removed": network}), &["removed"])
        }
    }
}

async fn webhook(cmd: WebhookCmd, settings: &Settings, out: Output) -> anyhow::Result<()> {
    let auth = authority(settings).await?;
    let cols = &["id", "url", "events", "enabled", "created_at"];
    match cmd {
        WebhookCmd::Create { url, events } => print(
            out,
            &auth.create_webhook(&url, &events).await?,
            &["id", "url", "events", "secret"],
        ),
        WebhookCmd::List => print(out, &auth.list_webhooks().await?, cols),
        WebhookCmd::Delete { id } => {
            auth.delete_webhook(&id).await?;
            print(out, &json!({"deleted": id}), &["deleted"])
        }
        WebhookCmd::Deliveries { id, limit } => print(
            out,
            &auth.webhook_attempts(&id, limit).await?,
            &[
                "time",
                "delivery_id",
                "event_seq",
                "attempt",
                "status",
                "error",
                "duration_ms",
            ],
        ),
    }
}

async fn audit(cmd: AuditCmd, settings: &Settings, out: Output) -> anyhow::Result<()> {
    use portcullis_store::AuditFilter;
    let auth = authority(settings).await?;
    match cmd {
        AuditCmd::Verify => {
            let report = auth.audit_verify().await?;
            print(
                out,
                &report,
                &[
                    "ok",
                    "checked",
                    "anchor_seq",
                    "head_seq",
                    "head_hash",
                    "broken_at",
                ],
            )?;
            if !report.ok {
                anyhow::bail!(
                    "audit chain broken at record {}: {}",
                    report.broken_at.unwrap_or_default(),
                    report.problem.unwrap_or_default()
                );
            }
            Ok(())
        }
        AuditCmd::Tail { lines, kind } => {
            let page = auth
                .audit_page(AuditFilter {
                    kind,
                    limit: lines,
                    newest_first: true,
                    ..AuditFilter::default()
                })
                .await?;
            print(out, &page.events, AUDIT_COLUMNS)
        }
        AuditCmd::Export {
            since,
            until,
            kind,
            format,
        } => {
            let mut filter = AuditFilter {
                since_ms: since
                    .as_deref()
                    .map(|s| auth.parse_audit_time("since", s))
                    .transpose()?,
                until_ms: until
                    .as_deref()
                    .map(|s| auth.parse_audit_time("until", s))
                    .transpose()?,
                kind,
                limit: 1_000,
                ..AuditFilter::default()
            };
            let mut all = Vec::new();
            loop {
                let page = auth.audit_page(filter.clone()).await?;
                for e in &page.events {
                    if format == "jsonl" {
                        println!("{}", serde_json::to_string(e)?);
                    }
                }
                let next = page.next_cursor.clone();
                if format == "json" {
                    all.extend(page.events);
                }
                match next.map(|c| c.parse::<i64>()) {
                    Some(Ok(c)) => filter.after_seq = Some(c),
                    _ => break,
                }
            }
            if format == "json" {
                println!("{}", serde_json::to_string_pretty(&all)?);
            }
            Ok(())
        }
    }
}

const AUDIT_COLUMNS: &[&str] = &[
    "seq",
    "time",
    "kind",
    "outcome",
    "actor",
    "subject",
    "credential_id",
    "ip",
    "reason",
];

async fn role(cmd: RoleCmd, settings: &Settings, out: Output) -> anyhow::Result<()> {
    let auth = authority(settings).await?;
    match cmd {
        RoleCmd::Put { name, scopes } => print(
            out,
            &auth.put_role(&name, &scopes).await?,
            &["name", "scopes"],
        ),
        RoleCmd::List => print(out, &auth.list_roles().await?, &["name", "scopes"]),
    }
}

const USER_COLUMNS: &[&str] = &[
    "id",
    "username",
    "email",
    "roles",
    "enabled",
    "has_password",
    "mfa_required",
    "mfa_enrolled",
];

async fn user(cmd: UserCmd, settings: &Settings, out: Output) -> anyhow::Result<()> {
    use portcullis_service::users::UserUpdate;
    let auth = authority(settings).await?;
    match cmd {
        UserCmd::Create {
            username,
            email,
            roles,
            password_stdin,
            require_mfa,
        } => {
            let password = password_stdin.then(password_from_stdin).transpose()?;
            let u = auth
                .create_user(portcullis_service::pats::NewUser {
                    username,
                    email,
                    roles,
                    password,
                    mfa_required: require_mfa,
                })
                .await?;
            print(out, &u, USER_COLUMNS)
        }
        UserCmd::List => print(out, &auth.list_users().await?, USER_COLUMNS),
        UserCmd::Show { user } => print(out, &auth.get_user(&user).await?, USER_COLUMNS),
        UserCmd::Update {
            user,
            email,
            roles,
            require_mfa,
        } => {
            let change = UserUpdate {
                email: email.map(|e| (e != "none").then_some(e)),
                roles,
                mfa_required: require_mfa,
                enabled: None,
            };
            print(out, &auth.update_user(&user, change).await?, USER_COLUMNS)
        }
        UserCmd::Disable { user } => {
            let change = UserUpdate {
                enabled: Some(false),
                ..UserUpdate::default()
            };
            print(out, &auth.update_user(&user, change).await?, USER_COLUMNS)
        }
        UserCmd::Enable { user } => {
            let change = UserUpdate {
                enabled: Some(true),
                ..UserUpdate::default()
            };
            print(out, &auth.update_user(&user, change).await?, USER_COLUMNS)
        }
        UserCmd::SetPassword { user, .. } => {
            let pw = password_from_stdin()?;
            auth.set_password(&user, &pw).await?;
            print(
                out,
                &json!({"user": user, "password_set": true}),
                &["user", "password_set"],
            )
        }
        UserCmd::ResetMfa { user } => {
            auth.reset_mfa(&user).await?;
            print(
                out,
                &json!({"user": user, "mfa_reset": true}),
                &["user", "mfa_reset"],
            )
        }
        UserCmd::Delete { user } => {
            auth.delete_user(&user).await?;
            print(out, &json!({"deleted": user}), &["deleted"])
        }
    }
}

const PAT_COLUMNS: &[&str] = &[
    "id",
    "hint",
    "name",
    "scopes",
    "expires_at",
    "last_used_at",
    "revoked_at",
];

async fn pat(cmd: PatCmd, settings: &Settings, out: Output) -> anyhow::Result<()> {
    use portcullis_service::pats::PatLifetime;
    let auth = authority(settings).await?;
    match cmd {
        PatCmd::Create {
            user,
            name,
            scopes,
            expires_in,
        } => {
            let lifetime = match expires_in.as_deref() {
                None => PatLifetime::Default,
                Some("never") => PatLifetime::Never,
                Some(d) => PatLifetime::For(parse_duration(d).context("--expires-in")?),
            };
            print(
                out,
                &auth.create_pat(&user, &name, &scopes, lifetime).await?,
                &["id", "name", "token"],
            )
        }
        PatCmd::List { user } => print(out, &auth.list_pats(&user).await?, PAT_COLUMNS),
        PatCmd::Revoke { id } => print(out, &auth.revoke_pat(&id).await?, PAT_COLUMNS),
        PatCmd::RevokeAll { user } => {
            let n = auth.revoke_all_pats(&user).await?;
            print(
                out,
                &json!({"user": user, "revoked": n}),
                &["user", "revoked"],
            )
        }
    }
}

fn opt_duration(flag: &str, v: Option<&str>) -> anyhow::Result<Option<std::time::Duration>> {
    v.map(parse_duration)
        .transpose()
        .with_context(|| flag.to_owned())
}

async fn admin_token(cmd: AdminTokenCmd, settings: &Settings, out: Output) -> anyhow::Result<()> {
    let auth = authority(settings).await?;
    match cmd {
        AdminTokenCmd::Create { scopes, name } => print(
            out,
            &auth.create_admin_token(&name, &scopes).await?,
            &["id", "scopes", "token"],
        ),
        AdminTokenCmd::List => print(
            out,
            &auth.list_admin_tokens().await?,
            &["id", "name", "hint", "scopes", "revoked_at"],
        ),
        AdminTokenCmd::Revoke { id } => {
            auth.revoke_admin_token(&id).await?;
            print(out, &json!({"id": id, "revoked": true}), &["id", "revoked"])
        }
    }
}

const KEYSPACE_COLUMNS: &[&str] = &[
    "id",
    "name",
    "prefix",
    "scopes",
    "default_scopes",
    "rate_limit",
    "max_ttl",
];
const KEY_COLUMNS: &[&str] = &[
    "id",
    "hint",
    "owner",
    "name",
    "scopes",
    "remaining",
    "rate_limit",
    "enabled",
    "expires_at",
    "revoked_at",
];

async fn keyspace(cmd: KeyspaceCmd, settings: &Settings, out: Output) -> anyhow::Result<()> {
    let auth = authority(settings).await?;
    match cmd {
        KeyspaceCmd::Create {
            name,
            prefix,
            scopes,
            default_scopes,
            rate_limit,
            default_ttl,
            max_ttl,
        } => {
            let ks = auth
                .create_keyspace(portcullis_service::apikeys::NewKeyspace {
                    name,
                    prefix,
                    scopes,
                    default_scopes,
                    rate_limit,
                    default_ttl: opt_duration("--default-ttl", default_ttl.as_deref())?,
                    max_ttl: opt_duration("--max-ttl", max_ttl.as_deref())?,
                })
                .await?;
            print(out, &ks, KEYSPACE_COLUMNS)
        }
        KeyspaceCmd::Update {
            keyspace,
            scopes,
            default_scopes,
            rate_limit,
            default_ttl,
            max_ttl,
        } => {
            let none_or = |v: Option<String>| v.map(|v| if v == "none" { None } else { Some(v) });
            let dur = |flag: &str,
                       v: Option<Option<String>>|
             -> anyhow::Result<Option<Option<std::time::Duration>>> {
                v.map(|inner| opt_duration(flag, inner.as_deref()))
                    .transpose()
            };
            let u = portcullis_service::apikeys::KeyspaceUpdate {
                scopes,
                default_scopes,
                rate_limit: none_or(rate_limit),
                default_ttl: dur("--default-ttl", none_or(default_ttl))?,
                max_ttl: dur("--max-ttl", none_or(max_ttl))?,
            };
            print(
                out,
                &auth.update_keyspace(&keyspace, u).await?,
                KEYSPACE_COLUMNS,
            )
        }
        KeyspaceCmd::List => print(out, &auth.list_keyspaces().await?, KEYSPACE_COLUMNS),
        KeyspaceCmd::Show { keyspace } => {
            print(out, &auth.get_keyspace(&keyspace).await?, KEYSPACE_COLUMNS)
        }
        KeyspaceCmd::Delete { keyspace } => {
            auth.delete_keyspace(&keyspace).await?;
            print(
                out,
                &json!({"keyspace": keyspace, "deleted": true}),
                &["keyspace", "deleted"],
            )
        }
    }
}

async fn apikey(cmd: ApikeyCmd, settings: &Settings, out: Output) -> anyhow::Result<()> {
    let auth = authority(settings).await?;
    match cmd {
        ApikeyCmd::Create(c) => {
            let meta = c
                .meta
                .as_deref()
                .map(serde_json::from_str::<serde_json::Value>)
                .transpose()
                .context("--meta: not valid JSON")?;
            let created = auth
                .create_api_key(portcullis_service::apikeys::NewApiKey {
                    keyspace: c.keyspace,
                    owner: c.owner,
                    name: c.name,
                    scopes: c.scopes,
                    meta,
                    expires_in: opt_duration("--expires-in", c.expires_in.as_deref())?,
                    expires_at: None,
                    uses: c.uses,
                    rate_limit: c.rate_limit,
                    allow_ips: c.allow_ips,
                })
                .await?;
            print(out, &created, &["id", "owner", "key"])
        }
        ApikeyCmd::List { keyspace, owner } => print(
            out,
            &auth
                .list_api_keys(keyspace.as_deref(), owner.as_deref())
                .await?,
            KEY_COLUMNS,
        ),
        ApikeyCmd::Show { id } => print(out, &auth.get_api_key(&id).await?, KEY_COLUMNS),
        ApikeyCmd::Delete { id } => {
            auth.delete_api_key(&id).await?;
            print(out, &json!({"id": id, "deleted": true}), &["id", "deleted"])
        }
        ApikeyCmd::Revoke { id } => print(out, &auth.revoke_api_key(&id).await?, KEY_COLUMNS),
        ApikeyCmd::Roll { id, grace } => {
            let grace = opt_duration("--grace", grace.as_deref())?.unwrap_or_default();
            print(
                out,
                &auth.roll_api_key(&id, grace).await?,
                &["id", "hint", "key"],
            )
        }
        ApikeyCmd::Usage {
            id,
            granularity,
            from,
            to,
        } => {
            let g = portcullis_service::apikeys::Granularity::parse(&granularity)?;
            print(
                out,
                &auth.api_key_usage(&id, from, to, g).await?,
                &["start", "counts"],
            )
        }
        ApikeyCmd::Update {
            id,
            enabled,
            uses,
            rate_limit,
        } => {
            let u = portcullis_service::apikeys::ApiKeyUpdate {
                enabled,
                uses: uses.map(Some),
                rate_limit: rate_limit.map(Some),
                ..Default::default()
            };
            print(out, &auth.update_api_key(&id, u).await?, KEY_COLUMNS)
        }
    }
}

async fn client(cmd: ClientCmd, settings: &Settings, out: Output) -> anyhow::Result<()> {
    let auth = authority(settings).await?;
    match cmd {
        ClientCmd::Create(c) => {
            let ttl = c
                .access_token_ttl
                .as_deref()
                .map(parse_duration)
                .transpose()
                .context("--access-token-ttl")?;
            let created = auth
                .create_client(NewClient {
                    name: c.name,
                    grant_types: c.grant_types,
                    redirect_uris: c.redirect_uris,
                    scopes: c.scopes,
                    default_scopes: c.default_scopes,
                    audiences: c.audiences,
                    default_audience: c.default_audience,
                    public: c.public,
                    token_format: c.token_format,
                    access_token_alg: c.access_token_alg,
                    access_token_ttl: ttl,
                    rate_limit: c.rate_limit,
                    post_logout_redirect_uris: c.post_logout_redirect_uris,
                    refresh_token_ttl: opt_duration(
                        "--refresh-token-ttl",
                        c.refresh_token_ttl.as_deref(),
                    )?,
                    refresh_token_max_ttl: opt_duration(
                        "--refresh-token-max-ttl",
                        c.refresh_token_max_ttl.as_deref(),
                    )?,
                    require_mfa: c.require_mfa,
                    first_party: c.first_party,
                    require_dpop: c.require_dpop,
                })
                .await?;
            print(out, &created, &["client_id", "name", "client_secret"])
        }
        ClientCmd::List => {
            let list: Vec<ClientView> = auth
                .list_clients()
                .await?
                .iter()
                .map(ClientView::from)
                .collect();
            print(out, &list, CLIENT_COLUMNS)
        }
        ClientCmd::Show { id } => print(
            out,
            &ClientView::from(&auth.get_client(&id).await?),
            CLIENT_COLUMNS,
        ),
        ClientCmd::Delete { id } => {
            auth.delete_client(&id).await?;
            print(
                out,
                &json!({"client_id": id, "deleted": true}),
                &["client_id", "deleted"],
            )
        }
        ClientCmd::RotateSecret { id } => {
            let rotated = auth.rotate_client_secret(&id).await?;
            print(out, &rotated, &["client_id", "name", "client_secret"])
        }
    }
}

async fn signing_key(cmd: KeyCmd, settings: &Settings, out: Output) -> anyhow::Result<()> {
    let auth = authority(settings).await?;
    const COLUMNS: &[&str] = &[
        "kid",
        "alg",
        "state",
        "created_at",
        "activate_at",
        "retired_at",
        "remove_at",
    ];
    match cmd {
        KeyCmd::List => {
            auth.ensure_signing_keys().await?;
            print(out, &auth.list_signing_keys().await?, COLUMNS)
        }
        KeyCmd::Rotate { alg, immediate } => {
            auth.ensure_signing_keys().await?;
            let algs = match alg {
                Some(a) => vec![a.parse::<SigningAlg>().context("--alg")?],
                None => SigningAlg::ALL.to_vec(),
            };
            let mut rotated = Vec::new();
            for a in algs {
                let kid = auth.rotate_now(a, immediate).await?;
                rotated.push(json!({"alg": a.as_str(), "kid": kid, "immediate": immediate}));
            }
            print(out, &rotated, &["alg", "kid", "immediate"])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{log_filter, LogFilter};

    #[test]
    fn plain_levels_get_the_static_filter_and_span_directives_the_dynamic_one() {
        for level in ["info", "warn,portcullis_server=debug", "sqlx=warn"] {
            assert!(
                matches!(log_filter(level), Ok(LogFilter::Static(_))),
                "{level}"
            );
        }
        for level in [
            "info,[request]=debug",
            "warn,[request{path=/oauth/token}]=trace",
        ] {
            assert!(
                matches!(log_filter(level), Ok(LogFilter::Dynamic(_))),
                "{level}"
            );
        }
        let e = log_filter("info,=[=").expect_err("garbage").to_string();
        assert!(e.contains("log.level: invalid filter"), "{e}");
    }
}
