use super::*;

const ID: &str = "8c3d3f1e6a0b4f2e9d7c5b3a1f0e2d4c6b8a9f7e5d3c1b2a4f6e8d0c2b4a6f81";
const POD: &str = "5e2b1f6a-9c3d-4e7f-8a1b-2c3d4e5f6a7b";

fn cg(text: &str) -> CgroupInfo {
    parse_cgroup(text)
}

fn expect(info: &CgroupInfo, id: Option<&str>, runtime: Option<&str>, pod: Option<&str>) {
    assert_eq!(info.container_id.as_deref(), id, "{info:?}");
    assert_eq!(info.runtime.as_deref(), runtime, "{info:?}");
    assert_eq!(info.pod_uid.as_deref(), pod, "{info:?}");
}

#[test]
fn docker_systemd_driver() {
    let path = format!("/system.slice/docker-{ID}.scope");
    let info = cg(&format!("0::{path}\n"));
    assert_eq!(info.path.as_deref(), Some(path.as_str()));
    expect(&info, Some(ID), Some("docker"), None);
}

#[test]
fn docker_cgroupfs_driver() {
    let info = cg(&format!("0::/docker/{ID}\n"));
    expect(&info, Some(ID), Some("docker"), None);
    // A short (12-hex) id is still an id.
    let info = cg("0::/docker/0123456789ab\n");
    expect(&info, Some("0123456789ab"), Some("docker"), None);
}

#[test]
fn kubernetes_containerd_systemd_driver() {
    let uid_ = POD.replace('-', "_");
    let text = format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope\n"
    );
    expect(&cg(&text), Some(ID), Some("kubernetes"), Some(POD));
    // Guaranteed QoS pods sit directly under kubepods.slice.
    let text = format!("0::/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{ID}.scope");
    expect(&cg(&text), Some(ID), Some("kubernetes"), Some(POD));
}

#[test]
fn kubernetes_cgroupfs_driver() {
    let text = format!("0::/kubepods/besteffort/pod{POD}/{ID}\n");
    let info = cg(&text);
    expect(&info, Some(ID), Some("kubernetes"), Some(POD));
    assert_eq!(
        info.path.unwrap(),
        format!("/kubepods/besteffort/pod{POD}/{ID}")
    );
}

#[test]
fn kubernetes_containerd_on_cgroup_v1_systemd() {
    let uid_ = POD.replace('-', "_");
    let text = format!(
        "11:pids:/system.slice/containerd.service/kubepods-besteffort-pod{uid_}.slice:cri-containerd:{ID}\n"
    );
    expect(&cg(&text), Some(ID), Some("kubernetes"), Some(POD));
}

#[test]
fn cri_o() {
    let text = format!("0::/system.slice/crio-{ID}.scope\n");
    expect(&cg(&text), Some(ID), Some("cri-o"), None);
    let text = format!(
        "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/crio-{ID}.scope",
        POD.replace('-', "_")
    );
    expect(&cg(&text), Some(ID), Some("kubernetes"), Some(POD));
}

#[test]
fn podman_root_and_rootless() {
    let text = format!("0::/machine.slice/libpod-{ID}.scope\n");
    expect(&cg(&text), Some(ID), Some("podman"), None);
    let text =
        format!("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope\n");
    expect(&cg(&text), Some(ID), Some("podman"), None);
    // With a cgroup namespace podman adds a leaf; the innermost id still wins.
    let text = format!("0::/machine.slice/libpod-{ID}.scope/container\n");
    expect(&cg(&text), Some(ID), Some("podman"), None);
}

#[test]
fn cgroup_v1_multi_line() {
    let text = format!(
        "12:pids:/docker/{ID}\n11:cpu,cpuacct:/docker/{ID}\n5:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/system.slice/containerd.service\n"
    );
    let info = cg(&text);
    // The v2 line has no container, so the v1 systemd hierarchy's path is reported.
    assert_eq!(info.path, Some(format!("/docker/{ID}")));
    expect(&info, Some(ID), Some("docker"), None);

    let info = cg("12:pids:/user.slice/user-1000.slice/session-3.scope\n4:cpu,cpuacct:/user.slice\n1:name=systemd:/user.slice/user-1000.slice/session-3.scope\n");
    assert_eq!(
        info.path.as_deref(),
        Some("/user.slice/user-1000.slice/session-3.scope")
    );
    expect(&info, None, None, None);
}

#[test]
fn not_in_a_container() {
    for text in [
        "0::/user.slice/user-1000.slice/session-2.scope\n",
        "0::/init.scope\n",
        "0::/\n",
        "0::/system.slice/systemd-resolved.service\n",
        "0::/user.slice/user-1000.slice/user@1000.service/app.slice/run-r3f2a9c8b7d6e5f4a3b2c1d0e9f8a7b6c.scope\n",
    ] {
        let info = cg(text);
        assert_eq!(info.path.as_deref(), Some(&text[3..text.len() - 1]));
        expect(&info, None, None, None);
    }
}

