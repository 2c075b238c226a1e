//! Process-wide signal state: SIGTERM/SIGINT ask for shutdown, SIGHUP asks files to reopen.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static SHUTDOWN: AtomicBool = AtomicBool::new(false);
static REOPEN: AtomicU64 = AtomicU64::new(0);

pub fn shutdown_requested() -> bool {
    SHUTDOWN.load(Ordering::Relaxed)
}

pub fn request_shutdown() {
    SHUTDOWN.store(true, Ordering::Relaxed);
}

/// Increments on every SIGHUP; sinks reopen when it changes.
pub fn reopen_generation() -> u64 {
    REOPEN.load(Ordering::Relaxed)
}

/// Installs the handlers: a thread waits for SIGTERM, SIGINT and SIGHUP (signal-hook's
/// iterator keeps the handler itself async-signal-safe) and wakes only when one comes.
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    tracing::info!("SIGHUP: reopening files");
                    REOPEN.fetch_add(1, Ordering::Relaxed);
                } else {
                    tracing::info!("shutdown requested; draining queues");
                    request_shutdown();
                }
            }
        })?;
    Ok(())
}
