//! Hostile: egress (see docs/sandbox.md, threat model). An egress function has its own network
//! namespace with a link to the host and NAT: it reaches "the outside" (a namespace the test
//! makes) but not the host's loopback, lambent's API, the host's own addresses, its abstract unix
//! sockets, or another sandbox; so it can no longer take another egress function's events and
//! answer them forged.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Outside, Server, client};

/// What the functions do: probe targets, tell their own address, serve a port, or attack.
const PY_NET: &str = r#"
import errno, os, socket, time, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor

WHO = open("/var/task/who.txt").read().strip()

def reason(e):
    if isinstance(e, urllib.error.HTTPError):
        return "HTTP %d" % e.code
    if isinstance(e, urllib.error.URLError):
        e = e.reason
    if isinstance(e, socket.timeout) or isinstance(e, TimeoutError):
        return "timeout"
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    return repr(e)

def attempt(f):
    try:
        r = f()
        return "ok" if r is None else r
    except Exception as e:
        return reason(e)

def tcp(host, port):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(1.5)
    try:
        s.connect((host, port))
    finally:
        s.close()

def abstract(name):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect("\0" + name)
    finally:
        s.close()

def my_addr():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("198.18.0.1", 9))  # sends nothing: picks the source address
        return s.getsockname()[0]
    finally:
        s.close()

def gateway():
    for line in open("/proc/net/route").read().splitlines()[1:]:
        f = line.split()
        if f[1] == "00000000":
            return socket.inet_ntoa(int(f[2], 16).to_bytes(4, "little"))
    return None

def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()

def steal(host, port):
    # The attack egress allowed before: take the next event of whatever Runtime API listens
    # there and answer it with a forged result.
    base = "http://%s:%d/runtime/invocation" % (host, port)
    with urllib.request.urlopen(base + "/next", timeout=3) as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    req = urllib.request.Request(base + "/" + rid + "/response", data=b'{"who": "forged"}', method="POST")
    urllib.request.urlopen(req, timeout=3).read()
    return "stole " + rid

def open_loopback_ports(skip):
    found = []
    for port in range(1, 65536):
        if port in skip:
            continue
        s = socket.socket()
        try:
            # A connect to the port the kernel picked as its own source is a self-connection.
            if s.connect_ex(("127.0.0.1", port)) == 0 and s.getsockname() != s.getpeername():
                found.append(port)
        finally:
            s.close()
    return found

def probe_all(targets):
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda t: attempt(lambda: tcp(t[0], t[1])), targets))
    return {"%s:%d" % (h, p): r for (h, p), r in zip(targets, results)}

def handler(event, context):
    mode = event["mode"]
    if mode == "whoami":
        return {"who": WHO, "addr": attempt(my_addr), "gateway": gateway()}
    if mode == "echo":
        return {"who": WHO, "n": event["n"]}
    if mode == "probe":
        return {
            "who": WHO,
            "outside": attempt(lambda: get(event["outside"])),
            "tcp": probe_all(event["tcp"]),
            "abstract": attempt(lambda: abstract(event["abstract"])),
        }
    if mode == "serve":
        # Listens on every address of this sandbox until told to stop; says who connected.
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", event["port"]))
        srv.listen(64)
        srv.settimeout(1)
        peers, end = [], time.time() + event["seconds"]
        while time.time() < end:
            try:
                conn, peer = srv.accept()
            except socket.timeout:
                continue
            peers.append(peer[0])
            conn.settimeout(2)
            try:
                data = conn.recv(16)
            except OSError:
                data = b""
            conn.close()
            if data.startswith(b"stop"):
                return {"who": WHO, "peers": peers}
        return {"who": WHO, "peers": peers, "timed_out": True}
    if mode == "attack":
        return {
            "who": WHO,
            "tcp": probe_all(event["tcp"]),
            "steal": {"%s:%d" % (h, p): attempt(lambda: steal(h, p)) for h, p in event["steal"]},
            "open_loopback": open_loopback_ports({9001}),
        }
    raise ValueError(mode)
"#;

/// Deploys the probe as `name` (its `who.txt` says `name`); a temp dir kept by the caller.
fn deploy(server: &Server, name: &str, egress: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("net.py"), PY_NET).expect("write net.py");
    std::fs::write(dir.path().join("who.txt"), name).expect("write who.txt");
    let path = dir.path().to_str().expect("utf-8");
    let mut args = vec![
        "deploy",
        name,
        path,
        "--runtime",
        "python3",
        "--handler",
        "net.handler",
        "--timeout",
        "120",
    ];
    if egress {
        args.push("--egress");
    }
    server.cli_ok(&args);
    dir
}

