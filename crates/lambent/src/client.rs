//! The command-line client: each subcommand is one or two calls to the HTTP API, printed as a
//! table (or JSON with `--json`). Errors carry the server's message and give a non-zero exit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use lambent_api::contract::{
    Admission, Concurrency, CreateKey, PublishVersion, PutAdmission, PutAlias, PutConcurrency,
    PutProvisioned, PutProvisionedSchedule, PutUrl,
};
use lambent_core::{FunctionCreate, Target};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

use crate::credentials::Credentials;
use crate::events_cli;
use crate::manifest;
use crate::{Command, KeysCommand};

/// Bytes per upload chunk (and progress-bar step).
const UPLOAD_CHUNK: usize = 64 * 1024;

pub(crate) struct Api {
    pub(crate) http: Client,
    base: String,
    creds: Option<Credentials>,
}

impl Api {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Response> {
        let mut request = req.build().context("building the request")?;
        if let Some(creds) = &self.creds {
            crate::credentials::sign(&mut request, creds)?;
        }
        let resp = self.http.execute(request).await.with_context(|| {
            format!(
                "cannot reach lambent at {}; is `lambent serve` running?",
                self.base
            )
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?;
                Some(format!(
                    "{} ({})",
                    e.get("message")?.as_str()?,
                    e.get("code")?.as_str()?
                ))
            })
            .unwrap_or(text);
        if status == StatusCode::FORBIDDEN {
            let hint = match &self.creds {
                None => format!(
                    "no credentials found: set LAMBENT_ACCESS_KEY_ID and LAMBENT_SECRET_ACCESS_KEY, or put a [default] profile in {} (lambent serve prints where its admin key is)",
                    crate::credentials::profile_file().map_or_else(
                        || "~/.config/lambent/credentials".into(),
                        |p| p.display().to_string()
                    )
                ),
                Some(c) if message.contains("this request needs role") => format!(
                    "the key {} from {} is valid but its role does not allow this (lambent keys create --role sets a key's role)",
                    c.access_key_id, c.source
                ),
                Some(c) => format!("the key {} from {} was refused", c.access_key_id, c.source),
            };
            return Err(anyhow!("{message} [HTTP 403]\n{hint}"));
        }
        Err(anyhow!("{message} [HTTP {}]", status.as_u16()))
    }

    pub(crate) async fn json(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = self.send(req).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        resp.json().await.context("the server's answer is not JSON")
    }
}

pub(crate) fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(crate) fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn function_table(items: &[Value]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header([
        "NAME",
        "VERSION",
        "RUNTIME",
        "MEMORY MB",
        "TIMEOUT S",
        "CODE SHA256",
        "LAST MODIFIED",
        "URL",
    ]);
    for f in items {
        let sha = text(f, "code_sha256");
        t.add_row([
            text(f, "name"),
            text(f, "version"),
            text(f, "runtime"),
            text(f, "memory_mb"),
            text(f, "timeout_s"),
            sha.chars().take(12).collect(),
            text(f, "last_modified"),
            text(f, "url"),
        ]);
    }
    t
}

fn alias_table(items: &[Value]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_header(["ALIAS", "VERSION", "WEIGHTS", "DESCRIPTION"]);
    for a in items {
        let weights = a
            .get("additional_weights")
            .and_then(Value::as_object)
            .map(|w| {
                w.iter()
                    .map(|(v, share)| format!("{v}={share}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        t.add_row([
            text(a, "name"),
            text(a, "version"),
            weights,
            text(a, "description"),
        ]);
    }
    t
}

fn detail_table(f: &Value) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    for key in [
        "name",
        "version",
        "runtime",
        "memory_mb",
        "timeout_s",
        "description",
        "code_sha256",
        "code_size",
        "last_modified",
        "revision_id",
        "url",
    ] {
        t.add_row([key.to_owned(), text(f, key)]);
    }
    if let Some(Value::Object(env)) = f.get("environment") {
        for (k, v) in env {
            t.add_row([
                format!("env {k}"),
                v.as_str().unwrap_or_default().to_owned(),
            ]);
        }
    }
    t
}

pub(crate) async fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    tokio::fs::read(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))
}

