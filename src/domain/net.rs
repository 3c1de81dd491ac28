//! Who the client is when requests arrive through reverse proxies.

use ipnet::IpNet;
use std::net::IpAddr;

/// Parses a comma-separated list of addresses and networks (`10.0.0.0/8, 127.0.0.1`); a bare
/// address is a network of one.
pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not an address or a network such as 10.0.0.0/8"))
        })
        .collect()
}

/// The client's address. A connection from a trusted proxy is taken at its word: the
/// `X-Forwarded-For` hops are read from the nearest back, and the first one that is not
/// itself a trusted proxy is the client. Anyone else's `X-Forwarded-For` is ignored, so a
/// client cannot choose the address its rate limits are counted against.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // Garbage: stop at the last hop a trusted proxy vouched for.
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_claim_another_address() {
        let trusted = parse_networks("172.16.0.0/12").unwrap();
        assert_eq!(
            client_address(ip("203.0.113.9"), &["198.51.100.1"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(ip("203.0.113.9"), &["198.51.100.1"], &[]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted = parse_networks("172.16.0.0/12, 10.1.2.3").unwrap();
        assert_eq!(
            client_address(ip("172.18.0.5"), &["198.51.100.1"], &trusted),
            ip("198.51.100.1")
        );
        // The nearest untrusted hop wins over what the client wrote further left.
        assert_eq!(
            client_address(
                ip("172.18.0.5"),
                &["1.2.3.4, 198.51.100.1", "10.1.2.3"],
                &trusted
            ),
            ip("198.51.100.1")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_address(ip("172.18.0.5"), &[], &trusted),
            ip("172.18.0.5")
        );
        // Garbage stops the walk at the last vouched-for hop.
        assert_eq!(
            client_address(ip("172.18.0.5"), &["nonsense, 10.1.2.3"], &trusted),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn networks_parse_or_say_what_is_wrong() {
        assert_eq!(parse_networks(" 10.0.0.0/8 ,::1,").unwrap().len(), 2);
        let err = parse_networks("10.0.0.0/8, localhost").unwrap_err();
        assert!(err.contains("\"localhost\""), "{err}");
    }
}
