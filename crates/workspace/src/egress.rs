//! The egress policy: which network addresses a tenant's connections may reach.
//!
//! Every connector that opens a socket (http, postgres) resolves its host through
//! [`EgressPolicy::resolve`], which checks **every** address the name resolves to, and then
//! connects to exactly those addresses (the http client gets them through [`PinnedResolver`],
//! PostgreSQL through the address itself), so a name that resolves to a public address when
//! checked and to a private one when connecting (DNS rebinding) cannot slip through. Redirects
//! are followed by the connector itself, each hop checked the same way.
//!
//! By default a connection may reach globally routable addresses only: loopback, private
//! ranges, link-local (169.254.0.0/16 and fe80::/10, where cloud metadata services live),
//! carrier-grade NAT, unspecified, multicast, broadcast and reserved addresses are refused.
//! The operator opens what tenants need with `INTEGRATOR_EGRESS_ALLOW` (comma-separated CIDRs,
//! addresses, `host`, `host:port` or `address:port`). The server's own listening address and
//! its own database endpoint stay refused even inside an allowed range, unless an entry names
//! them with their port (`127.0.0.1:5432`).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable (and setting) that opens addresses to tenants' connections.
pub const ALLOW_SETTING: &str = "INTEGRATOR_EGRESS_ALLOW";

/// A range of addresses: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// One entry of the allow list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// Every port of every address in the range.
    Range(Cidr),
    /// One port of one address.
    Endpoint(SocketAddr),
    /// A host name as written in a connection's URL, on one port or all.
    Host { name: String, port: Option<u16> },
}

/// An address of the server itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnEndpoint {
    Exact(SocketAddr),
    /// The server listens on every interface on this port: any local-looking address on it.
    AnyLocal(u16),
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("{host}:{port} ({ip}) is {what}; connections to such addresses are refused unless the operator allows them in {ALLOW_SETTING} (e.g. {ALLOW_SETTING}={suggestion})")]
    Refused {
        host: String,
        port: u16,
        ip: IpAddr,
        what: &'static str,
        suggestion: String,
    },
    #[error("{host}:{port} ({ip}) is this server's own {what}; it is refused unless the operator names it with its port in {ALLOW_SETTING} (e.g. {ALLOW_SETTING}={suggestion})")]
    OwnEndpoint {
        host: String,
        port: u16,
        ip: IpAddr,
        what: &'static str,
        suggestion: String,
    },
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// The addresses tenants' connections may reach; built once at start.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allowed: Vec<Allowed>,
    own: Vec<(OwnEndpoint, &'static str)>,
}

