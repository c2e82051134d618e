//! The per-run cgroup: created under `<daemon's own cgroup>/<parent>/<run id>`, given the
//! limits, joined by the exec helper before anything runs, killed as a whole, and removed.
//!
//! cgroup v1 (one directory per controller: `memory`, `pids`, `cpu`, `freezer`) and the v2
//! unified tree are both handled; a host with neither writable fails with `sandbox.cgroup`
//! rather than running without limits the caller asked for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::SandboxError;
use crate::spec::Limits;

const ROOT: &str = "/sys/fs/cgroup";
const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug)]
pub(crate) struct RunCgroup {
    /// Every directory made for the run (v1: one per controller; v2: one).
    dirs: Vec<PathBuf>,
    /// Where to list and kill the run's processes (v1: the pids controller).
    procs_dir: PathBuf,
    memory_dir: PathBuf,
    freezer: Option<PathBuf>,
    v2: bool,
}

fn err(path: &Path, message: impl std::fmt::Display) -> SandboxError {
    SandboxError::Cgroup {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn write(path: &Path, value: &str) -> Result<(), SandboxError> {
    std::fs::write(path, value).map_err(|e| err(path, format!("writing {value:?}: {e}")))
}

/// The daemon's own cgroup per hierarchy, from `/proc/self/cgroup`: `(controllers, path)`.
fn own_cgroups() -> Result<Vec<(String, String)>, SandboxError> {
    let path = Path::new("/proc/self/cgroup");
    let text = std::fs::read_to_string(path).map_err(|e| err(path, e))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?.to_string();
            let path = parts.next()?.to_string();
            Some((controllers, path))
        })
        .collect())
}

/// The v1 controllers a run is limited and killed by (`freezer` only where mounted).
const V1_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "freezer"];

/// Where `<parent>/<run id>` goes, per controller (`""` for the v2 unified tree).
///
/// v1: under the daemon's own cgroup in each hierarchy, so a daemon confined by systemd or a
/// pod stays within its own limits. v2 forbids a cgroup with processes to enable controllers
/// for its children ("no internal processes"), and the daemon's own cgroup has the daemon in
/// it, so runs go beside it, under its parent: put the daemon in a leaf of the cgroup it was
/// delegated (systemd: `Delegate=yes` with `DelegateSubgroup=daemon`; a container: move the
/// daemon to `/daemon` first), and its runs land in `<delegated>/<parent>/<run id>`.
fn bases(own: &[(String, String)], unified: bool) -> Vec<(&'static str, PathBuf)> {
    let root = Path::new(ROOT);
    if unified {
        let own = own
            .iter()
            .find(|(c, _)| c.is_empty())
            .map(|(_, p)| root.join(p.trim_start_matches('/')))
            .unwrap_or_else(|| root.to_path_buf());
        let base = if own == root {
            own
        } else {
            own.parent().unwrap_or(root).to_path_buf()
        };
        return vec![("", base)];
    }
    V1_CONTROLLERS
        .iter()
        .filter_map(|ctrl| {
            own.iter()
                .find(|(c, _)| c.split(',').any(|c| c == *ctrl))
                .map(|(_, p)| (*ctrl, root.join(ctrl).join(p.trim_start_matches('/'))))
        })
        .collect()
}

fn unified() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// A parent name is a relative path of plain components: it must not climb out of the daemon's
/// own cgroup.
pub(crate) fn check_parent(parent: &str) -> Result<(), String> {
    let ok = !parent.is_empty()
        && Path::new(parent)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cgroup_parent {parent:?} must be a relative path of plain names (no `..`, no leading `/`)"
        ))
    }
}

/// The pid in a run id (`run-<pid>-<n>-<nanos>`, see `run::run_id`).
fn run_pid(name: &str) -> Option<u32> {
    name.strip_prefix("run-")?.split('-').next()?.parse().ok()
}

/// Whether a run's directory belongs to no live process: its daemon died (or was killed) before
/// it could clean up. Runs of this process and of other live processes are left alone.
fn orphaned(name: &str) -> bool {
    match run_pid(name) {
        Some(pid) => {
            pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists()
        }
        None => false,
    }
}

