//! `lambent`: the server (`lambent serve`) and the command-line client of its HTTP API.

#![forbid(unsafe_code)]

mod client;
mod credentials;
mod manifest;
mod serve;
mod zipdir;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's allocator: with an instance per request, allocation is a large part
/// of a call's cost, and glibc's arena locks were visibly contended under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// lambent: a self-hosted serverless platform.
#[derive(Debug, Parser)]
#[command(name = "lambent", version, about)]
struct Cli {
    /// The lambent server to talk to.
    #[arg(
        long,
        env = "LAMBENT_ENDPOINT",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    endpoint: String,
    /// The profile in ~/.config/lambent/credentials to sign requests with.
    #[arg(
        long,
        env = "LAMBENT_PROFILE",
        default_value = "default",
        global = true
    )]
    profile: String,
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the platform: the API, function URLs and the executors.
    Serve(serve::ServeArgs),
    /// Create a function or update its code and configuration.
    Deploy(client::DeployArgs),
    /// Invoke a function and print its output.
    Invoke {
        /// NAME or NAME:VERSION.
        target: String,
        /// The event: inline JSON, or @FILE to read it from a file.
        #[arg(long, short)]
        data: Option<String>,
        /// Print the end of the invocation's log to stderr.
        #[arg(long)]
        log: bool,
    },
    /// List functions.
    Ls,
    /// Show a function (NAME or NAME:VERSION).
    Get {
        /// NAME or NAME:VERSION.
        target: String,
    },
    /// Delete a function and all its versions.
    Rm {
        /// The function.
        name: String,
    },
    /// List a function's versions.
    Versions {
        /// The function.
        name: String,
    },
    /// Publish $LATEST as a new immutable version.
    Publish {
        /// The function.
        name: String,
        /// Description of the version.
        #[arg(long)]
        description: Option<String>,
    },
    /// Show the logs of a function's recent invocations, or of one invocation.
    Logs {
        /// The function.
        name: String,
        /// How many invocations.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// One invocation's id.
        #[arg(long)]
        invocation: Option<String>,
    },
    /// Point an alias at a version; `--weight 2=0.1` sends a share of the calls to another one.
    Alias {
        /// The function.
        name: String,
        /// The alias (letters, digits, '-', '_'; not only digits).
        alias: String,
        /// The version it points at: a number, or $LATEST.
        version: String,
        /// VERSION=SHARE: a published version that takes SHARE (0.0-1.0) of the calls.
        #[arg(long, value_name = "VERSION=SHARE")]
        weight: Vec<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
    /// List a function's aliases.
    Aliases {
        /// The function.
        name: String,
    },
    /// Delete an alias.
    Unalias {
        /// The function.
        name: String,
        /// The alias.
        alias: String,
    },
    /// Show, set (`lambent concurrency NAME 5`) or clear (`--clear`) reserved concurrency.
    Concurrency {
        /// The function.
        name: String,
        /// Calls the function may run at once (reserved for it, and its cap); 0 stops it.
        reserved: Option<u32>,
        /// Give the reservation back to the shared pool.
        #[arg(long, conflicts_with = "reserved")]
        clear: bool,
    },
    /// Manage access keys (SigV4 signing keys and bearer tokens).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// `lambent keys ...`.
#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// What the key is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List keys (without secrets).
    Ls,
    /// Revoke a key at once.
    Revoke {
        /// The access key id.
        id: String,
    },
}

fn main() -> ExitCode {
    // The sandbox helper is this binary started again: it must take over before anything else
    // (no threads, no async runtime), so it is checked before the arguments are parsed.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == lambent_control::HELPER_ARG)
    {
        lambent_control::helper_main();
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            command => client::run(&cli.endpoint, &cli.profile, cli.json, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
