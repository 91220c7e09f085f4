use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use crate::io::ReadBuf;
#[cfg(unix)]
use crate::net::loop_driven;
use crate::net::Socket;
#[cfg(unix)]
use std::os::fd::AsRawFd;

impl Socket for TcpStream {
    fn try_read(&mut self, mut buf: &mut dyn ReadBuf) -> io::Result<usize> {
        // fastio patch: see loop_driven.rs.
        #[cfg(unix)]
        if let Some(hooks) = loop_driven::active() {
            return (hooks.read)(self.as_raw_fd(), buf);
        }
        // Requires `&mut impl BufMut`
        self.try_read_buf(&mut buf)
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (*self).try_write(buf)
    }

    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // fastio patch: see loop_driven.rs.
        #[cfg(unix)]
        if let Some(hooks) = loop_driven::active() {
            return (hooks.wait_readable)(self.as_raw_fd(), cx);
        }
        (*self).poll_read_ready(cx)
    }

    fn poll_write_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (*self).poll_write_ready(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_shutdown(cx)
    }
}

#[cfg(unix)]
impl Socket for tokio::net::UnixStream {
    fn try_read(&mut self, mut buf: &mut dyn ReadBuf) -> io::Result<usize> {
        // fastio patch: see loop_driven.rs.
        if let Some(hooks) = loop_driven::active() {
            return (hooks.read)(self.as_raw_fd(), buf);
        }
        self.try_read_buf(&mut buf)
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (*self).try_write(buf)
    }

    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // fastio patch: see loop_driven.rs.
        #[cfg(unix)]
        if let Some(hooks) = loop_driven::active() {
            return (hooks.wait_readable)(self.as_raw_fd(), cx);
        }
        (*self).poll_read_ready(cx)
    }

    fn poll_write_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (*self).poll_write_ready(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_shutdown(cx)
    }
}
