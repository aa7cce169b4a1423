//! Nothing: this package exists for its benchmarks (`echo.rs`, `udp.rs`,
//! `tls.rs`, `pipe.rs`, `subprocess.rs`); see `Cargo.toml` for why they are
//! a package of their own.
