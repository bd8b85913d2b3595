//! Network egress: every sandbox has its own network namespace; one with `egress` also gets a
//! veth pair to the host, whose traffic the host routes out with NAT.
//!
//! # Why a veth pair and nftables NAT (like Docker), not `pasta` or `slirp4netns`
//!
//! A user-space network stack (`pasta`, `slirp4netns`) is one more process per egress sandbox
//! (memory, start time, and every byte copied through it), and it lives in the host's network
//! namespace: whatever it connects to on a sandbox's behalf comes from the host, so it reaches the
//! host's own addresses and loopback services and there is no firewall hook left to stop that. A
//! veth pair costs nothing at run time (the kernel forwards), and the host's nftables then decide
//! what a sandbox's packets may reach: the `input` hook refuses everything from a sandbox to the
//! host itself except replies, the `forward` hook refuses traffic between sandboxes, and
//! `postrouting` masquerades what leaves for the outside.
//!
//! # What each part does
//!
//! - Each egress sandbox gets a point-to-point /30 of [`EGRESS_RANGE`]: the host end `lmb<N>` has
//!   the first address, the sandbox end `eth0` (moved into the sandbox's namespace by the helper's
//!   pid) the second, and a default route via the host end. `N` is the /30's index in the range;
//!   the interface name is the allocation: creating `lmb<N>` fails when another sandbox (of this
//!   server or of another lambent on the host) holds it, and the next index is tried. The kernel
//!   removes both ends when the sandbox's namespace goes, so nothing leaks when lambent is killed.
//! - The helper unshares the network namespace, disables IPv6 in it, tells lambent (`N` on the
//!   control socket) and waits; lambent creates the pair and answers with the addresses (`G`);
//!   only then does the helper configure `eth0` and build the rest of the sandbox, so the
//!   function's code never runs before its network is up. Sandboxes without egress skip all of
//!   this: their namespace has loopback only, and their start is unchanged.
//! - Before the first egress sandbox, lambent enables IPv4 forwarding (it is left on at shutdown:
//!   other servers on the host may rely on it) and installs its own nftables table,
//!   `inet lambent-<pid>` ([`ruleset`]), removed again at a clean shutdown. One table per server
//!   rather than one shared `inet lambent`: several servers can run on one host (tests do), and a
//!   server that stops must not take the rules away from another one's sandboxes. Every table
//!   holds the same rules for every `lmb*` interface, so any one of them protects all sandboxes;
//!   tables of servers that are gone are removed when the next server installs its own.
//! - IPv6 is disabled inside egress sandboxes (`disable_ipv6`), and dropped from `lmb*` by the
//!   rules as well.
//! - DNS: the sandbox's `/etc/resolv.conf` is the host's. A resolver the host reaches on its own
//!   loopback (`127.0.0.53` of systemd-resolved, a local dnsmasq) is not reachable from a sandbox,
//!   nor is one on another of the host's own addresses (the `input` rule refuses it); lambent says
//!   so in its log when it installs the rules. Point the host at a resolver elsewhere on the
//!   network for egress functions to resolve names.
//! - Without `nft` (nftables) or `ip` (iproute2) on the host, egress sandboxes fail to start with
//!   a message that says so; they never fall back to the host's namespace.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use parking_lot::Mutex;

/// The private range egress sandboxes get their addresses from: 16384 /30 links. Pick another
/// (with [`EGRESS_PREFIX`]) if the host's network uses it.
pub const EGRESS_RANGE: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 0);
/// Prefix length of [`EGRESS_RANGE`].
pub const EGRESS_PREFIX: u8 = 16;
/// Prefix length of one sandbox's link: a /30 holds the host end, the sandbox end, and the
/// network and broadcast addresses.
pub const LINK_PREFIX: u8 = 30;
/// Links in the range.
pub const LINKS: u32 = 1 << (LINK_PREFIX - EGRESS_PREFIX);
/// Host ends of the links are called this, followed by the link's index; the rules match it.
pub const HOST_IFACE_PREFIX: &str = "lmb";
/// The sandbox end of the link, inside the sandbox.
pub const SANDBOX_IFACE: &str = "eth0";
/// nftables tables of lambent servers are called this, followed by the server's pid.
pub const TABLE_PREFIX: &str = "lambent-";
/// Where `ip` and `nft` are looked for.
const TOOL_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
/// Tries at an unused link before giving up (other sandboxes hold the ones tried).
const ALLOCATION_TRIES: u32 = 64;

