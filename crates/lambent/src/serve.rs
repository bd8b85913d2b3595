//! `lambent serve`: opens the data directory, starts the platform and serves the HTTP API until
//! SIGINT or SIGTERM; in-flight calls finish before it exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use lambent_control::auth::Bootstrap;
use lambent_control::{
    DEFAULT_KEEP_ALIVE, DEFAULT_MAX_INSTANCES, DEFAULT_MAX_SANDBOXES, EventsConfig, Platform,
    PlatformConfig,
};
use lambent_core::{FunctionCreate, FunctionName, UrlAuthType};

/// Prints a line to stdout, ignoring a closed stdout (a supervisor that read the address line and
/// went away must not bring the server down).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Options of `lambent serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where metadata, code and compiled artifacts live (default: the user's data directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Deploy the bundled example functions and print their URLs.
    #[arg(long)]
    demo: bool,
    /// How many function instances may exist at once.
    #[arg(long, default_value_t = DEFAULT_MAX_INSTANCES)]
    max_instances: u32,
    /// Seconds a warm sandbox (process runtimes) stays idle before it is stopped.
    #[arg(long, default_value_t = DEFAULT_KEEP_ALIVE.as_secs_f64())]
    keep_alive: f64,
    /// How long idle instances stay warm: `fixed` (--keep-alive after every call) or
    /// `adaptive` (Azure's hybrid histogram policy: learns each function's idle times, unloads
    /// its instance and starts it again just before the next call is expected, keeps it just
    /// long enough; --keep-alive until it has enough history).
    #[arg(long, default_value = "fixed", value_parser = ["fixed", "adaptive"])]
    keep_alive_policy: String,
    /// How many process sandboxes may exist at once, busy or idle.
    #[arg(long, default_value_t = DEFAULT_MAX_SANDBOXES)]
    max_sandboxes: usize,
    /// First uid (and gid) of the range lambent reserves for sandboxes: each sandbox runs as its
    /// own id from BASE to BASE+65535, never shared by two live sandboxes. Keep the range free
    /// of other users on the host; at least 65536.
    #[arg(long, default_value_t = lambent_control::DEFAULT_UID_BASE)]
    sandbox_uid_base: u32,
    /// Do not freeze idle sandboxes between calls (by default they are frozen with the cgroup
    /// freezer, as Lambda does, so their background work stops while they idle).
    #[arg(long)]
    no_freeze_idle: bool,
    /// MB of memory that instances may reserve together (each reserves its memory limit while
    /// it exists: a sandbox while it lives, a wasm instance while it serves calls). When it is
    /// taken, idle instances are stopped least recently used first, then calls get 429.
    /// Default: 80% of the host's memory.
    #[arg(long, value_parser = clap::value_parser!(u64).range(128..))]
    memory_budget_mb: Option<u64>,
    /// Region name in function ARNs and AWS_REGION.
    #[arg(long, env = "LAMBENT_REGION", default_value = lambent_core::limits::DEFAULT_REGION)]
    region: String,
    /// Do not run process runtimes (Python, Node.js, provided), e.g. on a host without root.
    #[arg(long)]
    no_sandbox: bool,
    /// Concurrent executions the account may have at once (reservations are carved out of it).
    #[arg(long, default_value_t = lambent_core::limits::DEFAULT_ACCOUNT_CONCURRENCY)]
    account_concurrency: u32,
    /// Milliseconds a call refused by a concurrency limit may wait for a slot (first come, first
    /// served) before its 429, for functions without their own setting (`lambent concurrency
    /// NAME --wait MS`). At most 60000.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=60_000))]
    admission_wait_ms: u32,
    /// Seconds before the first retry of a failed asynchronous event; the second waits twice as
    /// long (both with jitter). Lambda waits about a minute.
    #[arg(long, default_value_t = 60.0)]
    event_retry_delay: f64,
    /// Asynchronous events run at once, at most; 0 stores accepted events without running them
    /// (until a restart with pollers).
    #[arg(long, default_value_t = 256)]
    event_pollers: usize,
    /// Let `POST /v1/debug/clock` move the clock of events and schedules forward (for tests;
    /// only in builds with the `test-clock` feature).
    #[cfg(feature = "test-clock")]
    #[arg(long)]
    test_clock: bool,
    /// Seconds a caller has to send a whole request head, from its first byte (a new connection:
    /// from being accepted); slower ones are disconnected.
    #[arg(long, default_value_t = lambent_api::server::DEFAULT_HEADER_TIMEOUT.as_secs_f64())]
    header_timeout: f64,
    /// Seconds a connection may stay open with no request in flight and no byte moving (idle
    /// keep-alive, or a caller that stopped reading its response).
    #[arg(long, default_value_t = lambent_api::server::DEFAULT_IDLE_TIMEOUT.as_secs_f64())]
    idle_timeout: f64,
    /// Connections open at once, at most; more are answered 503 (Retry-After) and closed at once.
    #[arg(long, default_value_t = lambent_api::server::DEFAULT_MAX_CONNECTIONS as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// MB of request bodies that may be held, all requests together, before their request is
    /// authenticated (SigV4 requests without X-Amz-Content-SHA256, whose signature covers the
    /// hash of a body not yet read; boto3 sends these). Past it such requests get a 503 with
    /// Retry-After. Every other request is authenticated from its headers, its body unread.
    #[arg(long, default_value_t = lambent_control::auth::DEFAULT_PREAUTH_BUFFER_MB,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    preauth_buffer_mb: u64,
}