/// Kills and removes what runs of dead daemons left under `parent` (their cgroups, with any
/// processes still in them, and their fallback temp dirs); returns how many runs it found. For a
/// daemon's start-up: a crashed daemon cannot clean up, and without the wall clock it enforced a
/// leftover command would run unbounded.
pub fn reap_orphans(parent: &str) -> Result<usize, SandboxError> {
    check_parent(parent).map_err(SandboxError::InvalidSpec)?;
    let unified = unified();
    let parents: Vec<(&str, PathBuf)> = bases(&own_cgroups()?, unified)
        .into_iter()
        .map(|(c, base)| (c, base.join(parent)))
        .collect();
    let mut names = std::collections::BTreeSet::new();
    for (_, dir) in &parents {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Some(name) = entry.file_name().to_str() {
                if orphaned(name) {
                    names.insert(name.to_string());
                }
            }
        }
    }
    for name in &names {
        let at = |ctrl: &str| {
            parents
                .iter()
                .find(|(c, _)| *c == ctrl)
                .map(|(_, p)| p.join(name))
                .filter(|d| d.is_dir())
        };
        let (procs, memory) = if unified {
            (at(""), at(""))
        } else {
            (at("pids"), at("memory"))
        };
        // Dropping it kills what is left in it and removes its directories.
        drop(RunCgroup {
            dirs: parents
                .iter()
                .map(|(_, p)| p.join(name))
                .filter(|d| d.is_dir())
                .collect(),
            procs_dir: procs.unwrap_or_default(),
            memory_dir: memory.unwrap_or_default(),
            freezer: at("freezer"),
            v2: unified,
        });
    }
    let mut count = names.len();
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name();
        let Some(run) = name
            .to_str()
            .and_then(|n| n.strip_prefix("pyagent-sandbox-"))
        else {
            continue;
        };
        if orphaned(run) && std::fs::remove_dir_all(entry.path()).is_ok() && !names.contains(run) {
            count += 1;
        }
    }
    Ok(count)
}

impl RunCgroup {
    pub(crate) fn create(
        parent: &str,
        run_id: &str,
        limits: &Limits,
    ) -> Result<RunCgroup, SandboxError> {
        check_parent(parent).map_err(|m| err(Path::new(parent), m))?;
        let unified = unified();
        let bases = bases(&own_cgroups()?, unified);
        let base = |ctrl: &str| {
            bases
                .iter()
                .find(|(c, _)| *c == ctrl)
                .map(|(_, b)| b.clone())
                .ok_or_else(|| {
                    let root = Path::new(ROOT).join(ctrl);
                    err(&root, format!("no cgroup `{ctrl}` hierarchy is mounted"))
                })
        };
        let cg = if unified {
            Self::create_v2(&base("")?, parent, run_id, limits)?
        } else {
            let dir = |ctrl: &str| base(ctrl).map(|b| b.join(parent).join(run_id));
            Self::create_v1(
                dir("memory")?,
                dir("pids")?,
                dir("cpu")?,
                dir("freezer").ok(),
                limits,
            )?
        };
        Ok(cg)
    }

    fn create_v1(
        memory: PathBuf,
        pids: PathBuf,
        cpu: PathBuf,
        freezer: Option<PathBuf>,
        limits: &Limits,
    ) -> Result<RunCgroup, SandboxError> {
        let mut cg = RunCgroup {
            dirs: Vec::new(),
            procs_dir: pids.clone(),
            memory_dir: memory.clone(),
            freezer: None,
            v2: false,
        };
        // Pushed as made, so that a failure half-way removes what exists (Drop of the caller).
        for dir in [&memory, &pids, &cpu] {
            std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
            cg.dirs.push(dir.clone());
        }
        if let Some(dir) = freezer {
            if std::fs::create_dir_all(&dir).is_ok() {
                cg.dirs.push(dir.clone());
                cg.freezer = Some(dir);
            }
        }
        let bytes = limits.memory_bytes.to_string();
        write(&memory.join("memory.limit_in_bytes"), &bytes)?;
        // Swap counted too where the kernel accounts it (memsw must be set after, and be >=, the
        // plain limit); otherwise a run could page its excess out instead of being stopped.
        let memsw = memory.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            write(&memsw, &bytes)?;
        }
        write(&pids.join("pids.max"), &limits.pids.to_string())?;
        write(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
        write(
            &cpu.join("cpu.cfs_quota_us"),
            &cpu_quota(limits).to_string(),
        )?;
        Ok(cg)
    }

    fn create_v2(
        base: &Path,
        parent: &str,
        run_id: &str,
        limits: &Limits,
    ) -> Result<RunCgroup, SandboxError> {
        // The controllers must be enabled in subtree_control from the base down to the parent
        // (see `bases`). Failures are not fatal here: where a controller could not be enabled
        // its limit file is missing below, and that error names it.
        let mut at = base.to_path_buf();
        let _ = std::fs::write(at.join("cgroup.subtree_control"), "+memory +pids +cpu");
        for part in Path::new(parent).components() {
            at.push(part);
            std::fs::create_dir_all(&at).map_err(|e| err(&at, e))?;
            let _ = std::fs::write(at.join("cgroup.subtree_control"), "+memory +pids +cpu");
        }
        let dir = &at.join(run_id);
        std::fs::create_dir(dir).map_err(|e| err(dir, e))?;
        let cg = RunCgroup {
            dirs: vec![dir.clone()],
            procs_dir: dir.clone(),
            memory_dir: dir.clone(),
            freezer: None,
            v2: true,
        };
        let bytes = limits.memory_bytes.to_string();
        write(&dir.join("memory.max"), &bytes)?;
        let swap = dir.join("memory.swap.max");
        if swap.exists() {
            write(&swap, "0")?;
        }
        write(&dir.join("pids.max"), &limits.pids.to_string())?;
        write(
            &dir.join("cpu.max"),
            &format!("{} {CPU_PERIOD_US}", cpu_quota(limits)),
        )?;
        Ok(cg)
    }

