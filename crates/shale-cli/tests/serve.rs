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
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
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

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = env
        .command()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
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
