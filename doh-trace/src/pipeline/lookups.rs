//! Judging a finished exchange: a lookup (with its question, answer and outcome), not DNS at
//! all, or evidence that this process is the server side.

use std::net::SocketAddr;

use crate::{
    clock::Clock,
    counters::DecodeCounters,
    dns::{self, DnsSummary},
    doh,
    lookup::{Endpoint, Lookup, Status},
};

use super::doh_h2::{Finished, Outcome};

/// What a finished exchange was.
#[derive(Debug)]
pub enum Judged {
    Lookup(Box<Lookup>),
    /// Headers unknown and neither body is DNS: an ordinary request on a joined connection.
    NotDns,
    /// This process sent the DNS answer (or received the query): it is the server.
    ServerSide,
    /// A DoH request whose query could not be recovered (counted).
    Dropped,
}

/// Builds the lookup record of a finished exchange, if it was one.
#[allow(clippy::too_many_arguments)]
pub fn to_lookup(
    f: &Finished,
    pid: u32,
    comm: &str,
    uid: u32,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    clock: &Clock,
    counters: &mut DecodeCounters,
) -> Judged {
    let s = &f.stream;
    if s.oversized {
        counters.oversized_bodies += 1;
    }
    let query = dns::summarize(s.query()).ok();
    let answer = dns::summarize(&s.answer).ok();
    let question: DnsSummary = if s.headers_known() {
        match query {
            Some(q) if !q.is_response => q,
            _ => {
                counters.bad_queries += 1;
                return Judged::Dropped;
            }
        }
    } else {
        // Joined mid-stream: the bodies alone say what this was.
        if query.as_ref().is_some_and(|q| q.is_response)
            || answer.as_ref().is_some_and(|a| !a.is_response)
        {
            return Judged::ServerSide;
        }
        match (query, answer.as_ref()) {
            (Some(q), _) => q,
            // A GET: the question is only in the answer's question section.
            (None, Some(a)) => DnsSummary {
                answers: Vec::new(),
                ..a.clone()
            },
            (None, None) => return Judged::NotDns,
        }
    };
    let http_status = s.response.as_ref().and_then(|r| r.status_code());
    let mut rcode = None;
    let mut answers = Vec::new();
    let status = match f.outcome {
        Outcome::Reset => Status::Reset,
        Outcome::Unanswered => Status::Unanswered,
        Outcome::TimedOut => Status::Timeout,
        Outcome::Answered => match (http_status, &answer) {
            (Some(code), _) if !(200..300).contains(&code) => Status::HttpError,
            (_, Some(a)) if a.is_response => {
                rcode = Some(a.rcode.clone());
                answers = a.answers.clone();
                Status::Ok
            }
            _ => {
                counters.bad_answers += 1;
                Status::MalformedAnswer
            }
        },
    };
    let sent = s.sent.unwrap_or(s.started);
    let latency_ms = (f.outcome == Outcome::Answered)
        .then(|| f.ended.ts_ns.saturating_sub(sent.ts_ns) as f64 / 1e6);
    Judged::Lookup(Box::new(Lookup {
        time: clock.rfc3339(f.ended.ts_ns),
        pid,
        tid: s.started.tid,
        uid,
        comm: comm.to_string(),
        transport: "doh",
        server: peer.map(Endpoint::from),
        client: local.map(Endpoint::from),
        authority: s.request.authority.clone(),
        url: doh::url(&s.request),
        method: s.request.method.clone(),
        http_version: "h2",
        headers_known: s.headers_known(),
        stream_id: s.stream_id,
        qname: question.qname,
        qtype: question.qtype,
        dns_id: question.id,
        rcode,
        answers,
        latency_ms,
        status,
        http_status,
    }))
}