    /// The `cgroup.procs` files the helper writes its pid to.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.procs_dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// How many times the OOM killer struck in the run.
    pub(crate) fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        counter(&self.memory_dir.join(file), "oom_kill")
    }

    /// The run's peak memory (page cache and tmpfs included), where the kernel keeps it.
    pub(crate) fn memory_peak(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.memory_dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// How many forks failed at `pids.max`.
    pub(crate) fn pids_max_hits(&self) -> u64 {
        counter(&self.procs_dir.join("pids.events"), "max")
    }

    /// SIGKILLs every process of the run and waits (up to `patience`) until none is left.
    /// Frozen first where a freezer exists, so that a fork bomb cannot outrun the loop.
    pub(crate) fn kill_all(&self, patience: Duration) -> bool {
        if self.v2 {
            let _ = std::fs::write(self.procs_dir.join("cgroup.kill"), "1");
        }
        let deadline = Instant::now() + patience;
        loop {
            let pids = self.pids();
            if pids.is_empty() {
                return true;
            }
            if let Some(f) = &self.freezer {
                let _ = std::fs::write(f.join("freezer.state"), "FROZEN");
            }
            for pid in pids {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            if let Some(f) = &self.freezer {
                let _ = std::fs::write(f.join("freezer.state"), "THAWED");
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Kills what is left and removes the run's directories (parents stay: they are shared).
    pub(crate) fn remove(&mut self) {
        self.kill_all(Duration::from_secs(5));
        for dir in self.dirs.drain(..) {
            // rmdir fails (EBUSY) while the kernel still tears down the last exited tasks,
            // usually for well under a millisecond; retry in short steps, up to 5 s.
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Err(e) = std::fs::remove_dir(&dir) {
                if e.kind() == std::io::ErrorKind::NotFound || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

fn cpu_quota(limits: &Limits) -> u64 {
    // millicores -> microseconds per period; at least 1 ms, the kernel's minimum quota.
    (u64::from(limits.cpu_millis) * CPU_PERIOD_US / 1000).max(1000)
}

/// A `key value` line of a cgroup stats file; 0 when absent.
fn counter(path: &Path, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(lines: &str) -> Vec<(String, String)> {
        lines
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.splitn(3, ':').collect();
                (f[1].to_string(), f[2].to_string())
            })
            .collect()
    }

    #[test]
    fn v1_runs_nest_under_the_daemons_own_cgroup() {
        let own = own("9:pids:/svc\n4:memory:/pa/x\n1:cpu,cpuacct:/\n6:freezer:/svc\n0::/");
        let b = bases(&own, false);
        assert_eq!(
            b,
            [
                ("memory", PathBuf::from("/sys/fs/cgroup/memory/pa/x")),
                ("pids", PathBuf::from("/sys/fs/cgroup/pids/svc")),
                ("cpu", PathBuf::from("/sys/fs/cgroup/cpu")),
                ("freezer", PathBuf::from("/sys/fs/cgroup/freezer/svc")),
            ]
        );
    }

    #[test]
    fn v2_runs_go_beside_the_daemons_leaf() {
        let b = bases(&own("0::/system.slice/pyagent.service/daemon"), true);
        assert_eq!(
            b,
            [(
                "",
                PathBuf::from("/sys/fs/cgroup/system.slice/pyagent.service")
            )]
        );
        // A daemon at the root of its cgroup namespace has nowhere else to put them.
        assert_eq!(bases(&own("0::/"), true), [("", PathBuf::from(ROOT))]);
    }

    #[test]
    fn run_ids_name_their_daemon() {
        assert_eq!(run_pid("run-4242-7-0badcafe"), Some(4242));
        assert_eq!(run_pid("pyagent"), None);
        assert!(!orphaned(&format!("run-{}-0-0", std::process::id())));
        assert!(!orphaned("not-a-run"));
    }

    #[test]
    fn parents_cannot_climb_out() {
        assert!(check_parent("pyagent").is_ok());
        assert!(check_parent("pyagent/tasks").is_ok());
        for bad in ["", "/pyagent", "../x", "a/../../b", "."] {
            assert!(check_parent(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quota_is_millicores() {
        let at = |cpu_millis| {
            cpu_quota(&Limits {
                cpu_millis,
                ..Limits::default()
            })
        };
        assert_eq!(at(1500), 150_000);
        assert_eq!(at(1), 1000);
    }
}