#[test]
fn garbage_cgroup_text_never_panics() {
    for text in [
        "",
        "\n",
        ":",
        "::",
        "0:",
        "x",
        "0::",
        "1:cpu",
        "\u{0}:\u{0}:\u{0}",
        "0::/docker/",
    ] {
        let info = cg(text);
        assert!(info.container_id.is_none(), "{text:?}");
    }
    // Not hex, too long or uppercase: no id.
    let long = "a".repeat(65);
    for p in [
        "/docker/xyz0123456789ab",
        &format!("/docker/{long}"),
        "/docker/0123456789AB",
    ] {
        assert_eq!(cg(&format!("0::{p}")).container_id, None, "{p}");
    }
}

#[test]
fn ppid_with_hostile_comm() {
    assert_eq!(
        parse_ppid("4242 (a) b) S 17 4242 4242 0 -1 4194560 0 0"),
        Some(17)
    );
    assert_eq!(parse_ppid("1 (systemd) S 0 1 1 0 -1"), Some(0));
    assert_eq!(parse_ppid("7 (x) 9 9) R 3 7"), Some(3));
    assert_eq!(parse_ppid("7 (x"), None);
    assert_eq!(parse_ppid("7 (x) S"), None);
    assert_eq!(parse_ppid("7 (x) S -1"), None);
    assert_eq!(parse_ppid(""), None);
}

