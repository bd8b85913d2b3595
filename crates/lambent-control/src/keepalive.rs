//! Keep-alive policies: how long an idle instance stays warm, and when one is started again
//! ahead of a call.
//!
//! - **Fixed**: keep every instance warm for the same time after its last call (AWS keeps about
//!   10 minutes, Azure 20).
//! - **Adaptive**: Azure's hybrid histogram policy ("Serverless in the Wild", USENIX ATC 2020).
//!   Each function's idle times (from the end of one call to the start of the next) go into a
//!   histogram of one-minute bins over four hours. When the histogram is representative (enough
//!   samples, most within range, and concentrated rather than flat), the instance is unloaded
//!   after a call, loaded again at the head of the distribution (the 5th percentile, less a 10%
//!   margin: the *pre-warm* window) and kept until its tail (the 99th percentile, plus 10%: the
//!   *keep-alive* window). Otherwise the function falls back to the fixed policy.
//!
//! The policy is pure (no clock, no I/O): callers feed it idle times and ask for windows, so the
//! same code drives the live pool and the trace replay in `bench/keepalive.sh`.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;

/// The fixed keep-alive lambent uses by default (AWS's).
pub const DEFAULT_FIXED_KEEP_ALIVE: Duration = Duration::from_secs(600);
/// Histogram bins, one minute each: four hours.
pub const BINS: usize = 240;
const BIN_MS: u64 = 60_000;
/// Idle times seen before the histogram is trusted.
pub const MIN_SAMPLES: u64 = 10;
/// The histogram is trusted only when its bin counts vary this much (coefficient of variation);
/// a flat histogram says nothing about when the next call comes.
const MIN_CV: f64 = 2.0;
/// Share of idle times that may fall beyond the histogram's range.
const MAX_OUT_OF_RANGE: f64 = 0.5;
const HEAD_PERCENTILE: f64 = 0.05;
const TAIL_PERCENTILE: f64 = 0.99;
const MARGIN: f64 = 0.10;

/// Which policy a function follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlivePolicy {
    /// Warm for this long after each call.
    Fixed(Duration),
    /// Learnt per function; `fallback` while there is not enough history.
    Adaptive {
        /// The fixed keep-alive used until the histogram is representative.
        fallback: Duration,
    },
}

impl KeepAlivePolicy {
    /// Parses `fixed`, `fixed:SECONDS`, `adaptive` or `adaptive:SECONDS` (the fallback).
    pub fn parse(text: &str, default_fixed: Duration) -> Result<Self, String> {
        let (kind, secs) = match text.split_once(':') {
            Some((k, s)) => (k, Some(s)),
            None => (text, None),
        };
        let duration = match secs {
            None => default_fixed,
            Some(s) => {
                Duration::from_secs(s.parse::<u64>().ok().filter(|n| *n <= 86_400).ok_or_else(
                    || format!("keep-alive {s:?} is not a number of seconds from 0 to 86400"),
                )?)
            }
        };
        match kind {
            "fixed" => Ok(Self::Fixed(duration)),
            "adaptive" => Ok(Self::Adaptive { fallback: duration }),
            other => Err(format!(
                "keep-alive policy {other:?} is not known; use fixed[:SECONDS] or adaptive[:SECONDS]"
            )),
        }
    }
}

/// What to do with a function's instance after a call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Unload now and start again after this long (zero: keep the instance loaded).
    pub prewarm: Duration,
    /// Then keep it warm this long.
    pub keep_alive: Duration,
}

/// The idle-time histogram of one function.
#[derive(Debug, Clone)]
pub struct IdleHistogram {
    bins: Box<[u32; BINS]>,
    in_range: u64,
    out_of_range: u64,
}

impl Default for IdleHistogram {
    fn default() -> Self {
        Self {
            bins: Box::new([0; BINS]),
            in_range: 0,
            out_of_range: 0,
        }
    }
}

