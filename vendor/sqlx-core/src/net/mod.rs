mod socket;
pub mod tls;

// fastio patch: see socket/loop_driven.rs.
#[cfg(unix)]
pub use socket::loop_driven;
pub use socket::{
    connect_tcp, connect_uds, BufferedSocket, Socket, SocketIntoBox, WithSocket, WriteBuffer,
};
