//! [`check_grammar`]: the callback contract, asserted on one connection's
//! complete event log (the public test kit's
//! [`tokio_transports::testing::check_grammar`]).

pub use tokio_transports::testing::check_grammar;