impl EgressPolicy {
    /// The policy for an allow list in `INTEGRATOR_EGRESS_ALLOW` syntax (empty: public
    /// addresses only). Entries that cannot be read are an error naming the entry.
    pub fn from_allow_list(list: &str) -> Result<EgressPolicy, EgressError> {
        let mut policy = EgressPolicy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            policy.allowed.push(parse_entry(entry)?);
        }
        Ok(policy)
    }

    /// Marks the server's listening address as its own (refused unless named with its port).
    pub fn with_listen_address(mut self, addr: SocketAddr) -> EgressPolicy {
        let endpoint = if addr.ip().is_unspecified() {
            OwnEndpoint::AnyLocal(addr.port())
        } else {
            OwnEndpoint::Exact(canonical_socket(addr))
        };
        self.own.push((endpoint, "listening address"));
        self
    }

    /// Marks the addresses of the server's database as its own.
    pub fn with_database_endpoints(mut self, addrs: &[SocketAddr]) -> EgressPolicy {
        for addr in addrs {
            self.own
                .push((OwnEndpoint::Exact(canonical_socket(*addr)), "database"));
        }
        self
    }

    /// Whether the allow list is empty (public addresses only).
    pub fn is_default(&self) -> bool {
        self.allowed.is_empty()
    }

    /// Checks one address that `host` (as written in the connection) resolved to.
    pub fn check(&self, host: &str, port: u16, ip: IpAddr) -> Result<(), EgressError> {
        let ip = canonical(ip);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let names_endpoint = self.allowed.iter().any(|entry| match entry {
            Allowed::Endpoint(addr) => canonical_socket(*addr) == SocketAddr::new(ip, port),
            Allowed::Host {
                name,
                port: Some(p),
            } => *p == port && name.eq_ignore_ascii_case(host),
            _ => false,
        });
        for (own, what) in &self.own {
            let matches = match own {
                OwnEndpoint::Exact(addr) => *addr == SocketAddr::new(ip, port),
                OwnEndpoint::AnyLocal(own_port) => *own_port == port && special_range(ip).is_some(),
            };
            if matches && !names_endpoint {
                return Err(EgressError::OwnEndpoint {
                    host: host.to_string(),
                    port,
                    ip,
                    what,
                    suggestion: SocketAddr::new(ip, port).to_string(),
                });
            }
        }
        let Some(what) = special_range(ip) else {
            return Ok(());
        };
        let allowed = names_endpoint
            || self.allowed.iter().any(|entry| match entry {
                Allowed::Range(cidr) => cidr.contains(ip),
                Allowed::Endpoint(_) => false,
                Allowed::Host { name, port: p } => {
                    name.eq_ignore_ascii_case(host) && p.is_none_or(|p| p == port)
                }
            });
        if allowed {
            return Ok(());
        }
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        Err(EgressError::Refused {
            host: host.to_string(),
            port,
            ip,
            what,
            suggestion: format!("{ip}/{prefix}"),
        })
    }

    /// Resolves `host` and checks every address it resolves to; the answer is the addresses
    /// to connect to (all allowed), never empty.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = if let Ok(ip) = bare.parse::<IpAddr>() {
            vec![SocketAddr::new(ip, port)]
        } else {
            let lookup = tokio::net::lookup_host((bare, port));
            match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(error)) => {
                    return Err(EgressError::Resolve {
                        host: bare.to_string(),
                        reason: error.to_string(),
                    })
                }
                Err(_) => {
                    return Err(EgressError::Resolve {
                        host: bare.to_string(),
                        reason: format!("no answer within {}s", RESOLVE_TIMEOUT.as_secs()),
                    })
                }
            }
        };
        if addrs.is_empty() {
            return Err(EgressError::Resolve {
                host: bare.to_string(),
                reason: "the name has no addresses".into(),
            });
        }
        for addr in &addrs {
            self.check(bare, port, addr.ip())?;
        }
        Ok(addrs)
    }
}

/// The addresses a `postgres://` URL's host resolves to, with its port (5432 when not
/// given); empty when it names a Unix socket or cannot be resolved.
pub async fn database_endpoints(url: &str) -> Vec<SocketAddr> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Vec::new();
    };
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Vec::new();
    };
    let port = parsed.port().unwrap_or(5432);
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let found = tokio::time::timeout(
        RESOLVE_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await;
    match found {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => Vec::new(),
    }
}

