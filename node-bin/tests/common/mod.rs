//! Helpers shared by the tests that run node-bin (and compactor-bin) as processes; the
//! compactor's tests include this file by path.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The node-bin executable: Cargo names it for node-bin's own tests; other packages' tests
/// find it beside their test binary's directory, where the workspace build puts it.
pub fn node_bin() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_node-bin") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let node = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("node-bin");
    assert!(
        node.exists(),
        "build node-bin first (cargo build -p node-bin)"
    );
    node
}

/// A running node-bin process and its PostgreSQL port.
pub struct NodeProcess {
    process: Process,
    pub port: u16,
}

impl NodeProcess {
    /// Starts node-bin with `args` on a free port and waits (bounded) until it accepts
    /// connections.
    pub fn start(args: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(node_bin())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node-bin");
        let process = Process(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "node-bin {args:?} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        NodeProcess { process, port }
    }

    /// A connected client as user root to database dev.
    pub async fn client(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={} user=root dbname=dev", self.port),
            NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Kills the node with SIGKILL and waits for it.
    pub fn kill_9(mut self) {
        self.process.0.kill().unwrap(); // SIGKILL on Unix
        self.process.0.wait().unwrap();
    }
}

/// An object store URL for a test: a fresh bucket on the S3-compatible server at
/// `AWS_ENDPOINT_URL` when the test script started one (its moto takes an unsigned
/// `PUT /bucket`), else the local directory `dir`.
pub fn test_object_store(dir: &std::path::Path, name: &str) -> String {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
        return format!("file://{}", dir.display());
    };
    let authority = endpoint
        .strip_prefix("http://")
        .expect("a plain-http test endpoint")
        .trim_end_matches('/');
    let bucket = format!("{name}-{}-{}", std::process::id(), free_port());
    let mut s = std::net::TcpStream::connect(authority).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "creating bucket {bucket}: {response}"
    );
    format!("s3://{bucket}/db")
}

/// The response to `GET path` on 127.0.0.1:`port`.
pub fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}

/// The value of metric `name` (with its labels) in a /metrics response.
pub fn metric_value(response: &str, name: &str) -> f64 {
    response
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {response}"))
}
