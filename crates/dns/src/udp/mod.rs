//! UDP serving, without hickory-server's generic path (a task, a channel hop and several
//! allocations per datagram): one socket per core bound with `SO_REUSEPORT`, so the kernel spreads
//! clients over the cores without a shared receive queue, each drained by its own task (up to
//! [`BATCH`] datagrams per wake-up).
//!
//! Per datagram, in order:
//! 1. the [`cache::AnswerCache`] of pre-encoded answers: a hit is a hash lookup and a copy;
//! 2. otherwise the request is decoded and [`Handler::decide`]d; an answer from the zone is encoded
//!    and sent at once (and cached), with no task and no await;
//! 3. only a question for the upstream resolvers gets a task of its own, so that a slow upstream
//!    never holds up the socket.
//!
//! What hickory-server did before the handler is kept: datagrams shorter than a header, or from
//! an address that cannot be answered, are dropped; an undecodable message gets FORMERR; a
//! response (QR set) is ignored (no reflection). TCP stays with hickory-server.

pub mod cache;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Header, MessageType, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::handler::{Decision, Handler};
use crate::metrics::RequestSeries;
use crate::shared_zone::SharedZone;
use cache::AnswerCache;

/// Datagrams read per wake-up before their answers are counted.
const BATCH: usize = 32;
/// Largest datagram read (a query is far smaller; hickory-server reads 4096 too).
const MAX_DATAGRAM: usize = 4096;
/// Memory for pre-encoded answers: ~60,000 typical answers (a 10,000-Service zone asked for every
/// A, SRV, PTR and a miss per Service needs ~4 MiB).
pub const ANSWER_CACHE_BYTES: usize = 16 << 20;

/// Binds `count` UDP sockets to `addr` with `SO_REUSEPORT` (port 0 is not allowed: the sockets
/// must share one port, chosen by the caller).
pub fn bind(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::UdpSocket>> {
    (0..count.max(1))
        .map(|_| {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )?;
            socket.set_reuse_port(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            Ok(socket.into())
        })
        .collect()
}

/// What every UDP worker shares.
#[derive(Debug)]
pub struct Context {
    pub handler: Handler,
    pub zone: Arc<SharedZone>,
    pub cache: AnswerCache<RequestSeries>,
    /// Tasks answering from upstream, awaited at shutdown.
    pub upstream_tasks: TaskTracker,
}

/// A datagram's fate when it was not in the cache.
enum Miss {
    Drop,
    /// Send these bytes; count them in `series` (`None`: not a request the metrics count).
    Reply(Vec<u8>, Option<RequestSeries>),
    /// Answered by a task (upstream).
    Spawned,
}

impl Context {
    fn answer(
        self: &Arc<Self>,
        socket: &Arc<UdpSocket>,
        packet: &[u8],
        src: SocketAddr,
        began: Instant,
    ) -> Miss {
        let request = match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
            Ok(request) => request,
            Err(_) => {
                return match Header::read(&mut BinDecoder::new(packet)) {
                    Ok(header) => Miss::Reply(format_error(&header), None),
                    Err(_) => Miss::Drop,
                };
            }
        };
        if request.metadata.message_type == MessageType::Response {
            return Miss::Drop;
        }
        let ipv6 = src.is_ipv6();
        match self.handler.decide(&request) {
            (Decision::Ready { reply, serial }, qtype) => {
                let response = Handler::encode_udp(&request, &reply, serial);
                let series = self
                    .handler
                    .metrics()
                    .series("udp", ipv6, qtype, response.rcode);
                if let Some(serial) = response.serial {
                    self.cache
                        .insert(packet, serial, &response.bytes, series.clone());
                }
                Miss::Reply(response.bytes, Some(series))
            }
            (Decision::Upstream { question, partial }, qtype) => {
                let cx = Arc::clone(self);
                let socket = Arc::clone(socket);
                self.upstream_tasks.spawn(async move {
                    let reply = cx.handler.resolve_upstream(question, partial).await;
                    let response = Handler::encode_udp(&request, &reply, None);
                    if let Err(error) = socket.send_to(&response.bytes, src).await {
                        tracing::debug!(%error, %src, "cannot send the response");
                    }
                    cx.handler.metrics().request(
                        "udp",
                        ipv6,
                        qtype,
                        response.rcode,
                        began.elapsed(),
                    );
                });
                Miss::Spawned
            }
        }
    }
}

