//! The nftables data path's IO-free core: the node's listeners rendered to `nft -f` text, as
//! the base table at start and as one incremental transaction per sync.
//!
//! Layout (kube-proxy's nftables mode, KEP-3866, reshaped for speed; one table per proxy):
//!
//! ```text
//! table ip <name>
//!   map services       vip . proto . port            : goto rr-N | goto svc-… (affinity)
//!   map backends       vip . proto . port . index    : endpoint ip . port
//!   map endpoint-chains vip . proto . port . index   : goto ep-…      (affinity only)
//!   set no-endpoints   vip . proto . port                            (→ reject)
//!   chain nat-prerouting / nat-output   nat, priority -100: ip daddr . l4proto . dport vmap @services
//!   chain filter-input / filter-output  filter, priority -90: @no-endpoints → reject-chain
//!   chain rr-N         dnat to (vip . proto . port . numgen inc mod N) map @backends
//!   chain svc-…        (affinity) ip saddr @aff-… goto ep-…, else goto pick-N
//!   chain pick-N       vip . proto . port . numgen inc mod N vmap @endpoint-chains
//!   chain ep-… + set aff-…   update @aff { ip saddr timeout T } dnat to the endpoint
//! ```
//!
//! Why not kube-proxy's exact layout (a chain per Service with an anonymous `numgen … vmap { }`):
//! the kernel pays ~1.5 ms per anonymous set and, for a named data map, re-validates every
//! element for every rule bound to it; 10,000 Services took 7–17 s that way on this machine
//! against ~1 s here. So Services without affinity get no chain at all: they share the `rr-N`
//! chain of their endpoint count, and a Service is three or four map elements. The price: the
//! round-robin counter of `rr-N` is shared by every Service with N endpoints (each Service still
//! gets an even spread, not a strict per-Service rotation), and there is no per-Service nft
//! counter (a counter in a nat chain would only see first packets anyway).
//!
//! Why the reject runs after DNAT (priority -90, kube-proxy rejects before it): several proxies
//! of one local cluster each program their own table on one host. A Service address is rejected
//! only if it still has its Service address after every table's DNAT chain ran, i.e. when no
//! proxy had an endpoint for it (with traffic policy `Local`, another node's proxy may have one).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::{ListenerKey, ListenerSpec, Protocol};

/// Every niwa-proxy table name starts with this (stale ones are found by it).
pub const TABLE_PREFIX: &str = "niwa-proxy-";

/// How a Service without session affinity picks an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    /// `numgen inc mod N` (the userspace proxy's policy).
    RoundRobin,
    /// `numgen random mod N` (kube-proxy's).
    Random,
}

impl Balance {
    fn numgen(self) -> &'static str {
        match self {
            Balance::RoundRobin => "inc",
            Balance::Random => "random",
        }
    }

    fn chain_prefix(self) -> &'static str {
        match self {
            Balance::RoundRobin => "rr",
            Balance::Random => "rand",
        }
    }
}

/// The table of one proxy instance: `niwa-proxy-<node>-<pid>-<seq>` (`seq` tells apart proxies
/// run in-process by one test binary). The node name is cut to nft-safe characters.
pub fn table_name(node: &str, pid: u32, seq: u32) -> String {
    let node: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    format!("{TABLE_PREFIX}{node}-{pid}-{seq}")
}

/// The pid a niwa-proxy table name carries (`None`: not one of ours).
pub fn table_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TABLE_PREFIX)?;
    let mut parts = rest.rsplitn(3, '-');
    let _seq: u32 = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next().filter(|node| !node.is_empty())?;
    Some(pid)
}

/// Group chains made with the table, for 1..=`BASE_GROUPS` endpoints: nft (1.0.6) cannot add a
/// rule naming a `typeof … th dport` map in a later transaction than the map's ("conflicting
/// protocols specified: ip vs. th" when it reads the map back), and spelling the type with
/// `tcp dport` would make the rule match TCP only. Made together with the maps they work for
/// TCP and UDP; a Service with more endpoints makes its group in a transaction that fails and
/// is retried as a rebuild (which again makes map and rule together).
pub const BASE_GROUPS: usize = 64;