/// Invokes `name` with `event`; the function's answer (panics unless 200 without a function
/// error).
async fn call(server: &Server, name: &str, event: Value) -> Value {
    let resp = client()
        .post(server.url(&format!("/v1/functions/{name}/invoke")))
        .json(&event)
        .timeout(Duration::from_secs(180))
        .send()
        .await
        .expect("invoke");
    let status = resp.status().as_u16();
    let error = resp
        .headers()
        .get("x-amz-function-error")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let text = resp.text().await.expect("body");
    assert!(
        status == 200 && error.is_none(),
        "{name}: {status} {error:?} {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name} answered {text}"))
}

/// The host's own addresses (IPv4, and IPv6 other than link-local), from `ip -o addr`.
fn host_addresses() -> Vec<IpAddr> {
    let out = Command::new("ip")
        .args(["-o", "addr", "show"])
        .output()
        .expect("ip addr");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let cidr = words.next()?;
            cidr.split('/').next()?.parse::<IpAddr>().ok()
        })
        .filter(|a| match a {
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            IpAddr::V4(_) => true,
        })
        .collect()
}

fn lambent_port(server: &Server) -> u16 {
    server
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// Connections waiting on a non-blocking listener (each one a sandbox that got through).
fn accepted_tcp(listener: &TcpListener) -> Vec<SocketAddr> {
    std::iter::from_fn(|| listener.accept().ok().map(|(_, peer)| peer)).collect()
}

/// An HTTP server in the outside namespace that answers every request with a fixed text and
/// records who asked.
fn outside_server(outside: &Outside) -> (String, Arc<Mutex<Vec<IpAddr>>>) {
    let listener = outside.listen();
    let url = format!(
        "http://{}:{}/",
        outside.addr,
        listener.local_addr().expect("addr").port()
    );
    let peers: Arc<Mutex<Vec<IpAddr>>> = Arc::default();
    let seen = peers.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Ok(peer) = stream.peer_addr() {
                seen.lock().expect("peers").push(peer.ip());
            }
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "hello from the outside";
            let _ = write!(
                stream,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, peers)
}

fn sandbox_addr(who: &Value) -> Ipv4Addr {
    let addr: Ipv4Addr = who["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address: {who}"));
    assert_eq!(
        addr.octets()[..2],
        [10, 213],
        "egress sandboxes get lambent's range: {who}"
    );
    addr
}

#[tokio::test]
async fn egress_reaches_the_outside_but_nothing_on_the_host() {
    let server = Server::start().await;
    let outside = Outside::create();
    let (outside_url, outside_peers) = outside_server(&outside);
    // A TCP service on every host address (IPv4 and IPv6), and an abstract unix socket.
    let host_tcp = TcpListener::bind("[::]:0").expect("host listener");
    host_tcp.set_nonblocking(true).expect("nonblocking");
    let host_port = host_tcp.local_addr().expect("addr").port();
    let abstract_name = format!("lambent-test-egress-{}", std::process::id());
    let host_unix = UnixListener::bind_addr(
        &std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name).expect("name"),
    )
    .expect("abstract listener");
    host_unix.set_nonblocking(true).expect("nonblocking");
    let _net = deploy(&server, "net", true);
    let _closed = deploy(&server, "closed", false);
    let lambent = lambent_port(&server);

    let who = call(&server, "net", json!({"mode": "whoami"})).await;
    sandbox_addr(&who);
    let gateway = who["gateway"].as_str().expect("a default route").to_owned();
    let mut targets = vec![
        json!(["127.0.0.1", lambent]),
        json!(["127.0.0.1", host_port]),
        json!([gateway, lambent]),
        json!([gateway, host_port]),
        json!([outside.host_addr.to_string(), host_port]),
    ];
    for addr in host_addresses() {
        targets.push(json!([addr.to_string(), host_port]));
        targets.push(json!([addr.to_string(), lambent]));
    }
    let event = json!({
        "mode": "probe",
        "outside": outside_url,
        "tcp": targets,
        "abstract": abstract_name,
    });

    let open = call(&server, "net", event.clone()).await;
    assert_eq!(open["outside"], "hello from the outside", "{open}");
    // Through NAT: the outside saw the host's end of its link, not the sandbox.
    assert_eq!(
        *outside_peers.lock().expect("peers"),
        [IpAddr::V4(outside.host_addr)]
    );
    for (target, result) in open["tcp"].as_object().expect("tcp results") {
        assert_ne!(result, "ok", "egress reached {target} on the host: {open}");
    }
    assert_ne!(open["abstract"], "ok", "{open}");

    // Without egress: nothing at all, not even the outside.
    let closed = call(&server, "closed", event).await;
    assert_ne!(closed["outside"], "hello from the outside", "{closed}");
    for (target, result) in closed["tcp"].as_object().expect("tcp results") {
        assert_ne!(result, "ok", "{target}: {closed}");
    }
    assert_ne!(closed["abstract"], "ok", "{closed}");

    assert_eq!(accepted_tcp(&host_tcp), [], "a sandbox reached the host");
    assert!(
        host_unix.accept().is_err(),
        "a sandbox reached the host's abstract socket"
    );
    assert_eq!(outside_peers.lock().expect("peers").len(), 1);
}

