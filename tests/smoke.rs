use bytes::Bytes;
use tokio_transports::*;

#[derive(Default)]
struct Echo(Option<Transport>);
impl BaseProtocol for Echo {
    fn connection_made(&mut self, t: &Transport) {
        self.0 = Some(t.clone());
    }
}
impl Protocol for Echo {
    fn data_received(&mut self, data: Bytes) {
        self.0.as_ref().unwrap().write(data).unwrap();
    }
}

struct Client(tokio::sync::mpsc::UnboundedSender<Bytes>);
impl BaseProtocol for Client {}
impl Protocol for Client {
    fn data_received(&mut self, data: Bytes) {
        let _ = self.0.send(data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_roundtrip() {
    let server = create_server(Echo::default, "127.0.0.1", 0, ServerOptions::default())
        .await
        .unwrap();
    let port = server.sockets()[0].port();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let t = create_connection(|| Client(tx), "127.0.0.1", port, ConnectOptions::default())
        .await
        .unwrap();
    t.write("hello").unwrap();
    assert_eq!(&rx.recv().await.unwrap()[..], b"hello");
    t.close();
    t.closed().await;
    server.close();
    server.wait_closed().await;
}