/// The group chains [`render_base`] makes.
pub fn base_groups(balance: Balance) -> BTreeSet<String> {
    (1..=BASE_GROUPS)
        .flat_map(|n| {
            [
                format!("{}-{n}", balance.chain_prefix()),
                format!("pick-{}-{n}", balance.chain_prefix()),
            ]
        })
        .collect()
}

/// The table with its maps, base chains and group chains. `replace` first deletes a table of
/// that name (in the same transaction: a full rebuild after a failed incremental sync).
pub fn render_base(table: &str, replace: bool, balance: Balance) -> String {
    let mut out = String::new();
    if replace {
        let _ = writeln!(out, "add table ip {table}\ndelete table ip {table}");
    }
    let key = "ip daddr . meta l4proto . th dport";
    let _ = write!(
        out,
        "table ip {table} {{
\tmap services {{ type ipv4_addr . inet_proto . inet_service : verdict; }}
\tmap backends {{ typeof {key} . numgen inc mod 2 : ip daddr . th dport; }}
\tmap endpoint-chains {{ typeof {key} . numgen inc mod 2 : verdict; }}
\tset no-endpoints {{ type ipv4_addr . inet_proto . inet_service; }}
\tchain nat-prerouting {{ type nat hook prerouting priority -100; policy accept; {key} vmap @services; }}
\tchain nat-output {{ type nat hook output priority -100; policy accept; {key} vmap @services; }}
\tchain filter-input {{ type filter hook input priority -90; policy accept; {key} @no-endpoints goto reject-chain; }}
\tchain filter-output {{ type filter hook output priority -90; policy accept; {key} @no-endpoints goto reject-chain; }}
\tchain reject-chain {{ meta l4proto tcp reject with tcp reset; reject; }}
"
    );
    let (prefix, numgen) = (balance.chain_prefix(), balance.numgen());
    for n in 1..=BASE_GROUPS {
        let _ = writeln!(
            out,
            "\tchain {prefix}-{n} {{ dnat ip addr . port to {key} . numgen {numgen} mod {n} map @backends; }}\n\tchain pick-{prefix}-{n} {{ {key} . numgen {numgen} mod {n} vmap @endpoint-chains; }}"
        );
    }
    out.push_str("}\n");
    out
}

/// `delete table`: the proxy's last transaction.
pub fn render_delete(table: &str) -> String {
    format!("delete table ip {table}\n")
}

/// What the kernel holds after the last successful transaction (the renderer diffs against it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Programmed {
    pub listeners: BTreeMap<ListenerKey, ListenerSpec>,
    /// `rr-N` / `rand-N` / `pick-N` chains made so far (kept: they are few and rules bound to
    /// the backends map are costly to re-add).
    pub groups: BTreeSet<String>,
}

impl Programmed {
    /// Rules in the table (base chains included), for the metrics.
    pub fn rules(&self) -> usize {
        let listeners: usize = self
            .listeners
            .values()
            .filter(|s| s.affinity.is_some())
            .map(|s| 2 * s.backends.len() + 1)
            .sum();
        6 + self.groups.len() + listeners
    }

    /// Map and set elements in the table.
    pub fn elements(&self) -> usize {
        self.listeners
            .values()
            .map(|s| match (s.backends.len(), s.affinity) {
                (0, _) => 1,
                (n, None) => 1 + n,
                (n, Some(_)) => 1 + 2 * n,
            })
            .sum()
    }
}

/// One sync's transaction and the state it leads to.
#[derive(Debug)]
pub struct Transaction {
    pub text: String,
    pub next: Programmed,
    /// IPv6 listeners left out (the table is `ip`: a local cluster is IPv4).
    pub skipped_v6: usize,
    /// Listeners added, changed or removed.
    pub changed: usize,
    /// UDP (Service address, endpoint) pairs no longer programmed: their conntrack entries must
    /// go, or a flow keeps its stale NAT binding while datagrams keep coming (kube-proxy clears
    /// them too; TCP needs nothing: its established connections should live on).
    pub stale_udp: Vec<(ListenerKey, SocketAddr)>,
}

