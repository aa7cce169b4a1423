//! Certificates for the TLS examples (not an example itself).
//!
//! The TLS echo server makes a test CA and a certificate for `localhost` and
//! `127.0.0.1` when it starts, and writes `ca.pem`, `cert.pem` (the
//! certificate, then the CA) and `key.pem` into the directory named by
//! `TLS_ECHO_DIR` (default: `tokio-transports-tls-echo` in the system's
//! temporary directory). The client trusts `ca.pem` from the same place, so
//! the pair works with no setup, and so do the Python versions in
//! `tests/python/`.

#![allow(dead_code)]

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_transports::rustls::pki_types::pem::PemObject;
use tokio_transports::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_transports::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

/// Where the certificates live.
pub fn cert_dir() -> PathBuf {
    std::env::var_os("TLS_ECHO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tokio-transports-tls-echo"))
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Make a CA and a server certificate signed by it, write them to
/// [`cert_dir`], and return the server's TLS configuration.
pub fn make_server_config() -> io::Result<Arc<ServerConfig>> {
    make_server_config_in(&cert_dir())
}

/// [`make_server_config`], writing into `dir`.
pub fn make_server_config_in(dir: &std::path::Path) -> io::Result<Arc<ServerConfig>> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().map_err(other)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "tokio-transports example CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(other)?;
    let key = KeyPair::generate().map_err(other)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(other)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(other)?;

    std::fs::create_dir_all(dir)?;
    // Written whole, then renamed: a client never reads half a file.
    for (name, text) in [
        ("ca.pem", ca_cert.pem()),
        ("cert.pem", format!("{}{}", cert.pem(), ca_cert.pem())),
        ("key.pem", key.serialize_pem()),
    ] {
        let tmp = dir.join(format!(".{name}.{}", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    let chain = vec![cert.der().clone(), ca_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(other)?;
    Ok(Arc::new(config))
}

/// A client configuration that trusts the CA in [`cert_dir`].
pub fn client_config() -> io::Result<Arc<ClientConfig>> {
    let path = cert_dir().join("ca.pem");
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&path)
        .map_err(|e| other(format!("{}: {e}", path.display())))?
    {
        roots.add(cert.map_err(other)?).map_err(other)?;
    }
    Ok(Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Re-exported so the examples need no `rustls` import of their own.
pub type Error = rustls::Error;