fn parse_entry(entry: &str) -> Result<Allowed, EgressError> {
    let invalid = |why: &str| {
        EgressError::Invalid(format!(
            "{ALLOW_SETTING}: `{entry}` is not an address range, address, host or host:port ({why})"
        ))
    };
    if let Some((address, prefix)) = entry.split_once('/') {
        let network: IpAddr = address
            .parse()
            .map_err(|_| invalid("the part before / is not an IP address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| invalid("the prefix length is not a number"))?;
        let most = if network.is_ipv4() { 32 } else { 128 };
        if prefix > most {
            return Err(invalid(&format!("the prefix length is at most {most}")));
        }
        return Ok(Allowed::Range(Cidr {
            network: canonical(network),
            prefix,
        }));
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        let ip = canonical(ip);
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        return Ok(Allowed::Range(Cidr {
            network: ip,
            prefix,
        }));
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Ok(Allowed::Endpoint(canonical_socket(addr)));
    }
    let (name, port) = match entry.rsplit_once(':') {
        Some((name, port)) => {
            let port: u16 = port
                .parse()
                .map_err(|_| invalid("the port is not a number"))?;
            (name, Some(port))
        }
        None => (entry, None),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !name_ok {
        return Err(invalid("host names are letters, digits, `-` and `.`"));
    }
    Ok(Allowed::Host {
        name: name.to_ascii_lowercase(),
        port,
    })
}

/// IPv4 addresses written as IPv6 (`::ffff:127.0.0.1`) are checked as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn canonical_socket(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical(addr.ip()), addr.port())
}

/// What kind of non-public address `ip` is, or `None` for a globally routable one.
fn special_range(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let kind = if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() || a == 0 {
        "an unspecified (this-network) address"
    } else if ip.is_private() {
        "a private address"
    } else if ip.is_link_local() {
        "a link-local address (cloud metadata services live there)"
    } else if a == 100 && (64..=127).contains(&b) {
        "a carrier-grade NAT (shared) address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if ip.is_broadcast() || a >= 240 {
        "a reserved address"
    } else if a == 192 && b == 0 && c == 0 {
        "an IETF protocol address"
    } else if a == 198 && (b == 18 || b == 19) {
        "a benchmarking address"
    } else if ip.is_documentation() {
        "a documentation address"
    } else {
        return None;
    };
    Some(kind)
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let kind = if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() {
        "an unspecified address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if segments[0] & 0xffc0 == 0xfe80 {
        "a link-local address"
    } else if segments[0] & 0xffc0 == 0xfec0 {
        "a site-local address"
    } else if segments[0] & 0xfe00 == 0xfc00 {
        "a private (unique local) address"
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        "a documentation address"
    } else if segments[0] == 0x0100 && segments[1..4] == [0, 0, 0] {
        "a discard-only address"
    } else if let Some(embedded) = embedded_v4(ip) {
        // NAT64, 6to4 and IPv4-compatible forms reach the IPv4 address inside them.
        return special_v4(embedded);
    } else {
        return None;
    };
    Some(kind)
}

/// The IPv4 address carried inside NAT64 (64:ff9b::/96), 6to4 (2002::/16) or the deprecated
/// IPv4-compatible (::a.b.c.d) forms.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let from = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        Some(from(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(from(s[1], s[2]))
    } else if s[0..6] == [0, 0, 0, 0, 0, 0] {
        Some(from(s[6], s[7]))
    } else {
        None
    }
}

/// A DNS resolver for the http client that answers only names the connector checked with the
/// policy just before the request ([`PinnedResolver::pin`]), with exactly the checked
/// addresses: the client can never connect to an address the policy did not see.
#[derive(Default)]
pub struct PinnedResolver {
    pins: Mutex<HashMap<String, Vec<SocketAddr>>>,
}

impl PinnedResolver {
    /// Records the checked addresses of `host` for the next connection to it.
    pub fn pin(&self, host: &str, addrs: Vec<SocketAddr>) {
        if let Ok(mut pins) = self.pins.lock() {
            pins.insert(host.to_ascii_lowercase(), addrs);
        }
    }
}

impl reqwest::dns::Resolve for PinnedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let pinned = self
            .pins
            .lock()
            .ok()
            .and_then(|pins| pins.get(&host).cloned());
        Box::pin(async move {
            match pinned {
                Some(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                None => Err(format!("{host} was not checked by the egress policy").into()),
            }
        })
    }
}

impl fmt::Debug for PinnedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedResolver").finish_non_exhaustive()
    }
}

