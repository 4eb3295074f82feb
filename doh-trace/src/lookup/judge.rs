//! Judging a finished exchange: a lookup (with its question, answer and outcome), not DNS at
//! all, or evidence that this process is the server side.

use std::sync::Arc;

use crate::{
    clock::Clock,
    counters::DecodeCounters,
    lookup::{Endpoint, Lookup, Status},
    proto::{
        dns::{
            self,
            client::{DnsFinished, DnsOutcome},
            DnsSummary,
        },
        doh::{
            self,
            exchange::{Finished, Outcome},
            json::parse_json_answer,
            DohRequest,
        },
    },
};

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

/// What is known of the connection an exchange used.
pub struct ConnFacts<'a> {
    pub pid: u32,
    pub comm: &'a Arc<str>,
    pub uid: u32,
    /// The resolver end (the connection's peer), when known.
    pub server: Option<Endpoint>,
    /// The local end, when known.
    pub client: Option<Endpoint>,
    /// The bytes were TLS plaintext (so the URL scheme is https unless the request said).
    pub tls: bool,
    /// The process's context.
    pub context: &'a Arc<crate::process::context::ProcessContext>,
}

/// Builds the lookup record of a finished exchange, if it was one. The exchange's DNS bytes
/// move into the record; its URL is `last_url` when the connection's previous request had
/// the same one ([`doh::shared_url`]).
pub fn to_lookup(
    f: Finished,
    conn: &ConnFacts<'_>,
    last_url: &mut Option<Arc<str>>,
    clock: &Clock,
    counters: &mut DecodeCounters,
) -> Judged {
    let mut s = f.stream;
    if s.oversized {
        counters.oversized_bodies += 1;
    }
    let json = matches!(s.form, Some(DohRequest::Json(_))) || s.response.is_some_and(|r| r.json);
    let query = dns::summarize(s.query()).ok();
    let answer = if json {
        parse_json_answer(&s.answer).ok()
    } else {
        match &query {
            Some(asked) => dns::summarize_reply(&s.answer, s.query(), asked),
            None => dns::summarize(&s.answer),
        }
        .ok()
    };
    let question: DnsSummary = if let Some(DohRequest::Json(q)) = &s.form {
        DnsSummary {
            id: 0,
            is_response: false,
            qname: q.qname.as_str().into(),
            qtype: q.qtype.clone(),
            rcode: Default::default(),
            answers: Default::default(),
        }
    } else if s.headers_known() {
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
                answers: Default::default(),
                ..a.clone()
            },
            (None, None) => return Judged::NotDns,
        }
    };
    let http_status = s.response.and_then(|r| r.status);
    let mut rcode = None;
    let mut answers = Default::default();
    let status = match f.outcome {
        Outcome::Reset => Status::Reset,
        Outcome::Unanswered => Status::Unanswered,
        Outcome::TimedOut => Status::Timeout,
        Outcome::Answered => match (http_status, answer) {
            (Some(code), _) if !(200..300).contains(&code) => Status::HttpError,
            (_, Some(a)) if a.is_response => {
                rcode = Some(a.rcode);
                answers = a.answers;
                Status::Ok
            }
            _ => {
                counters.bad_answers += 1;
                Status::MalformedAnswer
            }
        },
    };
    // A request's end reported after its answer (see `DohStream::answered`) was sent before
    // it: its start is then the closest known time.
    let sent = s
        .sent
        .filter(|t| t.ts_ns <= f.ended.ts_ns)
        .unwrap_or(s.started);
    let latency_ms = (f.outcome == Outcome::Answered)
        .then(|| f.ended.ts_ns.saturating_sub(sent.ts_ns) as f64 / 1e6);
    Judged::Lookup(Box::new(Lookup {
        time: clock.rfc3339(f.ended.ts_ns),
        pid: conn.pid,
        tid: s.started.tid,
        uid: conn.uid,
        comm: conn.comm.clone(),
        transport: "doh",
        server: conn.server.clone(),
        client: conn.client.clone(),
        url: doh::shared_url(
            last_url,
            &s.request,
            if conn.tls { "https" } else { "http" },
        ),
        authority: s.request.authority.take(),
        method: s.request.method.take(),
        http_version: Some(s.http_version),
        headers_known: Some(s.headers_known()),
        stream_id: (s.http_version == "h2").then_some(s.stream_id),
        qname: Some(question.qname),
        qtype: Some(question.qtype),
        dns_id: Some(question.id),
        rcode,
        answers,
        latency_ms,
        status,
        http_status,
        context: conn.context.clone(),
        dns_query: s.take_query(),
        dns_answer: (!json && status == Status::Ok).then(|| std::mem::take(&mut s.answer)),
        sent_ns: sent.ts_ns,
        ..Default::default()
    }))
}

/// The lookup record of a classic DNS or DoT exchange.
pub fn dns_lookup(
    f: &DnsFinished,
    conn: &ConnFacts<'_>,
    transport: &'static str,
    clock: &Clock,
) -> Lookup {
    let q = &f.query;
    let (status, rcode, answers) = match (&f.outcome, &f.answer) {
        (DnsOutcome::Answered, Some((a, _))) => {
            (Status::Ok, Some(a.rcode.clone()), a.answers.clone())
        }
        (DnsOutcome::TimedOut, _) => (Status::Timeout, None, Default::default()),
        _ => (Status::Unanswered, None, Default::default()),
    };
    Lookup {
        time: clock.rfc3339(f.ended.ts_ns),
        pid: conn.pid,
        tid: q.sent.tid,
        uid: conn.uid,
        comm: conn.comm.clone(),
        transport,
        server: q.server.map(Endpoint::from).or_else(|| conn.server.clone()),
        client: conn.client.clone(),
        qname: Some(q.question.qname.clone()),
        qtype: Some(q.question.qtype.clone()),
        dns_id: Some(q.question.id),
        rcode,
        answers,
        latency_ms: (f.outcome == DnsOutcome::Answered)
            .then(|| f.ended.ts_ns.saturating_sub(q.sent.ts_ns) as f64 / 1e6),
        status,
        context: conn.context.clone(),
        dns_query: q.bytes.clone(),
        dns_answer: f.answer.as_ref().map(|(_, bytes)| bytes.clone()),
        sent_ns: q.sent.ts_ns,
        ..Default::default()
    }
}