/// Why a sandbox cannot get its network.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EgressError {
    /// a tool egress needs is not installed
    #[error(
        "network egress needs `{tool}` ({package}) on the host, and it is not installed (looked in /usr/sbin, /sbin, /usr/bin, /bin); install {package} or deploy the function without egress"
    )]
    MissingTool {
        /// the program
        tool: &'static str,
        /// the Debian package that has it
        package: &'static str,
    },
    /// IPv4 forwarding could not be enabled
    #[error("cannot enable IPv4 forwarding for network egress: {0}")]
    Forwarding(String),
    /// `nft` refused lambent's rules
    #[error("cannot install lambent's nftables rules for network egress: {0}")]
    Rules(String),
    /// every link tried is taken
    #[error(
        "no free network link for an egress sandbox ({ALLOCATION_TRIES} tried in {EGRESS_RANGE}/{EGRESS_PREFIX})"
    )]
    NoFreeLink,
    /// `ip` could not create the link
    #[error("cannot create the egress sandbox's network link: {0}")]
    Link(String),
}

/// The addresses of one sandbox's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkAddresses {
    /// The host end (the sandbox's gateway).
    pub host: Ipv4Addr,
    /// The sandbox end.
    pub sandbox: Ipv4Addr,
}

impl LinkAddresses {
    /// The addresses of link `index` (below [`LINKS`]).
    pub fn of(index: u32) -> LinkAddresses {
        let base = u32::from(EGRESS_RANGE) + (index % LINKS) * 4;
        LinkAddresses {
            host: Ipv4Addr::from(base + 1),
            sandbox: Ipv4Addr::from(base + 2),
        }
    }
}

/// The host end's name of link `index`.
pub fn host_iface(index: u32) -> String {
    format!("{HOST_IFACE_PREFIX}{index}")
}

/// The nftables table of the server with this pid.
pub fn table_name(pid: u32) -> String {
    format!("{TABLE_PREFIX}{pid}")
}

/// The complete table of the server with this pid, as `nft -f` takes it: created fresh (an old
/// one of the same name is replaced in the same transaction, so there is never a moment without
/// rules).
pub fn ruleset(pid: u32) -> String {
    let table = table_name(pid);
    let lmb = format!("\"{HOST_IFACE_PREFIX}*\"");
    let range = format!("{EGRESS_RANGE}/{EGRESS_PREFIX}");
    format!(
        "table inet {table} {{}}
delete table inet {table}
table inet {table} {{
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname {lmb} ct state established,related accept
        iifname {lmb} drop
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname {lmb} oifname {lmb} drop
        iifname {lmb} meta nfproto ipv6 drop
        iifname {lmb} ip saddr != {range} drop
        oifname {lmb} ct state established,related accept
        oifname {lmb} drop
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {range} oifname != {lmb} masquerade
    }}
}}
"
    )
}