impl IdleHistogram {
    /// Adds one idle time.
    pub fn observe(&mut self, idle: Duration) {
        let bin = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX) / BIN_MS;
        match usize::try_from(bin).ok().filter(|b| *b < BINS) {
            Some(b) => {
                self.bins[b] = self.bins[b].saturating_add(1);
                self.in_range += 1;
            }
            None => self.out_of_range += 1,
        }
    }

    /// Idle times seen.
    pub fn samples(&self) -> u64 {
        self.in_range + self.out_of_range
    }

    /// Whether the histogram predicts the next call well enough to act on.
    pub fn representative(&self) -> bool {
        let total = self.samples();
        if total < MIN_SAMPLES || self.in_range == 0 {
            return false;
        }
        if self.out_of_range as f64 / total as f64 > MAX_OUT_OF_RANGE {
            return false;
        }
        let n = BINS as f64;
        let mean = self.in_range as f64 / n;
        let var = self
            .bins
            .iter()
            .map(|c| (f64::from(*c) - mean).powi(2))
            .sum::<f64>()
            / n;
        var.sqrt() / mean >= MIN_CV
    }

    /// The idle time (bin edge) below which `p` of the in-range samples fall.
    fn percentile(&self, p: f64, upper_edge: bool) -> Duration {
        let wanted = (p * self.in_range as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, c) in self.bins.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= wanted {
                let edge = if upper_edge { i as u64 + 1 } else { i as u64 };
                return Duration::from_millis(edge * BIN_MS);
            }
        }
        Duration::from_millis(BINS as u64 * BIN_MS)
    }

    /// The windows the histogram gives: pre-warm at the head less the margin, keep warm until
    /// the tail plus the margin.
    pub fn windows(&self) -> Windows {
        let head = self
            .percentile(HEAD_PERCENTILE, false)
            .mul_f64(1.0 - MARGIN);
        let tail = self.percentile(TAIL_PERCENTILE, true).mul_f64(1.0 + MARGIN);
        Windows {
            prewarm: head,
            keep_alive: tail.saturating_sub(head),
        }
    }
}

/// Per-function keep-alive state: the policy each function follows and, for adaptive ones, its
/// idle-time histogram.
#[derive(Debug)]
pub struct KeepAlive {
    default: KeepAlivePolicy,
    functions: Mutex<HashMap<String, FunctionState>>,
}

#[derive(Debug, Default)]
struct FunctionState {
    policy: Option<KeepAlivePolicy>,
    histogram: IdleHistogram,
}

impl KeepAlive {
    /// Keep-alive with this policy for every function that has none of its own.
    pub fn new(default: KeepAlivePolicy) -> Self {
        Self {
            default,
            functions: Mutex::default(),
        }
    }

    /// The policy of functions without their own.
    pub fn default_policy(&self) -> KeepAlivePolicy {
        self.default
    }

    /// Sets (or clears) one function's own policy.
    pub fn set_policy(&self, function: &str, policy: Option<KeepAlivePolicy>) {
        self.functions
            .lock()
            .entry(function.to_owned())
            .or_default()
            .policy = policy;
    }

    /// Forgets a function.
    pub fn forget(&self, function: &str) {
        self.functions.lock().remove(function);
    }

    /// Records that `function` was idle for `idle` before a call.
    pub fn observe_idle(&self, function: &str, idle: Duration) {
        let mut functions = self.functions.lock();
        // Nothing to learn for a fixed policy: no entry, no allocation.
        let own = functions.get(function).and_then(|s| s.policy);
        if matches!(own.unwrap_or(self.default), KeepAlivePolicy::Fixed(_)) {
            return;
        }
        let state = functions.entry(function.to_owned()).or_default();
        if matches!(
            state.policy.unwrap_or(self.default),
            KeepAlivePolicy::Adaptive { .. }
        ) {
            state.histogram.observe(idle);
        }
    }

    /// What to do with `function`'s instance after a call ends.
    pub fn windows(&self, function: &str) -> Windows {
        let functions = self.functions.lock();
        let state = functions.get(function);
        let policy = state.and_then(|s| s.policy).unwrap_or(self.default);
        match policy {
            KeepAlivePolicy::Fixed(d) => Windows {
                prewarm: Duration::ZERO,
                keep_alive: d,
            },
            KeepAlivePolicy::Adaptive { fallback } => match state {
                Some(s) if s.histogram.representative() => s.histogram.windows(),
                _ => Windows {
                    prewarm: Duration::ZERO,
                    keep_alive: fallback,
                },
            },
        }
    }
}

/// What replaying a trace under a policy cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReplayResult {
    /// Calls replayed.
    pub calls: u64,
    /// Of those, calls that found no warm instance.
    pub cold_starts: u64,
    /// Memory held by idle warm instances, in MB-seconds.
    pub idle_mb_seconds: f64,
}

