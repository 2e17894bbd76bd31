//! The data plane without an apiserver: bind failures, connection limits, idle timeouts.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use niwa_proxy::dataplane::{BindError, DataPlane, Limits};
use niwa_proxy::metrics::Metrics;
use niwa_proxy::model::{ListenerKey, ListenerKind, ListenerSpec, Protocol, ServicePortName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn ip(n: u8) -> IpAddr {
    let block = (std::process::id() % 200) as u8 + 10;
    IpAddr::V4(Ipv4Addr::new(127, 98, block, n))
}

fn spec(backends: Vec<SocketAddr>) -> ListenerSpec {
    ListenerSpec {
        service: ServicePortName {
            namespace: "default".into(),
            name: "s".into(),
            port: "p".into(),
        },
        kind: ListenerKind::ClusterIp,
        backends: Arc::from(backends),
        affinity: None,
    }
}

/// A backend that echoes.
async fn echo(at: IpAddr) -> SocketAddr {
    let listener = TcpListener::bind(SocketAddr::new(at, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn round_trip(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(b"x").await?;
    let mut b = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut b)).await {
        Ok(Ok(1)) => Ok(()),
        Ok(Ok(_)) => Err(std::io::ErrorKind::UnexpectedEof.into()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

#[tokio::test]
async fn address_in_use_is_reported_once_and_retried() {
    let key = ListenerKey {
        ip: ip(1),
        port: 0,
        protocol: Protocol::Tcp,
    };
    // Someone else (without SO_REUSEPORT) holds the address.
    let squatter = std::net::TcpListener::bind(SocketAddr::new(key.ip, 0)).expect("bind");
    let key = ListenerKey {
        port: squatter.local_addr().expect("addr").port(),
        ..key
    };
    let backend = echo(ip(2)).await;
    let shutdown = CancellationToken::new();
    let mut plane = DataPlane::new(Metrics::new(), Limits::default(), shutdown.clone());
    let desired = BTreeMap::from([(key, spec(vec![backend]))]);
    let report = plane.apply(&desired);
    assert_eq!(report.new_failures.len(), 1);
    assert!(matches!(report.new_failures[0], BindError::InUse { .. }));
    assert!(
        report.new_failures[0]
            .to_string()
            .contains("in use by another program")
    );
    assert!(plane.has_failures());
    // The same failure is not reported again...
    assert!(plane.apply(&desired).new_failures.is_empty());
    // ...and once the address is free, the retry binds it.
    drop(squatter);
    let report = plane.apply(&desired);
    assert_eq!(report.opened, 1);
    assert!(!plane.has_failures());
    let mut s = TcpStream::connect(SocketAddr::new(key.ip, key.port))
        .await
        .expect("connect");
    round_trip(&mut s).await.expect("proxied");
    shutdown.cancel();
}

#[tokio::test]
async fn connection_limit_and_idle_timeout() {
    let backend = echo(ip(3)).await;
    let probe = std::net::TcpListener::bind(SocketAddr::new(ip(4), 0)).expect("bind");
    let key = ListenerKey {
        ip: ip(4),
        port: probe.local_addr().expect("addr").port(),
        protocol: Protocol::Tcp,
    };
    drop(probe);
    let limits = Limits {
        max_connections: 1,
        tcp_idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let shutdown = CancellationToken::new();
    let metrics = Metrics::new();
    let mut plane = DataPlane::new(metrics.clone(), limits, shutdown.clone());
    let report = plane.apply(&BTreeMap::from([(key, spec(vec![backend]))]));
    assert_eq!(report.opened, 1, "{:?}", report.new_failures);
    let addr = SocketAddr::new(key.ip, key.port);

    let mut first = TcpStream::connect(addr).await.expect("connect");
    round_trip(&mut first)
        .await
        .expect("first connection works");
    // The limit is one: the second connection is reset.
    let mut second = TcpStream::connect(addr)
        .await
        .expect("accepted, then reset");
    assert!(round_trip(&mut second).await.is_err());
    assert!(metrics.encode().contains("reason=\"limit\""));
    // Idle past the timeout: the proxy closes the first connection, freeing the slot.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        round_trip(&mut first).await.is_err(),
        "idle connection closed"
    );
    let mut third = TcpStream::connect(addr).await.expect("connect");
    round_trip(&mut third).await.expect("slot freed");
    shutdown.cancel();
}

/// A bulk transfer (spliced) and small messages on one connection both arrive intact, and the
/// byte counters see every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_and_small_transfers_arrive_intact_and_are_counted() {
    let backend = echo(ip(5)).await;
    let probe = std::net::TcpListener::bind(SocketAddr::new(ip(6), 0)).expect("bind");
    let key = ListenerKey {
        ip: ip(6),
        port: probe.local_addr().expect("addr").port(),
        protocol: Protocol::Tcp,
    };
    drop(probe);
    let shutdown = CancellationToken::new();
    let metrics = Metrics::new();
    let mut plane = DataPlane::new(metrics.clone(), Limits::default(), shutdown.clone());
    let report = plane.apply(&BTreeMap::from([(key, spec(vec![backend]))]));
    assert_eq!(report.opened, 1, "{:?}", report.new_failures);

    let stream = TcpStream::connect(SocketAddr::new(key.ip, key.port))
        .await
        .expect("connect");
    let (mut rx, mut tx) = stream.into_split();
    let payload: Vec<u8> = (0..4_000_000u32).map(|i| (i % 253) as u8).collect();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        tx.write_all(b"small").await?;
        tx.write_all(&sent).await?;
        tx.write_all(b"tail").await?;
        std::io::Result::Ok(tx)
    });
    let total = 5 + payload.len() + 4;
    let mut got = vec![0u8; total];
    tokio::time::timeout(Duration::from_secs(20), rx.read_exact(&mut got))
        .await
        .expect("echoed in time")
        .expect("echoed");
    let _tx = writer.await.expect("join").expect("write");
    assert_eq!(&got[..5], b"small");
    assert!(got[5..5 + payload.len()] == payload[..], "payload intact");
    assert_eq!(&got[total - 4..], b"tail");
    // The counters are bumped just after each write returns: give the proxy a moment.
    let lines: Vec<String> = ["to_backend", "to_client"]
        .iter()
        .map(|direction| {
            format!(
                "niwa_proxy_bytes_total{{service=\"default/s:p\",protocol=\"TCP\",direction=\"{direction}\"}} {total}"
            )
        })
        .collect();
    let mut text = metrics.encode();
    for _ in 0..100 {
        if lines.iter().all(|l| text.contains(l.as_str())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = metrics.encode();
    }
    for line in &lines {
        assert!(text.contains(line.as_str()), "{line} in\n{text}");
    }
    shutdown.cancel();
}
