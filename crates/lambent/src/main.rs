//! `lambent`: the server (`lambent serve`) and the command-line client of its HTTP API.

#![forbid(unsafe_code)]

mod client;
mod manifest;
mod serve;

use std::path::PathBuf;
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
    Deploy {
        /// The function's name (1-64 letters, digits, '-', '_').
        name: String,
        /// A .wasm file, or a directory with a lambent.toml manifest.
        path: PathBuf,
        /// Runtime: wasi-http or wasi-cgi (detected from the code when absent).
        #[arg(long)]
        runtime: Option<String>,
        /// Memory in MB.
        #[arg(long)]
        memory: Option<u32>,
        /// Timeout in seconds.
        #[arg(long)]
        timeout: Option<u32>,
        /// An environment variable, KEY=VALUE; repeat for more.
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
    /// Invoke a function and print its output.
    Invoke {
        /// NAME or NAME:VERSION.
        target: String,
        /// The event: inline JSON, or @FILE to read it from a file.
        #[arg(long, short)]
        data: Option<String>,
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
}

fn main() -> ExitCode {
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
            command => client::run(&cli.endpoint, cli.json, command).await,
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
