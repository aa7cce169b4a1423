//! The protocols a child's pipe transports run: each forwards its pipe's
//! events to the subprocess protocol (through [`Shared::deliver`], one
//! callback at a time) with the pipe's number.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;

use super::ParentEnds;
use super::transport::{Event, Shared};
use crate::stream::handle::Transport;
use crate::{BaseProtocol, Protocol, WriteLimits, connect_read_pipe, connect_write_pipe};

/// stdout's or stderr's protocol.
struct ReadPipe {
    shared: Arc<Shared>,
    fd: i32,
}

impl BaseProtocol for ReadPipe {
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.shared.deliver(Event::PipeLost(self.fd, exc));
    }
}

impl Protocol for ReadPipe {
    fn data_received(&mut self, data: Bytes) {
        self.shared.deliver(Event::Data(self.fd, data));
    }
}

/// stdin's protocol: its flow control is the subprocess protocol's.
struct WritePipe {
    shared: Arc<Shared>,
}

impl BaseProtocol for WritePipe {
    fn pause_writing(&mut self) {
        self.shared.deliver(Event::PauseWriting);
    }

    fn resume_writing(&mut self) {
        self.shared.deliver(Event::ResumeWriting);
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.shared.deliver(Event::PipeLost(0, exc));
    }
}

impl Protocol for WritePipe {}

/// Connect the parent's ends as pipe transports (stdin write-only, stdout
/// and stderr read-only), each recorded in the transport's state as soon as
/// it is connected (so that a close, or a caller that gives up, reaches it).
pub(super) async fn connect(
    shared: &Arc<Shared>,
    ends: ParentEnds,
    stdin_limits: WriteLimits,
) -> io::Result<()> {
    if let Some(fd) = ends.stdin {
        let s = shared.clone();
        let t = connect_write_pipe(move || WritePipe { shared: s }, fd).await?;
        shared.state().pipes[0] = Some(t.clone());
        t.set_write_buffer_limits(Some(stdin_limits.high()), Some(stdin_limits.low()))
            .map_err(io::Error::from)?;
    }
    for (i, fd) in [(1usize, ends.stdout), (2, ends.stderr)] {
        if let Some(fd) = fd {
            let t = read_pipe(shared, i as i32, fd).await?;
            shared.state().pipes[i] = Some(t);
        }
    }
    Ok(())
}

async fn read_pipe(shared: &Arc<Shared>, fd: i32, end: OwnedFd) -> io::Result<Transport> {
    let s = shared.clone();
    connect_read_pipe(move || ReadPipe { shared: s, fd }, end).await
}
