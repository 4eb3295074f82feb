//! Reading a guest's serial console log: the guest script's machine-readable lines
//! (`VMTEST-BEGIN <kernel> <uname -r>`, `VMTEST <kernel> <test> ok|FAILED <seconds>s`,
//! `VMTEST-END <kernel>`) become a per-kernel result; a boot that never reached the tests, or
//! stopped before their end, is a failure too.

use std::time::Duration;

/// One test's outcome in a guest.
#[derive(Debug, PartialEq, Eq)]
pub struct TestResult {
    pub test: String,
    pub ok: bool,
    pub seconds: Option<u64>,
}

/// What one kernel's console said.
#[derive(Debug, Default)]
pub struct KernelReport {
    /// `uname -r` in the guest, once the guest script started.
    pub release: Option<String>,
    pub results: Vec<TestResult>,
    /// The guest script reached its end.
    pub ended: bool,
}

impl KernelReport {
    /// Parses the console log of the guest booted as `label`. Kernel messages may be
    /// interleaved with the script's lines, so a result line is found anywhere on a line.
    pub fn parse(label: &str, log: &str) -> KernelReport {
        let mut report = KernelReport::default();
        for line in log.lines() {
            let line = line.trim_end_matches('\r');
            let Some(at) = line.find("VMTEST") else {
                continue;
            };
            let mut words = line[at..].split_whitespace();
            match (words.next(), words.next()) {
                (Some("VMTEST-BEGIN"), Some(k)) if k == label => {
                    report.release = words.next().map(str::to_string);
                }
                (Some("VMTEST-END"), Some(k)) if k == label => report.ended = true,
                (Some("VMTEST"), Some(k)) if k == label => {
                    let (Some(test), Some(verdict)) = (words.next(), words.next()) else {
                        continue;
                    };
                    let seconds = words
                        .next()
                        .and_then(|s| s.strip_suffix('s'))
                        .and_then(|s| s.parse().ok());
                    report.results.push(TestResult {
                        test: test.to_string(),
                        ok: verdict == "ok",
                        seconds,
                    });
                }
                _ => {}
            }
        }
        report
    }

    /// Every test ran and passed.
    pub fn passed(&self) -> bool {
        self.release.is_some()
            && self.ended
            && !self.results.is_empty()
            && self.results.iter().all(|r| r.ok)
    }

    /// The lines printed for this kernel.
    pub fn render(&self, label: &str, package: &str, elapsed: Duration, timed_out: bool) -> String {
        let passed = self.results.iter().filter(|r| r.ok).count();
        let verdict = if self.passed() { "PASSED" } else { "FAILED" };
        let mut out = format!(
            "vm-test: {label} ({package}, guest {}): {verdict}, {passed}/{} tests passed in {:.0} s",
            self.release.as_deref().unwrap_or("never reached the tests"),
            self.results.len(),
            elapsed.as_secs_f64()
        );
        if timed_out {
            out.push_str(" (timed out: the VM was killed)");
        } else if self.release.is_some() && !self.ended {
            out.push_str(" (the guest stopped before its last test)");
        }
        for r in &self.results {
            let secs = r.seconds.map(|s| format!("{s:>4} s")).unwrap_or_default();
            let mark = if r.ok { "ok" } else { "FAILED" };
            out.push_str(&format!("\n  {mark:<7} {:<16} {secs}", r.test));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "[    1.0] Linux version 6.1.0\r\n\
        VMTEST-BEGIN 6.1 6.1.0-57-amd64\r\n\
        VMTEST 6.1 load ok 31s\r\n\
        [   40.1] random: crng init done VMTEST 6.1 openssl-curl FAILED 50s\r\n\
        VMTEST 6.12 load ok 3s\r\n\
        VMTEST-END 6.1\r\n";

    #[test]
    fn result_lines_are_read_even_behind_kernel_messages() {
        let r = KernelReport::parse("6.1", LOG);
        assert_eq!(r.release.as_deref(), Some("6.1.0-57-amd64"));
        assert!(r.ended);
        assert_eq!(
            r.results,
            [
                TestResult {
                    test: "load".into(),
                    ok: true,
                    seconds: Some(31)
                },
                TestResult {
                    test: "openssl-curl".into(),
                    ok: false,
                    seconds: Some(50)
                },
            ]
        );
        assert!(!r.passed());
    }

    #[test]
    fn a_boot_that_never_reached_or_finished_the_tests_fails() {
        assert!(!KernelReport::parse("6.1", "Kernel panic - not syncing").passed());
        let unfinished = "VMTEST-BEGIN 6.1 x\nVMTEST 6.1 load ok 3s\n";
        let r = KernelReport::parse("6.1", unfinished);
        assert!(!r.passed());
        assert!(r
            .render("6.1", "p", Duration::from_secs(9), false)
            .contains("stopped before"));
        let done = format!("{unfinished}VMTEST-END 6.1\n");
        assert!(KernelReport::parse("6.1", &done).passed());
    }
}
