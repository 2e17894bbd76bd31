//! The host's resolvers (`nameserver` lines of /etc/resolv.conf): the default upstreams, as
//! CoreDNS's `forward . /etc/resolv.conf`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ResolvConfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} lists no nameserver; pass --upstream")]
    Empty { path: String },
    #[error("upstream {value:?}: expected IP or IP:port ([IPv6]:port)")]
    BadUpstream { value: String },
}

/// `nameserver` addresses of a resolv.conf text, port 53. Zone indices (`fe80::1%eth0`) are not
/// supported and skipped.
pub fn parse(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next()?.trim();
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

pub fn read(path: &Path) -> Result<Vec<SocketAddr>, ResolvConfError> {
    let text = std::fs::read_to_string(path).map_err(|source| ResolvConfError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let servers = parse(&text);
    if servers.is_empty() {
        return Err(ResolvConfError::Empty {
            path: path.display().to_string(),
        });
    }
    Ok(servers)
}

/// One `--upstream` value: `IP`, `IP:port` or `[IPv6]:port`.
pub fn parse_upstream(value: &str) -> Result<SocketAddr, ResolvConfError> {
    let value = value.trim();
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    value
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| ResolvConfError::BadUpstream {
            value: value.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_in_order() {
        let text = "# generated\nsearch example.test\nnameserver 127.0.0.53\n\
                    nameserver ::1 # v6\n;nameserver 127.9.9.9\noptions ndots:5\nnameserver bogus\n";
        assert_eq!(
            parse(text),
            vec![
                "127.0.0.53:53".parse().expect("addr"),
                "[::1]:53".parse().expect("addr")
            ]
        );
    }

    #[test]
    fn upstream_flag_values() {
        assert_eq!(parse_upstream("127.0.0.9").expect("ip").port(), 53);
        assert_eq!(
            parse_upstream("127.0.0.9:5353").expect("ip:port").port(),
            5353
        );
        assert_eq!(parse_upstream("[::1]:5353").expect("v6").port(), 5353);
        let err = parse_upstream("dns.example").expect_err("name");
        assert!(err.to_string().contains("dns.example"), "{err}");
    }
}
