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
        .find(|(_, p)| placement(p).is_some())
        .or_else(|| ranked.iter().find(|&&(rank, _)| rank < 4));
    let Some(&(_, path)) = chosen else {
        return CgroupInfo::default();
    };
    let found = placement(path);
    CgroupInfo {
        path: Some(path.to_string()),
        container_id: found.as_ref().map(|f| f.id.clone()),
        runtime: found.as_ref().and_then(|f| f.runtime).map(str::to_string),
        pod_uid: found.and_then(|f| f.pod_uid),
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

/// Top-level cgroups (cgroupfs drivers) whose children are bare container ids: `/docker/<id>`.
const PARENT_RUNTIMES: &[(&str, &str)] = &[
    ("docker", "docker"),
    ("cri-containerd", "containerd"),
    ("crio", "cri-o"),
];

/// Where a cgroup path names a container: its id, its runtime (when the layout says it) and
/// the Kubernetes pod it belongs to.
struct Placement {
    id: String,
    runtime: Option<&'static str>,
    pod_uid: Option<String>,
}

fn is_container_id(s: &str) -> bool {
    (12..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `<prefix><id>.scope` (or without `.scope`, and with podman's `conmon-` after the prefix),
/// for the prefixes `allowed` lets through.
fn scope_id(name: &str, allowed: impl Fn(&str) -> bool) -> Option<(String, &'static str)> {
    let name = name.strip_suffix(".scope").unwrap_or(name);
    ID_PREFIXES.iter().find_map(|&(prefix, runtime)| {
        let rest = name.strip_prefix(prefix).filter(|_| allowed(prefix))?;
        let id = rest.strip_prefix("conmon-").unwrap_or(rest);
        is_container_id(id).then(|| (id.to_string(), runtime))
    })
}

/// The container a cgroup path names, read only where a runtime puts its containers — never
/// from a component further down, which whoever owns that subtree (a user's delegated systemd
/// manager, a container with its own cgroup namespace) could have named `docker-<id>.scope`:
///
/// - cgroupfs drivers: `/docker/<id>`, `/cri-containerd/<id>`, `/crio/<id>`,
///   `/libpod_parent/libpod-<id>`;
/// - systemd drivers: `/system.slice/<runtime>-<id>.scope`, `/machine.slice/libpod-<id>.scope`;
/// - rootless podman: `/user.slice/user-N.slice/user@N.service/user.slice/libpod-<id>.scope`
///   (only podman, only there: the id is that user's own);
/// - Kubernetes: [`kube_placement`].
///
/// Components below the container's own (podman's `container` leaf, a container's inner
/// cgroups) are the container's and do not matter. A path that starts with `..` (the process
/// is outside this tracer's cgroup namespace) is matched from its first other component.
fn placement(path: &str) -> Option<Placement> {
    let mut c: Vec<&str> = path.split('/').filter(|t| !t.is_empty()).collect();
    let relative = c.first() == Some(&"..");
    c.retain(|t| *t != "..");
    let plain = |(id, runtime): (String, &'static str)| Placement {
        id,
        runtime: Some(runtime),
        pod_uid: None,
    };
    if let Some(kube) = kube_placement(&c, relative) {
        return Some(kube);
    }
    match c.as_slice() {
        [parent, id, ..] if is_container_id(id) => PARENT_RUNTIMES
            .iter()
            .find(|(p, _)| p == parent)
            .map(|&(_, runtime)| plain((id.to_string(), runtime))),
        ["libpod_parent", name, ..] => scope_id(name, |p| p == "libpod-").map(plain),
        ["system.slice", name, ..] => scope_id(name, |p| p != "libpod-").map(plain),
        ["machine.slice", name, ..] => scope_id(name, |_| true).map(plain),
        ["user.slice", user, manager, "user.slice", name, ..]
            if user
                .strip_prefix("user-")
                .and_then(|u| u.strip_suffix(".slice"))
                == manager
                    .strip_prefix("user@")
                    .and_then(|u| u.strip_suffix(".service")) =>
        {
            scope_id(name, |p| p == "libpod-").map(plain)
        }
        _ => None,
    }
}

/// A container of a Kubernetes pod, where the kubelet puts it:
///
/// - systemd driver: `/kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid>.slice/
///   <runtime>-<id>.scope` (under `/kubelet.slice/kubelet-kubepods.slice` on kind-style
///   nodes), and on cgroup v1 with containerd
///   `/system.slice/containerd.service/<pod slice>:cri-containerd:<id>`;
/// - cgroupfs driver: `/kubepods[/<qos>]/pod<uid>/<id>`.
///
/// `relative` (outside this cgroup namespace): the path may start at the QoS or pod slice.
fn kube_placement(c: &[&str], relative: bool) -> Option<Placement> {
    match c {
        ["kubepods.slice", rest @ ..] | ["kubelet.slice", "kubelet-kubepods.slice", rest @ ..] => {
            systemd_pod(rest)
        }
        [first, ..] if relative && is_kube_slice(first) => systemd_pod(c),
        ["kubepods", rest @ ..] => {
            let (pod, id) = match rest {
                [pod, id, ..] if pod_dir_uid(pod).is_some() => (pod, id),
                ["besteffort" | "burstable", pod, id, ..] => (pod, id),
                _ => return None,
            };
            Some(Placement {
                pod_uid: Some(pod_dir_uid(pod)?),
                id: is_container_id(id).then(|| id.to_string())?,
                runtime: Some("kubernetes"),
            })
        }
        ["system.slice", "containerd.service", colon, ..] => colon_placement(colon),
        _ => None,
    }
}

/// Below the kubepods slice (systemd driver): an optional QoS slice, the pod's slice, the
/// container's scope (or the v1 `<pod slice>:<runtime>:<id>` form).
fn systemd_pod(rest: &[&str]) -> Option<Placement> {
    let (pod, container) = match rest {
        [pod, container, ..] if pod_slice_uid(pod).is_some() => (pod, container),
        [qos, pod, container, ..] if is_kube_slice(qos) && !qos.contains("-pod") => {
            (pod, container)
        }
        [colon] | [_, colon] if colon.contains(':') => return colon_placement(colon),
        _ => return None,
    };
    if container.contains(':') {
        return None;
    }
    let pod_uid = pod_slice_uid(pod)?;
    let (id, _) = scope_id(container, |p| p != "libpod-")?;
    Some(Placement {
        id,
        runtime: Some("kubernetes"),
        pod_uid: Some(pod_uid),
    })
}

/// A slice the kubelet's systemd driver makes: `kubepods-….slice` (`kubelet-kubepods-…`).
fn is_kube_slice(s: &str) -> bool {
    s.ends_with(".slice") && (s.starts_with("kubepods-") || s.starts_with("kubelet-kubepods-"))
}

/// `<pod slice>:<runtime>:<id>` (containerd's systemd driver on cgroup v1).
fn colon_placement(component: &str) -> Option<Placement> {
    let mut parts = component.splitn(3, ':');
    let (slice, _runtime, id) = (parts.next()?, parts.next()?, parts.next()?);
    let pod_uid = pod_slice_uid(slice)?;
    is_container_id(id).then(|| Placement {
        id: id.to_string(),
        runtime: Some("kubernetes"),
        pod_uid: Some(pod_uid),
    })
}

/// The pod uid of a systemd pod slice: `kubepods-burstable-pod<uid_with_underscores>.slice`.
fn pod_slice_uid(name: &str) -> Option<String> {
    if !is_kube_slice(name) {
        return None;
    }
    let name = name.strip_suffix(".slice")?;
    pod_uid(&name.rsplit_once("-pod")?.1.replace('_', "-"))
}

/// The pod uid of a cgroupfs pod directory: `pod<uid>`.
fn pod_dir_uid(name: &str) -> Option<String> {
    pod_uid(name.strip_prefix("pod")?)
}

/// A pod uid: a UUID (36) or the 32-hex hash that static pods get.
fn pod_uid(uid: &str) -> Option<String> {
    let ok = (32..=36).contains(&uid.len())
        && uid.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
        && uid.bytes().any(|b| b != b'-');
    ok.then(|| uid.to_string())
}
