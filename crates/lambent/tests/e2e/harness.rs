//! Starting and stopping a real server, and small helpers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_lambent");

/// The admin key every test server starts with (`LAMBENT_ACCESS_KEY_ID`).
pub const ACCESS_KEY_ID: &str = "LKTESTADMIN000000001";
/// Its secret (`LAMBENT_SECRET_ACCESS_KEY`).
pub const SECRET_ACCESS_KEY: &str = "test-secret-0123456789abcdefghijklmnopqrstuv";

/// `Authorization` for the test key as a bearer token.
pub fn bearer() -> String {
    format!("Bearer {ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}")
}

/// A client builder whose requests carry the test key as a bearer token.
pub fn client_builder() -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        bearer().parse().expect("header value"),
    );
    reqwest::Client::builder().default_headers(headers)
}

/// A client whose requests carry the test key.
pub fn client() -> reqwest::Client {
    client_builder().build().expect("client")
}

/// `GET url` with the test key.
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    client().get(url).send().await
}

/// POSTs `body` as JSON to `path` of `server`.
pub async fn post_json(server: &Server, path: &str, body: serde_json::Value) -> reqwest::Response {
    client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .expect("request")
}

/// PUTs `body` as JSON to `path` of `server`.
pub async fn put_json(server: &Server, path: &str, body: serde_json::Value) -> reqwest::Response {
    client()
        .put(server.url(path))
        .json(&body)
        .send()
        .await
        .expect("request")
}

/// GETs `path` of `server`, insists on 200, and parses the JSON.
pub async fn get_json(server: &Server, path: &str) -> serde_json::Value {
    let r = get(server.url(path)).await.expect("get");
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.expect("json")
}

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

pub fn example(rel: &str) -> PathBuf {
    let p = examples().join(rel);
    assert!(
        p.exists(),
        "{} is missing; build the examples with examples/build.sh (CI runs it)",
        p.display()
    );
    p
}