/// Port the victim serves on its sandbox's addresses.
const VICTIM_PORT: u16 = 8000;

#[tokio::test]
async fn egress_functions_cannot_reach_each_other_nor_steal_each_others_events() {
    let server = Server::start().await;
    let _a = deploy(&server, "victim", true);
    let _b = deploy(&server, "attacker", true);
    let lambent = lambent_port(&server);
    let a_who = call(&server, "victim", json!({"mode": "whoami"})).await;
    let b_who = call(&server, "attacker", json!({"mode": "whoami"})).await;
    let a_addr = sandbox_addr(&a_who);
    let b_addr = sandbox_addr(&b_who);
    assert_ne!(a_addr, b_addr);
    let a_gateway = a_who["gateway"].as_str().expect("gateway").to_owned();

    // The victim's warm sandbox serves a port on all its addresses; the host reaches it (so a
    // failure below is the network's refusal, not a missing listener).
    let serving = {
        let url = server.url("/v1/functions/victim/invoke");
        tokio::spawn(async move {
            client()
                .post(url)
                .json(&json!({"mode": "serve", "port": VICTIM_PORT, "seconds": 90}))
                .timeout(Duration::from_secs(180))
                .send()
                .await
                .expect("invoke")
                .json::<Value>()
                .await
                .expect("json")
        })
    };
    let victim = SocketAddr::from((a_addr, VICTIM_PORT));
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&victim, Duration::from_secs(1)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the victim never served {victim}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The attacker tries the victim's sandbox (its served port and its Runtime API port), the
    // victim's gateway, and every port of its loopback; meanwhile the victim is called.
    let attack = call(
        &server,
        "attacker",
        json!({
            "mode": "attack",
            "tcp": [
                [a_addr.to_string(), VICTIM_PORT],
                [a_addr.to_string(), 9001],
                [a_gateway, lambent],
                ["127.0.0.1", lambent],
            ],
            "steal": [[a_addr.to_string(), 9001], ["127.0.0.1", lambent]],
        }),
    );
    let calls = async {
        let mut answers = Vec::new();
        for n in 0..20 {
            answers.push(call(&server, "victim", json!({"mode": "echo", "n": n})).await);
        }
        answers
    };
    let (attack, answers) = tokio::join!(attack, calls);
    for (n, answer) in answers.iter().enumerate() {
        assert_eq!(
            *answer,
            json!({"who": "victim", "n": n}),
            "the victim's caller got someone else's answer"
        );
    }
    for (target, result) in attack["tcp"].as_object().expect("tcp") {
        assert_ne!(result, "ok", "the attacker reached {target}: {attack}");
    }
    for (target, result) in attack["steal"].as_object().expect("steal") {
        assert!(
            !result.as_str().unwrap_or("").starts_with("stole"),
            "the attacker took an event from {target}: {attack}"
        );
    }
    assert_eq!(
        attack["open_loopback"],
        json!([]),
        "the attacker's loopback is its own (only its Runtime API, 9001): {attack}"
    );

    // The victim saw only the host's connections, never the attacker's.
    let mut stop = TcpStream::connect_timeout(&victim, Duration::from_secs(5)).expect("victim");
    stop.write_all(b"stop").expect("stop");
    drop(stop);
    let served = serving.await.expect("serve call");
    assert_eq!(served["who"], "victim", "{served}");
    let peers = served["peers"].as_array().expect("peers");
    assert!(!peers.is_empty(), "{served}");
    assert!(
        peers.iter().all(|p| *p == a_who["gateway"]),
        "only the host connected to the victim: {served}"
    );
}

#[test]
fn the_outside_namespace_is_removed_with_its_guard() {
    let ns = {
        let outside = Outside::create();
        assert!(Path::new(&format!("/run/netns/{}", outside.ns)).exists());
        outside.ns.clone()
    };
    assert!(!Path::new(&format!("/run/netns/{ns}")).exists());
}
