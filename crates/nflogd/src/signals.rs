//! Process-wide signal state: SIGTERM/SIGINT ask for shutdown, SIGHUP asks files to reopen
//! and the configuration to be read again. A source's threads also stop on their own flag
//! (a reload that removes or changes that source): `shutdown_requested` says either.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

static SHUTDOWN: AtomicBool = AtomicBool::new(false);
static FAILED: AtomicBool = AtomicBool::new(false);
static REOPEN: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The stop flag of the component this thread belongs to.
    static STOP: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Whether this thread should stop: the process is stopping, or its component is.
pub fn shutdown_requested() -> bool {
    SHUTDOWN.load(Ordering::Relaxed)
        || STOP.with(|s| {
            s.borrow()
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Relaxed))
        })
}

/// Runs `f` with `flag` as this thread's stop flag: threads `f` starts with `spawn_thread`
/// carry it (a source's start, so that all its threads stop with it).
pub fn with_stop_flag<T>(flag: Arc<AtomicBool>, f: impl FnOnce() -> T) -> T {
    let before = STOP.with(|s| s.replace(Some(flag)));
    let r = f();
    STOP.with(|s| *s.borrow_mut() = before);
    r
}

/// Starts a thread named `name` that stops with the current thread's component.
pub fn spawn_thread<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    let flag = STOP.with(|s| s.borrow().clone());
    std::thread::Builder::new().name(name).spawn(move || {
        STOP.with(|s| *s.borrow_mut() = flag);
        f()
    })
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
                    tracing::info!("SIGHUP: reopening files and reading the configuration again");
                    REOPEN.fetch_add(1, Ordering::Relaxed);
                } else {
                    tracing::info!("shutdown requested; draining queues");
                    request_shutdown();
                }
            }
        })?;
    Ok(())
}
