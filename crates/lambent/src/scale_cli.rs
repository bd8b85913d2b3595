//! `lambent scaling` (a function's calls per instance and keep-alive) and `lambent top` (a live
//! view of calls, latency and instances per function).

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::bail;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use lambent_api::contract::PutScaling;
use serde_json::{Value, json};

use crate::client::{Api, print_json, text};

/// What `lambent scaling` was asked.
#[derive(Debug, clap::Args)]
pub struct ScalingArgs {
    /// The function.
    name: String,
    /// Calls one instance serves at once (1 to 1000; above 1 for WebAssembly functions only).
    #[arg(long, value_name = "N")]
    instance_concurrency: Option<u32>,
    /// The function's own keep-alive policy instead of the server's.
    #[arg(long, value_parser = ["fixed", "adaptive"])]
    keep_alive: Option<String>,
    /// Seconds an idle instance is kept (the fixed policy; 0 stops it when its call ends).
    #[arg(long, value_name = "S")]
    keep_alive_seconds: Option<u64>,
    /// Drop the function's own settings (the server's apply again).
    #[arg(long, conflicts_with_all = ["instance_concurrency", "keep_alive", "keep_alive_seconds"])]
    clear: bool,
}

pub async fn scaling(api: &Api, json_out: bool, args: ScalingArgs) -> anyhow::Result<()> {
    let url = api.url(&format!("/v1/functions/{}/scaling", args.name));
    let setting = args.instance_concurrency.is_some()
        || args.keep_alive.is_some()
        || args.keep_alive_seconds.is_some();
    let v = if args.clear {
        api.json(api.http.delete(url.clone())).await?;
        api.json(api.http.get(url)).await?
    } else if setting {
        let body = PutScaling {
            instance_concurrency: args.instance_concurrency,
            keep_alive_policy: args.keep_alive.clone(),
            keep_alive_seconds: args.keep_alive_seconds,
        };
        api.json(api.http.put(url).json(&body)).await?
    } else {
        api.json(api.http.get(url)).await?
    };
    if json_out {
        return print_json(&v);
    }
    let keep = &v["keepAlive"];
    let keep = match keep["policy"].as_str() {
        Some("adaptive") => format!(
            "adaptive (fixed {}s until it has learnt enough)",
            secs(&keep["fallbackSeconds"])
        ),
        _ => format!("fixed, {}s", secs(&keep["seconds"])),
    };
    let own = if v["own"].is_null() {
        " (the server's)"
    } else {
        ""
    };
    println!(
        "{}: {} calls per instance; keep-alive {keep}{own}",
        args.name,
        text(&v, "instanceConcurrency")
    );
    Ok(())
}

/// Seconds as people write them: `1`, `0.5`.
fn secs(v: &Value) -> String {
    match v.as_f64() {
        Some(s) if s.fract() == 0.0 => format!("{s:.0}"),
        Some(s) => s.to_string(),
        None => "?".to_owned(),
    }
}

/// What `lambent top` was asked.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Only this function.
    function: Option<String>,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Stop after this many refreshes (0: until interrupted).
    #[arg(long, default_value_t = 0)]
    iterations: u32,
}

/// The `q` quantile in ms of the calls between two cumulative histograms, interpolated within
/// its bucket; `None` without calls.
fn quantile(bounds: &[f64], before: &[u64], after: &[u64], count: u64, q: f64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let target = (q * count as f64).ceil().max(1.0);
    let mut prev_cum = 0.0;
    let mut lower = 0.0;
    for (i, bound) in bounds.iter().enumerate() {
        let cum = after
            .get(i)
            .copied()
            .unwrap_or(0)
            .saturating_sub(before.get(i).copied().unwrap_or(0)) as f64;
        if cum >= target {
            let share = if cum > prev_cum {
                (target - prev_cum) / (cum - prev_cum)
            } else {
                1.0
            };
            return Some(lower + (bound - lower) * share);
        }
        prev_cum = cum;
        lower = *bound;
    }
    // Beyond the last bound.
    Some(lower)
}

fn counters(f: &Value) -> [u64; 4] {
    ["invocations", "errors", "throttles", "coldStarts"].map(|k| f[k].as_u64().unwrap_or(0))
}

fn buckets(f: &Value) -> (Vec<u64>, u64) {
    let d = &f["duration"];
    let cum = d["cumulative"]
        .as_array()
        .map(|a| a.iter().map(|n| n.as_u64().unwrap_or(0)).collect())
        .unwrap_or_default();
    (cum, d["count"].as_u64().unwrap_or(0))
}

