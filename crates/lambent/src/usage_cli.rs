//! `lambent usage`: metered calls, GB-seconds, errors, throttles and cold starts.

use anyhow::{Context, bail};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::Value;

use crate::client::{Api, print_json, text};

/// What `lambent usage` was asked.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Only this function.
    #[arg(long)]
    function: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// The last span of time: 30m, 2h, 7d.
    #[arg(long, conflicts_with = "from")]
    since: Option<String>,
    /// Start (RFC 3339 or ms since 1970).
    #[arg(long)]
    from: Option<String>,
    /// End (RFC 3339 or ms since 1970; default now).
    #[arg(long)]
    to: Option<String>,
    /// How to group the sums.
    #[arg(long, default_value = "function", value_parser = ["total", "tenant", "function", "version", "minute", "hour", "day"])]
    by: String,
}

/// `30s`, `15m`, `2h`, `7d` as milliseconds.
fn parse_span(span: &str) -> anyhow::Result<i64> {
    let (number, unit) = span.split_at(
        span.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(span.len()),
    );
    let n: i64 = number.parse().with_context(|| {
        format!("--since {span:?}: give a number and a unit, like 30m, 2h or 7d")
    })?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" | "" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => bail!("--since {span:?}: unit {other:?} is not s, m, h or d"),
    };
    n.checked_mul(unit_ms)
        .filter(|ms| *ms > 0)
        .with_context(|| format!("--since {span:?} is out of range"))
}

pub async fn usage(api: &Api, json: bool, args: UsageArgs) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = vec![("groupBy", args.by.clone())];
    if let Some(since) = &args.since {
        query.push((
            "from",
            (lambent_core::now_ms() - parse_span(since)?).to_string(),
        ));
    }
    if let Some(from) = args.from {
        query.push(("from", from));
    }
    if let Some(to) = args.to {
        query.push(("to", to));
    }
    if let Some(f) = args.function {
        query.push(("function", f));
    }
    if let Some(t) = args.tenant {
        query.push(("tenant", t));
    }
    let v = api
        .json(api.http.get(api.url("/v1/usage")).query(&query))
        .await?;
    if json {
        return print_json(&v);
    }
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header([
        args.by.to_uppercase().as_str(),
        "CALLS",
        "ERRORS",
        "THROTTLES",
        "COLD",
        "BILLED MS",
        "GB-S",
        "AVG MS",
    ]);
    let row = |key: String, g: &Value| {
        let calls = g["invocations"].as_u64().unwrap_or(0);
        let avg = if calls == 0 {
            String::new()
        } else {
            format!(
                "{:.2}",
                g["durationMs"].as_f64().unwrap_or(0.0) / calls as f64
            )
        };
        [
            key,
            calls.to_string(),
            text(g, "errors"),
            text(g, "throttles"),
            text(g, "coldStarts"),
            text(g, "billedMs"),
            format!("{:.6}", g["gbSeconds"].as_f64().unwrap_or(0.0)),
            avg,
        ]
    };
    for g in v["groups"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let key = match text(g, "key") {
            k if k.is_empty() => "all".to_owned(),
            k => k,
        };
        t.add_row(row(key, g));
    }
    if args.by != "total" {
        t.add_row(row("total".into(), &v["total"]));
    }
    println!("{t}");
    println!("from {} to {}", text(&v, "from"), text(&v, "to"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_people_write_them() {
        assert_eq!(parse_span("90s").expect("span"), 90_000);
        assert_eq!(parse_span("15m").expect("span"), 900_000);
        assert_eq!(parse_span("2h").expect("span"), 7_200_000);
        assert_eq!(parse_span("7d").expect("span"), 604_800_000);
        assert!(parse_span("h").is_err());
        assert!(parse_span("3w").is_err());
        assert!(parse_span("0m").is_err());
    }
}
