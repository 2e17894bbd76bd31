//! The hickory-server request handler: validates a query, asks the [`Zone`], forwards what is not
//! the cluster's, and writes the response (hickory truncates UDP answers to the client's EDNS
//! payload size and sets TC, so clients retry over TCP).
//!
//! Malformed packets never get here: hickory-server answers FORMERR for anything with a header
//! that does not parse, and drops datagrams shorter than a header (there is no ID to answer).

use std::iter;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Edns, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use parking_lot::RwLock;

use crate::forward::{Forwarder, Question, Response};
use crate::metrics::{Metrics, type_label};
use crate::zone::{Outcome, Zone};

/// Largest UDP payload answered, whatever the client advertises (RFC 6891 allows the server to
/// cap it; 4096 is what BIND and CoreDNS accept).
const MAX_UDP_PAYLOAD: u16 = 4096;

#[derive(Clone, Debug)]
pub struct Handler {
    zone: Arc<RwLock<Zone>>,
    forwarder: Arc<Forwarder>,
    metrics: Metrics,
}

/// What goes back to the client.
struct Reply {
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

impl Handler {
    pub fn new(zone: Arc<RwLock<Zone>>, forwarder: Arc<Forwarder>, metrics: Metrics) -> Self {
        Self {
            zone,
            forwarder,
            metrics,
        }
    }

    async fn reply(&self, request: &Request) -> (Reply, &'static str) {
        if request.metadata.op_code != OpCode::Query {
            return (Reply::error(ResponseCode::NotImp), "other");
        }
        let queries = request.queries.queries();
        let [query] = queries else {
            // RFC 9619: exactly one question.
            return (Reply::error(ResponseCode::FormErr), "other");
        };
        let qtype = query.query_type();
        let label = type_label(qtype);
        if query.query_class() != DNSClass::IN {
            return (Reply::error(ResponseCode::Refused), label);
        }
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            // Zone transfers of the cluster zone are not offered (CoreDNS: only with `transfer`).
            return (Reply::error(ResponseCode::Refused), label);
        }
        let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        let outcome = self.zone.read().answer(query.name(), qtype);
        let reply = match outcome {
            Outcome::Refused => Reply::error(ResponseCode::Refused),
            Outcome::Forward => {
                let question = Question {
                    name: query.name().into(),
                    qtype,
                    class: DNSClass::IN,
                    dnssec_ok,
                    checking_disabled: request.metadata.checking_disabled,
                };
                Reply::forwarded(self.forwarder.resolve(question).await)
            }
            Outcome::Answer(mut answer) => {
                if let Some(target) = answer.chase.take() {
                    // An ExternalName outside the cluster: append the target's records.
                    let question = Question {
                        name: target,
                        qtype,
                        class: DNSClass::IN,
                        dnssec_ok,
                        checking_disabled: request.metadata.checking_disabled,
                    };
                    let chased = self.forwarder.resolve(question).await;
                    answer.answers.extend(chased.answers);
                    answer.rcode = chased.rcode;
                }
                Reply {
                    rcode: answer.rcode,
                    authoritative: true,
                    answers: answer.answers,
                    authorities: answer.authorities,
                    additionals: answer.additionals,
                }
            }
        };
        (reply, label)
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let began = Instant::now();
        let response_edns = request.edns.as_ref().map(|edns| {
            let mut ours = Edns::new();
            ours.set_max_payload(edns.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            ours.set_version(0);
            ours.set_dnssec_ok(edns.flags().dnssec_ok);
            ours
        });
        let (reply, qtype) = match &request.edns {
            // RFC 6891 §6.1.3: we speak EDNS version 0 only.
            Some(edns) if edns.version() > 0 => (Reply::error(ResponseCode::BADVERS), "other"),
            _ => self.reply(request).await,
        };

        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = reply.authoritative;
        metadata.recursion_available = true;
        metadata.response_code = reply.rcode;
        let response = MessageResponseBuilder::new(&request.queries, response_edns.as_ref()).build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            iter::empty(),
            reply.additionals.iter(),
        );
        let info = match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, src = %request.src(), "cannot send the response");
                let mut header = Metadata::response_from_request(&request.metadata);
                header.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_proto::op::Header {
                    metadata: header,
                    counts: Default::default(),
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