/// A shared policy, as connectors receive it.
pub type SharedEgressPolicy = Arc<EgressPolicy>;

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn public_addresses_pass_and_special_ones_are_refused_by_default() {
        let policy = EgressPolicy::default();
        assert!(policy
            .check("api.example.com", 443, ip("93.184.215.14"))
            .is_ok());
        assert!(policy.check("x", 443, ip("2606:4700::1111")).is_ok());
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            let error = policy.check("h", 80, ip(refused)).expect_err(refused);
            assert!(error.to_string().contains(ALLOW_SETTING), "{error}");
        }
        assert!(policy.check("h", 80, ip("172.32.0.1")).is_ok());
    }

    #[test]
    fn the_allow_list_opens_ranges_endpoints_and_hosts() {
        let policy = EgressPolicy::from_allow_list(
            " 127.0.0.1/32, 10.0.0.0/8 ,::1, 192.168.1.5:5432, db.internal, cache.internal:6379",
        )
        .expect("list");
        assert!(policy.check("localhost", 9000, ip("127.0.0.1")).is_ok());
        assert!(policy.check("h", 9000, ip("::ffff:127.0.0.1")).is_ok());
        assert!(policy.check("h", 1, ip("10.200.0.1")).is_ok());
        assert!(policy.check("h", 1, ip("::1")).is_ok());
        assert!(policy.check("h", 5432, ip("192.168.1.5")).is_ok());
        assert!(policy.check("h", 5433, ip("192.168.1.5")).is_err());
        assert!(policy.check("DB.internal", 1, ip("192.168.7.7")).is_ok());
        assert!(policy
            .check("cache.internal", 6379, ip("192.168.7.8"))
            .is_ok());
        assert!(policy
            .check("cache.internal", 6380, ip("192.168.7.8"))
            .is_err());
        assert!(policy.check("h", 80, ip("127.0.0.2")).is_err());
        assert!(policy.check("h", 80, ip("169.254.169.254")).is_err());
    }

    #[test]
    fn the_servers_own_endpoints_need_naming_with_their_port() {
        let db: SocketAddr = "127.0.0.1:5432".parse().expect("addr");
        let policy = EgressPolicy::from_allow_list("127.0.0.1/32")
            .expect("list")
            .with_listen_address("127.0.0.1:8080".parse().expect("addr"))
            .with_database_endpoints(&[db]);
        let error = policy
            .check("localhost", 8080, ip("127.0.0.1"))
            .expect_err("own address");
        assert!(
            error.to_string().contains("own listening address"),
            "{error}"
        );
        assert!(policy.check("localhost", 5432, ip("127.0.0.1")).is_err());
        assert!(policy.check("localhost", 9000, ip("127.0.0.1")).is_ok());

        let named = EgressPolicy::from_allow_list("127.0.0.1:5432")
            .expect("list")
            .with_database_endpoints(&[db]);
        assert!(named.check("localhost", 5432, ip("127.0.0.1")).is_ok());
        let by_name = EgressPolicy::from_allow_list("localhost:5432")
            .expect("list")
            .with_database_endpoints(&[db]);
        assert!(by_name.check("localhost", 5432, ip("127.0.0.1")).is_ok());

        let everywhere = EgressPolicy::from_allow_list("0.0.0.0/0")
            .expect("list")
            .with_listen_address("0.0.0.0:8080".parse().expect("addr"));
        assert!(everywhere.check("h", 8080, ip("10.0.0.7")).is_err());
        assert!(everywhere.check("h", 8080, ip("93.184.215.14")).is_ok());
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["10.0.0.0/33", "x/8", "host:port", "a b", "::1/129"] {
            let error = EgressPolicy::from_allow_list(bad).expect_err(bad);
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    #[tokio::test]
    async fn names_are_resolved_and_every_address_checked() {
        let policy = EgressPolicy::default();
        let error = policy.resolve("localhost", 80).await.expect_err("loopback");
        assert!(matches!(error, EgressError::Refused { .. }), "{error}");
        let open = EgressPolicy::from_allow_list("127.0.0.0/8,::1").expect("list");
        let addrs = open.resolve("localhost", 80).await.expect("allowed");
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
        assert!(open.resolve("[::1]", 80).await.is_ok());
    }
}
