//! The seccomp filters: a deny list over the default-allow policy of a normal process.
//!
//! A deny list, not an allow list, because steps run arbitrary tools (compilers, interpreters,
//! package managers) whose syscall sets nobody can enumerate; the namespaces, Landlock and the
//! unprivileged user do the confining, and seccomp removes the kernel surface those walls do not
//! cover (the syscalls behind most container escapes). The list follows Docker's default profile
//! and Codex's `linux-sandbox`.
//!
//! Two filters, because one seccompiler filter has one match action: the first answers `EPERM`
//! to the denied syscalls; the second answers `ENOSYS` to `clone3`, whose flags live in memory
//! the filter cannot read, so that libc falls back to `clone`, whose flags it can.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Syscalls denied outright: kernel-wide state (modules, kexec, reboot, swap, clocks, quotas),
/// other processes' memory (ptrace, process_vm_*), mounts and namespaces, the keyring, eBPF,
/// perf, userfaultfd (a classic exploit aid), io_uring (runs syscalls the filter never sees),
/// and file handles that bypass paths (open_by_handle_at, the "shocker" escape).
const DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_bpf,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
];

/// Namespace flags of `clone`: a process in the sandbox makes no namespaces of its own (a new
/// user namespace would hand it capabilities over new mounts and the kernel's less-tested paths).
const CLONE_NAMESPACES: &[libc::c_int] = &[
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
];

/// The syscall numbers by which a call can reach the kernel. On x86_64 an x32-ABI call is the
/// same number with bit 30 set (and a few calls have x32-only numbers, 512 and up); the arch
/// check of the filter is the same for both ABIs, so a deny list must name both. (Calls through
/// the i386 ABI fail the arch check and kill the process.) Kernels without x32 support answer
/// ENOSYS to these numbers anyway.
fn numbers(nr: libc::c_long) -> Vec<i64> {
    #[cfg(target_arch = "x86_64")]
    {
        const X32: i64 = 0x4000_0000;
        // x32's own numbers for calls whose x86_64 numbers are not x32 entry points.
        let x32_only: &[(libc::c_long, i64)] = &[
            (libc::SYS_ioctl, 514),
            (libc::SYS_ptrace, 521),
            (libc::SYS_kexec_load, 528),
            (libc::SYS_process_vm_readv, 539),
            (libc::SYS_process_vm_writev, 540),
        ];
        let mut v = vec![nr, nr | X32];
        v.extend(
            x32_only
                .iter()
                .filter(|(n, _)| *n == nr)
                .map(|(_, x)| x | X32),
        );
        v
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        vec![nr]
    }
}

fn cond(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompRule, seccompiler::BackendError> {
    SeccompRule::new(vec![SeccompCondition::new(arg, len, op, value)?])
}

/// Builds both filters for this architecture. `network`: whether sockets of any family are
/// allowed; when not, only `AF_UNIX` sockets may be created (a program's own IPC keeps working).
pub(crate) fn build(network: bool) -> Result<Vec<BpfProgram>, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let err = |e: seccompiler::BackendError| e.to_string();

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut add = |nr: libc::c_long, r: Vec<SeccompRule>| {
        for n in numbers(nr) {
            rules.insert(n, r.clone());
        }
    };
    for &nr in DENIED {
        add(nr, Vec::new());
    }
    let clone_rules = CLONE_NAMESPACES
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            cond(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    add(libc::SYS_clone, clone_rules);
    // Typing into the controlling terminal's input queue escapes any sandbox that shares a tty.
    // (The ioctl numbers are c_ulong with glibc and c_int with musl, hence the casts.)
    #[allow(clippy::unnecessary_cast)]
    let (tiocsti, tioclinux) = (libc::TIOCSTI as u64, libc::TIOCLINUX as u64);
    add(
        libc::SYS_ioctl,
        vec![
            cond(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, tiocsti).map_err(err)?,
            cond(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, tioclinux).map_err(err)?,
        ],
    );
    if !network {
        let not_unix = cond(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            libc::AF_UNIX as u64,
        )
        .map_err(err)?;
        add(libc::SYS_socket, vec![not_unix]);
    }
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;

    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(err)?;

    [deny, clone3]
        .into_iter()
        .map(|f| BpfProgram::try_from(f).map_err(err))
        .collect()
}

/// Installs the filters on the calling thread (the helper is single-threaded, and its children
/// inherit them). seccompiler sets no_new_privs first, as the kernel requires of unprivileged
/// callers.
pub(crate) fn apply(programs: &[BpfProgram]) -> Result<(), String> {
    for program in programs {
        seccompiler::apply_filter(program).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_network_modes_compile() {
        assert_eq!(build(false).unwrap().len(), 2);
        assert_eq!(build(true).unwrap().len(), 2);
        // The socket rule makes the no-network deny filter longer.
        assert!(build(false).unwrap()[0].len() > build(true).unwrap()[0].len());
    }
}
