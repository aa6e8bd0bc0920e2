//! `[http]`: connection limits and the proxies whose `X-Forwarded-For` is believed.

use std::net::IpAddr;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// A connection must send a request's whole header within this many seconds, or it is
    /// closed (slow or silent clients cannot hold connections open).
    pub header_read_timeout_secs: u64,
    /// A request (body upload included) must be answered within this many seconds: 503 after.
    pub request_timeout_secs: u64,
    /// Connections served at once; more wait in the listen queue (not refused).
    pub max_connections: usize,
    /// Reverse proxies in front of Countersign: from these addresses only, the client address
    /// is taken from `X-Forwarded-For` (for rate limits and the audit trail).
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout_secs: 30,
            request_timeout_secs: 300,
            max_connections: 1024,
            trusted_proxies: Vec::new(),
        }
    }
}

impl HttpLimits {
    /// The client's address: the peer, or — when the peer is a trusted proxy — the last address
    /// in `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        forwarded_for
            .into_iter()
            .flat_map(|v| v.rsplit(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .find(|ip| !self.trusted_proxies.contains(ip))
            .unwrap_or(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.5".parse().expect("ip");
        let limits = HttpLimits { trusted_proxies: vec![proxy], ..Default::default() };
        let client: IpAddr = "203.0.113.7".parse().expect("ip");
        let stranger: IpAddr = "198.51.100.9".parse().expect("ip");
        assert_eq!(limits.client_ip(proxy, Some("1.1.1.1, 203.0.113.7")), client, "rightmost untrusted hop");
        assert_eq!(limits.client_ip(stranger, Some("203.0.113.7")), stranger, "a stranger's header is ignored");
        assert_eq!(limits.client_ip(proxy, None), proxy);
        assert_eq!(limits.client_ip(proxy, Some("junk")), proxy);
    }
}
