//! Well-known public encrypted-DNS resolvers (DoH, DoT, DoQ), by host name and by address, so
//! that a connection whose plaintext cannot be seen can still be reported as "probably DNS, to
//! this provider".
//!
//! The built-in table ([`ResolverList::builtin`]) holds the big public services; users add
//! their own (a company resolver, a provider we do not list) from a file with
//! [`ResolverList::load_file`]. Host names match case-insensitively with any trailing dot
//! ignored, `*.suffix` entries match every name strictly below `suffix`, addresses match
//! exactly with IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) treated as IPv4.

use std::collections::HashMap;
use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::proto::tls::client_hello::is_host_name;

const GOOGLE: &str = "Google Public DNS";
const CLOUDFLARE: &str = "Cloudflare DNS";
const QUAD9: &str = "Quad9";
const OPENDNS: &str = "OpenDNS (Cisco)";
const ADGUARD: &str = "AdGuard DNS";
const NEXTDNS: &str = "NextDNS";
const CLEANBROWSING: &str = "CleanBrowsing";
const MULLVAD: &str = "Mullvad DNS";
const CONTROL_D: &str = "Control D";
const DNS_SB: &str = "DNS.SB";
const COMCAST: &str = "Comcast Xfinity";

/// `(pattern, provider)`: the same syntax as a line of a user file.
const BUILTIN: &[(&str, &str)] = &[
    ("dns.google", GOOGLE),
    ("dns.google.com", GOOGLE),
    ("8.8.8.8", GOOGLE),
    ("8.8.4.4", GOOGLE),
    ("2001:4860:4860::8888", GOOGLE),
    ("2001:4860:4860::8844", GOOGLE),
    ("cloudflare-dns.com", CLOUDFLARE),
    ("one.one.one.one", CLOUDFLARE),
    ("1dot1dot1dot1.cloudflare-dns.com", CLOUDFLARE),
    ("mozilla.cloudflare-dns.com", CLOUDFLARE),
    ("chrome.cloudflare-dns.com", CLOUDFLARE),
    ("security.cloudflare-dns.com", CLOUDFLARE),
    ("family.cloudflare-dns.com", CLOUDFLARE),
    ("1.1.1.1", CLOUDFLARE),
    ("1.0.0.1", CLOUDFLARE),
    ("1.1.1.2", CLOUDFLARE),
    ("1.0.0.2", CLOUDFLARE),
    ("1.1.1.3", CLOUDFLARE),
    ("1.0.0.3", CLOUDFLARE),
    ("2606:4700:4700::1111", CLOUDFLARE),
    ("2606:4700:4700::1001", CLOUDFLARE),
    ("2606:4700:4700::1112", CLOUDFLARE),
    ("2606:4700:4700::1002", CLOUDFLARE),
    ("2606:4700:4700::1113", CLOUDFLARE),
    ("2606:4700:4700::1003", CLOUDFLARE),
    ("dns.quad9.net", QUAD9),
    ("dns9.quad9.net", QUAD9),
    ("dns10.quad9.net", QUAD9),
    ("dns11.quad9.net", QUAD9),
    ("9.9.9.9", QUAD9),
    ("149.112.112.112", QUAD9),
    ("9.9.9.10", QUAD9),
    ("149.112.112.10", QUAD9),
    ("9.9.9.11", QUAD9),
    ("149.112.112.11", QUAD9),
    ("2620:fe::fe", QUAD9),
    ("2620:fe::9", QUAD9),
    ("2620:fe::10", QUAD9),
    ("2620:fe::fe:10", QUAD9),
    ("2620:fe::11", QUAD9),
    ("2620:fe::fe:11", QUAD9),
    ("doh.opendns.com", OPENDNS),
    ("dns.opendns.com", OPENDNS),
    ("doh.familyshield.opendns.com", OPENDNS),
    ("208.67.222.222", OPENDNS),
    ("208.67.220.220", OPENDNS),
    ("208.67.222.123", OPENDNS),
    ("208.67.220.123", OPENDNS),
    ("2620:119:35::35", OPENDNS),
    ("2620:119:53::53", OPENDNS),
    ("dns.adguard-dns.com", ADGUARD),
    ("dns.adguard.com", ADGUARD),
    ("unfiltered.adguard-dns.com", ADGUARD),
    ("family.adguard-dns.com", ADGUARD),
    ("dns-unfiltered.adguard.com", ADGUARD),
    ("dns-family.adguard.com", ADGUARD),
    ("94.140.14.14", ADGUARD),
    ("94.140.15.15", ADGUARD),
    ("94.140.14.140", ADGUARD),
    ("94.140.14.141", ADGUARD),
    ("94.140.14.15", ADGUARD),
    ("94.140.15.16", ADGUARD),
    ("2a10:50c0::ad1:ff", ADGUARD),
    ("2a10:50c0::ad2:ff", ADGUARD),
    ("dns.nextdns.io", NEXTDNS),
    ("*.dns.nextdns.io", NEXTDNS),
    ("doh.cleanbrowsing.org", CLEANBROWSING),
    ("security-filter-dns.cleanbrowsing.org", CLEANBROWSING),
    ("family-filter-dns.cleanbrowsing.org", CLEANBROWSING),
    ("adult-filter-dns.cleanbrowsing.org", CLEANBROWSING),
    ("dns.mullvad.net", MULLVAD),
    ("*.dns.mullvad.net", MULLVAD),
    ("freedns.controld.com", CONTROL_D),
    ("*.controld.com", CONTROL_D),
    ("doh.dns.sb", DNS_SB),
    ("185.222.222.222", DNS_SB),
    ("45.11.45.11", DNS_SB),
    ("doh.xfinity.com", COMCAST),
];

