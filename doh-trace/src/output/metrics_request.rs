//! What a scraper asked the metrics server ([`super::metrics`]): the request line of the bytes
//! read from it, which anyone who can reach the port chose. Only `GET /metrics` (any query
//! string) is served; the rest of the request is not looked at beyond finding its end.

/// Largest request (line and headers) read from a scraper.
pub const MAX_REQUEST: usize = 8 * 1024;

/// The answer a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scrape {
    /// `GET /metrics`: 200 with the metrics.
    Metrics,
    /// Another method on `/metrics`: 405.
    WrongMethod,
    /// Another path: 404.
    NotFound,
    /// No complete head within [`MAX_REQUEST`] bytes (or before the scraper stopped): 400.
    Bad,
}

/// Whether `buf` holds a whole request head (it ends with an empty line).
pub fn head_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n")
}

/// How the request read into `buf` (at most [`MAX_REQUEST`] bytes of it) is answered.
pub fn route(buf: &[u8]) -> Scrape {
    let buf = buf.get(..MAX_REQUEST).unwrap_or(buf);
    if !head_complete(buf) {
        return Scrape::Bad;
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next(), parts.next());
    let path = target.map(|t| t.split(|&b| b == b'?').next().unwrap_or_default());
    match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => Scrape::Metrics,
        (Some(_), Some(b"/metrics")) => Scrape::WrongMethod,
        _ => Scrape::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_what_a_scraper_sends() {
        let prom = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nUser-Agent: Prometheus/2.45.0\r\nAccept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
        assert_eq!(route(prom), Scrape::Metrics);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Scrape::Metrics);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Scrape::WrongMethod
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Scrape::NotFound);
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\n"), Scrape::Bad);
        assert_eq!(route(b""), Scrape::Bad);
        assert_eq!(route(b"\r\n\r\n"), Scrape::NotFound);
        // The end of the head past the bound does not count.
        let mut long = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_REQUEST, b'a');
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(route(&long), Scrape::Bad);
    }
}