#[test]
fn cmdline_splitting_and_limits() {
    assert_eq!(parse_cmdline(b""), Vec::<String>::new());
    assert_eq!(parse_cmdline(b"\0"), vec![""]);
    assert_eq!(parse_cmdline(b"curl\0\0-s\0"), vec!["curl", "", "-s"]);
    // setproctitle-style: no NUL at all.
    assert_eq!(parse_cmdline(b"nginx: worker"), vec!["nginx: worker"]);
    assert_eq!(parse_cmdline(b"a\xff\0b"), vec!["a\u{fffd}", "b"]);

    let many: Vec<u8> = (0..100)
        .flat_map(|i| format!("{i}\0").into_bytes())
        .collect();
    let args = parse_cmdline(&many);
    assert_eq!(args.len(), MAX_ARGS + 1);
    assert_eq!(args[MAX_ARGS - 1], "63");
    assert_eq!(args.last().unwrap(), TRUNCATED);
    // Exactly 64 arguments: nothing dropped, no marker.
    let exact: Vec<u8> = (0..64)
        .flat_map(|i| format!("{i}\0").into_bytes())
        .collect();
    let args = parse_cmdline(&exact);
    assert_eq!(args.len(), MAX_ARGS);
    assert_eq!(args.last().unwrap(), "63");

    let big = [vec![b'x'; 3000], vec![0], "é".repeat(1000).into_bytes()].concat();
    let args = parse_cmdline(&big);
    assert_eq!(args.len(), 3);
    assert_eq!(args[0].len() + args[1].len(), MAX_CMDLINE_BYTES);
    assert!(args[1].chars().all(|c| c == 'é'));
    assert_eq!(args[2], TRUNCATED);
    // Cut inside a multi-byte character: back off to its start.
    let odd = [vec![b'x'; 4095], "é".as_bytes().to_vec()].concat();
    assert_eq!(
        parse_cmdline(&odd),
        vec!["x".repeat(4095), TRUNCATED.to_string()]
    );
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "doh-trace-context-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn reads_a_fake_procfs() {
    let root = Scratch::new("proc");
    let pid_dir = root.0.join("4242");
    std::fs::create_dir_all(&pid_dir).unwrap();
    std::fs::write(pid_dir.join("stat"), "4242 (a) b) S 17 4242 4242 0 -1 0\n").unwrap();
    std::fs::write(
        pid_dir.join("cmdline"),
        b"/usr/bin/app\0\0--name=\xfe\xff\0",
    )
    .unwrap();
    std::fs::write(
        pid_dir.join("cgroup"),
        format!("0::/system.slice/docker-{ID}.scope\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/usr/bin/app (deleted)", pid_dir.join("exe")).unwrap();
    let passwd = root.0.join("passwd");
    std::fs::write(
        &passwd,
        "root:x:0:0:root:/root:/bin/bash\napp:x:1001:1001::/:/bin/sh\n",
    )
    .unwrap();
    let mut users = UserNames::new(&passwd);

    let ctx = read_context(&root.0, 4242, 1001, &mut users);
    assert_eq!(
        ctx,
        ProcessContext {
            exe: Some("/usr/bin/app (deleted)".into()),
            cmdline: Some(vec![
                "/usr/bin/app".into(),
                "".into(),
                "--name=\u{fffd}\u{fffd}".into()
            ]),
            user: Some("app".into()),
            ppid: Some(17),
            cgroup: Some(format!("/system.slice/docker-{ID}.scope")),
            container_id: Some(ID.into()),
            container_runtime: Some("docker".into()),
            pod_uid: None,
        }
    );
    let json = serde_json::to_string(&ctx).unwrap();
    assert_eq!(serde_json::from_str::<ProcessContext>(&json).unwrap(), ctx);

    // A process that is gone: only the user (from the uid) is known.
    let gone = read_context(&root.0, 999, 0, &mut users);
    assert_eq!(
        gone,
        ProcessContext {
            user: Some("root".into()),
            ..Default::default()
        }
    );
    // An empty cmdline (kernel thread) is unknown, not an empty list.
    std::fs::write(pid_dir.join("cmdline"), b"").unwrap();
    assert_eq!(read_context(&root.0, 4242, 5, &mut users).cmdline, None);
}

#[test]
fn reads_our_own_process() {
    let uid = unsafe { libc::getuid() };
    let mut users = UserNames::system();
    let ctx = read_context(Path::new("/proc"), std::process::id(), uid, &mut users);
    let me = std::env::current_exe().unwrap();
    let name = me.file_name().unwrap().to_str().unwrap();
    assert!(ctx.exe.as_deref().unwrap().ends_with(name), "{ctx:?}");
    assert!(ctx.ppid.unwrap() > 0, "{ctx:?}");
    assert!(ctx.cmdline.as_ref().unwrap()[0].ends_with(name), "{ctx:?}");
    assert!(ctx.cgroup.is_some(), "{ctx:?}");
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    if passwd
        .lines()
        .any(|l| l.starts_with("root:") && l.split(':').nth(2) == Some("0"))
    {
        assert_eq!(users.name(0).as_deref(), Some("root"));
    }
}

#[test]
fn passwd_parsing() {
    let text = "# comment\n\
                root:x:0:0:root:/root:/bin/bash\n\
                \n\
                broken line\n\
                nouid:x:abc:0::/:/bin/sh\n\
                :x:5:5::/:/bin/sh\n\
                +nisuser::::::\n\
                daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\r\n\
                toor:x:0:0:dup:/root:/bin/sh\n\
                alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash";
    let names = parse_passwd(text.as_bytes());
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[&0], "root");
    assert_eq!(names[&1], "daemon");
    assert_eq!(names[&1000], "alice");

    // An overlong line is skipped without losing the next one.
    let long = format!(
        "{}:x:7:7::/:/bin/sh\nbob:x:8:8::/:/bin/sh\n",
        "z".repeat(10_000)
    );
    let names = parse_passwd(std::io::BufReader::with_capacity(64, long.as_bytes()));
    assert_eq!(names.len(), 1);
    assert_eq!(names[&8], "bob");
    // Binary junk.
    assert!(parse_passwd(&[0xff, 0, b':', b'\n', 0xfe][..]).is_empty());
}

#[test]
fn user_names_reload_only_when_stale() {
    let dir = Scratch::new("passwd");
    let path = dir.0.join("passwd");
    let mut users = UserNames::new(&path);
    assert_eq!(users.name(0), None); // No file yet.
    std::fs::write(&path, "root:x:0:0::/root:/bin/sh\n").unwrap();
    assert_eq!(users.name(0), None); // Not re-read within 60 s.
    users.reload_after = Duration::ZERO;
    assert_eq!(users.name(0).as_deref(), Some("root"));
    users.reload_after = Duration::from_secs(60);
    std::fs::write(
        &path,
        "root:x:0:0::/root:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n",
    )
    .unwrap();
    assert_eq!(users.name(1001), None);
    users.reload_after = Duration::ZERO;
    assert_eq!(users.name(1001).as_deref(), Some("bob"));
    // Known uids are served from the cache even after the file disappears.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(users.name(0).as_deref(), Some("root"));
}

