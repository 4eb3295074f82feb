//! The one way the tests state an expected lookup: an [`Expect`], compared whole with what the
//! pipeline reported.
//!
//! A test pins down as many fields as it means to: [`Expect::of`] reads every field of a
//! reported lookup, [`Expect::of_json`] the DoH fields of its JSON form (the output schema), and
//! [`summary`] only qname, qtype, status and answers. The fields a reading leaves out stay at
//! their default on both sides, so the expectation names just what is checked.

use doh_trace::lookup::Lookup;
use serde_json::Value;

/// The parts of a lookup the tests pin down.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expect {
    pub qname: Option<String>,
    pub qtype: Option<String>,
    pub status: String,
    pub answers: Vec<String>,
    pub rcode: Option<String>,
    pub method: Option<String>,
    pub http_version: Option<&'static str>,
    pub stream_id: Option<u32>,
    pub url: Option<String>,
    pub authority: Option<String>,
    pub headers_known: Option<bool>,
    pub http_status: Option<u16>,
    pub latency_ms: Option<f64>,
    pub dns_id: Option<u16>,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub server: Option<String>,
}

impl Expect {
    /// Every field of a reported lookup.
    pub fn of(l: &Lookup) -> Expect {
        Expect {
            qname: l.qname.as_deref().map(str::to_owned),
            qtype: l.qtype.as_deref().map(str::to_owned),
            status: l.status.as_str().to_owned(),
            answers: l.answers.to_vec(),
            rcode: l.rcode.as_deref().map(str::to_owned),
            method: l.method.as_deref().map(str::to_owned),
            http_version: l.http_version,
            stream_id: l.stream_id,
            url: l.url.as_deref().map(str::to_owned),
            authority: l.authority.as_deref().map(str::to_owned),
            headers_known: l.headers_known,
            http_status: l.http_status,
            latency_ms: l.latency_ms,
            dns_id: l.dns_id,
            pid: l.pid,
            tid: l.tid,
            comm: l.comm.to_string(),
            server: l.server.as_ref().map(|s| format!("{}:{}", s.ip, s.port)),
        }
    }

    /// The DoH fields of a lookup as its JSON form shows them: stream id, qname, qtype, status
    /// and DNS id (all required), answers ([`short`]ened), HTTP status, rcode, method, authority
    /// and URL. The other fields stay at their default.
    pub fn of_json(l: &Lookup) -> Expect {
        let v = serde_json::to_value(l).unwrap();
        let s = |k: &str| v[k].as_str().map(str::to_string);
        Expect {
            stream_id: Some(u32::try_from(v["stream_id"].as_u64().unwrap()).unwrap()),
            qname: Some(s("qname").unwrap()),
            qtype: Some(s("qtype").unwrap()),
            status: s("status").unwrap(),
            answers: json_answers(&v),
            http_status: v["http_status"].as_u64().map(|c| u16::try_from(c).unwrap()),
            rcode: s("rcode"),
            method: s("method"),
            dns_id: Some(u16::try_from(v["dns_id"].as_u64().unwrap()).unwrap()),
            authority: s("authority"),
            url: s("url"),
            ..Default::default()
        }
    }

    /// A summary: only qname, qtype, status and answers.
    pub fn brief(qname: &str, qtype: &str, status: &str, answers: &[&str]) -> Expect {
        Expect {
            qname: Some(qname.into()),
            qtype: Some(qtype.into()),
            status: status.into(),
            answers: answers.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }
    }

    /// Only what a summary compares: qname, qtype, status and answers.
    pub fn summarised(&self) -> Expect {
        Expect {
            qname: self.qname.clone(),
            qtype: self.qtype.clone(),
            status: self.status.clone(),
            answers: self.answers.clone(),
            ..Default::default()
        }
    }

    /// The same with long answers [`short`]ened.
    pub fn shortened(mut self) -> Expect {
        self.answers = self.answers.iter().map(|a| short(a)).collect();
        self
    }

    /// These answers ([`short`]ened, as [`Expect::of_json`] reads them).
    pub fn answers(mut self, answers: &[&str]) -> Expect {
        self.answers = answers.iter().map(|s| short(s)).collect();
        self
    }

    /// Asked with GET.
    pub fn get(mut self) -> Expect {
        self.method = Some("GET".into());
        self
    }

    /// Over HTTP/2 on `stream`.
    pub fn h2(mut self, stream: u32) -> Expect {
        self.http_version = Some("h2");
        self.stream_id = Some(stream);
        self
    }

    pub fn latency(mut self, ms: Option<f64>) -> Expect {
        self.latency_ms = ms;
        self
    }

    /// DNS message id `id`.
    pub fn id(mut self, id: u16) -> Expect {
        self.dns_id = Some(id);
        self
    }

    /// Ended without an answer (`timeout`, `unanswered`).
    pub fn ended(mut self, status: &str) -> Expect {
        self.status = status.into();
        self.rcode = None;
        self.answers.clear();
        self.http_status = None;
        self.latency_ms = None;
        self
    }

    /// Ended unanswered.
    pub fn unanswered(self) -> Expect {
        self.ended("unanswered")
    }

    /// Answered with HTTP status `code` and no DNS answer.
    pub fn http_error(mut self, code: u16) -> Expect {
        self.status = "http-error".into();
        self.http_status = Some(code);
        self.rcode = None;
        self.answers.clear();
        self
    }

    /// Its stream was reset, after a response head with `http_status` if any.
    pub fn reset(mut self, http_status: Option<u16>) -> Expect {
        self.status = "reset".into();
        self.http_status = http_status;
        self.rcode = None;
        self.answers.clear();
        self
    }

    /// The order of [`summaries`]: qname, qtype, status, answers.
    pub fn summary_key(&self) -> (&str, &str, &str, &[String]) {
        (
            self.qname.as_deref().unwrap_or_default(),
            self.qtype.as_deref().unwrap_or_default(),
            self.status.as_str(),
            self.answers.as_slice(),
        )
    }
}

fn json_answers(v: &Value) -> Vec<String> {
    v["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| short(a.as_str().unwrap()))
        .collect()
}

/// Long answers (the big TXT records) are compared by length and checksum, so that a failing
/// assertion stays readable.
pub fn short(s: &str) -> String {
    if s.len() <= 120 {
        return s.to_string();
    }
    let sum = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("{}… ({} chars, fnv {sum:016x})", &s[..60], s.len())
}

/// Summaries ([`Expect::summarised`]) of `lookups`, sorted, for order-independent comparison.
pub fn summary(lookups: &[Lookup]) -> Vec<Expect> {
    summaries(lookups.iter().map(Expect::of))
}

/// Summaries of expectations, sorted by qname, qtype, status and answers.
pub fn summaries(v: impl IntoIterator<Item = Expect>) -> Vec<Expect> {
    let mut v: Vec<Expect> = v.into_iter().map(|e| e.summarised()).collect();
    v.sort_by(|a, b| a.summary_key().cmp(&b.summary_key()));
    v
}
