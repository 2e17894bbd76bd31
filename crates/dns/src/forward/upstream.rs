//! One question to one upstream resolver: UDP first, TCP when the UDP answer is truncated
//! (RFC 7766), EDNS0 with a 1232-byte payload (the DNS Flag Day 2020 default).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// EDNS payload size advertised upstream.
pub const UPSTREAM_PAYLOAD: u16 = 1232;
/// Largest UDP datagram read from an upstream.
const MAX_UDP: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {upstream} did not answer within {timeout:?}")]
    Timeout {
        upstream: SocketAddr,
        timeout: Duration,
    },
    #[error("upstream {upstream}: {source}")]
    Io {
        upstream: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream {upstream} sent a malformed answer: {reason}")]
    Malformed {
        upstream: SocketAddr,
        reason: String,
    },
    #[error("cannot encode the question {name} {qtype}: {reason}")]
    Encode {
        name: Name,
        qtype: RecordType,
        reason: String,
    },
}

/// The question sent upstream.
#[derive(Clone, Debug)]
pub struct Question {
    pub name: Name,
    pub qtype: RecordType,
    pub class: DNSClass,
    pub dnssec_ok: bool,
    pub checking_disabled: bool,
}

fn encode(question: &Question, id: u16) -> Result<Vec<u8>, UpstreamError> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.metadata.checking_disabled = question.checking_disabled;
    let mut query = Query::query(question.name.clone(), question.qtype);
    query.set_query_class(question.class);
    message.add_query(query);
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_PAYLOAD);
    edns.set_dnssec_ok(question.dnssec_ok);
    message.set_edns(edns);
    message.to_vec().map_err(|e| UpstreamError::Encode {
        name: question.name.clone(),
        qtype: question.qtype,
        reason: e.to_string(),
    })
}

/// Whether `reply` answers `question` with id `id` (anything else on the socket is ignored:
/// late answers to earlier attempts, or spoofing attempts).
fn matches(reply: &Message, id: u16, question: &Question) -> bool {
    reply.metadata.id == id
        && reply.metadata.message_type == MessageType::Response
        && reply.queries.len() == 1
        && reply.queries[0].name() == &question.name
        && reply.queries[0].query_type() == question.qtype
}

/// Asks `upstream` once, within `timeout` (UDP, then TCP if truncated).
pub async fn exchange(
    upstream: SocketAddr,
    question: &Question,
    timeout: Duration,
) -> Result<Message, UpstreamError> {
    let attempt = async {
        let reply = exchange_udp(upstream, question).await?;
        if reply.metadata.truncation {
            exchange_tcp(upstream, question).await
        } else {
            Ok(reply)
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| UpstreamError::Timeout { upstream, timeout })?
}

async fn exchange_udp(upstream: SocketAddr, question: &Question) -> Result<Message, UpstreamError> {
    let io = |source| UpstreamError::Io { upstream, source };
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(upstream).await.map_err(io)?;
    let id = rand::random::<u16>();
    socket.send(&encode(question, id)?).await.map_err(io)?;
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io)?;
        match Message::from_vec(&buf[..n]) {
            Ok(reply) if matches(&reply, id, question) => return Ok(reply),
            _ => continue,
        }
    }
}

async fn exchange_tcp(upstream: SocketAddr, question: &Question) -> Result<Message, UpstreamError> {
    let io = |source| UpstreamError::Io { upstream, source };
    let mut stream = TcpStream::connect(upstream).await.map_err(io)?;
    let id = rand::random::<u16>();
    let query = encode(question, id)?;
    let len = u16::try_from(query.len()).map_err(|_| UpstreamError::Encode {
        name: question.name.clone(),
        qtype: question.qtype,
        reason: "question longer than 65535 bytes".to_string(),
    })?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&query);
    stream.write_all(&framed).await.map_err(io)?;
    loop {
        let len = stream.read_u16().await.map_err(io)?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.map_err(io)?;
        let reply = Message::from_vec(&buf).map_err(|e| UpstreamError::Malformed {
            upstream,
            reason: e.to_string(),
        })?;
        if matches(&reply, id, question) {
            return Ok(reply);
        }
    }
}