/// A running `lambent serve`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    pub async fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_owned();
        let mut s = Server::start_in(&dir).await;
        s._tmp = Some(tmp);
        s
    }

    pub async fn start_in(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[]).await
    }

    pub async fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_via(Command::new(BIN), data_dir, extra).await
    }

    /// Starts the server with `command`, which must end up exec'ing lambent with the arguments
    /// added to it (`Command::new(BIN)`, or a launcher that takes the program and its arguments and
    /// sets up descriptors or variables first). The harness adds the serve arguments and the key.
    pub async fn start_via(mut command: Command, data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .env("LAMBENT_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("LAMBENT_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lambent serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        let server = Server {
            child: Some(child),
            base,
            data_dir: data_dir.to_owned(),
            _tmp: None,
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = crate::harness::client();
        loop {
            if let Ok(r) = client.get(self.url("/healthz")).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "server never became healthy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (no chance to flush anything) and waits for it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    /// The CLI set up against this server, to run in the background.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("LAMBENT_ENDPOINT", &self.base)
            .env("LAMBENT_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("LAMBENT_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
        c
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().expect("run the CLI")
    }

    /// Runs the CLI and insists it succeeds; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "lambent {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Deploys `dir` as a Python function (`app.handler`) under `name`, with `extra` CLI flags.
    pub fn deploy_python(&self, name: &str, dir: &Path, extra: &[&str]) {
        let path = dir.to_str().expect("utf-8 path");
        let mut args = vec![
            "deploy",
            name,
            path,
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
        ];
        args.extend_from_slice(extra);
        self.cli_ok(&args);
    }

    /// Deploys an example directory under `name`.
    pub fn deploy(&self, name: &str, example_dir: &str, extra: &[&str]) {
        let path = example(example_dir);
        let path = path.to_str().expect("utf-8 path");
        let mut args = vec!["deploy", name, path];
        args.extend_from_slice(extra);
        self.cli_ok(&args);
    }

    pub async fn metric(&self, name: &str) -> u64 {
        let text = crate::harness::get(self.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no metric {name} in {text}"))
    }

    /// Polls the function's logs until `pred` holds for one of the recorded invocations.
    pub async fn wait_for_log(
        &self,
        function: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v: serde_json::Value =
                crate::harness::get(self.url(&format!("/v1/functions/{function}/logs")))
                    .await
                    .expect("logs")
                    .json()
                    .await
                    .expect("logs json");
            if let Some(inv) = v["invocations"]
                .as_array()
                .and_then(|a| a.iter().find(|i| pred(i)))
            {
                return inv.clone();
            }
            assert!(Instant::now() < deadline, "log never appeared: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Asserts an error answer's status and code; returns its message.
pub async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let v: serde_json::Value = resp.json().await.expect("error json");
    assert_eq!(v["error"]["code"], code, "unexpected error {v}");
    let message = v["error"]["message"].as_str().expect("message").to_owned();
    assert!(!message.is_empty());
    message
}

/// "The outside" for egress functions: a network namespace of its own (`lmbtest-<n>`) with a
/// veth link to the host, in 198.18.0.0/15 (the benchmarking range, routed nowhere else), and
/// a route to it from the host. Servers the test runs in it are reached by egress sandboxes as
/// the internet would be: through lambent's NAT. Removed when dropped.
pub struct Outside {
    /// The namespace's name (under /run/netns).
    pub ns: String,
    /// The host's end of the link.
    pub host_addr: std::net::Ipv4Addr,
    /// The namespace's end, where its servers listen.
    pub addr: std::net::Ipv4Addr,
}

/// Runs `ip args`; its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Outside {
    /// Creates the namespace and its link (a random /30, tried again if taken).
    pub fn create() -> Outside {
        use std::hash::{BuildHasher, Hasher};
        for _ in 0..16 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            // 2^15 /30 links in 198.18.0.0/15.
            let n = (h.finish() % (1 << 15)) as u32;
            let base = u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0)) + n * 4;
            let outside = Outside {
                ns: format!("lmbtest-{n}"),
                host_addr: (base + 1).into(),
                addr: (base + 2).into(),
            };
            // Not `lmb...`: lambent's rules treat those as sandboxes.
            let host_iface = format!("lbt{n}");
            if ip(&["netns", "add", &outside.ns]).is_err() {
                continue;
            }
            if ip(&[
                "link",
                "add",
                &host_iface,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &outside.ns,
            ])
            .is_err()
            {
                let _ = ip(&["netns", "del", &outside.ns]);
                continue;
            }
            let host_cidr = format!("{}/30", outside.host_addr);
            let cidr = format!("{}/30", outside.addr);
            let host_addr = outside.host_addr.to_string();
            for args in [
                vec!["addr", "add", &host_cidr, "dev", &host_iface],
                vec!["link", "set", &host_iface, "up"],
                vec!["-n", &outside.ns, "addr", "add", &cidr, "dev", "eth0"],
                vec!["-n", &outside.ns, "link", "set", "eth0", "up"],
                vec!["-n", &outside.ns, "link", "set", "lo", "up"],
                vec![
                    "-n",
                    &outside.ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    &host_addr,
                ],
            ] {
                ip(&args).unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
            }
            return outside;
        }
        panic!("cannot create an outside network namespace");
    }

    /// A TCP listener on the namespace's address (any free port).
    pub fn listen(&self) -> std::net::TcpListener {
        let path = format!("/run/netns/{}", self.ns);
        let addr = self.addr;
        // A socket stays in the namespace it was made in; only this short-lived thread enters it.
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open the outside namespace");
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("enter the outside namespace");
            std::net::TcpListener::bind((addr, 0)).expect("listen in the outside namespace")
        })
        .join()
        .expect("listener thread")
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        // The link goes with the namespace.
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

/// Resident memory (`VmRSS`, or `VmHWM`: its peak so far) of a process, in bytes.
pub fn memory_of(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    kb * 1024
}
