//! The [`Recorder`] protocol (streaming and buffered) that logs every
//! callback into a [`Log`](super::Log), its [`Config`] (echo, EOF behaviour,
//! buffer shape, [`Hook`]): the public test kit's
//! ([`tokio_transports::testing::Recorder`]).

pub use tokio_transports::testing::{Hook, Recorder, RecorderConfig as Config};