#[test]
fn parsers_never_panic_on_noise() {
    // Fragments that steer random input into the interesting branches.
    const PIECES: &[&[u8]] = &[
        b"0::",
        b"1:name=systemd:",
        b"/",
        b":",
        b")",
        b"(",
        b" ",
        b"\0",
        b"\n",
        b"docker-",
        b"cri-containerd-",
        b"libpod-conmon-",
        b"crio-",
        b".scope",
        b".slice",
        b"kubepods",
        b"-pod",
        b"pod",
        b"_",
        b"-",
        b"0123456789abcdef",
        b"\xc3\xa9",
        b"\xc3",
        b"\xff",
        b"42",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut input = Vec::new();
        for _ in 0..next() % 24 {
            input.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
        }
        let text = String::from_utf8_lossy(&input);
        let info = parse_cgroup(&text);
        if let Some(id) = &info.container_id {
            assert!(is_container_id_for_test(id), "{text:?} → {info:?}");
        }
        let _ = parse_ppid(&text);
        let args = parse_cmdline(&input);
        assert!(args.len() <= MAX_ARGS + 1);
        let _ = parse_passwd(input.as_slice());
    }
}

fn is_container_id_for_test(id: &str) -> bool {
    (12..=64).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Cgroups a user or a container can create and name themselves: a delegated user manager's
/// subtree, a container's own cgroup namespace, a service's sub-cgroups. None is a container
/// or a pod, however its components are named; the real container above one still is.
#[test]
fn cgroups_named_like_containers_in_delegated_subtrees_are_not_containers() {
    let uid_ = POD.replace('-', "_");
    let user = "/user.slice/user-1000.slice/user@1000.service";
    for path in [
        format!("{user}/app.slice/docker-{ID}.scope"),
        format!("{user}/user.slice/docker-{ID}.scope"),
        format!("{user}/user.slice/cri-containerd-{ID}.scope"),
        format!("{user}/docker/{ID}"),
        format!("{user}/app.slice/kubepods/besteffort/pod{POD}/{ID}"),
        format!("{user}/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{ID}.scope"),
        format!("/user.slice/user-1000.slice/session-2.scope/docker-{ID}.scope"),
        // Another user's manager path does not make a rootless podman container.
        format!("/user.slice/user-1000.slice/user@1001.service/user.slice/libpod-{ID}.scope"),
        format!("/system.slice/foo.service/docker-{ID}.scope"),
        format!("/system.slice/foo.service/docker/{ID}"),
        format!("/system.slice/foo.service/kubepods-pod{uid_}.slice:cri-containerd:{ID}"),
        format!("/init.scope/docker/{ID}"),
        format!("/{ID}"),
    ] {
        let info = cg(&format!("0::{path}\n"));
        assert_eq!(info.path.as_deref(), Some(path.as_str()));
        expect(&info, None, None, None);
    }
    // Inside a real container, its processes can name their cgroups as they like: the
    // container is the one the runtime made, never a deeper impersonation.
    const OTHER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let text = format!("0::/system.slice/docker-{ID}.scope/docker/{OTHER}\n");
    expect(&cg(&text), Some(ID), Some("docker"), None);
    let text = format!("0::/system.slice/docker-{ID}.scope/system.slice/docker-{OTHER}.scope\n");
    expect(&cg(&text), Some(ID), Some("docker"), None);
    let text = format!(
        "0::/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{ID}.scope/kubepods/pod{}/{OTHER}\n",
        "11111111-2222-3333-4444-555555555555"
    );
    expect(&cg(&text), Some(ID), Some("kubernetes"), Some(POD));
    // A user line first, a real container's line after: the real one wins.
    let text = format!("1:name=systemd:{user}/app.slice/docker-{OTHER}.scope\n0::/docker/{ID}\n");
    expect(&cg(&text), Some(ID), Some("docker"), None);
}

/// Outside the tracer's cgroup namespace a path starts with `..`: the kubelet's and the
/// runtimes' layouts are still read from the first real component.
#[test]
fn paths_outside_our_cgroup_namespace() {
    let uid_ = POD.replace('-', "_");
    let text = format!(
        "0::/../../kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/cri-containerd-{ID}.scope\n"
    );
    expect(&cg(&text), Some(ID), Some("kubernetes"), Some(POD));
    let text = format!("0::/../kubepods-pod{uid_}.slice/cri-containerd-{ID}.scope\n");
    expect(&cg(&text), Some(ID), Some("kubernetes"), Some(POD));
    let text = format!("0::/../../system.slice/docker-{ID}.scope\n");
    expect(&cg(&text), Some(ID), Some("docker"), None);
    let text = format!(
        "0::/../../user.slice/user-1000.slice/user@1000.service/app.slice/docker-{ID}.scope\n"
    );
    expect(&cg(&text), None, None, None);
    let text = format!("0::/../app.slice/docker-{ID}.scope\n");
    expect(&cg(&text), None, None, None);
}

#[test]
fn kind_style_kubelet_slice() {
    let uid_ = POD.replace('-', "_");
    let text = format!(
        "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{uid_}.slice/cri-containerd-{ID}.scope\n"
    );
    expect(&cg(&text), Some(ID), Some("kubernetes"), Some(POD));
}
