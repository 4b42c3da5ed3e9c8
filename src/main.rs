//! The `secretgate` command: parses arguments and calls the library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use secretgate::clock::Clock;
use secretgate::config::{Config, ConfigError, SigningKey};
use secretgate::hashes::{make_hash, HashAlgorithm, HashParams};
use secretgate::logline::LineFormat;
use secretgate::oauth::{Algorithm, AsymmetricAlgorithm};
use secretgate::secret::Secret;
use secretgate::verify::{verify_internal_header, Check, Expected};

#[derive(Parser)]
#[command(
    name = "secretgate",
    version,
    about = "OAuth client-authentication gateway for legacy token services"
)]
struct Cli {
    /// Log format of `run`, `demo` and `check` (also accepted after the command).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum HashAlg {
    Argon2id,
    Bcrypt,
    #[value(name = "pbkdf2-sha256")]
    Pbkdf2Sha256,
}

impl HashAlg {
    fn params(self) -> HashParams {
        HashParams::recommended(match self {
            HashAlg::Argon2id => HashAlgorithm::Argon2id,
            HashAlg::Bcrypt => HashAlgorithm::Bcrypt,
            HashAlg::Pbkdf2Sha256 => HashAlgorithm::Pbkdf2Sha256,
        })
    }
}

/// The asymmetric internal-header algorithms.
#[derive(Clone, Copy, ValueEnum)]
enum KeyAlg {
    #[value(name = "EdDSA")]
    EdDsa,
    #[value(name = "ES256")]
    Es256,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// The config file (YAML); reloaded on SIGHUP and when it or a file it names changes.
        #[arg(long, short)]
        config: PathBuf,
        /// Log format (stderr).
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Validate a config file and list every problem.
    Check {
        /// The config file (YAML) to validate, with every file it names.
        #[arg(long, short)]
        config: PathBuf,
        /// Validate the config without reading the secret, key, hash and certificate files
        /// or the environment variables it names (for CI, where they do not exist).
        #[arg(long)]
        skip_files: bool,
        /// Problems as text lines, or one JSON object per problem (stderr).
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Run the gateway with zero setup: a demo token service, a demo CA and the server and
    /// client certificates it issues, one client per method, and ready-to-paste curl
    /// commands.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// Log format (stderr).
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Print a fresh client assertion (new jti each call): client_secret_jwt with
    /// --secret-file, private_key_jwt with --key-file.
    #[command(group(clap::ArgGroup::new("credential").required(true).args(["secret_file", "key_file"])))]
    Assertion {
        #[arg(long)]
        client_id: String,
        /// File holding the client secret (trailing newline ignored): client_secret_jwt.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// PKCS#8 PEM private key: private_key_jwt (RSA, P-256 or Ed25519).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Key id for the header (private_key_jwt).
        #[arg(long, requires = "key_file")]
        kid: Option<String>,
        /// Audience: the token endpoint URL or the issuer.
        #[arg(long)]
        aud: String,
        /// HS256, HS384, HS512 with --secret-file (default HS256); RS256, PS256, ES256 or
        /// EdDSA with --key-file (default: the key's own, RS256 for RSA).
        #[arg(long)]
        alg: Option<String>,
        /// Lifetime, e.g. 60s or 5m.
        #[arg(long, default_value = "60s")]
        lifetime: String,
        /// How many assertions to print, one per line, each with its own jti (for load
        /// generation, where every request needs an unused one).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
    },
    /// Verify an internal header value (the upstream's side). Reads stdin without VALUE.
    VerifyHeader(VerifyArgs),
    /// Write a new private key for the internal header (PKCS#8 PEM, mode 0600, never over
    /// an existing file) and print its public JWK.
    NewKey {
        #[arg(long, value_enum)]
        alg: KeyAlg,
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
        /// The key id; default: the key's RFC 7638 thumbprint.
        #[arg(long)]
        kid: Option<String>,
    },
    /// Hash a client secret read from stdin (no echo on a terminal), for `secrets: [{ hash }]`.
    HashSecret {
        #[arg(long, value_enum, default_value_t = HashAlg::Argon2id)]
        alg: HashAlg,
    },
    /// Print a fresh random client secret (256 bits, prefix `sgcs_`, with a checksum).
    NewSecret {
        /// Also print its hash (argon2id, or --alg) on a second line.
        #[arg(long)]
        hash: bool,
        #[arg(long, value_enum, default_value_t = HashAlg::Argon2id, requires = "hash")]
        alg: HashAlg,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SECRETGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a file or a log collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // The access line written without tracing's dispatch (logline.rs), byte for byte what
    // this subscriber writes; not with colours, which only the stock formatter writes.
    let json = matches!(format, LogFormat::Json);
    if json || !ansi {
        secretgate::logline::write_access_directly(json);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        // Batched on the worker threads, direct elsewhere (logsink.rs).
        .with_writer(secretgate::logsink::Sink);
    // The access line is written without the formatting machinery (logline.rs).
    match format {
        LogFormat::Text => builder.event_format(LineFormat::text()).init(),
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(LineFormat::json())
            .init(),
    }
}

fn load_config(path: &std::path::Path, format: LogFormat) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| report_invalid(path, &e, format))
}

/// Lists every problem of an invalid config on stderr, as text lines or, with
/// `--log-format json`, one JSON object per problem (what a log pipeline needs from a
/// container in a crash loop). Returns the exit status for an invalid config.
fn report_invalid(path: &std::path::Path, e: &ConfigError, format: LogFormat) -> ExitCode {
    match format {
        LogFormat::Text => {
            eprintln!("{}: invalid configuration", path.display());
            for p in e.problems() {
                eprintln!("  {p}");
            }
        }
        LogFormat::Json => {
            for p in e.problem_list() {
                let line = serde_json::json!({
                    "level": "ERROR",
                    "message": "invalid configuration",
                    "config": path.display().to_string(),
                    "key": p.path,
                    "problem": p.message,
                });
                eprintln!("{line}");
            }
        }
    }
    ExitCode::from(2)
}

/// Prints a config's warnings on stderr in `format`.
fn report_warnings(path: &std::path::Path, warnings: &[String], format: LogFormat) {
    for w in warnings {
        match format {
            LogFormat::Text => eprintln!("warning: {w}"),
            LogFormat::Json => eprintln!(
                "{}",
                serde_json::json!({
                    "level": "WARN",
                    "message": w,
                    "config": path.display().to_string(),
                })
            ),
        }
    }
}

/// `--log-format` before the command or after it (after wins); only the commands that
/// log take it.
fn log_format(top: Option<LogFormat>, command: &Command) -> Result<LogFormat, &'static str> {
    let own = match command {
        Command::Run { log_format, .. }
        | Command::Check { log_format, .. }
        | Command::Demo { log_format, .. } => *log_format,
        _ if top.is_some() => {
            return Err("--log-format applies to run, check and demo only");
        }
        _ => None,
    };
    Ok(own.or(top).unwrap_or(LogFormat::Text))
}

