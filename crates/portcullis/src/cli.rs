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
    /// Allowed grant type (repeatable). Supported: client_credentials.
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

fn init_logging(settings: &Settings, admin: bool) -> anyhow::Result<()> {
    // Admin commands keep stderr for their one-line failure reason unless asked.
    let level = if admin && std::env::var_os("PORTCULLIS_LOG_LEVEL").is_none() {
        "warn"
    } else {
        settings.log.level.as_str()
    };
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("log.level: invalid filter {level:?}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let r = match settings.log.format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
    r.map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
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
                &json!({"migrated": true, "database": settings.database.url}),
                &["migrated", "database"],
            )
        }
        Command::Client(cmd) => client(cmd, &settings, out).await,
        Command::SigningKey(cmd) => signing_key(cmd, &settings, out).await,
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