/// The pids of lambent servers whose tables are in `nft list tables` output.
pub fn tables_in(listing: &str) -> Vec<u32> {
    listing
        .lines()
        .filter_map(|line| line.trim().strip_prefix("table inet "))
        .filter_map(|name| name.trim().strip_prefix(TABLE_PREFIX))
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// `ip -batch` commands that create link `index` with its sandbox end in `pid`'s network
/// namespace and bring the host end up.
pub fn host_link_commands(index: u32, pid: u32) -> String {
    let iface = host_iface(index);
    let addrs = LinkAddresses::of(index);
    format!(
        "link add {iface} type veth peer name {SANDBOX_IFACE} netns {pid}\n\
         addr add {}/{LINK_PREFIX} dev {iface}\n\
         link set {iface} up\n",
        addrs.host
    )
}

/// `ip -batch` commands that configure the sandbox end, run inside the sandbox's namespace.
pub fn sandbox_link_commands(addrs: LinkAddresses) -> String {
    format!(
        "addr add {}/{LINK_PREFIX} dev {SANDBOX_IFACE}\n\
         link set {SANDBOX_IFACE} up\n\
         route add default via {} dev {SANDBOX_IFACE}\n",
        addrs.sandbox, addrs.host
    )
}

/// Runs `program args` with `input` on stdin; its stderr on failure.
pub(crate) fn run_tool(program: &Path, args: &[&str], input: &str) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("cannot talk to {}: {e}", program.display()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Finds a tool in [`TOOL_DIRS`].
fn find_tool(tool: &'static str, package: &'static str) -> Result<PathBuf, EgressError> {
    TOOL_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())
        .ok_or(EgressError::MissingTool { tool, package })
}

/// The host's side of egress for one server: its rules and the links of its sandboxes.
#[derive(Debug)]
pub struct EgressNet {
    pid: u32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `ip` and `nft`, once the rules are installed.
    tools: Option<Tools>,
    /// Links this server's sandboxes hold.
    used: BTreeSet<u32>,
    /// Where the next allocation starts looking.
    next: u32,
}

#[derive(Debug, Clone)]
struct Tools {
    ip: PathBuf,
    nft: PathBuf,
}

/// A link held by one sandbox; given back when dropped (the kernel removes the interfaces with
/// the sandbox's namespace).
#[derive(Debug)]
pub struct LinkLease {
    net: std::sync::Arc<EgressNet>,
    index: u32,
    /// Its addresses.
    pub addrs: LinkAddresses,
}

impl Drop for LinkLease {
    fn drop(&mut self) {
        self.net.state.lock().used.remove(&self.index);
    }
}

impl EgressNet {
    /// Nothing is done to the host until the first egress sandbox.
    pub fn new() -> EgressNet {
        let pid = std::process::id();
        EgressNet {
            pid,
            // Servers on one host start at different places, so they rarely try the same link.
            state: Mutex::new(State {
                next: pid.wrapping_mul(2_654_435_761) % LINKS,
                ..State::default()
            }),
        }
    }

    /// Whether `ip` and `nft` are installed (for a warning at start).
    pub fn tools_missing() -> Option<EgressError> {
        find_tool("ip", "iproute2")
            .and_then(|_| find_tool("nft", "nftables"))
            .err()
    }

    /// The `ip` program, after making sure forwarding is on and the rules are installed (once).
    pub fn prepare(&self) -> Result<PathBuf, EgressError> {
        let mut state = self.state.lock();
        if let Some(tools) = &state.tools {
            return Ok(tools.ip.clone());
        }
        let tools = Tools {
            ip: find_tool("ip", "iproute2")?,
            nft: find_tool("nft", "nftables")?,
        };
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| EgressError::Forwarding(e.to_string()))?;
        // Tables of servers that are gone.
        if let Ok(listing) = run_tool(&tools.nft, &["list", "tables"], "") {
            for pid in tables_in(&listing) {
                if pid != self.pid && !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = run_tool(
                        &tools.nft,
                        &["delete", "table", "inet", &table_name(pid)],
                        "",
                    );
                }
            }
        }
        run_tool(&tools.nft, &["-f", "-"], &ruleset(self.pid)).map_err(EgressError::Rules)?;
        tracing::info!(
            table = %table_name(self.pid),
            range = %format!("{EGRESS_RANGE}/{EGRESS_PREFIX}"),
            "network egress: IPv4 forwarding on, nftables rules installed"
        );
        warn_about_loopback_resolvers();
        let ip = tools.ip.clone();
        state.tools = Some(tools);
        Ok(ip)
    }

    /// Creates a link with its sandbox end in the network namespace of process `pid`.
    pub fn attach(self: &std::sync::Arc<Self>, pid: u32) -> Result<LinkLease, EgressError> {
        let ip = self.prepare()?;
        for _ in 0..ALLOCATION_TRIES {
            let index = {
                let mut state = self.state.lock();
                if state.used.len() >= LINKS as usize {
                    return Err(EgressError::NoFreeLink);
                }
                let mut index = state.next;
                while state.used.contains(&index) {
                    index = (index + 1) % LINKS;
                }
                state.next = (index + 1) % LINKS;
                state.used.insert(index);
                index
            };
            let lease = LinkLease {
                net: self.clone(),
                index,
                addrs: LinkAddresses::of(index),
            };
            match run_tool(&ip, &["-batch", "-"], &host_link_commands(index, pid)) {
                Ok(_) => return Ok(lease),
                // Another sandbox (perhaps of another server) holds this link.
                Err(e) if e.contains("File exists") => {
                    // A half-made link (the veth made, the address not) goes with its namespace
                    // when the sandbox fails; `index` is free again when `lease` drops.
                }
                Err(e) => return Err(EgressError::Link(e)),
            }
        }
        Err(EgressError::NoFreeLink)
    }

    /// Removes this server's rules (at shutdown, once its sandboxes are gone).
    pub fn uninstall(&self) {
        let mut state = self.state.lock();
        if let Some(tools) = state.tools.take() {
            match run_tool(
                &tools.nft,
                &["delete", "table", "inet", &table_name(self.pid)],
                "",
            ) {
                Ok(_) => tracing::info!("network egress: nftables rules removed"),
                Err(e) => tracing::warn!("network egress: cannot remove the nftables rules: {e}"),
            }
        }
    }
}