// mimalloc instead of glibc malloc: about 10% less user CPU per proxied request under load
// (allocation was 5-8% of the profile; see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What the gateway's workers call once a second (`release_memory_with`): a forced
/// collection of the calling thread's heap, which purges every arena's freed pages
/// whatever their purge deadline (src/server/mod.rs says why the allocator's own timing
/// is not enough). Costs a walk of the thread's pages; measured in BENCHMARKS.md §5.
fn release_memory() {
    // SAFETY: mi_collect takes no pointer and has no precondition; mimalloc documents it
    // as callable from any thread at any time, and it only touches the allocator's own
    // structures under their own synchronisation.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn main() -> ExitCode {
    secretgate::server::release_memory_with(release_memory);
    let cli = Cli::parse();
    let format = match log_format(cli.log_format, &cli.command) {
        Ok(f) => f,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Check {
            config, skip_files, ..
        } => {
            let result = if skip_files {
                Config::check_without_files(&config)
            } else {
                Config::load(&config).map(|c| (c.clients.len(), c.warnings))
            };
            match result {
                Ok((clients, warnings)) => {
                    report_warnings(&config, &warnings, format);
                    let what = if skip_files { "; files not read" } else { "" };
                    println!("{}: ok ({clients} clients{what})", config.display());
                    ExitCode::SUCCESS
                }
                Err(e) => report_invalid(&config, &e, format),
            }
        }
        Command::Run { config: path, .. } => {
            init_logging(format);
            let config = match load_config(&path, format) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match run(config, &path) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo { listen, .. } => {
            init_logging(format);
            match demo(listen) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::NewKey { alg, out, kid } => {
            let alg = match alg {
                KeyAlg::EdDsa => AsymmetricAlgorithm::EdDsa,
                KeyAlg::Es256 => AsymmetricAlgorithm::Es256,
            };
            match secretgate::keys::new_key_file(alg, &out, kid.as_deref()) {
                Ok(jwk) => {
                    println!("{jwk}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}", secretgate::error::error_chain(&e));
                    ExitCode::from(2)
                }
            }
        }
        Command::Assertion {
            client_id,
            secret_file,
            key_file,
            kid,
            aud,
            alg,
            lifetime,
            count,
        } => match assertion(
            &client_id,
            Credential::of(secret_file, key_file, kid),
            &aud,
            alg.as_deref(),
            &lifetime,
            count,
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::HashSecret { alg } => match hash_secret(alg) {
            Ok(hash) => {
                println!("{hash}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::NewSecret { hash, alg } => {
            let secret = secretgate::hashes::new_secret();
            println!("{secret}");
            if hash {
                match make_hash(secret.as_bytes(), alg.params()) {
                    Ok(h) => println!("{h}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::VerifyHeader(args) => match verify(args) {
            Ok(claims) => {
                println!("{claims}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("invalid: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(config: Config, path: &std::path::Path) -> anyhow::Result<()> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    // Signals, reloads and the admin listener run here; connections are served on the
    // gateway's own worker threads (`workers`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot bind {}", config.listen))?;
        let admin = match &config.admin {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a.listen)
                    .await
                    .with_context(|| format!("cannot bind admin.listen {}", a.listen))?,
            ),
            None => None,
        };
        let gateway = secretgate::Gateway::new(config)
            .context("cannot start the gateway")?
            .reload_from(path);
        let sighup = tokio::spawn(secretgate::reload::on_sighup(gateway.reloader()));
        let result = gateway
            .serve(listener, admin, secretgate::shutdown::signal())
            .await
            .context("gateway failed");
        sighup.abort();
        result
    })
}

fn demo(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot locate this binary")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(secretgate::demo::run(
        secretgate::demo::DemoOptions { listen, exe },
        |text| {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        },
        secretgate::shutdown::signal(),
    ))?;
    Ok(())
}

/// Reads one secret from stdin: without echo from a terminal, else the whole input (one
/// trailing newline ignored). The secret is only hashed, never printed.
fn hash_secret(alg: HashAlg) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let secret = if std::io::stdin().is_terminal() {
        eprint!("secret (not shown): ");
        rpassword::read_password().context("cannot read the secret from the terminal")?
    } else {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read stdin")?;
        if s.ends_with("\r\n") {
            s.truncate(s.len() - 2);
        } else if s.ends_with('\n') {
            s.truncate(s.len() - 1);
        }
        s
    };
    anyhow::ensure!(!secret.is_empty(), "the secret is empty");
    anyhow::ensure!(
        secret.bytes().all(|b| (0x20..=0x7e).contains(&b)),
        "a client secret is visible ASCII (RFC 6749 Appendix A.2)"
    );
    Ok(make_hash(secret.as_bytes(), alg.params())?)
}

fn read_key_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let mut key = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        key.pop();
    }
    Ok(key)
}

/// What `assertion` signs with.
enum Credential {
    Secret(PathBuf),
    Key(PathBuf, Option<String>),
}

impl Credential {
    /// clap requires exactly one of the two files.
    fn of(secret: Option<PathBuf>, key: Option<PathBuf>, kid: Option<String>) -> Credential {
        match (secret, key) {
            (_, Some(key)) => Credential::Key(key, kid),
            (Some(secret), None) => Credential::Secret(secret),
            (None, None) => Credential::Secret(PathBuf::new()),
        }
    }
}

fn assertion(
    client_id: &str,
    credential: Credential,
    aud: &str,
    alg: Option<&str>,
    lifetime: &str,
    count: u64,
) -> anyhow::Result<()> {
    use std::io::Write;
    let lifetime = secretgate::config::units::parse_duration(lifetime)
        .map_err(anyhow::Error::msg)
        .context("--lifetime")?;
    let now = Clock::system().now();
    let mut mint: Box<dyn FnMut() -> anyhow::Result<String>> = match credential {
        Credential::Secret(file) => {
            let secret = Secret::new(read_key_file(&file)?);
            let name = alg.unwrap_or("HS256");
            let alg = Algorithm::from_name(name).with_context(|| {
                format!("--alg {name}: with --secret-file use HS256, HS384 or HS512")
            })?;
            // RFC 7518 §3.2: what the gateway would refuse at load, refused here too.
            let min = match alg {
                Algorithm::Hs256 => 32,
                Algorithm::Hs384 => 48,
                Algorithm::Hs512 => 64,
            };
            anyhow::ensure!(
                secret.len() >= min,
                "the secret is {} bytes; {} needs at least {min} (RFC 7518 §3.2), so the gateway would never accept this assertion",
                secret.len(),
                alg.name()
            );
            Box::new(move || {
                Ok(secretgate::assertion::mint(
                    client_id, &secret, aud, alg, lifetime, now,
                ))
            })
        }
        Credential::Key(file, kid) => {
            let pem =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let key = secretgate::keys::PrivateKey::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let alg = match alg {
                Some(name) => AsymmetricAlgorithm::from_name(name).with_context(|| {
                    format!("--alg {name}: with --key-file use RS256, PS256, ES256 or EdDSA")
                })?,
                None => match key.key_type() {
                    secretgate_verify::KeyType::P256 => AsymmetricAlgorithm::Es256,
                    secretgate_verify::KeyType::Ed25519 => AsymmetricAlgorithm::EdDsa,
                    secretgate_verify::KeyType::Rsa => AsymmetricAlgorithm::Rs256,
                },
            };
            let key = secretgate::keys::PrivateKey::for_algorithm(&pem, alg)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            Box::new(move || {
                secretgate::assertion::mint_signed(
                    client_id,
                    &key,
                    alg,
                    kid.as_deref(),
                    aud,
                    lifetime,
                    now,
                )
                .context("signing the assertion")
            })
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..count {
        writeln!(out, "{}", mint()?).context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")?;
    Ok(())
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("keys").required(true).args(["key_file", "jwks", "jwks_url"])))]
struct VerifyArgs {
    /// File holding one HS256 key (trailing newline ignored).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Key id of that key.
    #[arg(long, default_value = "k1", requires = "key_file")]
    kid: String,
    /// A JWK Set file (the gateway's /.well-known/jwks.json or internal_header.jwks_file):
    /// the key is picked by the header's kid, pinned to its alg.
    #[arg(long)]
    jwks: Option<PathBuf>,
    /// The same, fetched: the admin listener's http://…/.well-known/jwks.json, or https.
    #[arg(long)]
    jwks_url: Option<String>,
    #[arg(long, default_value = "secretgate")]
    issuer: String,
    #[arg(long, default_value = "legacy-token-service")]
    audience: String,
    /// Seconds of clock skew tolerated on exp and iat.
    #[arg(long, default_value_t = secretgate_verify::header::DEFAULT_LEEWAY)]
    leeway: i64,
    /// The request's HTTP method (`htm`).
    #[arg(long, required_unless_present = "unbound")]
    method: Option<String>,
    /// The public URL the client called, without query (`htu`).
    #[arg(long, required_unless_present = "unbound")]
    url: Option<String>,
    /// The request's query string, without `?` (`query_sha256`); absent: it had none.
    #[arg(long)]
    query: Option<String>,
    /// A file with the exact body the upstream received (`body_sha256`).
    #[arg(long, required_unless_present = "unbound")]
    body_file: Option<PathBuf>,
    /// Check signature, time, issuer and audience only, not the binding to a request
    /// (for diagnostics: an unbound header can be moved to another request).
    #[arg(long, conflicts_with_all = ["method", "url", "query", "body_file"])]
    unbound: bool,
    /// The header value; read from stdin when absent.
    value: Option<String>,
}

/// `verify-header --jwks-url`: one GET, bounded like the gateway's own fetches.
fn fetch_jwks(url: &str) -> anyhow::Result<Vec<u8>> {
    let cfg = secretgate::config::JwksFetchConfig {
        ca_pem: None,
        timeout: std::time::Duration::from_secs(5),
        refresh: std::time::Duration::from_secs(300),
        min_refetch_interval: std::time::Duration::from_secs(30),
        max_size: 1024 * 1024,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let body = runtime
        .block_on(secretgate::auth::jwks::fetch::fetch_any(url, &cfg))
        .map_err(|e| anyhow::anyhow!("{url}: {}", secretgate::error::error_chain(&e)))?;
    Ok(body.to_vec())
}

fn verify(args: VerifyArgs) -> anyhow::Result<String> {
    let keys = match (&args.key_file, &args.jwks) {
        (None, None) if args.jwks_url.is_some() => {
            let url = args.jwks_url.clone().unwrap_or_default();
            let json = fetch_jwks(&url)?;
            secretgate::verify::VerifyKeys::from_jwks(&json)
                .with_context(|| format!("{url}: not a usable JWK Set"))?
        }
        (Some(file), _) => {
            let key = read_key_file(file)?;
            secretgate::verify::keys_of(&[SigningKey::hmac(args.kid.clone(), Secret::new(key))])
        }
        (None, Some(file)) => {
            let json =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            secretgate::verify::VerifyKeys::from_jwks(&json)
                .with_context(|| format!("{}: not a usable JWK Set", file.display()))?
        }
        (None, None) => anyhow::bail!("give --key-file, --jwks or --jwks-url"),
    };
    let value = match args.value {
        Some(v) => v,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read stdin")?;
            s
        }
    };
    let body = match &args.body_file {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    let check = |v| {
        if args.unbound {
            Check::Skip
        } else {
            Check::Equals(v)
        }
    };
    let expected = Expected {
        issuer: &args.issuer,
        audience: &args.audience,
        leeway: args.leeway,
        method: check(args.method.as_deref().unwrap_or_default()),
        url: check(args.url.as_deref().unwrap_or_default()),
        query: if args.unbound {
            Check::Skip
        } else {
            Check::Equals(args.query.as_deref())
        },
        body: if args.unbound {
            Check::Skip
        } else {
            Check::Equals(body.as_deref().unwrap_or_default())
        },
        now: None,
    };
    if args.unbound {
        eprintln!("warning: --unbound: the header was not checked against a request");
    }
    let claims = verify_internal_header(value.trim(), &keys, &expected)?;
    Ok(serde_json::to_string_pretty(&claims)?)
}
