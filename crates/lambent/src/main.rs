//! `lambent`: the server (`lambent serve`) and the command-line client of its HTTP API.

#![forbid(unsafe_code)]

mod client;
mod credentials;
mod events_cli;
mod manifest;
mod scale_cli;
mod serve;
mod usage_cli;
mod zipdir;

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
    /// Invoke a function and print its output; `--async` queues the event and prints its id.
    Invoke {
        /// NAME or NAME:VERSION.
        target: String,
        /// The event: inline JSON, or @FILE to read it from a file.
        #[arg(long, short)]
        data: Option<String>,
        /// Read the event from this file.
        #[arg(long, conflicts_with = "data")]
        file: Option<PathBuf>,
        /// Print the end of the invocation's log to stderr.
        #[arg(long, conflicts_with = "asynchronous")]
        log: bool,
        /// Invoke asynchronously: the event is queued, retried on failure, and `lambent events
        /// ID` shows how it went.
        #[arg(long = "async")]
        asynchronous: bool,
        /// With --async: a second event with the same key is not run again.
        #[arg(long, requires = "asynchronous")]
        idempotency_key: Option<String>,
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
        /// Let a call refused by a limit wait up to MS milliseconds for a slot (first come,
        /// first served) before its 429; 0 refuses at once.
        #[arg(long, value_name = "MS")]
        wait: Option<u32>,
        /// Drop the function's own wait (the server's --admission-wait-ms applies).
        #[arg(long, conflicts_with = "wait")]
        clear_wait: bool,
    },
    /// Provisioned concurrency: keep N instances of a published version initialised ahead of
    /// calls (calls use them first). `lambent provisioned NAME` lists a function's.
    Provisioned {
        /// NAME:VERSION (or NAME to list).
        target: String,
        /// Instances to keep.
        count: Option<u32>,
        /// Stop keeping them.
        #[arg(long, conflicts_with = "count")]
        clear: bool,
    },
    /// Scheduled provisioned concurrency: at each firing of a cron(...) expression (UTC),
    /// NAME:QUALIFIER gets N provisioned instances (0 removes them); two schedules make a
    /// window. `lambent provisioned-schedule NAME` lists a function's.
    ProvisionedSchedule {
        /// NAME:QUALIFIER (a version or an alias), or NAME to list or delete.
        target: String,
        /// The schedule's name.
        schedule: Option<String>,
        /// When: cron(minutes hours day-of-month month day-of-week year), UTC.
        expression: Option<String>,
        /// Instances from then on.
        count: Option<u32>,
        /// Delete the schedule (the configuration stays as it is).
        #[arg(long, requires = "schedule", conflicts_with_all = ["expression", "count"])]
        delete: bool,
    },
    /// Manage access keys (SigV4 signing keys and bearer tokens).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Metered usage: calls, errors, throttles, cold starts, billed ms and GB-seconds.
    ///
    /// The window is the last day unless --since or --from/--to say otherwise; usage is kept
    /// per minute, so the first minute of the window counts whole.
    Usage(usage_cli::UsageArgs),
    /// Show or set a function's scaling: calls per instance (WebAssembly functions) and its own
    /// keep-alive policy. `lambent scaling NAME --instance-concurrency 50`.
    Scaling(scale_cli::ScalingArgs),
    /// A live view of the functions: calls/s, errors, 429s, cold starts, p50/p99, calls in
    /// flight, busy and idle instances.
    Top(scale_cli::TopArgs),
    /// Show an asynchronous invocation (event), or list recent ones.
    Events {
        /// One event's id (as printed by `lambent invoke --async`).
        #[arg(conflicts_with_all = ["function", "state", "limit"])]
        id: Option<String>,
        /// Only the events of this function.
        #[arg(long)]
        function: Option<String>,
        /// Only events in this state.
        #[arg(long, value_parser = ["queued", "running", "retrying", "succeeded", "failed"])]
        state: Option<String>,
        /// How many events (newest first; the server's default is 50).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show, set or delete a function's asynchronous retries, maximum age and destinations.
    ///
    /// With no option it shows the configuration. Setting replaces the whole configuration:
    /// options not given take their defaults (2 retries, 21600 s, no destinations).
    EventConfig {
        /// NAME or NAME:QUALIFIER.
        target: String,
        /// Retries after a failed run (0-2).
        #[arg(long)]
        retries: Option<u32>,
        /// Oldest an event may be when it runs, in seconds (60-21600).
        #[arg(long, value_name = "SECONDS")]
        max_age: Option<u32>,
        /// Where records of successful runs go: queue:NAME or function:NAME[:QUALIFIER].
        #[arg(long, value_name = "DEST")]
        on_success: Option<String>,
        /// Where records of failed runs go: queue:NAME or function:NAME[:QUALIFIER].
        #[arg(long, value_name = "DEST")]
        on_failure: Option<String>,
        /// Delete the configuration (back to the defaults).
        #[arg(long, conflicts_with_all = ["retries", "max_age", "on_success", "on_failure"])]
        delete: bool,
    },
    /// Manage schedules that invoke a function on a rate(...) or cron(...) expression.
    Schedule {
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// List schedules.
    Schedules,
    /// Manage queues: messages, dead letters and the function a queue triggers.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// List queues.
    Queues,
}

/// `lambent keys ...`.
#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// What the key is for.
        #[arg(long)]
        description: Option<String>,
        /// What the key may do: `admin` (everything, keys included), `deploy` (functions and
        /// their configuration, invoke, read) or `invoke` (invoke and read). Default: deploy.
        #[arg(long, value_parser = lambent_core::access::ROLE_NAMES)]
        role: Option<String>,
    },
    /// List keys (without secrets), with their roles.
    Ls,
    /// Revoke a key at once.
    Revoke {
        /// The access key id.
        id: String,
    },
}

