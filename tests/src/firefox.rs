//! Firefox ESR in the lab: headless, resolving only through the lab's DoH server (TRR mode 3,
//! tests/lab/firefox-user.js) with NSS trusting the lab CA, and a page to fetch on
//! loop.doh.test (127.0.0.1 and ::1 in the lab's zone), which it must resolve first.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{Lab, SYSTEM_PYTHON};

/// The page Firefox is pointed at (served by [`web_server`]).
pub const FIREFOX_PAGE: &str = "http://loop.doh.test:18080/";

/// A Firefox profile that resolves only through the lab's DoH server (TRR mode 3) and trusts
/// the lab CA (imported into the profile's NSS database with certutil).
pub fn firefox_profile(lab: &Lab) -> PathBuf {
    let profile = lab.dir.join("firefox-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let db = format!("sql:{}", profile.display());
    for args in [
        vec!["-N", "-d", &db, "--empty-password"],
        vec![
            "-A",
            "-d",
            &db,
            "-n",
            "doh-trace-lab",
            "-t",
            "C,,",
            "-i",
            lab.ca().to_str().unwrap(),
        ],
    ] {
        let st = Command::new("certutil").args(&args).status().unwrap();
        assert!(st.success(), "certutil {args:?}");
    }
    std::fs::write(
        profile.join("user.js"),
        include_str!("../lab/firefox-user.js"),
    )
    .unwrap();
    profile
}

/// `firefox-esr --headless` on `profile` in the lab's namespace, opening [`FIREFOX_PAGE`], its
/// HOME a scratch dir in the lab, its output discarded. Stop it with SIGTERM to its PID (its
/// children exit with it).
pub fn firefox_command(lab: &Lab, profile: &Path) -> Command {
    let home = lab.dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut c = lab.command("firefox-esr");
    c.args(["--headless", "--no-remote", "--profile"])
        .arg(profile)
        .arg(FIREFOX_PAGE)
        .env("HOME", &home)
        // Lets the profile's services.settings.server take effect: no remote-settings lookups.
        .env("MOZ_REMOTE_SETTINGS_DEVTOOLS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// python's http.server on 127.0.0.1:18080 in the lab (serving the lab dir), once it listens;
/// its request log (stderr) goes to `log` if given.
pub fn web_server(lab: &Lab, log: Option<&Path>) -> Child {
    let stderr = match log {
        Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
        None => Stdio::null(),
    };
    let web = lab
        .command(SYSTEM_PYTHON)
        .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "18080"])
        .current_dir(&lab.dir)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    lab.wait_listening(18080, Duration::from_secs(20)).unwrap();
    web
}