/// Descriptors kept for lambent's own use besides client connections (databases, code files,
/// sandbox pipes and Runtime API sockets), when checking the open-file limit against
/// `--max-connections`.
const RESERVED_DESCRIPTORS: u64 = 1024;

/// Raises this process's open-file soft limit to its hard limit, and says what it got; warns when
/// that leaves too few descriptors for `max_connections`.
fn raise_open_file_limit(max_connections: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            return;
        }
    };
    let limit = if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::info!(from = soft, to = hard, "raised the open-file limit");
                hard
            }
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
                soft
            }
        }
    } else {
        tracing::info!(limit = soft, "open-file limit");
        soft
    };
    let wanted = max_connections.saturating_add(RESERVED_DESCRIPTORS);
    if limit < wanted {
        tracing::warn!(
            limit,
            max_connections,
            "the open-file limit leaves fewer descriptors than --max-connections needs (plus {RESERVED_DESCRIPTORS} for lambent's own use); raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower --max-connections"
        );
    }
}

/// A bundled example: name, code, environment, description.
struct Example {
    name: &'static str,
    code: Bytes,
    env: &'static [(&'static str, &'static str)],
    description: &'static str,
    try_path: &'static str,
}

const EXAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");

fn examples() -> Vec<Example> {
    let mut list = vec![
        Example {
            name: "hello",
            code: Bytes::from_static(include_bytes!("../../../examples/hello-c/hello.wasm")),
            env: &[("GREETING", "hi")],
            description: "C wasi:http component (examples/hello-c)",
            try_path: "/",
        },
        Example {
            name: "cgi",
            code: Bytes::from_static(include_bytes!("../../../examples/cgi-c/cgi.wasm")),
            env: &[],
            description: "C CGI-style WASI command module (examples/cgi-c)",
            try_path: "/anything?x=1",
        },
    ];
    // The Python component is large and built by examples/build.sh, so it is read at run time.
    let python = PathBuf::from(EXAMPLES_DIR).join("hello-python/hello.wasm");
    match std::fs::read(&python) {
        Ok(code) => list.push(Example {
            name: "hello-python",
            code: Bytes::from(code),
            env: &[],
            description: "Python wasi:http component (examples/hello-python)",
            try_path: "/",
        }),
        Err(_) => eprintln!(
            "note: {} is not built; run examples/build.sh --python-only to add the Python example",
            python.display()
        ),
    }
    list
}

/// Bundled process-tier examples: name, directory under examples/, runtime, handler.
const PROCESS_EXAMPLES: &[(&str, &str, &str, &str)] = &[
    ("hello-lambda", "lambda-python", "python3.12", "app.handler"),
    ("hello-node", "lambda-node", "nodejs20.x", "index.handler"),
];

/// Deploys the Lambda-style examples, zipped from their directories; skipped with a note where the
/// host cannot run process runtimes.
async fn deploy_process_examples(platform: &Platform) -> anyhow::Result<()> {
    for (name, dir, runtime, handler) in PROCESS_EXAMPLES {
        let path = PathBuf::from(EXAMPLES_DIR).join(dir);
        let zipped = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || crate::zipdir::zip_directory(&path)).await??
        };
        let create = FunctionCreate {
            runtime: Some((*runtime).to_owned()),
            handler: Some((*handler).to_owned()),
            description: Some(format!("Lambda-style {runtime} handler (examples/{dir})")),
            ..FunctionCreate::default()
        };
        let fname = FunctionName::new(name)?;
        match platform
            .deploy(fname.clone(), create, Bytes::from(zipped))
            .await
        {
            Ok(_) => {
                make_public(platform, &fname).await?;
                say!(
                    "  {name:<13} lambent invoke {name} --data '{{\"hi\":1}}'   ({runtime}, examples/{dir})"
                );
            }
            Err(e) => say!("  {name:<13} not deployed: {e}"),
        }
    }
    Ok(())
}

/// Gives a demo function a public function URL (`AuthType NONE`), so that `curl` reaches it.
async fn make_public(platform: &Platform, name: &FunctionName) -> anyhow::Result<()> {
    let exists = platform
        .url_config(name, &lambent_core::Selector::default())
        .is_some();
    platform
        .put_url(name, None, Some(UrlAuthType::None), None, exists)
        .await
        .with_context(|| format!("making {name}'s function URL public"))?;
    Ok(())
}