/// `lambent schedule ...`.
#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Create a schedule, e.g. `lambent schedule add nightly report 'cron(0 3 * * ? *)'`.
    Add {
        /// The schedule's name (1-64 letters, digits, '-', '_').
        name: String,
        /// The function it invokes: NAME or NAME:QUALIFIER.
        function: String,
        /// rate(N unit), e.g. 'rate(5 minutes)', or cron(min hour day-of-month month
        /// day-of-week year), e.g. 'cron(0 3 * * ? *)'; UTC.
        expression: String,
        /// The event the function gets (JSON text); the default is a scheduled-event record.
        #[arg(long)]
        input: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Let a schedule fire again.
    Enable {
        /// The schedule.
        name: String,
    },
    /// Stop a schedule firing (it is kept).
    Disable {
        /// The schedule.
        name: String,
    },
    /// Delete a schedule.
    Rm {
        /// The schedule.
        name: String,
    },
}

/// `lambent queue ...`.
#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Create a queue.
    Create {
        /// The queue's name (1-80 letters, digits, '-', '_').
        name: String,
        /// Seconds a received message stays hidden before it is delivered again.
        #[arg(long, value_name = "SECONDS")]
        visibility_timeout: Option<u32>,
        /// Move a message to this queue after --max-receive-count receives.
        #[arg(long, value_name = "QUEUE", requires = "max_receive_count")]
        dead_letter_queue: Option<String>,
        /// Receives before a message goes to the dead-letter queue.
        #[arg(long, value_name = "N", requires = "dead_letter_queue")]
        max_receive_count: Option<u32>,
    },
    /// Delete a queue and its messages.
    Rm {
        /// The queue.
        name: String,
    },
    /// Send one message (the text as it is).
    Send {
        /// The queue.
        name: String,
        /// The message's body.
        #[arg(long, short, required_unless_present = "file")]
        data: Option<String>,
        /// Read the message's body from this file.
        #[arg(long, conflicts_with = "data")]
        file: Option<PathBuf>,
    },
    /// List a queue's messages without receiving them.
    Messages {
        /// The queue.
        name: String,
        /// How many (the server's default is 100).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Print one message's whole body.
    Show {
        /// The queue.
        name: String,
        /// The message's id.
        id: String,
    },
    /// Turn dead letters (invocation records) back into events of their function.
    Redrive {
        /// The queue.
        name: String,
        /// Only these messages (all of them by default).
        ids: Vec<String>,
    },
    /// Delete every message of a queue.
    Purge {
        /// The queue.
        name: String,
    },
    /// Make a function consume a queue's messages in batches.
    Trigger {
        /// The queue.
        name: String,
        /// NAME or NAME:QUALIFIER.
        function: String,
        /// Messages per call, at most (1-10000; the server's default is 10).
        #[arg(long)]
        batch_size: Option<u32>,
        /// Seconds to wait to fill a batch (0-300).
        #[arg(long, value_name = "SECONDS")]
        batching_window: Option<f64>,
        /// Create the trigger disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Stop a function consuming a queue.
    Untrigger {
        /// The queue.
        name: String,
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