/// FORMERR for a message whose header parsed but whose body did not (as hickory-server answers).
fn format_error(header: &Header) -> Vec<u8> {
    // No question: it is what did not decode.
    let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
        return crate::handler::servfail(header.metadata.id);
    };
    let response = MessageResponseBuilder::new(&queries, None)
        .error_msg(&header.metadata, ResponseCode::FormErr);
    let mut bytes = Vec::with_capacity(12);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(512);
    if response.destructive_emit(&mut encoder).is_err() {
        return crate::handler::servfail(header.metadata.id);
    }
    bytes
}

/// Whether a response can go to `src` (hickory-server's check: no port 0, no unspecified or
/// broadcast address).
fn answerable(src: SocketAddr) -> bool {
    src.port() != 0
        && match src {
            SocketAddr::V4(v4) => !v4.ip().is_unspecified() && !v4.ip().is_broadcast(),
            SocketAddr::V6(v6) => !v6.ip().is_unspecified(),
        }
}

/// Reads what is queued, up to one datagram per buffer: `received[i]` is the length and source
/// of the datagram in `bufs[i]`. `WouldBlock` only when nothing was read.
fn recv_batch(
    socket: &UdpSocket,
    bufs: &mut [Vec<u8>],
    received: &mut Vec<(usize, Option<SocketAddr>)>,
) -> io::Result<()> {
    received.clear();
    for buf in bufs.iter_mut() {
        match socket.try_recv_from(buf) {
            Ok((len, src)) => received.push((len, Some(src))),
            Err(e) if received.is_empty() => return Err(e),
            // Queue drained (or an error that the next read reports again).
            Err(_) => break,
        }
    }
    Ok(())
}

/// Errors on one datagram that say nothing about the socket.
fn transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

async fn send(socket: &UdpSocket, bytes: &[u8], dst: SocketAddr) -> io::Result<()> {
    loop {
        match socket.try_send_to(bytes, dst) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
            Err(e) => return Err(e),
        }
    }
}

/// Serves one socket until `shutdown`; an error means the socket failed.
pub async fn serve(
    socket: UdpSocket,
    cx: Arc<Context>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let socket = Arc::new(socket);
    let mut bufs = vec![vec![0u8; MAX_DATAGRAM]; BATCH];
    let mut received = Vec::with_capacity(BATCH);
    let mut reply = Vec::with_capacity(512);
    let mut answered: Vec<RequestSeries> = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            ready = socket.readable() => ready?,
        }
        match recv_batch(&socket, &mut bufs, &mut received) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if transient(&e) => {
                tracing::debug!(error = %e, "udp receive");
                continue;
            }
            Err(e) => return Err(e),
        }
        let began = Instant::now();
        let serial = cx.zone.serial();
        for (buf, &(len, src)) in bufs.iter().zip(&received) {
            let Some(src) = src.filter(|s| answerable(*s)) else {
                continue;
            };
            let packet = &buf[..len.min(buf.len())];
            if packet.len() < 12 {
                continue; // no header, no ID to answer
            }
            let series = match cx.cache.lookup(packet, serial, &mut reply) {
                Some(series) => Some(series),
                None => match cx.answer(&socket, packet, src, began) {
                    Miss::Drop | Miss::Spawned => continue,
                    Miss::Reply(bytes, series) => {
                        reply = bytes;
                        series
                    }
                },
            };
            // A failed send concerns one client (unreachable, filtered), not the socket.
            if let Err(error) = send(&socket, &reply, src).await {
                tracing::debug!(%error, %src, "cannot send the response");
            }
            answered.extend(series);
        }
        let took = began.elapsed();
        for series in answered.drain(..) {
            series.record(took);
        }
    }
}