/// The transaction taking the kernel from `old` to `desired`: only listeners that changed are
/// touched, and a changed affinity listener keeps the client sets of endpoints that remain.
/// Statements are ordered so every reference is gone before what it names is deleted, and
/// everything a statement names exists before it.
pub fn render_sync(
    table: &str,
    old: &Programmed,
    desired: &BTreeMap<ListenerKey, ListenerSpec>,
    balance: Balance,
) -> Transaction {
    let mut next = Programmed {
        listeners: BTreeMap::new(),
        groups: old.groups.clone(),
    };
    let mut skipped_v6 = 0;
    for (key, spec) in desired {
        if key.ip.is_ipv4() && spec.backends.iter().all(SocketAddr::is_ipv4) {
            next.listeners.insert(*key, spec.clone());
        } else {
            skipped_v6 += 1;
        }
    }
    let mut tx = Statements::default();
    let mut changed = 0;
    let mut stale_udp = Vec::new();
    let keys: BTreeSet<&ListenerKey> = old.listeners.keys().chain(next.listeners.keys()).collect();
    for key in keys {
        let (before, after) = (old.listeners.get(key), next.listeners.get(key));
        if before == after {
            continue;
        }
        changed += 1;
        if let (Some(before), Protocol::Udp) = (before, key.protocol) {
            let kept: &[SocketAddr] = after.map(|a| &a.backends[..]).unwrap_or(&[]);
            for endpoint in before.backends.iter().filter(|e| !kept.contains(e)) {
                stale_udp.push((*key, *endpoint));
            }
        }
        if let Some(before) = before {
            tx.remove(key, before, after);
        }
        if let Some(after) = after {
            tx.add(table, key, after, before, balance, &mut next.groups);
        }
    }
    Transaction {
        text: tx.finish(table),
        next,
        skipped_v6,
        changed,
        stale_udp,
    }
}

/// The statements of one transaction, by phase (see [`render_sync`] for why the order).
#[derive(Default)]
struct Statements {
    delete_elements: Elements,
    flush_chains: Vec<String>,
    delete_chains: Vec<String>,
    delete_sets: Vec<String>,
    add_objects: String,
    add_elements: Elements,
}

/// Elements per map or set, written as one statement each (nft parses long lists fast).
#[derive(Default)]
struct Elements(BTreeMap<&'static str, Vec<String>>);

impl Elements {
    fn push(&mut self, set: &'static str, element: String) {
        self.0.entry(set).or_default().push(element);
    }

    fn write(&self, out: &mut String, verb: &str, table: &str) {
        for (set, elements) in &self.0 {
            let _ = writeln!(
                out,
                "{verb} element ip {table} {set} {{ {} }}",
                elements.join(", ")
            );
        }
    }
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

fn element_key(key: &ListenerKey) -> String {
    format!("{} . {} . {}", key.ip, proto(key.protocol), key.port)
}

fn suffix(key: &ListenerKey) -> String {
    format!("{}-{}-{}", key.ip, key.port, proto(key.protocol))
}

fn svc_chain(key: &ListenerKey) -> String {
    format!("svc-{}", suffix(key))
}

fn ep_suffix(key: &ListenerKey, endpoint: &SocketAddr) -> String {
    format!("{}-{}-{}", suffix(key), endpoint.ip(), endpoint.port())
}

fn endpoint_text(endpoint: &SocketAddr) -> String {
    match endpoint.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", endpoint.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", endpoint.port()),
    }
}

impl Statements {
    /// Takes `key`'s old programming away; `after` (its new spec) spares the client sets of
    /// endpoints that stay with affinity.
    fn remove(&mut self, key: &ListenerKey, before: &ListenerSpec, after: Option<&ListenerSpec>) {
        let k = element_key(key);
        if before.backends.is_empty() {
            self.delete_elements.push("no-endpoints", k);
            return;
        }
        self.delete_elements.push("services", k.clone());
        for i in 0..before.backends.len() {
            self.delete_elements.push("backends", format!("{k} . {i}"));
        }
        if before.affinity.is_none() {
            return;
        }
        let stays_affine = after.is_some_and(|a| a.affinity.is_some() && !a.backends.is_empty());
        for i in 0..before.backends.len() {
            self.delete_elements
                .push("endpoint-chains", format!("{k} . {i}"));
        }
        self.flush_chains.push(svc_chain(key));
        if !stays_affine {
            self.delete_chains.push(svc_chain(key));
        }
        for endpoint in before.backends.iter() {
            let s = ep_suffix(key, endpoint);
            self.flush_chains.push(format!("ep-{s}"));
            let kept = stays_affine && after.is_some_and(|a| a.backends.contains(endpoint));
            if !kept {
                self.delete_chains.push(format!("ep-{s}"));
                self.delete_sets.push(format!("aff-{s}"));
            }
        }
    }

