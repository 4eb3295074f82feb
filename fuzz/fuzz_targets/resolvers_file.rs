//! The `--resolvers` file on arbitrary text: lines of patterns and provider labels, then the
//! lookups a connection makes in the list (host names from TLS and HTTP, addresses).
#![no_main]
use doh_trace::lookup::resolvers::ResolverList;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut list = ResolverList::builtin();
    let loaded = list.extend_from_str(&text).is_ok();
    for word in text.split_whitespace().take(64) {
        let found = list.match_name(word);
        if let Ok(ip) = word.parse() {
            assert_eq!(list.match_addr(ip), found);
        }
    }
    if loaded {
        // Every line's own pattern now names a provider.
        for line in text.lines().take(64) {
            let content = line.split_once('#').map_or(line, |(before, _)| before);
            if let Some(word) = content.split_whitespace().next() {
                let probe = word.strip_prefix("*.").map(|s| format!("x.{s}"));
                assert!(
                    list.match_name(probe.as_deref().unwrap_or(word)).is_some(),
                    "{word}"
                );
            }
        }
    }
});
