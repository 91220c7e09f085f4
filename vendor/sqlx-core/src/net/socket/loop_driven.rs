//! fastio patch: lets the embedding program wait for a socket's readability
//! on its own event loop instead of tokio's reactor.
//!
//! While [`Hooks::active`] returns true on the polling thread, the tokio
//! sockets read with a plain `read(2)` (tokio's `try_read` would trust its
//! reactor's cached readiness, which that thread is not waiting on) and,
//! when a read would block, call [`Hooks::wait_readable`] instead of
//! registering with tokio's reactor. `active` must not change during one
//! poll of a future: a socket polled under tokio's readiness must also read
//! under it, or a stale "readable" would make it spin.

use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::BufMut;

/// What the embedding program provides.
pub struct Hooks {
    /// Whether the current thread waits for readability itself.
    pub active: fn() -> bool,
    /// One non-blocking `read(2)` of `fd` into the buffer's spare capacity.
    pub read: fn(RawFd, &mut dyn BufMut) -> io::Result<usize>,
    /// Arranges for the polled future to be polled again once `fd` is
    /// readable; normally returns `Poll::Pending`.
    pub wait_readable: fn(RawFd, &mut Context<'_>) -> Poll<io::Result<()>>,
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Installs the hooks; only the first call has an effect.
pub fn install(hooks: Hooks) {
    let _ = HOOKS.set(hooks);
}

/// The hooks, when the current thread waits for readability itself.
pub(crate) fn active() -> Option<&'static Hooks> {
    HOOKS.get().filter(|h| (h.active)())
}
