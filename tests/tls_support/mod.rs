//! Certificates made at test time (rcgen) and the rustls configurations
//! built from them: a CA with a leaf for `localhost` and `127.0.0.1`, a
//! self-signed certificate, and PEM files for Python and openssl peers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio_transports::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_transports::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_transports::{ClientTls, ServerTls};

/// One set of test credentials.
pub struct Pki {
    pub ca_der: CertificateDer<'static>,
    pub ca_pem: String,
    pub leaf_chain: Vec<CertificateDer<'static>>,
    pub leaf_pem: String,
    pub leaf_key_der: Vec<u8>,
    pub leaf_key_pem: String,
    /// Self-signed, for `localhost` only, unknown to every client.
    pub self_signed_der: CertificateDer<'static>,
    pub self_signed_key_der: Vec<u8>,
}

impl Pki {
    pub fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "tokio-transports test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();

        let ss_key = KeyPair::generate().unwrap();
        let ss = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let ss_cert = ss.self_signed(&ss_key).unwrap();

        Pki {
            ca_der: ca_cert.der().clone(),
            ca_pem: ca_cert.pem(),
            leaf_chain: vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            leaf_pem: format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
            leaf_key_der: leaf_key.serialize_der(),
            leaf_key_pem: leaf_key.serialize_pem(),
            self_signed_der: ss_cert.der().clone(),
            self_signed_key_der: ss_key.serialize_der(),
        }
    }

    fn key(der: &[u8]) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.to_vec()))
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::new(
            ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(self.leaf_chain.clone(), Self::key(&self.leaf_key_der))
                .unwrap(),
        )
    }

    pub fn self_signed_server_config(&self) -> Arc<ServerConfig> {
        Arc::new(
            ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(
                    vec![self.self_signed_der.clone()],
                    Self::key(&self.self_signed_key_der),
                )
                .unwrap(),
        )
    }

    pub fn server(&self) -> ServerTls {
        ServerTls::new(self.server_config())
    }

    /// A client that trusts the CA.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        Arc::new(
            ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A client that trusts the self-signed certificate only.
    pub fn self_signed_client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.self_signed_der.clone()).unwrap();
        Arc::new(
            ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A client that trusts nothing.
    pub fn untrusting_client_config() -> Arc<ClientConfig> {
        Arc::new(
            ClientConfig::builder()
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        )
    }

    pub fn client(&self) -> ClientTls {
        ClientTls::new(self.client_config())
    }

    /// Write `ca.pem`, `cert.pem` (leaf + CA) and `key.pem` into `dir`.
    pub fn write_pem(&self, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let ca = dir.join("ca.pem");
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&ca, &self.ca_pem).unwrap();
        std::fs::write(&cert, &self.leaf_pem).unwrap();
        std::fs::write(&key, &self.leaf_key_pem).unwrap();
        (ca, cert, key)
    }
}

/// A fresh temporary directory (removed by the caller or left in /tmp).
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tt-tls-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The rustls error inside an `io::Error` from this crate, if any.
pub fn rustls_error(e: &std::io::Error) -> Option<rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<tokio_transports::TlsError>())
        .and_then(|t| t.rustls_error().cloned())
}

// ---- connections (these use the shared test helpers in `common`) ---------

use crate::common::{Config, Log, Recorder, Registry};
use tokio_transports::{ConnectOptions, Server, ServerOptions, Transport};

/// A TLS client to `host:port`, logged as `"client"` in `reg`.
pub async fn tls_client_to(
    reg: &Registry,
    host: &str,
    port: u16,
    tls: ClientTls,
) -> std::io::Result<(Transport, Log)> {
    let log = reg.log("client");
    let rec = Recorder::new(log.clone(), Config::default());
    let opts = ConnectOptions::default().ssl(tls);
    let t = tokio_transports::create_connection(move || rec, host, port, opts).await?;
    Ok((t, log))
}

/// The logs of a server's connections, kept outside any registry: those of
/// failed handshakes never get `connection_made` nor `connection_lost`.
pub type ServerLogs = Arc<std::sync::Mutex<Vec<Log>>>;

/// A TLS server on 127.0.0.1 whose protocols (one [`Recorder`] per
/// accepted connection, made before its handshake) log into [`ServerLogs`].
pub async fn tls_server_keeping_logs(tls: ServerTls, cfg: Config) -> (Server, u16, ServerLogs) {
    let logs = ServerLogs::default();
    let kept = logs.clone();
    let server = tokio_transports::create_server(
        move || {
            let log = Log::new("server");
            kept.lock().unwrap().push(log.clone());
            Recorder::new(log, cfg.clone())
        },
        "127.0.0.1",
        0,
        ServerOptions::default().ssl(tls),
    )
    .await
    .unwrap();
    let port = server.sockets()[0].port();
    (server, port, logs)
}

/// A raw TLS server peer (tokio-rustls) on a fresh port: the handle yields
/// the first accepted connection, handshake done, for the test to drive.
pub async fn raw_tls_peer(
    pki: &Pki,
) -> (
    u16,
    tokio::task::JoinHandle<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
    let peer = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        acceptor.accept(sock).await.unwrap()
    });
    (port, peer)
}