impl ReplayResult {
    /// Cold starts as a share of calls, in percent.
    pub fn cold_percent(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.cold_starts as f64 * 100.0 / self.calls as f64
        }
    }
}

/// One function of a trace: its memory and the start times (ms, ascending) and duration of its
/// calls.
#[derive(Debug, Clone)]
pub struct TraceFunction {
    /// A name.
    pub name: String,
    /// Memory of one instance, in MB.
    pub memory_mb: u32,
    /// How long each call runs, in ms.
    pub duration_ms: u64,
    /// Call start times, in ms, ascending.
    pub calls: Vec<u64>,
}

/// Replays a trace through `policy`, one instance per function (calls of a function do not
/// overlap in the traces replayed here), and counts cold starts and idle memory-time. The
/// instance of a function stays warm after the trace's last call for its window; that tail is
/// not counted (it is the same for every policy that keeps anything warm).
pub fn replay(trace: &[TraceFunction], policy: KeepAlivePolicy) -> ReplayResult {
    let keep_alive = KeepAlive::new(policy);
    let mut out = ReplayResult::default();
    for f in trace {
        let mut previous_end: Option<u64> = None;
        let mut windows = Windows {
            prewarm: Duration::ZERO,
            keep_alive: Duration::ZERO,
        };
        for &start in &f.calls {
            out.calls += 1;
            match previous_end {
                None => out.cold_starts += 1,
                Some(end) => {
                    let idle = start.saturating_sub(end);
                    let prewarm = u64::try_from(windows.prewarm.as_millis()).unwrap_or(u64::MAX);
                    let keep = u64::try_from(windows.keep_alive.as_millis()).unwrap_or(u64::MAX);
                    let warm_from = prewarm;
                    let warm_until = prewarm.saturating_add(keep);
                    let warm_ms = if idle < warm_from {
                        out.cold_starts += 1;
                        0
                    } else if idle <= warm_until {
                        idle - warm_from
                    } else {
                        out.cold_starts += 1;
                        keep
                    };
                    out.idle_mb_seconds += warm_ms as f64 / 1000.0 * f64::from(f.memory_mb);
                    keep_alive.observe_idle(&f.name, Duration::from_millis(idle));
                }
            }
            previous_end = Some(start + f.duration_ms);
            windows = keep_alive.windows(&f.name);
        }
    }
    out
}

