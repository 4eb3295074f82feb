//! `/proc/PID/cgroup`: the cgroup path and the container or Kubernetes pod it names.

/// What a `/proc/PID/cgroup` file says about the process's cgroup and container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupInfo {
    pub path: Option<String>,
    pub container_id: Option<String>,
    pub runtime: Option<String>,
    pub pod_uid: Option<String>,
}

/// Parses `/proc/PID/cgroup` (v2 `0::/path`, v1 `ID:controllers:/path`, or a hybrid mix).
///
/// The reported path is, in order of preference, the v2 line's, then the v1 `name=systemd`,
/// `pids` and `cpu` hierarchies' — except that the first of these (then of any other line)
/// whose path names a container wins, so the id and the path always agree.
pub fn parse_cgroup(proc_pid_cgroup_text: &str) -> CgroupInfo {
    let mut ranked: Vec<(u8, &str)> = Vec::new();
    for line in proc_pid_cgroup_text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let has = |c: &str| controllers.split(',').any(|x| x == c);
        let rank = if id == "0" && controllers.is_empty() {
            0
        } else if has("name=systemd") {
            1
        } else if has("pids") {
            2
        } else if has("cpu") {
            3
        } else {
            4
        };
        if !path.is_empty() {
            ranked.push((rank, path));
        }
    }
    // Stable: equal ranks keep file order.
    ranked.sort_by_key(|&(rank, _)| rank);
    let chosen = ranked
        .iter()
        .find(|(_, p)| container_in_path(p).is_some())
        .or_else(|| ranked.iter().find(|&&(rank, _)| rank < 4));
    let Some(&(_, path)) = chosen else {
        return CgroupInfo::default();
    };
    let pod_uid = pod_uid_in_path(path);
    let (container_id, runtime) = match container_in_path(path) {
        Some((id, runtime)) => (Some(id), runtime),
        None => (None, None),
    };
    let runtime = if pod_uid.is_some() {
        Some("kubernetes")
    } else {
        runtime
    };
    CgroupInfo {
        path: Some(path.to_string()),
        container_id,
        runtime: runtime.map(str::to_string),
        pod_uid,
    }
}

/// Prefixes of systemd scope / cgroup names that carry a container id, and their runtime.
const ID_PREFIXES: &[(&str, &str)] = &[
    ("docker-", "docker"),
    ("cri-containerd-", "containerd"),
    ("nerdctl-", "containerd"),
    ("crio-", "cri-o"),
    ("libpod-", "podman"),
];

/// A bare id's runtime, from the path component before it (`/docker/<id>`).
const PARENT_RUNTIMES: &[(&str, &str)] = &[
    ("docker", "docker"),
    ("cri-containerd", "containerd"),
    ("crio", "cri-o"),
    ("libpod_parent", "podman"),
];

fn is_container_id(s: &str) -> bool {
    (12..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The innermost container id in a cgroup path, with the runtime when the name says it.
fn container_in_path(path: &str) -> Option<(String, Option<&'static str>)> {
    // ':' too: containerd's systemd driver on v1 writes `...pod<uid>.slice:cri-containerd:<id>`.
    let tokens: Vec<&str> = path.split(['/', ':']).filter(|t| !t.is_empty()).collect();
    for (i, token) in tokens.iter().enumerate().rev() {
        let name = token.strip_suffix(".scope").unwrap_or(token);
        for &(prefix, runtime) in ID_PREFIXES {
            if let Some(rest) = name.strip_prefix(prefix) {
                let id = rest.strip_prefix("conmon-").unwrap_or(rest);
                if is_container_id(id) {
                    return Some((id.to_string(), Some(runtime)));
                }
            }
        }
        if is_container_id(name) {
            let parent = i.checked_sub(1).map(|p| tokens[p]);
            let runtime = PARENT_RUNTIMES
                .iter()
                .find(|(p, _)| Some(*p) == parent)
                .map(|&(_, r)| r);
            return Some((name.to_string(), runtime));
        }
    }
    None
}

/// `kubepods-burstable-pod<uid_with_underscores>.slice` or `pod<uid>` below a kubepods cgroup.
fn pod_uid_in_path(path: &str) -> Option<String> {
    if !path.contains("kubepods") {
        return None;
    }
    path.split('/').rev().find_map(|token| {
        // The v1 systemd form may carry `:cri-containerd:<id>` after the slice name.
        let token = token.split(':').next().unwrap_or(token);
        let name = token.strip_suffix(".slice").unwrap_or(token);
        let candidate = if name.starts_with("kubepods") {
            name.rsplit('-').next()?.strip_prefix("pod")?
        } else {
            name.strip_prefix("pod")?
        };
        let uid = candidate.replace('_', "-");
        // UUIDs (36) or the 32-hex hash that static pods get.
        let ok = (32..=36).contains(&uid.len())
            && uid.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
            && uid.bytes().any(|b| b != b'-');
        ok.then_some(uid)
    })
}