async fn deploy_examples(platform: &Platform, base: &str) -> anyhow::Result<()> {
    deploy_process_examples(platform).await?;
    for ex in examples() {
        let name = FunctionName::new(ex.name)?;
        let create = FunctionCreate {
            environment: Some(
                ex.env
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            description: Some(ex.description.to_owned()),
            ..FunctionCreate::default()
        };
        platform
            .deploy(name.clone(), create, ex.code)
            .await
            .with_context(|| format!("deploying the example {}", ex.name))?;
        make_public(platform, &name).await?;
        say!(
            "  {:<13} {base}/fn/{}{}   ({})",
            ex.name,
            ex.name,
            ex.try_path,
            ex.description
        );
    }
    Ok(())
}

fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("lambent")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Runs the server.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    raise_open_file_limit(args.max_connections);
    let listener_config = lambent_api::ServeConfig {
        header_timeout: std::time::Duration::try_from_secs_f64(args.header_timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .context("--header-timeout must be a positive number of seconds")?,
        idle_timeout: std::time::Duration::try_from_secs_f64(args.idle_timeout)
            .ok()
            .filter(|d| !d.is_zero())
            .context("--idle-timeout must be a positive number of seconds")?,
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
    };
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    // Like MinIO's root credentials, the admin key comes from the environment when it is set
    // (never from a flag, which other users could read in the process list).
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let initial_key = match (
        env("LAMBENT_ACCESS_KEY_ID"),
        env("LAMBENT_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => Some((id, secret)),
        (None, None) => None,
        _ => anyhow::bail!(
            "set both LAMBENT_ACCESS_KEY_ID and LAMBENT_SECRET_ACCESS_KEY, or neither"
        ),
    };
    let platform = Arc::new(
        Platform::open(&PlatformConfig {
            data_dir: data_dir.clone(),
            max_instances: args.max_instances,
            sandbox_helper: if args.no_sandbox {
                None
            } else {
                Some(sandbox_helper()?)
            },
            keep_alive: std::time::Duration::try_from_secs_f64(args.keep_alive)
                .context("--keep-alive must be a non-negative number of seconds")?,
            adaptive_keep_alive: args.keep_alive_policy == "adaptive",
            max_sandboxes: args.max_sandboxes,
            sandbox_uid_base: args.sandbox_uid_base,
            freeze_idle: !args.no_freeze_idle,
            memory_budget_mb: match args.memory_budget_mb {
                Some(mb) => mb,
                None => host_memory_mb()
                    .map(lambent_core::budget::default_budget_mb)
                    .context(
                        "cannot read the host's memory from /proc/meminfo; set --memory-budget-mb",
                    )?,
            },
            region: args.region.clone(),
            account_concurrency: args.account_concurrency,
            admission_wait: std::time::Duration::from_millis(u64::from(args.admission_wait_ms)),
            initial_key,
            events: EventsConfig {
                retry_base: std::time::Duration::try_from_secs_f64(args.event_retry_delay)
                    .context("--event-retry-delay must be a non-negative number of seconds")?,
                pollers: args.event_pollers,
                #[cfg(feature = "test-clock")]
                test_clock: args.test_clock,
            },
        })
        .await
        .with_context(|| format!("opening the data directory {}", data_dir.display()))?,
    );
    platform.keys().preauth_budget().set_limit(
        usize::try_from(args.preauth_buffer_mb << 20)
            .context("--preauth-buffer-mb is too large for this machine")?,
    );
    let loaded = platform.warm_up().await?;
    platform.start_async();
    let stats = platform.stats();
    tracing::info!(
        data_dir = %data_dir.display(),
        code_objects = loaded,
        compilations = stats.compilations,
        pooling_allocator = stats.pooling,
        "platform ready"
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    say!(
        "lambent listening on {base} (data in {})",
        data_dir.display()
    );
    match platform.bootstrap() {
        Bootstrap::FromEnvironment(id) => {
            say!("admin access key {id} (from LAMBENT_ACCESS_KEY_ID)");
        }
        Bootstrap::Generated(file) => say!(
            "generated an admin access key; it is in {} (readable by this user only)",
            file.display()
        ),
        Bootstrap::Existing(Some(file)) => {
            say!("admin access key in {}", file.display());
        }
        Bootstrap::Existing(None) => {}
    }
    if args.demo {
        say!("example functions:");
        deploy_examples(&platform, &base).await?;
        say!("try: curl {base}/fn/hello/   |   lambent invoke cgi --data '{{\"hi\":1}}'");
    }
    lambent_api::serve(
        listener,
        platform.clone(),
        listener_config,
        shutdown_signal(),
    )
    .await?;
    platform.shutdown();
    platform.drain(std::time::Duration::from_secs(5)).await;
    tracing::info!("stopped");
    Ok(())
}

/// The host's memory in MB (`MemTotal` in /proc/meminfo).
fn host_memory_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// The program that builds each sandbox: `lambent-sandbox-helper` next to this binary, or this
/// binary itself (it runs as the helper when given its argument), which loads more slowly.
fn sandbox_helper() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find the lambent binary")?;
    let small = me.with_file_name("lambent-sandbox-helper");
    if small.is_file() {
        Ok(small)
    } else {
        tracing::info!(
            "no lambent-sandbox-helper next to {}: sandboxes are built by lambent itself",
            me.display()
        );
        Ok(me)
    }
}