/// A synthetic trace shaped like the Azure Functions trace: most functions are called rarely,
/// a good share on timers (periodic, with small jitter), some in Poisson bursts, a few often.
/// `hours` long, `functions` functions, deterministic for a `seed`.
pub fn synthetic_trace(functions: usize, hours: u64, seed: u64) -> Vec<TraceFunction> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let span = hours * 3_600_000;
    (0..functions)
        .map(|i| {
            let kind = rng.u32(0..100);
            let memory_mb = [128, 256, 512, 1024][rng.usize(0..4)];
            let duration_ms = rng.u64(20..2_000);
            let mut calls = Vec::new();
            let mut t = rng.u64(0..600_000);
            if kind < 45 {
                // Timers: every 2 to 60 minutes, a few seconds of jitter.
                let period = rng.u64(2..=60) * 60_000;
                while t < span {
                    calls.push(t + rng.u64(0..5_000));
                    t += period;
                }
            } else if kind < 80 {
                // Rare and irregular: exponential gaps averaging 20 minutes to 3 hours.
                let mean = rng.u64(20..=180) as f64 * 60_000.0;
                while t < span {
                    calls.push(t);
                    t += (-(1.0 - rng.f64()).ln() * mean) as u64 + duration_ms;
                }
            } else if kind < 95 {
                // Bursty: bursts of calls seconds apart, every 10 to 90 minutes.
                let every = rng.u64(10..=90) * 60_000;
                while t < span {
                    for k in 0..rng.u64(2..8) {
                        calls.push(t + k * (duration_ms + rng.u64(500..5_000)));
                    }
                    t += every + rng.u64(0..60_000);
                }
            } else {
                // Busy: a call every few seconds.
                while t < span {
                    calls.push(t);
                    t += duration_ms + rng.u64(1_000..10_000);
                }
            }
            calls.sort_unstable();
            // One instance per function: a call starts no earlier than the previous one ends.
            let mut end = 0;
            for c in &mut calls {
                *c = (*c).max(end);
                end = *c + duration_ms;
            }
            TraceFunction {
                name: format!("f{i}"),
                memory_mb,
                duration_ms,
                calls,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(n: u64) -> Duration {
        Duration::from_secs(n * 60)
    }

    #[test]
    fn policies_parse_with_clear_errors() {
        let d = DEFAULT_FIXED_KEEP_ALIVE;
        assert_eq!(
            KeepAlivePolicy::parse("fixed", d),
            Ok(KeepAlivePolicy::Fixed(d))
        );
        assert_eq!(
            KeepAlivePolicy::parse("fixed:1200", d),
            Ok(KeepAlivePolicy::Fixed(minutes(20)))
        );
        assert_eq!(
            KeepAlivePolicy::parse("adaptive", d),
            Ok(KeepAlivePolicy::Adaptive { fallback: d })
        );
        assert!(
            KeepAlivePolicy::parse("lru", d)
                .expect_err("unknown")
                .contains("fixed")
        );
        assert!(
            KeepAlivePolicy::parse("fixed:soon", d)
                .expect_err("bad")
                .contains("seconds")
        );
    }

    #[test]
    fn a_periodic_function_is_prewarmed_just_before_its_next_call() {
        let k = KeepAlive::new(KeepAlivePolicy::Adaptive {
            fallback: minutes(10),
        });
        // Not enough history: the fallback.
        k.observe_idle("timer", minutes(30));
        assert_eq!(
            k.windows("timer"),
            Windows {
                prewarm: Duration::ZERO,
                keep_alive: minutes(10)
            }
        );
        for _ in 0..20 {
            k.observe_idle("timer", minutes(30) + Duration::from_secs(20));
        }
        let w = k.windows("timer");
        // Unloaded after the call, back 27 minutes later, kept past the 31st minute.
        assert_eq!(w.prewarm, minutes(27));
        assert!(w.prewarm + w.keep_alive >= minutes(31), "{w:?}");
        assert!(w.keep_alive < minutes(10), "{w:?}");
    }

    #[test]
    fn a_flat_or_out_of_range_history_falls_back_to_fixed() {
        let k = KeepAlive::new(KeepAlivePolicy::Adaptive {
            fallback: minutes(10),
        });
        for i in 0..BINS as u64 {
            k.observe_idle("flat", minutes(i) + Duration::from_secs(1));
            k.observe_idle("rare", Duration::from_secs(5 * 3600 + i));
        }
        assert_eq!(k.windows("flat").keep_alive, minutes(10));
        assert_eq!(k.windows("rare").keep_alive, minutes(10));
        // A function with its own fixed policy ignores the default.
        k.set_policy("flat", Some(KeepAlivePolicy::Fixed(minutes(1))));
        assert_eq!(k.windows("flat").keep_alive, minutes(1));
    }

    #[test]
    fn on_a_periodic_trace_adaptive_has_fewer_cold_starts_for_no_more_idle_memory() {
        // Timers every 15 minutes for 12 hours: a 10-minute fixed keep-alive misses every call.
        let trace: Vec<TraceFunction> = (0..5)
            .map(|i| TraceFunction {
                name: format!("t{i}"),
                memory_mb: 256,
                duration_ms: 200,
                calls: (0..48).map(|n| n * 15 * 60_000 + i * 1_000).collect(),
            })
            .collect();
        let fixed = replay(&trace, KeepAlivePolicy::Fixed(minutes(10)));
        let adaptive = replay(
            &trace,
            KeepAlivePolicy::Adaptive {
                fallback: minutes(10),
            },
        );
        assert_eq!(fixed.calls, 240);
        assert_eq!(fixed.cold_starts, 240);
        assert!(
            adaptive.cold_starts <= 5 * (MIN_SAMPLES + 2),
            "only the learning calls are cold: {adaptive:?}"
        );
        assert!(
            adaptive.idle_mb_seconds <= fixed.idle_mb_seconds,
            "{adaptive:?} vs {fixed:?}"
        );
    }

    #[test]
    fn the_synthetic_trace_is_deterministic_and_well_formed() {
        let a = synthetic_trace(50, 4, 7);
        let b = synthetic_trace(50, 4, 7);
        assert_eq!(a.len(), 50);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.calls, y.calls);
            assert!(x.calls.windows(2).all(|w| w[1] >= w[0] + x.duration_ms));
        }
    }
}
