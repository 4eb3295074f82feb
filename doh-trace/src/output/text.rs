//! The default output: one aligned text line per lookup (and per connection record with
//! `--connections`), under a header. Every column is escaped ([`escape_controls`]): names,
//! answers, authorities and process names come from the network and from other users.

use super::escape::escape_controls;
use crate::lookup::{connection::ConnectionRecord, Lookup};

/// The column header of [`lookup_line`].
pub const TEXT_HEADER: &str = "TIME             PID PROCESS         TRANSPORT  RESOLVER              NAME                           TYPE  RESULT     ANSWERS                        LATENCY";

/// Most answers shown in a text line; the rest are counted.
const SHOWN_ANSWERS: usize = 2;

/// `s` with its control characters escaped, padded to `width`, or cut with a trailing `…`
/// when longer.
fn column(s: &str, width: usize) -> String {
    let s = escape_controls(s);
    if s.chars().count() <= width {
        format!("{s:<width$}")
    } else {
        let cut: String = s.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// One lookup as an aligned line under [`TEXT_HEADER`] (the default output); `color` wraps
/// the result in ANSI colours (red for failures, yellow for NXDOMAIN).
pub fn lookup_line(l: &Lookup, color: bool) -> String {
    let time = l.time.get(11..23).unwrap_or(&l.time);
    let server = l
        .server
        .as_ref()
        .map_or_else(|| "?".to_string(), |s| fmt_endpoint(&s.ip, s.port));
    // The authority (or TLS server name) is shown only when it says more than the address.
    let resolver = match l.authority.as_deref().or(l.server_name.as_deref()) {
        Some(a) if a != server => format!("{server} ({a})"),
        _ => server,
    };
    let mut answers = l
        .answers
        .iter()
        .take(SHOWN_ANSWERS)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if l.answers.len() > SHOWN_ANSWERS {
        answers.push_str(&format!(" +{}", l.answers.len() - SHOWN_ANSWERS));
    }
    if answers.is_empty() {
        answers.push('-');
    }
    if let Some(bytes) = l.bytes_sent.zip(l.bytes_received) {
        // Opaque: no question or answer, only the connection.
        answers = format!("{}B out, {}B in", bytes.0, bytes.1);
    }
    if let Some(up) = l.upstream.as_ref().and_then(|u| u.first()) {
        answers = format!("{answers} ⇢ {} {}", up.transport, up.comm);
    }
    // A capture knows no process: the client's address stands where the process would.
    let (pid, comm) = match (l.has_process(), &l.client) {
        (true, _) => (l.pid.to_string(), l.comm.to_string()),
        (false, Some(c)) => ("-".to_string(), fmt_endpoint(&c.ip, c.port)),
        (false, None) => ("-".to_string(), "?".to_string()),
    };
    let latency = l
        .latency_ms
        .map_or_else(|| "-".to_string(), |ms| format!("{ms:.1}ms"));
    let result = column(&l.result(), 10);
    let result = match (color, l.failed(), l.rcode.as_deref()) {
        (false, _, _) => result,
        (true, true, _) => format!("\x1b[1;31m{result}\x1b[0m"),
        (true, false, Some("NXDOMAIN")) => format!("\x1b[33m{result}\x1b[0m"),
        (true, false, _) => result,
    };
    format!(
        "{time} {pid:>7} {comm} {transport} {resolver} {qname} {qtype} {result} {answers} {latency:>8}",
        comm = column(&comm, 15),
        transport = column(l.transport, 10),
        resolver = column(&resolver, 21),
        qname = column(l.qname.as_deref().unwrap_or("?"), 30),
        qtype = column(l.qtype.as_deref().unwrap_or("-"), 5),
        answers = column(&answers, 29),
    )
}

/// One connection record as a text line (with `--connections`).
pub fn connection_line(c: &ConnectionRecord) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}ms"));
    let server = c
        .server
        .as_ref()
        .map_or_else(|| "?".to_string(), |s| format!("{}:{}", s.ip, s.port));
    format!(
        "{} {:>7} {:<15} {} {} {} lookups={} handshake={} lifetime={} idle={} closed-by={}{}",
        c.time.get(11..23).unwrap_or(&c.time),
        c.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
        match (&c.comm, &c.client) {
            (Some(comm), _) => escape_controls(comm).into_owned(),
            (None, Some(client)) => fmt_endpoint(&client.ip, client.port),
            (None, None) => "?".to_string(),
        },
        c.transport,
        server,
        c.http_version.unwrap_or("-"),
        c.lookups,
        ms(c.handshake_ms),
        ms(Some(c.lifetime_ms)),
        ms(Some(c.idle_ms)),
        serde_json::to_value(c.closed_by)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        if c.joined_mid_stream {
            " (joined mid-stream)"
        } else {
            ""
        },
    )
}

fn fmt_endpoint(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::sample_lookup;

    #[test]
    fn text_lines_line_up_under_the_header() {
        let mut l = sample_lookup("www.doh.test", "A", Some("NOERROR"), &["192.0.2.10"]);
        l.transport = "doh-opaque";
        let line = lookup_line(&l, false);
        assert_eq!(
            line.chars().count(),
            TEXT_HEADER.len(),
            "{line}\n{TEXT_HEADER}"
        );
        let chars: Vec<char> = line.chars().collect();
        for col in [
            "PROCESS",
            "TRANSPORT",
            "RESOLVER",
            "NAME",
            "TYPE",
            "RESULT",
            "ANSWERS",
        ] {
            let at = TEXT_HEADER.find(col).unwrap();
            assert_eq!(
                chars[at - 1],
                ' ',
                "a column starts where {col} does:\n{line}\n{TEXT_HEADER}"
            );
            assert_ne!(
                chars[at], ' ',
                "{col} content starts there:\n{line}\n{TEXT_HEADER}"
            );
        }
    }
}
