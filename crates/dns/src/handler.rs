//! The request handler: validates a query, asks the [`Zone`](crate::zone::Zone), forwards what is
//! not the cluster's, and builds the response. UDP answers are cut to the client's EDNS payload
//! size with TC set, so clients retry over TCP.
//!
//! Two callers: hickory-server for TCP (the [`RequestHandler`] impl), and [`crate::udp`], which
//! calls [`Handler::decide`] directly so that answers from the zone need no task or await, and
//! encodes them with [`Handler::encode_udp`] for its answer cache.
//!
//! Malformed packets never get here: the servers answer FORMERR for anything with a header that
//! does not parse, and drop datagrams shorter than a header (there is no ID to answer).

use std::iter;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};

use crate::forward::{Forwarder, Question, Response};
use crate::metrics::{Metrics, type_label};
use crate::shared_zone::SharedZone;
use crate::zone::{Answer, Outcome};

/// Largest UDP payload answered, whatever the client advertises (RFC 6891 allows the server to
/// cap it; 4096 is what BIND and CoreDNS accept).
const MAX_UDP_PAYLOAD: u16 = 4096;

#[derive(Clone, Debug)]
pub struct Handler {
    zone: Arc<SharedZone>,
    forwarder: Arc<Forwarder>,
    metrics: Metrics,
}

/// What goes back to the client.
pub(crate) struct Reply {
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    fn error(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }

    fn authoritative(answer: Answer) -> Self {
        Self {
            rcode: answer.rcode,
            authoritative: true,
            answers: answer.answers,
            authorities: answer.authorities,
            additionals: answer.additionals,
        }
    }

    fn forwarded(response: Response) -> Self {
        Self {
            rcode: response.rcode,
            authoritative: false,
            answers: response.answers,
            authorities: response.authorities,
            additionals: response.additionals,
        }
    }
}

/// The handler's decision for one request, before anything is awaited.
pub(crate) enum Decision {
    /// Answered from the zone (or an error): no IO needed. `serial` is the zone serial the reply
    /// was computed from when it depends on nothing but the request and the zone, so that the
    /// same request bytes get the same response until the serial changes.
    Ready { reply: Reply, serial: Option<u32> },
    /// Needs the upstream resolvers: a name outside the cluster, or the target of an
    /// ExternalName CNAME (appended to `partial`).
    Upstream {
        question: Question,
        partial: Option<Answer>,
    },
}

/// A response encoded for UDP: the bytes to send and what the metrics and the answer cache need.
pub(crate) struct UdpResponse {
    pub bytes: Vec<u8>,
    pub rcode: ResponseCode,
    /// See [`Decision::Ready`]: `Some` when the response may be cached under the request bytes.
    pub serial: Option<u32>,
}

impl Handler {
    pub fn new(zone: Arc<SharedZone>, forwarder: Arc<Forwarder>, metrics: Metrics) -> Self {
        Self {
            zone,
            forwarder,
            metrics,
        }
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Everything that can be decided without IO; the query type label for the metrics.
    pub(crate) fn decide(&self, request: &Request) -> (Decision, &'static str) {
        let error = |rcode| Decision::Ready {
            reply: Reply::error(rcode),
            serial: None,
        };
        if let Some(edns) = &request.edns
            && edns.version() > 0
        {
            // RFC 6891 §6.1.3: we speak EDNS version 0 only.
            return (error(ResponseCode::BADVERS), "other");
        }
        if request.metadata.op_code != OpCode::Query {
            return (error(ResponseCode::NotImp), "other");
        }
        let queries = request.queries.queries();
        let [query] = queries else {
            // RFC 9619: exactly one question.
            return (error(ResponseCode::FormErr), "other");
        };
        let qtype = query.query_type();
        let label = type_label(qtype);
        if query.query_class() != DNSClass::IN {
            return (error(ResponseCode::Refused), label);
        }
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            // Zone transfers of the cluster zone are not offered (CoreDNS: only with `transfer`).
            return (error(ResponseCode::Refused), label);
        }
        let question = |name| Question {
            name,
            qtype,
            class: DNSClass::IN,
            dnssec_ok: request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
            checking_disabled: request.metadata.checking_disabled,
        };
        let (outcome, serial) = {
            let zone = self.zone.read();
            (zone.answer(query.name(), qtype), zone.serial())
        };
        let decision = match outcome {
            Outcome::Refused => Decision::Ready {
                reply: Reply::error(ResponseCode::Refused),
                serial: Some(serial),
            },
            Outcome::Forward => Decision::Upstream {
                question: question(query.name().into()),
                partial: None,
            },
            Outcome::Answer(mut answer) => match answer.chase.take() {
                // An ExternalName outside the cluster: the target's records are appended.
                Some(target) => Decision::Upstream {
                    question: question(target),
                    partial: Some(answer),
                },
                None => Decision::Ready {
                    reply: Reply::authoritative(answer),
                    serial: Some(serial),
                },
            },
        };
        (decision, label)
    }

