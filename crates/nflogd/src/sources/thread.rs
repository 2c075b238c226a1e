//! What the kernel-socket sources share: a thread of their own, entered into the configured
//! network namespace, that reports whether it could open its socket before `spawn` returns.

use anyhow::{anyhow, Context, Result};
use std::thread::JoinHandle;

/// Enters the network namespace at `path` for the calling thread only.
pub fn enter_netns(path: &str) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).with_context(|| format!("opening netns {path}"))?;
    // SAFETY: setns on a valid fd affects only this thread's network namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(anyhow!(
            "setns({path}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Starts thread `name`: `open` runs on it first, and its error is returned from here (so a bad
/// group or a missing kernel feature stops start-up); then `run` gets what `open` made.
pub fn spawn<T: 'static>(
    name: String,
    open: impl FnOnce() -> Result<T> + Send + 'static,
    run: impl FnOnce(T) + Send + 'static,
) -> Result<JoinHandle<()>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    let handle = crate::signals::spawn_thread(name, move || match open() {
        Ok(opened) => {
            let _ = ready_tx.send(Ok(()));
            run(opened);
        }
        Err(e) => {
            let _ = ready_tx.send(Err(e));
        }
    })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => Err(anyhow!("source thread ended during start-up")),
    }
}