/// A streamed upload body that advances a progress bar as it is sent.
fn progress_body(code: Vec<u8>, show: bool) -> (reqwest::Body, ProgressBar) {
    let bar = if show {
        ProgressBar::new(code.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("uploading {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let chunks: Vec<bytes::Bytes> = bytes::Bytes::from(code)
        .chunks(UPLOAD_CHUNK)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let b = bar.clone();
    let stream = futures::stream::iter(chunks).map(move |chunk| {
        b.inc(chunk.len() as u64);
        Ok::<_, std::io::Error>(chunk)
    });
    (reqwest::Body::wrap_stream(stream), bar)
}

#[allow(clippy::too_many_arguments, reason = "one argument per CLI flag")]
/// Options of `lambent deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The function's name (1-64 letters, digits, '-', '_').
    name: String,
    /// A .wasm file, a .zip, or a directory (with a lambent.toml manifest, or zipped as it is).
    path: PathBuf,
    /// Runtime: wasi-http, wasi-cgi, python3.12, nodejs20.x, provided.al2023... (detected for
    /// .wasm files).
    #[arg(long)]
    runtime: Option<String>,
    /// Entry point of a Python or Node.js function: FILE.FUNCTION, e.g. app.handler.
    #[arg(long)]
    handler: Option<String>,
    /// Memory in MB.
    #[arg(long)]
    memory: Option<u32>,
    /// Timeout in seconds.
    #[arg(long)]
    timeout: Option<u32>,
    /// Size of /tmp in MB (process runtimes).
    #[arg(long)]
    ephemeral_storage: Option<u32>,
    /// Let the function reach the network (process runtimes; see docs/sandbox.md).
    #[arg(long)]
    egress: bool,
    /// An environment variable, KEY=VALUE; repeat for more.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Free text.
    #[arg(long)]
    description: Option<String>,
    /// Make the function URL (/fn/NAME) public: callers need no key (Lambda's AuthType NONE).
    #[arg(long, conflicts_with = "private")]
    public: bool,
    /// Make the function URL need a key again (Lambda's AuthType AWS_IAM, the default).
    #[arg(long)]
    private: bool,
}

/// What to upload: a file as it is, or a directory zipped.
enum CodeSource {
    File(PathBuf),
    Directory(PathBuf),
}

async fn deploy(api: &Api, json: bool, args: DeployArgs) -> anyhow::Result<()> {
    let DeployArgs {
        name,
        path,
        runtime,
        handler,
        memory,
        timeout,
        ephemeral_storage,
        egress,
        env,
        description,
        public,
        private,
    } = args;
    let (mut config, source) = if path.join(manifest::MANIFEST).is_file() {
        let m = manifest::load(&path)?;
        let config = FunctionCreate {
            runtime: m.runtime,
            handler: m.handler,
            memory_mb: m.memory,
            timeout_s: m.timeout,
            ephemeral_storage_mb: m.ephemeral_storage,
            egress: m.egress,
            environment: (!m.env.is_empty()).then_some(m.env),
            description: m.description,
            ..FunctionCreate::default()
        };
        let source = if m.code.is_dir() {
            CodeSource::Directory(m.code)
        } else {
            CodeSource::File(m.code)
        };
        (config, source)
    } else if path.is_dir() {
        (
            FunctionCreate::default(),
            CodeSource::Directory(path.clone()),
        )
    } else {
        (FunctionCreate::default(), CodeSource::File(path.clone()))
    };
    config.runtime = runtime.or(config.runtime);
    config.handler = handler.or(config.handler);
    config.memory_mb = memory.or(config.memory_mb);
    config.timeout_s = timeout.or(config.timeout_s);
    config.ephemeral_storage_mb = ephemeral_storage.or(config.ephemeral_storage_mb);
    if egress {
        config.egress = Some(true);
    }
    config.description = description.or(config.description);
    if !env.is_empty() {
        let vars = config.environment.get_or_insert_with(BTreeMap::new);
        for kv in env {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow!("--env {kv:?} is not KEY=VALUE"))?;
            vars.insert(k.to_owned(), v.to_owned());
        }
    }
    let (code, code_path) = match source {
        CodeSource::File(p) => (read_file(&p).await?, p),
        CodeSource::Directory(dir) => {
            if config.runtime.is_none() {
                bail!(
                    "{} is a directory: say which runtime runs it with --runtime (python3.12, nodejs20.x, provided.al2023...) or in {}",
                    dir.display(),
                    manifest::MANIFEST
                );
            }
            let zipped = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || crate::zipdir::zip_directory(&dir)).await??
            };
            (zipped, dir.with_extension("zip"))
        }
    };
    let name = name.as_str();
    let file_name = code_path.file_name().map_or_else(
        || "code.wasm".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    // The multipart body is built here rather than by reqwest so that its hash, which the
    // signature covers, is known before it is streamed.
    let boundary = format!("lambent-{}", &lambent_core::sigv4::sha256_hex(&code)[..32]);
    let head = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"config\"\r\ncontent-type: application/json\r\n\r\n{}\r\n\
         --{boundary}\r\ncontent-disposition: form-data; name=\"code\"; filename=\"{}\"\r\ncontent-type: application/octet-stream\r\n\r\n",
        serde_json::to_string(&config)?,
        file_name.replace('"', "")
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let mut whole = Vec::with_capacity(head.len() + code.len() + tail.len());
    whole.extend_from_slice(head.as_bytes());
    whole.extend_from_slice(&code);
    whole.extend_from_slice(tail.as_bytes());
    let hash = lambent_core::sigv4::sha256_hex(&whole);
    let total = whole.len();
    let (body, bar) = progress_body(
        whole,
        !json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    let result = api
        .json(
            api.http
                .put(api.url(&format!("/v1/functions/{name}")))
                .header(
                    reqwest::header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .header(reqwest::header::CONTENT_LENGTH, total)
                .header("x-amz-content-sha256", hash)
                .body(body),
        )
        .await;
    bar.finish_and_clear();
    let f = result?;
    if public || private {
        let auth = if public { "NONE" } else { "AWS_IAM" };
        api.json(
            api.http
                .put(api.url(&format!("/v1/functions/{name}/url")))
                .json(&PutUrl {
                    auth_type: auth.into(),
                    cors: None,
                }),
        )
        .await
        .context("setting the function URL's access")?;
    }
    if json {
        return print_json(&f);
    }
    println!("{}", detail_table(&f));
    println!(
        "deployed {name}: {}{}",
        api.base.trim_end_matches('/'),
        text(&f, "url")
    );
    Ok(())
}

/// The event of `lambent invoke`: `--data JSON`, `--data @FILE` or `--file FILE`.
async fn event_body(data: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Vec<u8>> {
    Ok(match (data, file) {
        (_, Some(f)) => read_file(&f).await?,
        (Some(d), None) => match d.strip_prefix('@') {
            Some(path) => read_file(Path::new(path)).await?,
            None => d.into_bytes(),
        },
        (None, None) => Vec::new(),
    })
}

async fn invoke(
    api: &Api,
    json: bool,
    target: &str,
    body: Vec<u8>,
    log: bool,
) -> anyhow::Result<()> {
    let target: Target = target.parse()?;
    let url = api.url(&format!(
        "/v1/functions/{}/invoke?qualifier={}",
        target.name,
        target.qualifier.to_string().replace('$', "%24")
    ));
    let mut req = api
        .http
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if log {
        req = req.header(lambent_api::HEADER_LOG_TYPE, "Tail");
    }
    let resp = api.send(req).await?;
    let header = |h: &str| {
        resp.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let meta = [
        ("invocation_id", header(lambent_api::HEADER_INVOCATION_ID)),
        (
            "function_status",
            header(lambent_api::HEADER_FUNCTION_STATUS),
        ),
        ("duration_ms", header(lambent_api::HEADER_DURATION_MS)),
        ("init_ms", header(lambent_api::HEADER_INIT_MS)),
        ("cold_start", header(lambent_api::HEADER_COLD_START)),
        ("version", header(lambent_api::HEADER_VERSION)),
        ("function_error", header(lambent_api::HEADER_FUNCTION_ERROR)),
    ];
    let log_tail = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(header(lambent_api::HEADER_LOG_RESULT))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .filter(|t| !t.is_empty())
    };
    let function_error = header(lambent_api::HEADER_FUNCTION_ERROR);
    let output = resp
        .bytes()
        .await
        .context("reading the function's output")?;
    if json {
        let mut v = serde_json::Map::new();
        for (k, val) in meta {
            v.insert(k.into(), Value::String(val));
        }
        v.insert(
            "output".into(),
            Value::String(String::from_utf8_lossy(&output).into_owned()),
        );
        if let Some(t) = &log_tail {
            v.insert("log".into(), Value::String(t.clone()));
        }
        return print_json(&Value::Object(v));
    }
    if let Some(t) = &log_tail {
        eprint!("{t}");
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(&output)?;
    if !output.ends_with(b"\n") && std::io::IsTerminal::is_terminal(&out) {
        out.write_all(b"\n")?;
    }
    drop(out);
    if !function_error.is_empty() {
        bail!("the function raised an error ({function_error})");
    }
    Ok(())
}

fn print_invocation(inv: &Value) {
    println!(
        "--- {} {} v{} {} {}ms{}{}",
        text(inv, "id"),
        text(inv, "function"),
        text(inv, "version"),
        text(inv, "outcome"),
        inv.get("duration_ms")
            .and_then(Value::as_f64)
            .map_or_else(String::new, |d| format!("{d:.2}")),
        if inv.get("cold_start").and_then(Value::as_bool) == Some(true) {
            " cold"
        } else {
            ""
        },
        inv.get("error")
            .and_then(Value::as_str)
            .map_or_else(String::new, |e| format!(" error: {e}")),
    );
    let logs = text(inv, "logs");
    print!("{logs}");
    if !logs.is_empty() && !logs.ends_with('\n') {
        println!();
    }
}

pub async fn run(
    endpoint: &str,
    profile: &str,
    json: bool,
    command: Command,
) -> anyhow::Result<()> {
    let api = Api {
        http: Client::builder()
            .build()
            .context("building the HTTP client")?,
        base: endpoint.to_owned(),
        creds: crate::credentials::load(profile)?,
    };
    match command {
        Command::Serve(_) => bail!("serve is not a client command"),
        Command::Deploy(args) => deploy(&api, json, args).await,
        Command::Invoke {
            target,
            data,
            file,
            log,
            asynchronous,
            idempotency_key,
        } => {
            let body = event_body(data, file).await?;
            if asynchronous {
                events_cli::invoke_async(&api, json, &target, body, idempotency_key).await
            } else {
                invoke(&api, json, &target, body, log).await
            }
        }
        Command::Ls => {
            let mut all = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let mut req = api
                    .http
                    .get(api.url("/v1/functions"))
                    .query(&[("limit", "1000")]);
                if let Some(m) = &marker {
                    req = req.query(&[("marker", m)]);
                }
                let page = api.json(req).await?;
                if let Some(Value::Array(items)) = page.get("functions") {
                    all.extend(items.iter().cloned());
                }
                match page.get("next_marker").and_then(Value::as_str) {
                    Some(m) => marker = Some(m.to_owned()),
                    None => break,
                }
            }
            if json {
                return print_json(&Value::Array(all));
            }
            println!("{}", function_table(&all));
            Ok(())
        }
        Command::Get { target } => {
            let target: Target = target.parse()?;
            let f = api
                .json(
                    api.http
                        .get(api.url(&format!("/v1/functions/{}", target.name)))
                        .query(&[("qualifier", target.qualifier.to_string())]),
                )
                .await?;
            if json {
                return print_json(&f);
            }
            println!("{}", detail_table(&f));
            Ok(())
        }
        Command::Rm { name } => {
            api.json(api.http.delete(api.url(&format!("/v1/functions/{name}"))))
                .await?;
            if json {
                return print_json(&serde_json::json!({"deleted": name}));
            }
            println!("deleted {name}");
            Ok(())
        }
        Command::Versions { name } => {
            let v = api
                .json(
                    api.http
                        .get(api.url(&format!("/v1/functions/{name}/versions"))),
                )
                .await?;
            if json {
                return print_json(&v);
            }
            let items = v
                .get("versions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            println!("{}", function_table(&items));
            Ok(())
        }
        Command::Publish { name, description } => {
            let body = PublishVersion { description };
            let v = api
                .json(
                    api.http
                        .post(api.url(&format!("/v1/functions/{name}/versions")))
                        .json(&body),
                )
                .await?;
            if json {
                return print_json(&v);
            }
            println!("published {name} version {}", text(&v, "version"));
            Ok(())
        }
        Command::Logs {
            name,
            limit,
            invocation,
        } => {
            if let Some(id) = invocation {
                let inv = api
                    .json(api.http.get(api.url(&format!("/v1/invocations/{id}"))))
                    .await?;
                if json {
                    return print_json(&inv);
                }
                print_invocation(&inv);
                return Ok(());
            }
            let v = api
                .json(
                    api.http
                        .get(api.url(&format!("/v1/functions/{name}/logs")))
                        .query(&[("limit", limit)]),
                )
                .await?;
            if json {
                return print_json(&v);
            }
            let mut items = v
                .get("invocations")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            items.reverse();
            for inv in &items {
                print_invocation(inv);
            }
            Ok(())
        }
        Command::Keys { command } => keys(&api, json, command).await,
        Command::Provisioned {
            target,
            count,
            clear,
        } => provisioned(&api, json, &target, count, clear).await,
        Command::Usage(args) => crate::usage_cli::usage(&api, json, args).await,
        Command::ProvisionedSchedule {
            target,
            schedule,
            expression,
            count,
            delete,
        } => provisioned_schedule(&api, json, &target, schedule, expression, count, delete).await,
        Command::Scaling(args) => crate::scale_cli::scaling(&api, json, args).await,
        Command::Top(args) => crate::scale_cli::top(&api, json, args).await,
        Command::Events {
            id,
            function,
            state,
            limit,
        } => events_cli::events(&api, json, id, function, state, limit).await,
        Command::EventConfig {
            target,
            retries,
            max_age,
            on_success,
            on_failure,
            delete,
        } => {
            let change = events_cli::EventConfigChange {
                retries,
                max_age,
                on_success,
                on_failure,
                delete,
            };
            events_cli::event_config(&api, json, &target, change).await
        }
        Command::Schedule { command } => events_cli::schedule(&api, json, command).await,
        Command::Schedules => events_cli::schedules(&api, json).await,
        Command::Queue { command } => events_cli::queue(&api, json, command).await,
        Command::Queues => events_cli::queues(&api, json).await,
        Command::Alias {
            name,
            alias,
            version,
            weight,
            description,
        } => {
            let mut weights = BTreeMap::new();
            for w in &weight {
                let (v, share) = w.split_once('=').ok_or_else(|| {
                    anyhow!("--weight takes VERSION=SHARE, e.g. 2=0.1; got {w:?}")
                })?;
                let share: f64 = share
                    .parse()
                    .map_err(|_| anyhow!("the share in --weight {w:?} is not a number"))?;
                weights.insert(v.to_owned(), share);
            }
            let body = PutAlias {
                version,
                description,
                weights: Some(weights),
            };
            let a = api
                .json(
                    api.http
                        .put(api.url(&format!("/v1/functions/{name}/aliases/{alias}")))
                        .json(&body),
                )
                .await?;
            if json {
                return print_json(&a);
            }
            println!("{}", alias_table(std::slice::from_ref(&a)));
            Ok(())
        }
        Command::Aliases { name } => {
            let v = api
                .json(
                    api.http
                        .get(api.url(&format!("/v1/functions/{name}/aliases"))),
                )
                .await?;
            if json {
                return print_json(&v);
            }
            let items = v
                .get("aliases")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            println!("{}", alias_table(&items));
            Ok(())
        }
        Command::Unalias { name, alias } => {
            api.json(
                api.http
                    .delete(api.url(&format!("/v1/functions/{name}/aliases/{alias}"))),
            )
            .await?;
            if !json {
                println!("deleted alias {alias} of {name}");
            }
            Ok(())
        }
        Command::Concurrency {
            name,
            reserved,
            clear,
            wait,
            clear_wait,
        } => {
            let url = api.url(&format!("/v1/functions/{name}/concurrency"));
            let admission = api.url(&format!("/v1/functions/{name}/admission"));
            let mut v = match (reserved, clear) {
                (Some(n), _) => {
                    api.json(api.http.put(url).json(&PutConcurrency { reserved: n }))
                        .await?
                }
                (None, true) => {
                    api.json(api.http.delete(url)).await?;
                    serde_json::json!({ "reserved": null })
                }
                (None, false) => api.json(api.http.get(url)).await?,
            };
            let a = match (wait, clear_wait) {
                (Some(ms), _) => {
                    api.json(
                        api.http
                            .put(admission)
                            .json(&PutAdmission { max_wait_ms: ms }),
                    )
                    .await?
                }
                (None, true) => {
                    api.json(api.http.delete(admission.clone())).await?;
                    api.json(api.http.get(admission)).await?
                }
                (None, false) => api.json(api.http.get(admission)).await?,
            };
            v["admission"] = a.clone();
            if json {
                return print_json(&v);
            }
            let reserved: Concurrency = serde_json::from_value(v.clone())
                .context("the server's answer is not a concurrency setting")?;
            let admission: Admission = serde_json::from_value(a.clone())
                .context("the server's answer is not an admission setting")?;
            match reserved.reserved {
                Some(n) => println!("{name}: {n} reserved concurrent executions"),
                None => println!("{name}: no reservation (shares the account's unreserved pool)"),
            }
            match (admission.max_wait_ms, admission.effective_max_wait_ms) {
                (_, 0) => println!("{name}: calls over the limit get 429 at once"),
                (Some(ms), _) => {
                    println!("{name}: calls over the limit wait up to {ms} ms for a slot")
                }
                (None, ms) => println!(
                    "{name}: calls over the limit wait up to {ms} ms for a slot (the server's default)"
                ),
            }
            Ok(())
        }
    }
}

async fn keys(api: &Api, json: bool, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { description, role } => {
            let body = CreateKey {
                description: Some(description.unwrap_or_default()),
                role,
            };
            let k = api
                .json(api.http.post(api.url("/v1/keys")).json(&body))
                .await?;
            if json {
                return print_json(&k);
            }
            println!(
                "access key id:     {}\nrole:              {}\nsecret access key: {}\n(the secret is shown only now; store it, e.g. as a profile in {})",
                text(&k, "access_key_id"),
                text(&k, "role"),
                text(&k, "secret_access_key"),
                crate::credentials::profile_file().map_or_else(
                    || "~/.config/lambent/credentials".into(),
                    |p| p.display().to_string()
                )
            );
            Ok(())
        }
        KeysCommand::Ls => {
            let v = api.json(api.http.get(api.url("/v1/keys"))).await?;
            if json {
                return print_json(&v);
            }
            let mut t = Table::new();
            t.load_preset(UTF8_BORDERS_ONLY).set_header([
                "ACCESS KEY ID",
                "CREATED",
                "ROLE",
                "DESCRIPTION",
            ]);
            for k in v
                .get("keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                t.add_row([
                    text(k, "access_key_id"),
                    text(k, "created"),
                    text(k, "role"),
                    text(k, "description"),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        KeysCommand::Revoke { id } => {
            api.json(api.http.delete(api.url(&format!("/v1/keys/{id}"))))
                .await?;
            if !json {
                println!("revoked {id}");
            }
            Ok(())
        }
    }
}

/// `lambent provisioned`.
async fn provisioned(
    api: &Api,
    json: bool,
    target: &str,
    count: Option<u32>,
    clear: bool,
) -> anyhow::Result<()> {
    let (name, qualifier) = match target.split_once(':') {
        Some((n, q)) => (n, Some(q)),
        None => (target, None),
    };
    let url = api.url(&format!("/v1/functions/{name}/provisioned"));
    let v = match (qualifier, count, clear) {
        (None, None, false) => api.json(api.http.get(url)).await?,
        (None, _, _) => anyhow::bail!(
            "give NAME:VERSION: provisioned concurrency applies to a published version"
        ),
        (Some(q), Some(n), _) => {
            api.json(
                api.http
                    .put(url)
                    .query(&[("qualifier", q)])
                    .json(&PutProvisioned { provisioned: n }),
            )
            .await?
        }
        (Some(q), None, true) => {
            api.json(api.http.delete(url).query(&[("qualifier", q)]))
                .await?;
            serde_json::json!({ "qualifier": q, "requested": 0 })
        }
        (Some(q), None, false) => {
            api.json(api.http.get(url).query(&[("qualifier", q)]))
                .await?
        }
    };
    if json {
        return print_json(&v);
    }
    let rows: Vec<Value> = match v.get("provisioned").and_then(Value::as_array) {
        Some(all) => all.clone(),
        None => vec![v],
    };
    for r in rows {
        if r["requested"] == 0 {
            println!(
                "{name}:{}: no provisioned concurrency",
                text(&r, "qualifier")
            );
            continue;
        }
        println!(
            "{name}:{}: {} of {} instances ready ({})",
            text(&r, "qualifier"),
            text(&r, "allocated"),
            text(&r, "requested"),
            text(&r, "status")
        );
        if let Some(reason) = r["statusReason"].as_str() {
            println!("  instances cannot start: {reason}");
        }
    }
    Ok(())
}

async fn provisioned_schedule(
    api: &Api,
    json: bool,
    target: &str,
    schedule: Option<String>,
    expression: Option<String>,
    count: Option<u32>,
    delete: bool,
) -> anyhow::Result<()> {
    let (name, qualifier) = match target.split_once(':') {
        Some((n, q)) => (n, Some(q)),
        None => (target, None),
    };
    let base = format!("/v1/functions/{name}/provisioned-schedules");
    match (schedule, expression, count) {
        (Some(s), None, None) if delete => {
            api.json(api.http.delete(api.url(&format!("{base}/{s}"))))
                .await?;
            if !json {
                println!("deleted provisioned concurrency schedule {s} of {name}");
            }
            return Ok(());
        }
        (Some(s), Some(expr), Some(n)) => {
            let Some(q) = qualifier else {
                anyhow::bail!(
                    "give NAME:QUALIFIER (a version or an alias) to schedule, e.g. {name}:live"
                );
            };
            let body = PutProvisionedSchedule {
                qualifier: q.to_string(),
                schedule: expr.clone(),
                provisioned: n,
            };
            let v = api
                .json(api.http.put(api.url(&format!("{base}/{s}"))).json(&body))
                .await?;
            if json {
                return print_json(&v);
            }
            println!(
                "{name}:{q} gets {n} provisioned instances at {expr}; next {}",
                text(&v, "nextFire")
            );
            return Ok(());
        }
        (None, None, None) if !delete => {}
        _ => anyhow::bail!(
            "give NAME to list, NAME:QUALIFIER SCHEDULE 'cron(...)' N to set, or NAME SCHEDULE --delete"
        ),
    }
    let v = api.json(api.http.get(api.url(&base))).await?;
    if json {
        return print_json(&v);
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header(["SCHEDULE", "QUALIFIER", "WHEN", "INSTANCES", "NEXT"]);
    for s in v["schedules"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        t.add_row([
            text(s, "name"),
            text(s, "qualifier"),
            text(s, "schedule"),
            text(s, "provisioned"),
            text(s, "nextFire"),
        ]);
    }
    println!("{t}");
    Ok(())
}
