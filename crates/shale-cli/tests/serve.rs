//! `shale token` and `shale serve` from the command line: a token made and
//! listed, the server answering on 127.0.0.1 with it, refusing without it,
//! refusing to listen beyond loopback without TLS, and stopping on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::Env;

/// `GET path` over plain HTTP/1.1; returns the status line and the body.
fn get(port: u16, path: &str, token: Option<&str>) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    // A TLS port may close on a plain request before it is all written.
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    );
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes); // a TLS port may reset a plain request
    let answer = String::from_utf8_lossy(&bytes);
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[test]
fn tokens_and_the_server_from_the_command_line() {
    let env = Env::new();
    env.ok(&["volume", "create", "imagenet"]);
    let made = env.json(&["token", "create", "--role", "read", "--note", "ci"]);
    let token = made["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("shale_"));
    let listed = env.json(&["token", "list"]);
    assert_eq!(listed[0]["role"], "read");
    assert!(
        !listed.to_string().contains(&token),
        "a listing shows no secret"
    );
    let out = env.run(&["token", "create", "--role", "king"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("use admin, write or read"));

    let (server, port) = common::spawn_server(env.command(), &[], Stdio::piped());
    let (status, body) = get(port, "/api/v1/volumes", Some(&token));
    assert!(status.contains("200"), "{status} {body}");
    assert!(body.contains("\"imagenet\""), "{body}");
    let (status, _) = get(port, "/api/v1/volumes", None);
    assert!(status.contains("401"), "{status}");
    let (status, body) = get(port, "/api/v1/openapi.json", None);
    assert!(
        status.contains("200") && body.contains("\"openapi\""),
        "{status}"
    );

    // SIGTERM: it stops, with status 0.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let stopped = server.wait_with_output().unwrap();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );

    let out = env.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs TLS"));
}

/// A self-signed certificate for localhost and 127.0.0.1, written as PEM
/// files; returns their paths and the certificate (DER).
fn certificate(env: &Env) -> (String, String, Vec<u8>) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    (
        env.s("cert.pem"),
        env.s("key.pem"),
        made.cert.der().to_vec(),
    )
}

/// `GET path` over TLS, trusting only `ca`; the status line.
fn get_tls(port: u16, path: &str, token: &str, ca: &[u8]) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.to_vec().into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer); // a peer may close without close_notify
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_server_speaks_tls_and_then_may_listen_beyond_loopback() {
    let env = Env::new();
    let token = env.json(&["token", "create", "--role", "read"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (cert, key, ca) = certificate(&env);
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = env
        .command()
        .args([
            "serve",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = get_tls(port, "/api/v1/volumes", &token, &ca);
    assert!(status.contains("200"), "{status}");
    // Plain HTTP on the TLS port gets no API answer.
    let (plain, _) = get(port, "/api/v1/volumes", Some(&token));
    assert!(!plain.contains("200"), "{plain}");
    server.kill().unwrap();
    server.wait().unwrap();

    let out = env.run(&["serve", "--tls-cert", &cert]);
    assert!(
        !out.status.success(),
        "a certificate without its key is refused"
    );
    let out = env.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &env.s("nope.pem"),
        "--tls-key",
        &key,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.pem"));
}