/// Largest resolver file read (a list of every public resolver is well under 1 MiB).
pub const MAX_FILE: u64 = 4 << 20;

/// Why a resolver list could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolverListError {
    /// The first word of a line is not a host name, `*.suffix` or IP address.
    #[error("line {line}: {pattern:?} is not a host name, *.suffix or IP address")]
    BadPattern { line: usize, pattern: String },
    /// A line names a resolver but no provider.
    #[error("line {line}: no provider label after {pattern:?}")]
    MissingProvider { line: usize, pattern: String },
    /// The file could not be read.
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE`].
    #[error("{}: larger than {MAX_FILE} bytes", path.display())]
    TooLarge { path: PathBuf },
    /// The file was read, one of its lines is wrong.
    #[error("{}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<ResolverListError>,
    },
}

/// Known encrypted-DNS resolvers: host names, `*.suffix` wildcards and addresses, each with
/// the label of its provider. A later entry for the same name, suffix or address replaces an
/// earlier one, so a user file can relabel a built-in entry.
#[derive(Debug, Clone, Default)]
pub struct ResolverList {
    /// Provider labels; the maps hold indexes into this.
    providers: Vec<Box<str>>,
    /// Where each label is in `providers`.
    provider_index: HashMap<Box<str>, usize>,
    /// Lower-case names without a trailing dot.
    names: HashMap<Box<str>, usize>,
    /// `*.suffix` entries, keyed by lower-case `suffix`.
    suffixes: HashMap<Box<str>, usize>,
    /// IPv4-mapped IPv6 addresses are stored as IPv4.
    addrs: HashMap<IpAddr, usize>,
}

enum Pattern {
    Name(String),
    Suffix(String),
    Addr(IpAddr),
}

impl ResolverList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in table of public DoH/DoT/DoQ resolvers.
    pub fn builtin() -> Self {
        let mut list = Self::new();
        for &(pattern, provider) in BUILTIN {
            let pattern = parse_pattern(pattern).expect("built-in resolver patterns are valid");
            list.insert(pattern, provider);
        }
        list
    }

    /// Adds the entries of a user file: one per line, `<host-name | *.suffix | IP> <provider
    /// label...>`; `#` starts a comment, blank lines are ignored. On error nothing is added and
    /// the error names the (1-based) line.
    pub fn extend_from_str(&mut self, text: &str) -> Result<(), ResolverListError> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let content = line.split_once('#').map_or(line, |(before, _)| before);
            let mut words = content.split_whitespace();
            let Some(word) = words.next() else { continue };
            let pattern = parse_pattern(word).ok_or_else(|| ResolverListError::BadPattern {
                line: line_no,
                pattern: word.to_owned(),
            })?;
            let provider = words.collect::<Vec<_>>().join(" ");
            if provider.is_empty() {
                return Err(ResolverListError::MissingProvider {
                    line: line_no,
                    pattern: word.to_owned(),
                });
            }
            entries.push((pattern, provider));
        }
        for (pattern, provider) in entries {
            self.insert(pattern, &provider);
        }
        Ok(())
    }

    /// [`extend_from_str`](Self::extend_from_str) on the contents of `path`.
    /// At most [`MAX_FILE`] bytes are read.
    pub fn load_file(&mut self, path: &Path) -> Result<(), ResolverListError> {
        let read_error = |source| ResolverListError::Read {
            path: path.to_owned(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(read_error)?
            .take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        if text.len() as u64 > MAX_FILE {
            return Err(ResolverListError::TooLarge {
                path: path.to_owned(),
            });
        }
        self.extend_from_str(&text)
            .map_err(|e| ResolverListError::InFile {
                path: path.to_owned(),
                source: Box::new(e),
            })
    }

    /// The provider of a resolver host name (case-insensitive, trailing dot ignored): an exact
    /// entry first, else the longest matching `*.suffix`. An IP literal (`192.0.2.1`, `::1`,
    /// `[::1]`) is looked up with [`match_addr`](Self::match_addr).
    pub fn match_name(&self, host: &str) -> Option<&str> {
        if let Some(ip) = parse_ip_literal(host) {
            return self.match_addr(ip);
        }
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if let Some(&i) = self.names.get(host.as_str()) {
            return Some(&self.providers[i]);
        }
        // Every proper suffix after a dot, longest first.
        let mut rest = host.as_str();
        while let Some((_, suffix)) = rest.split_once('.') {
            if let Some(&i) = self.suffixes.get(suffix) {
                return Some(&self.providers[i]);
            }
            rest = suffix;
        }
        None
    }

    /// The provider of a resolver address.
    pub fn match_addr(&self, ip: IpAddr) -> Option<&str> {
        self.addrs.get(&canonical(ip)).map(|&i| &*self.providers[i])
    }

    fn insert(&mut self, pattern: Pattern, provider: &str) {
        let i = match self.provider_index.get(provider) {
            Some(&i) => i,
            None => {
                self.providers.push(provider.into());
                self.provider_index
                    .insert(provider.into(), self.providers.len() - 1);
                self.providers.len() - 1
            }
        };
        match pattern {
            Pattern::Name(name) => self.names.insert(name.into(), i),
            Pattern::Suffix(suffix) => self.suffixes.insert(suffix.into(), i),
            Pattern::Addr(ip) => self.addrs.insert(ip, i),
        };
    }
}

fn parse_pattern(word: &str) -> Option<Pattern> {
    if let Some(ip) = parse_ip_literal(word) {
        return Some(Pattern::Addr(canonical(ip)));
    }
    let (wildcard, name) = match word.strip_prefix("*.") {
        Some(suffix) => (true, suffix),
        None => (false, word),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if !is_host_name(name.as_bytes()) {
        return None;
    }
    let name = name.to_ascii_lowercase();
    Some(if wildcard {
        Pattern::Suffix(name)
    } else {
        Pattern::Name(name)
    })
}

fn parse_ip_literal(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn builtin_patterns_all_parse_and_are_distinct() {
        let list = ResolverList::builtin();
        assert_eq!(
            list.names.len() + list.suffixes.len() + list.addrs.len(),
            BUILTIN.len()
        );
        for &(pattern, provider) in BUILTIN {
            let found = match parse_pattern(pattern).unwrap() {
                Pattern::Addr(a) => list.match_addr(a),
                Pattern::Name(n) => list.match_name(&n),
                Pattern::Suffix(s) => list.match_name(&format!("x.{s}")),
            };
            assert_eq!(found, Some(provider), "{pattern}");
        }
    }

    /// A file of many entries, each with its own provider, loads in time linear in its size
    /// (a label was once looked up by a scan of every label before it: quadratic, minutes for
    /// a file of a few MiB); a file over [`MAX_FILE`] is refused without being read whole.
    #[test]
    fn large_files_load_in_linear_time_and_oversized_ones_are_refused() {
        let text: String = (0..100_000)
            .map(|i| format!("r{i}.example provider number {i}\n"))
            .collect();
        let started = std::time::Instant::now();
        let mut list = ResolverList::new();
        list.extend_from_str(&text).unwrap();
        let took = started.elapsed();
        assert_eq!(list.providers.len(), 100_000);
        assert_eq!(
            list.match_name("r99999.example"),
            Some("provider number 99999")
        );
        assert!(took < std::time::Duration::from_secs(5), "{took:?}");

        let dir = std::env::temp_dir().join(format!("doh-trace-resolvers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(2 * MAX_FILE).unwrap(); // sparse NULs
        let err = ResolverList::new().load_file(&big).unwrap_err();
        assert!(matches!(err, ResolverListError::TooLarge { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn builtin_names() {
        let list = ResolverList::builtin();
        assert_eq!(list.match_name("dns.google"), Some(GOOGLE));
        assert_eq!(list.match_name("DNS.Google."), Some(GOOGLE));
        assert_eq!(
            list.match_name("Mozilla.CloudFlare-DNS.com"),
            Some(CLOUDFLARE)
        );
        assert_eq!(list.match_name("dns.quad9.net."), Some(QUAD9));
        assert_eq!(list.match_name("doh.opendns.com"), Some(OPENDNS));
        assert_eq!(list.match_name("dns.adguard-dns.com"), Some(ADGUARD));
        assert_eq!(
            list.match_name("doh.cleanbrowsing.org"),
            Some(CLEANBROWSING)
        );
        assert_eq!(list.match_name("doh.dns.sb"), Some(DNS_SB));
        assert_eq!(list.match_name("doh.xfinity.com"), Some(COMCAST));
        assert_eq!(list.match_name("google.com"), None);
        assert_eq!(list.match_name("xdns.google"), None);
        assert_eq!(list.match_name("dns.google.evil.example"), None);
        assert_eq!(list.match_name(""), None);
        assert_eq!(list.match_name("."), None);
    }

    #[test]
    fn builtin_wildcards() {
        let list = ResolverList::builtin();
        assert_eq!(list.match_name("dns.nextdns.io"), Some(NEXTDNS));
        assert_eq!(list.match_name("abc123.dns.nextdns.io"), Some(NEXTDNS));
        assert_eq!(
            list.match_name("My-Laptop-abc123.DNS.NextDNS.io."),
            Some(NEXTDNS)
        );
        assert_eq!(list.match_name("a.b.dns.nextdns.io"), Some(NEXTDNS));
        assert_eq!(list.match_name("nextdns.io"), None);
        assert_eq!(list.match_name("xdns.nextdns.io"), None);
        assert_eq!(list.match_name("adblock.dns.mullvad.net"), Some(MULLVAD));
        assert_eq!(list.match_name("dns.mullvad.net"), Some(MULLVAD));
        assert_eq!(list.match_name("freedns.controld.com"), Some(CONTROL_D));
        assert_eq!(list.match_name("dns.controld.com"), Some(CONTROL_D));
        assert_eq!(list.match_name("controld.com"), None);
    }

    #[test]
    fn builtin_addresses() {
        let list = ResolverList::builtin();
        assert_eq!(list.match_addr(ip("8.8.8.8")), Some(GOOGLE));
        assert_eq!(list.match_addr(ip("2001:4860:4860::8844")), Some(GOOGLE));
        assert_eq!(
            list.match_addr(ip("2001:4860:4860:0:0:0:0:8888")),
            Some(GOOGLE)
        );
        assert_eq!(list.match_addr(ip("::ffff:1.1.1.1")), Some(CLOUDFLARE));
        assert_eq!(list.match_addr(ip("::ffff:9.9.9.9")), Some(QUAD9));
        assert_eq!(list.match_addr(ip("2620:fe::fe")), Some(QUAD9));
        assert_eq!(list.match_addr(ip("208.67.220.220")), Some(OPENDNS));
        assert_eq!(list.match_addr(ip("94.140.15.15")), Some(ADGUARD));
        assert_eq!(list.match_addr(ip("8.8.8.9")), None);
        // IPv4-compatible (deprecated, ::a.b.c.d) is not IPv4-mapped.
        assert_eq!(list.match_addr(ip("::8.8.8.8")), None);
        assert_eq!(list.match_addr(ip("127.0.0.1")), None);
        // An IP literal where a host name was expected.
        assert_eq!(list.match_name("1.1.1.1"), Some(CLOUDFLARE));
        assert_eq!(list.match_name("[2606:4700:4700::1111]"), Some(CLOUDFLARE));
    }

    const USER_FILE: &str = "\
# Company resolvers
doh.corp.example      Example Corp DoH   # internal
*.resolvers.corp.example Example Corp   DoH

10.53.0.53            Example Corp DoH
::ffff:10.53.0.54     Example Corp DoH
   # indented comment
dns.google            Google (via corp allow-list)
";

    #[test]
    fn user_file_entries() {
        let mut list = ResolverList::builtin();
        list.extend_from_str(USER_FILE).unwrap();
        assert_eq!(
            list.match_name("DOH.corp.example."),
            Some("Example Corp DoH")
        );
        assert_eq!(
            list.match_name("eu1.resolvers.corp.example"),
            Some("Example Corp DoH")
        );
        assert_eq!(list.match_name("resolvers.corp.example"), None);
        assert_eq!(list.match_addr(ip("10.53.0.53")), Some("Example Corp DoH"));
        assert_eq!(list.match_addr(ip("10.53.0.54")), Some("Example Corp DoH"));
        assert_eq!(
            list.match_addr(ip("::ffff:10.53.0.53")),
            Some("Example Corp DoH")
        );
        // A later entry relabels a built-in one; the rest of the provider is untouched.
        assert_eq!(
            list.match_name("dns.google"),
            Some("Google (via corp allow-list)")
        );
        assert_eq!(list.match_name("dns.google.com"), Some(GOOGLE));
        assert_eq!(
            list.providers
                .iter()
                .filter(|p| &***p == "Example Corp DoH")
                .count(),
            1
        );
    }

    #[test]
    fn longest_wildcard_wins() {
        let mut list = ResolverList::new();
        list.extend_from_str("*.example Outer\n*.inner.example Inner\nx.inner.example Exact")
            .unwrap();
        assert_eq!(list.match_name("a.inner.example"), Some("Inner"));
        assert_eq!(list.match_name("x.inner.example"), Some("Exact"));
        assert_eq!(list.match_name("inner.example"), Some("Outer"));
        assert_eq!(list.match_name("example"), None);
    }

    #[test]
    fn bad_lines_name_their_line_and_add_nothing() {
        let mut list = ResolverList::new();
        let text = "# ok so far\ndoh.corp.example Corp\n\n  dns_.. Corp\n";
        let err = list.extend_from_str(text).unwrap_err();
        assert!(
            matches!(&err, ResolverListError::BadPattern { line: 4, pattern } if pattern == "dns_..")
        );
        assert_eq!(
            err.to_string(),
            "line 4: \"dns_..\" is not a host name, *.suffix or IP address"
        );
        assert_eq!(
            list.match_name("doh.corp.example"),
            None,
            "nothing added on error"
        );

        let err = list
            .extend_from_str("doh.corp.example Corp\n10.0.0.1   # no label\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: no provider label after \"10.0.0.1\""
        );

        for bad in [
            "*",
            "*.",
            "a.*.example",
            "10.0.0.0/8",
            "http://dns.google/",
            "dns.google:443",
        ] {
            let err = list.extend_from_str(&format!("\n{bad} Label")).unwrap_err();
            assert!(
                matches!(err, ResolverListError::BadPattern { line: 2, .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn load_file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("doh-trace-resolvers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("resolvers.txt");
        std::fs::write(&path, "doh.corp.example Corp\nnot_a_name! Corp\n").unwrap();
        let mut list = ResolverList::new();
        let err = list.load_file(&path).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::new(err));
        assert_eq!(
            chain,
            format!(
                "{}: line 2: \"not_a_name!\" is not a host name, *.suffix or IP address",
                path.display()
            )
        );

        std::fs::write(&path, USER_FILE).unwrap();
        list.load_file(&path).unwrap();
        assert_eq!(list.match_addr(ip("10.53.0.53")), Some("Example Corp DoH"));

        let missing = dir.join("missing.txt");
        let err = list.load_file(&missing).unwrap_err();
        assert!(matches!(err, ResolverListError::Read { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