impl Default for EgressNet {
    fn default() -> Self {
        EgressNet::new()
    }
}

/// Says so when every resolver in the host's `/etc/resolv.conf` is on its loopback, which
/// sandboxes cannot reach.
fn warn_about_loopback_resolvers() {
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let servers: Vec<&str> = conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(str::trim)
        .collect();
    if !servers.is_empty() && servers.iter().all(|s| s.starts_with("127.") || *s == "::1") {
        tracing::warn!(
            "network egress: /etc/resolv.conf names only resolvers on the host's loopback ({}), which egress sandboxes cannot reach: they will not resolve names",
            servers.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_point_to_point_slices_of_the_range() {
        assert_eq!(
            LinkAddresses::of(0),
            LinkAddresses {
                host: Ipv4Addr::new(10, 213, 0, 1),
                sandbox: Ipv4Addr::new(10, 213, 0, 2)
            }
        );
        assert_eq!(
            LinkAddresses::of(LINKS - 1).sandbox,
            Ipv4Addr::new(10, 213, 255, 254)
        );
        assert_eq!(LINKS, 16384);
        // Names fit the kernel's 15 characters.
        assert!(host_iface(LINKS - 1).len() <= 15);
    }

    #[test]
    fn the_rules_refuse_the_host_and_other_sandboxes_and_nat_the_rest() {
        let rules = ruleset(42);
        assert!(rules.starts_with("table inet lambent-42 {}\ndelete table inet lambent-42\n"));
        assert!(rules.contains(
            "iifname \"lmb*\" ct state established,related accept\n        iifname \"lmb*\" drop"
        ));
        assert!(rules.contains("iifname \"lmb*\" oifname \"lmb*\" drop"));
        assert!(rules.contains("iifname \"lmb*\" meta nfproto ipv6 drop"));
        assert!(rules.contains("ip saddr 10.213.0.0/16 oifname != \"lmb*\" masquerade"));
    }

    #[test]
    fn stale_tables_are_found_by_pid() {
        let listing = "table inet filter\ntable inet lambent-17\ntable ip nat\ntable inet lambent-x\ntable inet lambent-9\n";
        assert_eq!(tables_in(listing), [17, 9]);
    }

    #[test]
    fn link_commands_name_both_ends() {
        let host = host_link_commands(5, 1234);
        assert_eq!(
            host,
            "link add lmb5 type veth peer name eth0 netns 1234\naddr add 10.213.0.21/30 dev lmb5\nlink set lmb5 up\n"
        );
        let inside = sandbox_link_commands(LinkAddresses::of(5));
        assert_eq!(
            inside,
            "addr add 10.213.0.22/30 dev eth0\nlink set eth0 up\nroute add default via 10.213.0.21 dev eth0\n"
        );
    }
}
