//! Restarting in place: the process replaced by a fresh run of itself.

/// Replaces this process with a fresh run of the same executable and
/// arguments (same pid, on Unix). Returns only if that fails.
#[cfg(unix)]
pub fn restart_process() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return error,
    };
    // A rebuilt binary replaces the old file: run the new one at that path.
    let exe = exe
        .to_str()
        .and_then(|s| s.strip_suffix(" (deleted)"))
        .map_or(exe.clone(), std::path::PathBuf::from);
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    tracing::info!(exe = %exe.display(), "restarting");
    std::process::Command::new(exe).args(args).exec()
}

/// Replacing a process in place needs Unix's `exec`: elsewhere this
/// returns an `Unsupported` error at once.
#[cfg(not(unix))]
pub fn restart_process() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "restarting in place needs a Unix exec",
    )
}
