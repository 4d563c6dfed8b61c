//! Who a request comes from, and header hygiene of forwarded requests and
//! responses.
//!
//! [`ClientAddr::of`] is the one place the client address is derived, by
//! whom the gateway believes ([`ClientTrust`]): the TCP peer; or — only
//! when that peer is in [`TrustedProxies`] — the right-most
//! `X-Forwarded-For` entry that is not itself a trusted proxy; or — only
//! when the request carries the valid service credential, as the
//! storefront's API calls on behalf of a browser do — the address it names
//! in `x-shop-client-ip`. Everything else (the rate limit, the forwarded
//! headers, the `x-shop-client-ip` the services read) takes it from there,
//! and it is resolved once per request.
//!
//! Hop-by-hop headers are removed in both directions (RFC 9110 §7.6.1),
//! `X-Forwarded-For` and `X-Forwarded-Proto` are set, and internal
//! credentials are dropped (a service's too, once it has been believed).
//! The common case — no hop-by-hop header at all — costs one scan over the
//! header names and no allocation.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use http::{HeaderMap, HeaderName, HeaderValue, Request, header};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use shop_common::auth::ServiceGuard;
use shop_common::config::InternalSettings;
use shop_common::wire::{CLIENT_IP, SERVICE_TOKEN};

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The address ranges of the proxies in front of the gateway (an Ingress
/// controller, a cloud load balancer) whose `X-Forwarded-*` headers are
/// believed. Empty — the default — believes no one: the gateway is the
/// edge.
///
/// Deserializes from a list of CIDR ranges (`10.244.0.0/16`, `fd00::/8`)
/// or single addresses (`192.0.2.10`, meaning that host alone).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Parses each entry as a CIDR range or a single address.
    ///
    /// # Errors
    /// A message quoting the first entry that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .map(|net| net.trunc())
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "{entry:?} is not an address range such as 10.244.0.0/16 \
                             or an address such as 192.0.2.10"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|nets| Self(nets.into()))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(ToString::to_string))
            .finish()
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(deserializer)?;
        Self::parse(&entries).map_err(serde::de::Error::custom)
    }
}

/// Whom the gateway believes about a request's client: the proxies in
/// front of it (`X-Forwarded-For`) and the services that present the
/// service credential (`x-shop-client-ip`). Cloning it is two reference
/// counts.
#[derive(Debug, Clone, Default)]
pub struct ClientTrust {
    proxies: TrustedProxies,
    services: Option<ServiceGuard>,
}

impl ClientTrust {
    /// Believes `proxies` about `X-Forwarded-For`, and a request carrying
    /// `internal.service_token` about `x-shop-client-ip`; no request at all
    /// when that token is unset.
    pub fn new(proxies: TrustedProxies, internal: &InternalSettings) -> Self {
        let services = internal.service_token.is_some().then(|| {
            // Only built with a token: without one `ServiceGuard` warns of
            // internal routes, which the gateway has none of.
            ServiceGuard::new(internal, "gateway")
        });
        if services.is_none() {
            tracing::info!(
                "internal.service_token is not set: a storefront's API calls are \
                 counted as its own, not its visitors'"
            );
        }
        Self { proxies, services }
    }

    /// Believes `proxies` only.
    pub fn proxies(proxies: TrustedProxies) -> Self {
        Self {
            proxies,
            services: None,
        }
    }

    /// Whether `headers` carry the valid service credential.
    fn believes_service(&self, headers: &HeaderMap) -> bool {
        self.services
            .as_ref()
            .is_some_and(|guard| guard.admits(headers))
    }
}

/// Where a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The TCP peer: the client itself, a proxy in front, or a service
    /// calling on a client's behalf.
    pub peer: IpAddr,
    /// The client: the peer; or behind trusted proxies the right-most
    /// `X-Forwarded-For` entry that is not a trusted proxy; or, for a
    /// request with the service credential, its `x-shop-client-ip`.
    pub client: IpAddr,
    /// Whether the peer is a trusted proxy, so that its `X-Forwarded-*`
    /// headers are kept (and appended to) when forwarding.
    pub via_trusted_proxy: bool,
}

