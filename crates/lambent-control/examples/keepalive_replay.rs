//! Replays a synthetic trace shaped like the Azure Functions trace through the keep-alive
//! policies side by side and prints a Markdown table: cold-start percentage and idle (wasted)
//! warm memory-time. `bench/keepalive.sh` runs it and records the table.
//!
//! Usage: keepalive_replay [FUNCTIONS] [HOURS] [SEEDS]

use std::time::Duration;

use lambent_control::keepalive::{KeepAlivePolicy, replay, synthetic_trace};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let functions = usize::try_from(arg(1, 400)).unwrap_or(400);
    let hours = arg(2, 24);
    let seeds = arg(3, 3);
    let minutes = |m: u64| Duration::from_secs(m * 60);
    let policies = [
        ("fixed 10 min (AWS)", KeepAlivePolicy::Fixed(minutes(10))),
        ("fixed 20 min (Azure)", KeepAlivePolicy::Fixed(minutes(20))),
        (
            "adaptive (hybrid histogram, fallback 10 min)",
            KeepAlivePolicy::Adaptive {
                fallback: minutes(10),
            },
        ),
    ];
    println!(
        "Trace: {functions} functions, {hours} h, seeds 1..={seeds} (45% timers, 35% rare, 15% bursty, 5% busy).\n"
    );
    println!(
        "| seed | policy | calls | cold starts | cold % | idle warm GB-s | idle vs fixed 10 min |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    for seed in 1..=seeds {
        let trace = synthetic_trace(functions, hours, seed);
        let base = replay(&trace, policies[0].1);
        for (name, policy) in policies {
            let r = replay(&trace, policy);
            println!(
                "| {seed} | {name} | {} | {} | {:.2} | {:.0} | {:.2}x |",
                r.calls,
                r.cold_starts,
                r.cold_percent(),
                r.idle_mb_seconds / 1024.0,
                r.idle_mb_seconds / base.idle_mb_seconds.max(1e-9)
            );
        }
    }
}
