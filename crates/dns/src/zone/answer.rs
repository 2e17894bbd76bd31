//! Answering one question from the zone: the records, or NXDOMAIN versus NODATA (RFC 2308, with
//! the SOA in the authority section so that resolvers cache the negative answer), REFUSED for
//! wildcard names, or "forward" for names the cluster is not authoritative for.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::records::parse_dashed;
use super::table::Data;
use super::{PodRecords, Zone};

/// How long a chain of in-zone CNAMEs (ExternalName → ExternalName …) is followed.
const MAX_CNAME_CHAIN: usize = 8;

/// The zone's decision for one question.
#[derive(Debug)]
pub enum Outcome {
    /// An authoritative answer (possibly negative).
    Answer(Answer),
    /// The question is in the cluster zone but not served (wildcards).
    Refused,
    /// Not the cluster's: forward upstream.
    Forward,
}

#[derive(Debug, Default)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// The target of an ExternalName CNAME outside the cluster domain: the caller resolves it
    /// upstream and appends the result, as CoreDNS does.
    pub chase: Option<Name>,
}

impl Zone {
    /// Answers `qname`/`qtype` (class IN).
    pub fn answer(&self, qname: &LowerName, qtype: RecordType) -> Outcome {
        if self.apex.zone_of(qname) {
            if has_wildcard_label(qname) {
                return Outcome::Refused;
            }
            let mut answer = Answer::default();
            self.resolve(qname, qtype, &mut answer, 0);
            return Outcome::Answer(answer);
        }
        for arpa in &self.names.reverse_zones {
            if arpa.zone_of(qname) {
                return self.answer_reverse(qname, qtype, arpa);
            }
        }
        Outcome::Forward
    }

    fn record(&self, name: Name, data: RData) -> Record {
        Record::from_rdata(name, self.config.ttl, data)
    }

    fn soa(&self, owner: &LowerName) -> Record {
        // refresh/retry/expire as CoreDNS sets them; minimum (negative TTL) = the record TTL.
        let soa = SOA::new(
            self.names.soa_mname.clone(),
            self.names.soa_rname.clone(),
            self.serial,
            7200,
            1800,
            86400,
            self.config.ttl,
        );
        self.record(Name::from(owner), RData::SOA(soa))
    }

    fn negative(&self, answer: &mut Answer, rcode: ResponseCode) {
        answer.rcode = rcode;
        answer.authorities.push(self.soa(&self.apex));
    }

    fn resolve(&self, name: &LowerName, qtype: RecordType, answer: &mut Answer, depth: usize) {
        if *name == self.apex {
            return self.answer_apex(qtype, answer);
        }
        let Some(entry) = self.table.get(name) else {
            if let Some(ip) = self.insecure_pod_address(name) {
                let data = match ip {
                    IpAddr::V4(v4) => Data::A(v4),
                    IpAddr::V6(v6) => Data::Aaaa(v6),
                };
                if matches!(qtype, RecordType::ANY) || qtype == data.record_type() {
                    answer
                        .answers
                        .push(self.record(Name::from(name), data.to_rdata()));
                } else {
                    self.negative(answer, ResponseCode::NoError);
                }
                return;
            }
            let rcode = if self.always_exists(name) {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            };
            return self.negative(answer, rcode);
        };

        // A CNAME owner has no other data (RFC 1034): answer with it and follow it.
        let cname = entry.records().find_map(|d| match d {
            Data::Cname(target) => Some(target),
            _ => None,
        });
        if let Some(target) = cname
            && !matches!(qtype, RecordType::CNAME | RecordType::ANY)
        {
            answer.answers.push(self.record(
                Name::from(name),
                RData::CNAME(hickory_proto::rr::rdata::CNAME(target.clone())),
            ));
            let target_lower = LowerName::new(target);
            if self.apex.zone_of(&target_lower) {
                if depth < MAX_CNAME_CHAIN {
                    self.resolve(&target_lower, qtype, answer, depth + 1);
                } else {
                    answer.rcode = ResponseCode::ServFail;
                }
            } else {
                answer.chase = Some(target.clone());
            }
            return;
        }

        let before = answer.answers.len();
        for data in entry.records() {
            if qtype == RecordType::ANY || data.record_type() == qtype {
                answer
                    .answers
                    .push(self.record(Name::from(name), data.to_rdata()));
            }
        }
        if answer.answers.len() == before {
            return self.negative(answer, ResponseCode::NoError);
        }
        self.add_srv_targets(answer, before);
    }