    /// Asks the upstream resolvers what [`Handler::decide`] could not answer.
    pub(crate) async fn resolve_upstream(
        &self,
        question: Question,
        partial: Option<Answer>,
    ) -> Reply {
        let response = self.forwarder.resolve(question).await;
        match partial {
            None => Reply::forwarded(response),
            Some(mut answer) => {
                answer.answers.extend(response.answers);
                answer.rcode = response.rcode;
                Reply::authoritative(answer)
            }
        }
    }

    async fn reply(&self, request: &Request) -> (Reply, &'static str, Option<u32>) {
        match self.decide(request) {
            (Decision::Ready { reply, serial }, label) => (reply, label, serial),
            (Decision::Upstream { question, partial }, label) => {
                (self.resolve_upstream(question, partial).await, label, None)
            }
        }
    }

    /// The UDP response to `request`, encoded as hickory-server encodes it (cut to the client's
    /// EDNS payload size, or 512 bytes without EDNS, with TC set).
    pub(crate) fn encode_udp(request: &Request, reply: &Reply, serial: Option<u32>) -> UdpResponse {
        let edns = response_edns(request);
        let response = build_response(request, reply, edns.as_ref());
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(edns.as_ref().map_or(512, Edns::max_payload));
        match response.destructive_emit(&mut encoder) {
            Ok(info) => UdpResponse {
                bytes,
                rcode: info.response_code,
                serial,
            },
            Err(error) => {
                tracing::error!(%error, "error encoding a response");
                UdpResponse {
                    bytes: servfail(request.metadata.id),
                    rcode: ResponseCode::ServFail,
                    serial: None,
                }
            }
        }
    }
}

/// Our OPT record for a request with EDNS: version 0, the client's payload size within bounds.
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|edns| {
        let mut ours = Edns::new();
        ours.set_max_payload(edns.max_payload().clamp(512, MAX_UDP_PAYLOAD));
        ours.set_version(0);
        ours.set_dnssec_ok(edns.flags().dnssec_ok);
        ours
    })
}

fn build_response<'a>(
    request: &'a Request,
    reply: &'a Reply,
    edns: Option<&'a Edns>,
) -> MessageResponse<
    'a,
    'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
> {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.authoritative = reply.authoritative;
    metadata.recursion_available = true;
    metadata.response_code = reply.rcode;
    MessageResponseBuilder::new(&request.queries, edns).build(
        metadata,
        reply.answers.iter(),
        reply.authorities.iter(),
        iter::empty(),
        reply.additionals.iter(),
    )
}

/// A bare SERVFAIL (what hickory-server sends when a response cannot be encoded).
pub(crate) fn servfail(id: u16) -> Vec<u8> {
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut bytes = Vec::with_capacity(12);
    let mut encoder = BinEncoder::new(&mut bytes);
    if header.emit(&mut encoder).is_err() {
        bytes.clear();
    }
    bytes
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let began = Instant::now();
        let (reply, qtype, _) = self.reply(request).await;
        let edns = response_edns(request);
        let response = build_response(request, &reply, edns.as_ref());
        let info = match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, src = %request.src(), "cannot send the response");
                let mut header = Metadata::response_from_request(&request.metadata);
                header.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: header,
                    counts: HeaderCounts::default(),
                })
            }
        };
        let proto = match request.protocol() {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            _ => "other",
        };
        self.metrics.request(
            proto,
            request.src().is_ipv6(),
            qtype,
            info.response_code,
            began.elapsed(),
        );
        info
    }
}
