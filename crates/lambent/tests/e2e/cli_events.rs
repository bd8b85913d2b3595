//! The CLI over asynchronous invocation: `invoke --async`, `events`, `event-config`,
//! `schedule`/`schedules` and `queue`/`queues`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness::Server;

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Runs the CLI, insists it fails, and returns its stderr.
fn cli_err(s: &Server, args: &[&str]) -> String {
    let out = s.cli(args);
    assert!(
        !out.status.success(),
        "lambent {args:?} should have failed; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines inside a table's borders, without them.
fn content_lines(table: &str) -> Vec<Vec<char>> {
    table
        .lines()
        .filter_map(|l| l.strip_prefix("│ ")?.strip_suffix(" │"))
        .map(|l| l.chars().collect())
        .collect()
}

/// A table with a header as rows of (column, cell); columns are found where the header's labels
/// start (labels are two or more spaces apart).
fn table_rows(table: &str) -> Vec<BTreeMap<String, String>> {
    let lines = content_lines(table);
    let Some((header, rows)) = lines.split_first() else {
        panic!("no table in {table:?}");
    };
    let starts: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != ' ' && (i == 0 || (i >= 2 && header[i - 2..i] == [' ', ' '])))
        .collect();
    let cell = |line: &[char], j: usize| -> String {
        let from = starts[j].min(line.len());
        let to = starts.get(j + 1).map_or(line.len(), |&e| e.min(line.len()));
        line[from..to].iter().collect::<String>().trim().to_owned()
    };
    let names: Vec<String> = (0..starts.len()).map(|j| cell(header, j)).collect();
    rows.iter()
        .map(|line| {
            names
                .iter()
                .enumerate()
                .map(|(j, n)| (n.clone(), cell(line, j)))
                .collect()
        })
        .collect()
}

/// The row of a table whose `column` is `value`.
fn row_where(table: &str, column: &str, value: &str) -> BTreeMap<String, String> {
    table_rows(table)
        .into_iter()
        .find(|r| r.get(column).map(String::as_str) == Some(value))
        .unwrap_or_else(|| panic!("no row with {column} = {value:?} in\n{table}"))
}

/// The value of `key` in a two-column detail table (no header).
fn field(table: &str, key: &str) -> String {
    content_lines(table)
        .iter()
        .map(|l| l.iter().collect::<String>())
        .find_map(|l| {
            let rest = l.strip_prefix(key)?;
            (rest.is_empty() || rest.starts_with("  ")).then(|| rest.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no field {key:?} in\n{table}"))
}

#[tokio::test]
async fn queue_create_send_list_show_and_purge() {
    let s = Server::start().await;
    let out = s.cli_ok(&["queue", "create", "jobs", "--visibility-timeout", "45"]);
    assert_eq!(out.trim(), "created queue jobs (visibility timeout 45 s)");

    let table = s.cli_ok(&["queues"]);
    let jobs = row_where(&table, "NAME", "jobs");
    assert_eq!(jobs["MESSAGES"], "0", "{table}");
    assert_eq!(jobs["IN FLIGHT"], "0", "{table}");
    assert_eq!(jobs["VISIBILITY S"], "45", "{table}");
    assert_eq!(jobs["DEAD-LETTER QUEUE"], "", "{table}");
    assert_eq!(jobs["TRIGGER FUNCTION"], "", "{table}");

    // A message from --data, and one from a file with several lines.
    let out = s.cli_ok(&["queue", "send", "jobs", "--data", "hello queue"]);
    let first = out
        .trim()
        .strip_prefix("sent message ")
        .and_then(|r| r.strip_suffix(" to jobs"))
        .unwrap_or_else(|| panic!("unexpected output {out:?}"))
        .to_owned();
    let long_body = format!("line one\nline two {}\n", "x".repeat(200));
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), &long_body).expect("write");
    let v = json(&s.cli_ok(&[
        "--json",
        "queue",
        "send",
        "jobs",
        "--file",
        file.path().to_str().expect("utf-8"),
    ]));
    let ids = v["messageIds"].as_array().expect("messageIds");
    assert_eq!(ids.len(), 1, "{v}");
    let second = ids[0].as_str().expect("id").to_owned();
    assert_ne!(first, second);

    let table = s.cli_ok(&["queue", "messages", "jobs"]);
    let r = row_where(&table, "ID", &first);
    assert!(r["SENT"].starts_with("20"), "{table}");
    assert_eq!(r["RECEIVES"], "0", "not received yet: {table}");
    assert_eq!(r["BODY"], "hello queue");
    // The long body is shortened to one line in the table.
    let body = &row_where(&table, "ID", &second)["BODY"];
    assert!(
        body.starts_with("line one line two xxx") && body.ends_with('…'),
        "{table}"
    );
    assert_eq!(body.chars().count(), 60, "{table}");
    let table = s.cli_ok(&["queue", "messages", "jobs", "--limit", "1"]);
    assert_eq!(
        [&first, &second]
            .iter()
            .filter(|id| table.contains(id.as_str()))
            .count(),
        1,
        "{table}"
    );

    // `show` prints the whole body as it was sent.
    assert_eq!(s.cli_ok(&["queue", "show", "jobs", &first]), "hello queue");
    assert_eq!(s.cli_ok(&["queue", "show", "jobs", &second]), long_body);
    let m = json(&s.cli_ok(&["--json", "queue", "show", "jobs", &second]));
    assert_eq!(m["id"], second.as_str());
    assert_eq!(m["body"], long_body.as_str());
    let err = cli_err(&s, &["queue", "show", "jobs", "no-such-message"]);
    assert!(err.contains("no message no-such-message"), "{err}");
    let err = cli_err(&s, &["queue", "show", "jobs", "../../keys"]);
    assert!(err.contains("is invalid"), "{err}");

    let table = s.cli_ok(&["queues"]);
    assert_eq!(
        row_where(&table, "NAME", "jobs")["MESSAGES"],
        "2",
        "{table}"
    );

    assert_eq!(
        s.cli_ok(&["queue", "purge", "jobs"]).trim(),
        "purged 2 messages from jobs"
    );
    let table = s.cli_ok(&["queue", "messages", "jobs"]);
    assert!(
        !table.contains(&first) && !table.contains(&second),
        "{table}"
    );
    let v = json(&s.cli_ok(&["--json", "queue", "messages", "jobs"]));
    assert_eq!(v["messages"], serde_json::json!([]));

    // Sending to a queue that does not exist names the command that creates it.
    let err = cli_err(&s, &["queue", "send", "nope", "--data", "x"]);
    assert!(err.contains("lambent queue create nope"), "{err}");
    let err = cli_err(&s, &["queue", "send", "jobs"]);
    assert!(err.contains("--data") || err.contains("--file"), "{err}");
    let err = cli_err(&s, &["queue", "create", "bad/name"]);
    assert!(err.contains("queue name \"bad/name\" is invalid"), "{err}");

    assert_eq!(
        s.cli_ok(&["queue", "rm", "jobs"]).trim(),
        "deleted queue jobs"
    );
    assert!(!s.cli_ok(&["queues"]).contains("jobs"));
}

#[tokio::test]
async fn queue_dead_letters_triggers_and_redrive() {
    let s = Server::start().await;
    s.deploy("echo", "cgi-c", &[]);
    s.cli_ok(&["queue", "create", "dlq"]);
    let out = s.cli_ok(&[
        "queue",
        "create",
        "work",
        "--dead-letter-queue",
        "dlq",
        "--max-receive-count",
        "3",
    ]);
    assert!(
        out.contains("dead letters go to dlq after 3 receives"),
        "{out}"
    );
    let err = cli_err(
        &s,
        &["queue", "create", "half", "--dead-letter-queue", "dlq"],
    );
    assert!(err.contains("--max-receive-count"), "{err}");

    // A message that is not an invocation record cannot be redriven: it is reported skipped
    // and stays in the queue.
    let out = s.cli_ok(&["queue", "send", "dlq", "--data", "not a record"]);
    let id = out
        .split_whitespace()
        .nth(2)
        .expect("message id")
        .to_owned();
    let out = s.cli_ok(&["queue", "redrive", "dlq"]);
    assert!(out.contains("redriven 0, skipped 1"), "{out}");
    assert!(
        out.contains(&format!("skipped {id}: not an invocation record")),
        "{out}"
    );
    let v = json(&s.cli_ok(&["--json", "queue", "redrive", "dlq", &id]));
    assert_eq!(v["redriven"], serde_json::json!([]), "{v}");
    assert_eq!(v["skipped"][0]["messageId"], id.as_str(), "{v}");
    assert!(s.cli_ok(&["queue", "messages", "dlq"]).contains(&id));

    // A trigger shows in `queues`, and goes away with untrigger.
    let out = s.cli_ok(&[
        "queue",
        "trigger",
        "work",
        "echo",
        "--batch-size",
        "5",
        "--disabled",
    ]);
    assert_eq!(
        out.trim(),
        "queue work triggers echo (batch size 5, batching window 0.0 s, disabled)"
    );
    let table = s.cli_ok(&["queues"]);
    let work = row_where(&table, "NAME", "work");
    assert_eq!(work["TRIGGER FUNCTION"], "echo (disabled)", "{table}");
    assert_eq!(work["DEAD-LETTER QUEUE"], "dlq after 3 receives", "{table}");
    let dlq = row_where(&table, "NAME", "dlq");
    assert_eq!(dlq["MESSAGES"], "1", "{table}");
    assert_eq!(dlq["TRIGGER FUNCTION"], "", "{table}");
    let err = cli_err(&s, &["queue", "trigger", "work", "missing"]);
    assert!(err.contains("missing"), "{err}");
    s.cli_ok(&["queue", "untrigger", "work"]);
    let table = s.cli_ok(&["queues"]);
    assert_eq!(
        row_where(&table, "NAME", "work")["TRIGGER FUNCTION"],
        "",
        "{table}"
    );
    let err = cli_err(&s, &["queue", "untrigger", "work"]);
    assert!(err.contains("has no trigger"), "{err}");
}

#[tokio::test]
async fn schedules_are_added_listed_toggled_and_removed() {
    let s = Server::start().await;
    s.deploy("echo", "cgi-c", &[]);

    // A bad expression fails and says what to write instead.
    let err = cli_err(&s, &["schedule", "add", "tick", "echo", "rate(5 minute)"]);
    assert!(err.contains("write rate(5 minutes)"), "{err}");
    let err = cli_err(&s, &["schedule", "add", "tick", "echo", "every 5 minutes"]);
    assert!(err.contains("must be rate(N unit) or cron("), "{err}");
    assert!(!s.cli_ok(&["schedules"]).contains("tick"));
    let err = cli_err(&s, &["schedule", "add", "tick", "nope", "rate(5 minutes)"]);
    assert!(err.contains("nope"), "{err}");
    let err = cli_err(
        &s,
        &[
            "schedule",
            "add",
            "tick",
            "echo",
            "rate(5 minutes)",
            "--input",
            "{not json",
        ],
    );
    assert!(err.contains("must be JSON text"), "{err}");

    let out = s.cli_ok(&[
        "schedule",
        "add",
        "tick",
        "echo",
        "rate(5 minutes)",
        "--input",
        r#"{"from":"schedule"}"#,
        "--description",
        "every five",
    ]);
    assert_eq!(
        row_where(&out, "NAME", "tick")["EXPRESSION"],
        "rate(5 minutes)",
        "{out}"
    );
    s.cli_ok(&[
        "schedule",
        "add",
        "nightly",
        "echo:$LATEST",
        "cron(0 3 * * ? *)",
        "--disabled",
    ]);

    let table = s.cli_ok(&["schedules"]);
    let tick = row_where(&table, "NAME", "tick");
    assert_eq!(tick["FUNCTION"], "echo", "{table}");
    assert_eq!(tick["EXPRESSION"], "rate(5 minutes)", "{table}");
    assert_eq!(tick["ENABLED"], "true", "{table}");
    assert_eq!(tick["LAST FIRED"], "", "{table}");
    assert!(
        tick["NEXT FIRE"].starts_with("20"),
        "next fire is a time: {table}"
    );
    let nightly = row_where(&table, "NAME", "nightly");
    assert_eq!(nightly["EXPRESSION"], "cron(0 3 * * ? *)", "{table}");
    assert_eq!(nightly["ENABLED"], "false", "{table}");
    assert_eq!(
        nightly["NEXT FIRE"], "",
        "a disabled schedule has no next fire: {table}"
    );

    let v = json(&s.cli_ok(&["--json", "schedules"]));
    let tick = v["schedules"]
        .as_array()
        .expect("schedules")
        .iter()
        .find(|s| s["name"] == "tick")
        .expect("tick");
    assert_eq!(tick["input"], r#"{"from":"schedule"}"#);
    assert_eq!(tick["description"], "every five");

    // The name is taken.
    let err = cli_err(&s, &["schedule", "add", "tick", "echo", "rate(1 hour)"]);
    assert!(err.contains("HTTP 409"), "{err}");

    assert_eq!(
        s.cli_ok(&["schedule", "disable", "tick"]).trim(),
        "disabled schedule tick"
    );
    let table = s.cli_ok(&["schedules"]);
    assert_eq!(
        row_where(&table, "NAME", "tick")["ENABLED"],
        "false",
        "{table}"
    );
    let out = s.cli_ok(&["schedule", "enable", "nightly"]);
    assert!(
        out.starts_with("enabled schedule nightly; next fire 20"),
        "{out}"
    );
    let table = s.cli_ok(&["schedules"]);
    assert_eq!(
        row_where(&table, "NAME", "nightly")["ENABLED"],
        "true",
        "{table}"
    );

    assert_eq!(
        s.cli_ok(&["schedule", "rm", "tick"]).trim(),
        "deleted schedule tick"
    );
    let table = s.cli_ok(&["schedules"]);
    assert!(
        !table.contains("tick") && table.contains("nightly"),
        "{table}"
    );
    let err = cli_err(&s, &["schedule", "rm", "tick"]);
    assert!(err.contains("tick"), "{err}");
}

/// Polls `lambent events ID` until its state is `want`; returns the last table.
fn wait_for_state(s: &Server, id: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let table = s.cli_ok(&["events", id]);
        if field(&table, "state") == want {
            return table;
        }
        assert!(
            Instant::now() < deadline,
            "event {id} never became {want}:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn async_invoke_prints_an_id_that_events_follows() {
    let s = Server::start().await;
    s.deploy("echo", "cgi-c", &[]);

    let out = s.cli_ok(&["invoke", "echo", "--async", "--data", r#"{"k":"async"}"#]);
    let id = out
        .trim()
        .strip_prefix("accepted event ")
        .unwrap_or_else(|| panic!("unexpected output {out:?}"))
        .to_owned();
    assert!(!id.is_empty() && !id.contains(' '), "{out}");

    let table = wait_for_state(&s, &id, "succeeded");
    assert_eq!(field(&table, "attempts"), "1", "{table}");
    assert_eq!(field(&table, "function"), "echo", "{table}");
    assert_eq!(field(&table, "condition"), "Success", "{table}");
    // The echo function's answer holds the event it got.
    assert!(
        field(&table, "result").contains(r#"{\"k\":\"async\"}"#),
        "{table}"
    );
    let v = json(&s.cli_ok(&["--json", "events", &id]));
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["id"], id.as_str());

    // The list shows it, with the counts; the filters narrow it.
    let list = s.cli_ok(&["events", "--function", "echo"]);
    let r = row_where(&list, "ID", &id);
    assert_eq!(r["FUNCTION"], "echo", "{list}");
    assert_eq!(r["STATE"], "succeeded", "{list}");
    assert_eq!(r["ATTEMPTS"], "1", "{list}");
    assert_eq!(r["ERROR"], "", "{list}");
    assert!(list.contains("0 waiting, 0 running"), "{list}");
    assert!(
        !s.cli_ok(&["events", "--state", "failed"]).contains(&id),
        "a succeeded event is not listed as failed"
    );
    let v = json(&s.cli_ok(&["--json", "events", "--state", "succeeded", "--limit", "5"]));
    assert_eq!(v["events"][0]["id"], id.as_str(), "{v}");
    let err = cli_err(&s, &["events", "--state", "done"]);
    assert!(err.contains("possible values"), "{err}");

    // An idempotency key makes a repeat a duplicate of the same event.
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), r#"{"k":"keyed"}"#).expect("write");
    let path = file.path().to_str().expect("utf-8");
    let args = [
        "invoke",
        "echo",
        "--async",
        "--file",
        path,
        "--idempotency-key",
        "order-1",
    ];
    let out = s.cli_ok(&args);
    let keyed = out
        .trim()
        .strip_prefix("accepted event ")
        .unwrap_or_else(|| panic!("unexpected output {out:?}"))
        .to_owned();
    let again = s.cli_ok(&args);
    assert!(again.starts_with("duplicate:"), "{again}");
    assert!(again.contains(&keyed), "{again}");
    let v = json(&s.cli_ok(&[&["--json"], &args[..]].concat()));
    assert_eq!(v["duplicate"], true);
    assert_eq!(v["eventId"], keyed.as_str());
    let table = wait_for_state(&s, &keyed, "succeeded");
    assert!(field(&table, "result").contains("keyed"), "{table}");
    assert_eq!(field(&table, "idempotency key"), "order-1", "{table}");

    let err = cli_err(&s, &["invoke", "echo", "--idempotency-key", "k"]);
    assert!(err.contains("--async"), "{err}");
    let err = cli_err(&s, &["invoke", "nope", "--async"]);
    assert!(err.contains("does not exist"), "{err}");
    let err = cli_err(&s, &["events", "00000000-0000-0000-0000-000000000000"]);
    assert!(err.contains("HTTP 404"), "{err}");
}

#[tokio::test]
async fn event_config_is_set_shown_and_deleted() {
    let s = Server::start().await;
    s.deploy("echo", "cgi-c", &[]);
    s.cli_ok(&["queue", "create", "dlq"]);

    let err = cli_err(&s, &["event-config", "echo"]);
    assert!(err.contains("has no event invoke configuration"), "{err}");

    let table = s.cli_ok(&[
        "event-config",
        "echo",
        "--retries",
        "1",
        "--max-age",
        "120",
        "--on-failure",
        "queue:dlq",
    ]);
    assert_eq!(field(&table, "function"), "echo", "{table}");
    assert_eq!(field(&table, "retries"), "1", "{table}");
    assert_eq!(field(&table, "max age s"), "120", "{table}");
    assert!(field(&table, "on failure").ends_with(":dlq"), "{table}");
    assert_eq!(field(&table, "on success"), "", "{table}");

    let shown = s.cli_ok(&["event-config", "echo"]);
    assert_eq!(field(&shown, "retries"), "1", "{shown}");
    let v = json(&s.cli_ok(&["--json", "event-config", "echo:$LATEST"]));
    assert_eq!(v["maximumRetryAttempts"], 1);
    assert_eq!(v["maximumEventAgeInSeconds"], 120);
    assert!(
        v["onFailure"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:sqs:") && a.ends_with(":dlq")),
        "{v}"
    );
    assert_eq!(v["onSuccess"], serde_json::Value::Null);

    // Out of range values and unknown destinations are refused with the server's reason.
    let err = cli_err(&s, &["event-config", "echo", "--retries", "3"]);
    assert!(
        err.contains("MaximumRetryAttempts must be between 0 and 2"),
        "{err}"
    );
    let err = cli_err(
        &s,
        &["event-config", "echo", "--on-success", "queue:missing"],
    );
    assert!(err.contains("lambent queue create missing"), "{err}");
    let err = cli_err(&s, &["event-config", "echo", "--on-success", "bucket:x"]);
    assert!(err.contains("function:NAME[:QUALIFIER]"), "{err}");
    // A refused change leaves the configuration as it was.
    assert_eq!(
        json(&s.cli_ok(&["--json", "event-config", "echo"]))["maximumRetryAttempts"],
        1
    );

    let out = s.cli_ok(&["event-config", "echo", "--delete"]);
    assert_eq!(
        out.trim(),
        "deleted the event invoke configuration of echo:$LATEST"
    );
    let err = cli_err(&s, &["event-config", "echo"]);
    assert!(err.contains("has no event invoke configuration"), "{err}");
    let err = cli_err(&s, &["event-config", "echo", "--delete"]);
    assert!(err.contains("HTTP 404"), "{err}");
    let err = cli_err(&s, &["event-config", "echo", "--delete", "--retries", "1"]);
    assert!(err.contains("cannot be used with"), "{err}");
}