impl ClientAddr {
    /// The addresses of `request`, whose peer the listener recorded as
    /// [`ConnectInfo<SocketAddr>`] (`0.0.0.0` without it, which no
    /// listener of the gateway omits).
    ///
    /// Resolved once: the first call (the rate limit's) keeps the answer in
    /// the request's extensions, and later ones (the forwarding's) read it
    /// there — it is never taken from a client, and the service credential
    /// is hashed once.
    pub fn of<B>(request: &mut Request<B>, trust: &ClientTrust) -> Self {
        if let Some(addr) = request.extensions().get::<Self>() {
            return *addr;
        }
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        let addr = Self::resolve(peer, request.headers(), trust);
        request.extensions_mut().insert(addr);
        addr
    }

    /// The addresses of a request from `peer` with `headers`.
    ///
    /// A request with the valid service credential names its client in
    /// `x-shop-client-ip` (the storefront passes on the browser's address
    /// that way); when that is not an address, it is resolved as any other.
    /// A peer that is not a trusted proxy is the client, whatever it sends.
    /// Behind a trusted proxy, `X-Forwarded-For` is walked from the right
    /// (the entry the nearest proxy appended) past every trusted proxy; the
    /// first other address is the client. Entries further left were written
    /// by the client or an untrusted hop and are never believed. When the
    /// walk meets an entry that is not an address, the last trusted hop
    /// before it is the client; when every entry is trusted, the left-most.
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trust: &ClientTrust) -> Self {
        let mut addr = Self::resolve_forwarded(peer, headers, &trust.proxies);
        if let Some(named) = headers.get(CLIENT_IP)
            && let Some(client) = named
                .to_str()
                .ok()
                .and_then(|named| named.trim().parse::<IpAddr>().ok())
            && trust.believes_service(headers)
        {
            addr.client = client.to_canonical();
        }
        addr
    }

    /// The addresses of a request from `peer` with `headers`, believing
    /// only `trusted` proxies' `X-Forwarded-For`.
    fn resolve_forwarded(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        let peer = peer.to_canonical();
        let untrusted = Self {
            peer,
            client: peer,
            via_trusted_proxy: false,
        };
        if trusted.is_empty() || !trusted.contains(peer) {
            return untrusted;
        }
        let mut client = peer;
        // Several X-Forwarded-For lines form one list, in order.
        'walk: for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let Ok(value) = value.to_str() else { break };
            for entry in value.rsplit(',') {
                let Some(hop) = parse_hop(entry) else {
                    break 'walk;
                };
                client = hop;
                if !trusted.contains(hop) {
                    break 'walk;
                }
            }
        }
        Self {
            peer,
            client,
            via_trusted_proxy: true,
        }
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`) or in brackets.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<IpAddr>()
                .ok()
        })?;
    Some(ip.to_canonical())
}

/// Whether `name` is hop-by-hop by definition (not counting the names a
/// `Connection` header lists).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == KEEP_ALIVE
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name.as_str().starts_with("proxy-")
}

/// Removes hop-by-hop headers and those named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Names listed in Connection, other than the ones removed anyway
    // (`keep-alive`, `close`, `upgrade`), are rare; collect only those.
    let mut listed: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            if token.is_empty()
                || token.eq_ignore_ascii_case("close")
                || token.eq_ignore_ascii_case("keep-alive")
                || token.eq_ignore_ascii_case("upgrade")
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                listed.push(name);
            }
        }
    }
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        KEEP_ALIVE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        PROXY_CONNECTION,
    ] {
        headers.remove(name);
    }
    let other_proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in other_proxy {
        headers.remove(name);
    }
}

/// Prepares the headers of a request from `addr` to forward: hop-by-hop
/// headers and internal credentials removed, `X-Forwarded-For`,
/// `X-Forwarded-Proto` and `x-shop-client-ip` set.
///
/// From a trusted proxy the peer is appended to the incoming
/// `X-Forwarded-For` and an incoming `X-Forwarded-Proto` kept; otherwise
/// both are replaced, so a client cannot make a service believe it comes
/// from another address.
pub fn prepare_request(headers: &mut HeaderMap, addr: &ClientAddr) {
    strip_hop_by_hop(headers);
    headers.remove(SERVICE_TOKEN);
    let peer = addr.peer.to_string();
    let forwarded_for = if addr.via_trusted_proxy && headers.contains_key(X_FORWARDED_FOR) {
        let mut joined = String::new();
        for value in headers.get_all(X_FORWARDED_FOR) {
            if let Ok(value) = value.to_str() {
                joined.push_str(value);
                joined.push_str(", ");
            }
        }
        joined.push_str(&peer);
        joined
    } else {
        peer
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !(addr.via_trusted_proxy && headers.contains_key(X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if let Ok(value) = HeaderValue::from_str(&addr.client.to_string()) {
        headers.insert(CLIENT_IP, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries).expect("ranges")
    }

    /// The client a request from `peer` with these `X-Forwarded-For`
    /// lines resolves to.
    fn client(peer: &str, forwarded_for: &[&'static str], trusted: &TrustedProxies) -> IpAddr {
        let map: HeaderMap = forwarded_for
            .iter()
            .map(|value| (X_FORWARDED_FOR, HeaderValue::from_static(value)))
            .collect();
        ClientAddr::resolve(ip(peer), &map, &ClientTrust::proxies(trusted.clone())).client
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_go() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-foo", "bar"),
            ("content-type", "application/json"),
            ("authorization", "Bearer t"),
        ]);
        strip_hop_by_hop(&mut map);
        let left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type", "authorization"]);
    }

    #[test]
    fn forwarded_headers_are_replaced_unless_from_a_trusted_proxy() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let incoming = || {
            headers(&[
                ("x-forwarded-for", "198.51.100.1"),
                ("x-forwarded-proto", "https"),
                ("x-shop-service-token", "guess"),
                ("x-shop-client-ip", "192.0.2.99"),
            ])
        };
        // (peer, X-Forwarded-For, X-Forwarded-Proto, x-shop-client-ip)
        for (peer, forwarded_for, proto, client) in [
            ("203.0.113.7", "203.0.113.7", "http", "203.0.113.7"),
            (
                "10.1.2.3",
                "198.51.100.1, 10.1.2.3",
                "https",
                "198.51.100.1",
            ),
        ] {
            let mut map = incoming();
            let addr = ClientAddr::resolve(ip(peer), &map, &ClientTrust::proxies(trusted.clone()));
            prepare_request(&mut map, &addr);
            assert_eq!(map[X_FORWARDED_FOR], forwarded_for, "from {peer}");
            assert_eq!(map[X_FORWARDED_PROTO], proto, "from {peer}");
            assert_eq!(map[CLIENT_IP], client, "from {peer}");
            assert!(!map.contains_key(SERVICE_TOKEN), "from {peer}");
        }
    }

    /// Header names and values.
    type Pairs = [(&'static str, &'static str)];

    #[test]
    fn a_service_with_the_credential_names_the_client_and_no_one_else_does() {
        let internal = InternalSettings {
            service_token: Some("s3cret".into()),
        };
        let trust = ClientTrust::new(proxies(&["10.0.0.0/8"]), &internal);
        let resolve = |peer: &str, pairs: &Pairs, trust: &ClientTrust| {
            let mut map = headers(pairs);
            let addr = ClientAddr::resolve(ip(peer), &map, trust);
            prepare_request(&mut map, &addr);
            assert!(!map.contains_key(SERVICE_TOKEN), "the credential goes");
            assert_eq!(map[CLIENT_IP], addr.client.to_string());
            addr.client
        };
        // (peer, headers, client, why)
        let cases: [(&str, &Pairs, &str, &str); 8] = [
            (
                "203.0.113.7",
                &[
                    ("x-shop-service-token", "s3cret"),
                    ("x-shop-client-ip", "198.51.100.1"),
                ],
                "198.51.100.1",
                "the credential makes the named address the client",
            ),
            (
                "203.0.113.7",
                &[
                    ("x-shop-service-token", "s3cret"),
                    ("x-shop-client-ip", " 2001:db8::1 "),
                ],
                "2001:db8::1",
                "IPv6, blanks around it",
            ),
            (
                "203.0.113.7",
                &[
                    ("x-shop-service-token", "s3cret"),
                    ("x-shop-client-ip", "::ffff:198.51.100.1"),
                ],
                "198.51.100.1",
                "an IPv4-mapped address is the IPv4 one",
            ),
            (
                "203.0.113.7",
                &[
                    ("x-shop-service-token", "guess"),
                    ("x-shop-client-ip", "198.51.100.1"),
                ],
                "203.0.113.7",
                "a wrong credential is ignored",
            ),
            (
                "203.0.113.7",
                &[("x-shop-client-ip", "198.51.100.1")],
                "203.0.113.7",
                "no credential: the header is overwritten",
            ),
            (
                "203.0.113.7",
                &[
                    ("x-shop-service-token", "s3cret"),
                    ("x-shop-client-ip", "browser"),
                ],
                "203.0.113.7",
                "not an address: resolved as any other request",
            ),
            (
                "203.0.113.7",
                &[
                    ("x-shop-service-token", "s3cret"),
                    ("x-shop-client-ip", "198.51.100.1:4711"),
                ],
                "203.0.113.7",
                "an address with a port is not an address",
            ),
            (
                "10.0.0.1",
                &[
                    ("x-shop-service-token", "s3cret"),
                    ("x-forwarded-for", "192.0.2.5"),
                ],
                "192.0.2.5",
                "no header: behind a trusted proxy, its X-Forwarded-For",
            ),
        ];
        for (peer, pairs, expected, why) in cases {
            assert_eq!(resolve(peer, pairs, &trust), ip(expected), "{why}");
        }
        let unset = ClientTrust::new(proxies(&[]), &InternalSettings::default());
        assert_eq!(
            resolve(
                "203.0.113.7",
                &[
                    ("x-shop-service-token", ""),
                    ("x-shop-client-ip", "198.51.100.1")
                ],
                &unset
            ),
            ip("203.0.113.7"),
            "without a configured token nothing is believed"
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            client("203.0.113.7", &["198.51.100.1"], &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            client("203.0.113.7", &["198.51.100.1"], &TrustedProxies::default()),
            ip("203.0.113.7"),
            "nobody is trusted by default"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "fd00::/8"]);
        // (peer, X-Forwarded-For lines, client, why)
        let cases: [(&str, &[&'static str], &str, &str); 8] = [
            (
                "10.0.0.1",
                &["192.0.2.66, 198.51.100.1"],
                "198.51.100.1",
                "the client's own claim (left) is never believed",
            ),
            (
                "10.0.0.1",
                &["192.0.2.66, 198.51.100.1", "10.9.9.9", "fd00::5, 10.1.1.1"],
                "198.51.100.1",
                "past a chain of trusted proxies, over several header lines",
            ),
            (
                "10.0.0.1",
                &["[2001:db8::1]:4711"],
                "2001:db8::1",
                "brackets and a port",
            ),
            ("10.0.0.1", &["198.51.100.1:4711"], "198.51.100.1", "a port"),
            (
                "::ffff:10.0.0.1",
                &["::ffff:198.51.100.1"],
                "198.51.100.1",
                "IPv4-mapped IPv6 addresses",
            ),
            ("10.0.0.1", &[], "10.0.0.1", "no header: the proxy itself"),
            (
                "10.0.0.1",
                &["198.51.100.1, unknown, 10.2.2.2"],
                "10.2.2.2",
                "garbage stops the walk at the last trusted hop",
            ),
            (
                "10.0.0.1",
                &["10.3.3.3, 10.2.2.2"],
                "10.3.3.3",
                "all trusted: the left-most",
            ),
        ];
        for (peer, forwarded_for, expected, why) in cases {
            assert_eq!(client(peer, forwarded_for, &trusted), ip(expected), "{why}");
        }
    }

    #[test]
    fn trusted_proxies_parse_ranges_and_addresses_and_name_the_bad_entry() {
        let trusted = proxies(&["10.244.0.0/16", " 192.0.2.10 ", "fd00::/8", "10.1.2.3/8"]);
        assert!(trusted.contains(ip("10.244.7.1")));
        assert!(trusted.contains(ip("192.0.2.10")));
        assert!(!trusted.contains(ip("192.0.2.11")));
        assert!(trusted.contains(ip("fd12::1")));
        assert!(trusted.contains(ip("10.200.0.1")), "host bits are ignored");
        assert!(!trusted.contains(ip("11.0.0.1")));
        let err = TrustedProxies::parse(&["10.0.0.0/8", "10.0.0.0/33"]).expect_err("bad");
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(TrustedProxies::parse(&["proxy.internal"]).is_err());
    }
}
