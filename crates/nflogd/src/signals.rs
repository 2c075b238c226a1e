//! Process-wide signal state: SIGTERM/SIGINT ask for shutdown, SIGHUP asks files to reopen.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

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

/// Installs the handlers; signal-hook keeps them async-signal-safe (flag stores only).
pub fn install() -> std::io::Result<()> {
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, term.clone())?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            if term.swap(false, Ordering::Relaxed) {
                tracing::info!("shutdown requested; draining queues");
                request_shutdown();
            }
            if hup.swap(false, Ordering::Relaxed) {
                tracing::info!("SIGHUP: reopening files");
                REOPEN.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        })?;
    Ok(())
}