/// One refresh: per function, rates over `secs` between two samples.
fn rows(before: &Value, after: &Value, secs: f64, only: Option<&str>) -> Vec<Value> {
    let bounds: Vec<f64> = after["durationBoundsMs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let empty = json!({});
    let mut out = Vec::new();
    let Some(functions) = after["functions"].as_object() else {
        return out;
    };
    for (name, now) in functions {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let then = before["functions"].get(name).unwrap_or(&empty);
        let [c1, e1, t1, k1] = counters(now);
        let [c0, e0, t0, k0] = counters(then);
        let (b1, n1) = buckets(now);
        let (b0, n0) = buckets(then);
        let calls = n1.saturating_sub(n0);
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
        out.push(json!({
            "function": name,
            "callsPerSecond": rate(c1, c0),
            "errorsPerSecond": rate(e1, e0),
            "throttlesPerSecond": rate(t1, t0),
            "coldStarts": k1.saturating_sub(k0),
            "p50Ms": quantile(&bounds, &b0, &b1, calls, 0.50),
            "p99Ms": quantile(&bounds, &b0, &b1, calls, 0.99),
            "inFlight": now["inFlight"],
            "busy": now["busy"],
            "idle": now["idle"],
        }));
    }
    out
}

fn ms(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_owned(), |m| format!("{m:.1}"))
}

pub async fn top(api: &Api, json_out: bool, args: TopArgs) -> anyhow::Result<()> {
    if !(0.1..=3600.0).contains(&args.interval) {
        bail!("--interval must be 0.1 to 3600 seconds");
    }
    let url = api.url("/v1/instances");
    let mut before = api.json(api.http.get(&url)).await?;
    let mut at = std::time::Instant::now();
    let tty = std::io::stdout().is_terminal() && !json_out;
    let mut shown = 0;
    loop {
        tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;
        let after = api.json(api.http.get(&url)).await?;
        let secs = at.elapsed().as_secs_f64();
        at = std::time::Instant::now();
        let rows = rows(&before, &after, secs, args.function.as_deref());
        if json_out {
            println!(
                "{}",
                json!({ "seconds": secs, "memoryReservedMb": after["memoryReservedMb"], "memoryBudgetMb": after["memoryBudgetMb"], "functions": rows })
            );
        } else {
            let mut t = Table::new();
            t.load_preset(UTF8_BORDERS_ONLY).set_header([
                "FUNCTION",
                "CALLS/S",
                "ERR/S",
                "429/S",
                "COLD",
                "P50 MS",
                "P99 MS",
                "IN FLIGHT",
                "BUSY",
                "IDLE",
            ]);
            for r in &rows {
                t.add_row([
                    text(r, "function"),
                    format!("{:.1}", r["callsPerSecond"].as_f64().unwrap_or(0.0)),
                    format!("{:.1}", r["errorsPerSecond"].as_f64().unwrap_or(0.0)),
                    format!("{:.1}", r["throttlesPerSecond"].as_f64().unwrap_or(0.0)),
                    text(r, "coldStarts"),
                    ms(&r["p50Ms"]),
                    ms(&r["p99Ms"]),
                    text(r, "inFlight"),
                    text(r, "busy"),
                    text(r, "idle"),
                ]);
            }
            if tty {
                // Clear the screen and go home, like top.
                print!("\x1b[2J\x1b[H");
            }
            println!(
                "lambent top: every {:.1}s; node memory reserved {} of {} MB",
                args.interval,
                text(&after, "memoryReservedMb"),
                text(&after, "memoryBudgetMb")
            );
            println!("{t}");
        }
        before = after;
        shown += 1;
        if args.iterations != 0 && shown >= args.iterations {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_calls_between_two_samples() {
        let bounds = [1.0, 10.0, 100.0];
        // Before: 100 calls under 1 ms. After: 90 more in (1, 10], 10 more in (10, 100].
        let before = [100, 100, 100];
        let after = [100, 190, 200];
        let p50 = quantile(&bounds, &before, &after, 100, 0.5).expect("calls");
        assert!((1.0..=10.0).contains(&p50), "{p50}");
        let p99 = quantile(&bounds, &before, &after, 100, 0.99).expect("calls");
        assert!((10.0..=100.0).contains(&p99), "{p99}");
        assert_eq!(quantile(&bounds, &before, &before, 0, 0.5), None);
    }
}
