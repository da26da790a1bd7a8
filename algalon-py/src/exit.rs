//! Interpreter exit while Python threads are inside Algalon.
//!
//! Calls that may wait (a job boundary's synchronous sample, opening NVML,
//! starting or stopping a server) release the GIL. When the interpreter
//! finalizes, CPython ends every daemon thread that asks for the GIL back
//! with `pthread_exit`, a forced unwind through the Rust frames of that
//! call. The wheel links its own unwinder (zig's libunwind, for the
//! manylinux tag) while glibc's `pthread_exit` drives libgcc's, and the two
//! do not share their frame state: the process could die with SIGSEGV on
//! the way out of an otherwise successful run.
//!
//! So no thread is inside such a call when finalization starts: an
//! `atexit` hook (registered by the package's `__init__`, so it runs before
//! CPython starts ending threads) marks the interpreter as exiting and waits
//! — GIL released, at most [`DRAIN_LIMIT`] — for calls in flight to take the
//! GIL back. From then on every call runs holding the GIL, so CPython never
//! stops a thread inside one (no thread Algalon starts ever takes the GIL,
//! so holding it cannot deadlock them).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::marker::Ungil;
use pyo3::prelude::*;

/// How long the exit hook waits for calls in flight. A job boundary takes one
/// sample of its GPUs; a GPU that hangs longer than this loses the guarantee
/// (the watchdog names it in the meantime) rather than holding up exit.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

static EXITING: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` with the GIL released, unless the interpreter is exiting: then
/// with the GIL held, so the thread cannot be ended inside `f`.
pub fn release<T, F>(py: Python<'_>, f: F) -> T
where
    F: Ungil + FnOnce() -> T,
    T: Ungil,
{
    // Checked and counted with the GIL held: the exit hook sets the flag
    // with the GIL held too, so a call is either counted before it or runs
    // holding the GIL after it.
    if EXITING.load(Ordering::SeqCst) {
        return f();
    }
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    // Dropped after `detach` has taken the GIL back (or unwinds through it).
    let _in_flight = InFlight;
    py.detach(f)
}

struct InFlight;

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The `atexit` hook: from now on calls hold the GIL; waits for those in
/// flight. Returns how many were still in flight when it gave up (0 when
/// all came back).
#[pyfunction]
pub fn _at_exit(py: Python<'_>) -> usize {
    EXITING.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + DRAIN_LIMIT;
    py.detach(|| {
        loop {
            let left = IN_FLIGHT.load(Ordering::SeqCst);
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}
