//! A gpfdist must not outlive this process: the kernel kills it when we die, SIGKILL included.

/// Makes the child get SIGKILL when this process dies (`PR_SET_PDEATHSIG`).
///
/// The kernel sends it when the *thread* that forked the child ends: children are spawned
/// from the runtime's worker threads, which live as long as the process.
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec; it only makes the prctl and
    // getppid system calls (async-signal-safe) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))?;
            // The parent may have died before the prctl: then nobody would kill it.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(rustix::io::Errno::SRCH.raw_os_error()));
            }
            Ok(())
        });
    }
}
