//! Process-wide signal state: SIGTERM/SIGINT ask for shutdown, SIGHUP asks files to reopen.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static SHUTDOWN: AtomicBool = AtomicBool::new(false);
static FAILED: AtomicBool = AtomicBool::new(false);
static REOPEN: AtomicU64 = AtomicU64::new(0);

pub fn shutdown_requested() -> bool {
    SHUTDOWN.load(Ordering::Relaxed)
}

pub fn request_shutdown() {
    SHUTDOWN.store(true, Ordering::Relaxed);
}

/// A thread of nflogd died: everything stops and the process exits non-zero, so that its
/// supervisor (systemd) starts it again rather than leave it running without that part.
pub fn fail() {
    FAILED.store(true, Ordering::Relaxed);
    request_shutdown();
}

pub fn failed() -> bool {
    FAILED.load(Ordering::Relaxed)
}

/// Makes a panic on any thread loud: logged with the thread's name, and `fail`.
pub fn fail_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        tracing::error!(
            "thread `{}` died: {info}; stopping (exit status 1)",
            thread.name().unwrap_or("?")
        );
        default(info);
        fail();
    }));
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
