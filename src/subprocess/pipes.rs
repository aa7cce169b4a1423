//! The protocols a child's pipe transports run: each forwards its pipe's
//! events to the subprocess protocol (through [`Shared::deliver`], one
//! callback at a time) with the pipe's number; and the making of the pipe
//! transports, whose drivers the child's one task runs.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::Bytes;

use super::ParentEnds;
use super::task::ChildTask;
use super::transport::{Event, Shared};
use crate::drive::Typed;
use crate::stream::pipe::{pipe_config, read_pipe_io, write_pipe_io};
use crate::stream::{Started, StreamConfig, prepare_driver};
use crate::{BaseProtocol, Protocol, WriteLimits};

/// stdout's or stderr's protocol.
pub(super) struct ReadPipe {
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
        self.shared.deliver_data(self.fd, data);
    }
}

/// stdin's protocol: its flow control is the subprocess protocol's.
pub(super) struct WritePipe {
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

/// Make the parent's ends pipe transports (stdin write-only, stdout and
/// stderr read-only) whose drivers `task` will run, each recorded in the
/// transport's state as soon as it exists (so that a close, or a caller
/// that gives up, reaches it). Returns what to wait on for each pipe's
/// start; on an error, `task` keeps the drivers made so far.
pub(super) fn prepare(
    shared: &Arc<Shared>,
    ends: ParentEnds,
    stdin_limits: WriteLimits,
    task: &mut ChildTask,
) -> io::Result<Vec<Started>> {
    let mut started = Vec::new();
    if let Some(fd) = ends.stdin {
        let raw = fd.as_raw_fd();
        let config = StreamConfig {
            limits: stdin_limits,
            ..pipe_config(raw)
        };
        let s = shared.clone();
        let (t, rx, driver) = prepare_driver(
            write_pipe_io(fd)?,
            Typed::new(WritePipe { shared: s }),
            config,
        );
        shared.state().pipes[0] = Some(t);
        task.stdin = Some(driver);
        started.push(rx);
    }
    for (i, fd) in [(1usize, ends.stdout), (2, ends.stderr)] {
        if let Some(fd) = fd {
            let raw = fd.as_raw_fd();
            let s = shared.clone();
            let protocol = ReadPipe {
                shared: s,
                fd: i as i32,
            };
            let (t, rx, driver) =
                prepare_driver(read_pipe_io(fd)?, Typed::new(protocol), pipe_config(raw));
            shared.state().pipes[i] = Some(t);
            match i {
                1 => task.stdout = Some(driver),
                _ => task.stderr = Some(driver),
            }
            started.push(rx);
        }
    }
    Ok(started)
}