    /// The additional section of SRV answers: the addresses of their targets (RFC 2782).
    fn add_srv_targets(&self, answer: &mut Answer, from: usize) {
        let targets: Vec<Name> = answer.answers[from..]
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some(srv.target.clone()),
                _ => None,
            })
            .collect();
        let mut seen: Vec<&Name> = Vec::new();
        for target in &targets {
            if seen.contains(&target) {
                continue;
            }
            seen.push(target);
            if let Some(entry) = self.table.get(&LowerName::new(target)) {
                for data in entry.records() {
                    if matches!(data, Data::A(_) | Data::Aaaa(_)) {
                        answer
                            .additionals
                            .push(self.record(target.clone(), data.to_rdata()));
                    }
                }
            }
        }
    }

    fn answer_apex(&self, qtype: RecordType, answer: &mut Answer) {
        let apex = Name::from(&self.apex);
        let ns_name = self.namer.name_server();
        let mut any = false;
        if matches!(qtype, RecordType::SOA | RecordType::ANY) {
            answer.answers.push(self.soa(&self.apex));
            any = true;
        }
        if matches!(qtype, RecordType::NS | RecordType::ANY)
            && let Some(ns_name) = &ns_name
        {
            answer
                .answers
                .push(self.record(apex.clone(), RData::NS(NS(ns_name.clone()))));
            if let Some(entry) = self.table.get(&LowerName::new(ns_name)) {
                for data in entry.records() {
                    answer
                        .additionals
                        .push(self.record(ns_name.clone(), data.to_rdata()));
                }
            }
            any = true;
        }
        if !any {
            self.negative(answer, ResponseCode::NoError);
        }
    }

    /// `svc.<domain>` and `pod.<domain>` always exist; with insecure pod records so does every
    /// `<ns>.pod.<domain>`.
    fn always_exists(&self, name: &LowerName) -> bool {
        let depth = name.num_labels().saturating_sub(self.apex.num_labels());
        let label = |i: usize| name.iter().nth(i).map(|l| l.to_ascii_lowercase());
        match depth {
            1 => matches!(label(0).as_deref(), Some(b"svc" | b"pod")),
            2 => {
                self.config.pod_records == PodRecords::Insecure
                    && label(1).as_deref() == Some(b"pod")
            }
            _ => false,
        }
    }

    /// With insecure pod records, `<a-b-c-d>.<ns>.pod.<domain>` spells its own address.
    fn insecure_pod_address(&self, name: &LowerName) -> Option<IpAddr> {
        if self.config.pod_records != PodRecords::Insecure
            || name.num_labels() != self.apex.num_labels() + 3
        {
            return None;
        }
        let mut labels = name.iter();
        let ip = std::str::from_utf8(labels.next()?).ok()?;
        let _namespace = labels.next()?;
        if !labels.next()?.eq_ignore_ascii_case(b"pod") {
            return None;
        }
        parse_dashed(ip)
    }

    fn answer_reverse(&self, qname: &LowerName, qtype: RecordType, arpa: &LowerName) -> Outcome {
        // Only reverse names of known cluster and pod IPs are ours; the rest fall through to the
        // upstream resolvers (CoreDNS's `fallthrough in-addr.arpa ip6.arpa`).
        let Some(entry) = self.table.get(qname).filter(|e| !e.is_empty_non_terminal()) else {
            return Outcome::Forward;
        };
        let mut answer = Answer::default();
        if matches!(qtype, RecordType::PTR | RecordType::ANY) {
            // A Service's or endpoint's name is more useful than a pod's: drop pod names when
            // both are known for an address.
            let pod_domain = self.namer.name(&["pod"]);
            let is_pod = |d: &Data| match (d, &pod_domain) {
                (Data::Ptr(target), Some(pod)) => pod.zone_of(target),
                _ => false,
            };
            let has_service_name = entry.records().any(|d| !is_pod(d));
            for data in entry.records() {
                if has_service_name && is_pod(data) {
                    continue;
                }
                answer
                    .answers
                    .push(self.record(Name::from(qname), data.to_rdata()));
            }
        }
        if answer.answers.is_empty() {
            answer.rcode = ResponseCode::NoError;
            answer.authorities.push(self.soa(arpa));
        }
        Outcome::Answer(answer)
    }
}

fn has_wildcard_label(name: &LowerName) -> bool {
    name.iter().any(|label| label == b"*")
}