    fn add(
        &mut self,
        table: &str,
        key: &ListenerKey,
        spec: &ListenerSpec,
        before: Option<&ListenerSpec>,
        balance: Balance,
        groups: &mut BTreeSet<String>,
    ) {
        let k = element_key(key);
        let n = spec.backends.len();
        if n == 0 {
            self.add_elements.push("no-endpoints", k);
            return;
        }
        let lookup = "ip daddr . meta l4proto . th dport";
        let numgen = format!("numgen {} mod {n}", balance.numgen());
        let Some(timeout) = spec.affinity else {
            let group = format!("{}-{n}", balance.chain_prefix());
            if groups.insert(group.clone()) {
                let _ = writeln!(
                    self.add_objects,
                    "add chain ip {table} {group}\nadd rule ip {table} {group} dnat ip addr . port to {lookup} . {numgen} map @backends"
                );
            }
            for (i, endpoint) in spec.backends.iter().enumerate() {
                self.add_elements.push(
                    "backends",
                    format!("{k} . {i} : {} . {}", endpoint.ip(), endpoint.port()),
                );
            }
            self.add_elements
                .push("services", format!("{k} : goto {group}"));
            return;
        };
        // Session affinity, as kube-proxy: a client seen within the timeout goes to the
        // endpoint whose set holds it; a new one is spread and recorded by the endpoint chain.
        let pick = format!("pick-{}-{n}", balance.chain_prefix());
        if groups.insert(pick.clone()) {
            let _ = writeln!(
                self.add_objects,
                "add chain ip {table} {pick}\nadd rule ip {table} {pick} {lookup} . {numgen} vmap @endpoint-chains"
            );
        }
        let svc = svc_chain(key);
        let had_sets: &[SocketAddr] = match before {
            Some(b) if b.affinity.is_some() => &b.backends,
            _ => &[],
        };
        let _ = writeln!(self.add_objects, "add chain ip {table} {svc}");
        let seconds = timeout.as_secs().max(1);
        for (i, endpoint) in spec.backends.iter().enumerate() {
            let s = ep_suffix(key, endpoint);
            if !had_sets.contains(endpoint) {
                let _ = writeln!(
                    self.add_objects,
                    "add set ip {table} aff-{s} {{ type ipv4_addr; flags dynamic,timeout; size 65536; }}"
                );
            }
            let _ = writeln!(
                self.add_objects,
                "add chain ip {table} ep-{s}\nadd rule ip {table} ep-{s} update @aff-{s} {{ ip saddr timeout {seconds}s }} meta l4proto {} dnat ip to {}\nadd rule ip {table} {svc} ip saddr @aff-{s} goto ep-{s}",
                proto(key.protocol),
                endpoint_text(endpoint)
            );
            self.add_elements
                .push("endpoint-chains", format!("{k} . {i} : goto ep-{s}"));
        }
        let _ = writeln!(self.add_objects, "add rule ip {table} {svc} goto {pick}");
        self.add_elements
            .push("services", format!("{k} : goto {svc}"));
    }

    fn finish(self, table: &str) -> String {
        let mut out = String::new();
        self.delete_elements.write(&mut out, "delete", table);
        for chain in &self.flush_chains {
            let _ = writeln!(out, "flush chain ip {table} {chain}");
        }
        for chain in &self.delete_chains {
            let _ = writeln!(out, "delete chain ip {table} {chain}");
        }
        for set in &self.delete_sets {
            let _ = writeln!(out, "delete set ip {table} {set}");
        }
        out.push_str(&self.add_objects);
        self.add_elements.write(&mut out, "add", table);
        out
    }
}

#[cfg(test)]
#[path = "nft_tests.rs"]
mod tests;
