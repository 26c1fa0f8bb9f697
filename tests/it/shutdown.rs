//! Graceful shutdown of the real binary: on SIGTERM new connections are refused, requests in
//! flight finish, and the process exits within `listen.shutdown_grace`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::*;

/// Starts the binary with `listen.shutdown_grace = grace`, in front of `upstream`; returns the
/// child and the address it listens on (read from its log).
fn start_binary(upstream: &str, grace: &str) -> (Child, SocketAddr) {
    let dir = temp_dir();
    let config = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\nworkers = 2\nshutdown_grace = \"{grace}\"\n\
             [upstream]\nurl = \"{upstream}\"\n\
             [clients]\nstatic = [{{ hostname = \"pgo.example.nl\" }}]\n\
             [log]\nlevel = \"info\"\nformat = \"text\"\n"
    );
    let (child, addr, _) = crate::support::start_binary(&dir, &config, &[]);
    (child, addr)
}

fn terminate(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn wait_exit(child: &mut Child, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_lets_requests_in_flight_finish_and_refuses_new_connections() {
    let upstream = Upstream::faults();
    let (mut child, addr) = start_binary(&upstream.url(), "5s");
    assert_eq!(
        raw_status(&raw(
            addr,
            b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5)
        )),
        200
    );
    // A request the upstream answers after a second.
    let in_flight = std::thread::spawn(move || {
        raw(
            addr,
            b"GET /slow HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            Duration::from_secs(30),
        )
    });
    // In flight once the upstream has it.
    upstream.wait_request("/slow");
    terminate(&child);
    // New connections are refused after the signal.
    let refused_by = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        assert!(Instant::now() < refused_by, "still accepting connections");
        std::thread::sleep(Duration::from_millis(20));
    }
    let response = in_flight.join().unwrap();
    assert_eq!(raw_status(&response), 200, "{response}");
    assert!(
        response.ends_with("slow"),
        "the request in flight finished: {response}"
    );
    wait_exit(&mut child, Duration::from_secs(60));
}

#[test]
fn idle_keep_alive_connections_do_not_hold_up_the_exit() {
    let upstream = Upstream::faults();
    // A grace period no test run reaches: the exit must not wait for it.
    let (mut child, addr) = start_binary(&upstream.url(), "120s");
    // Keep-alive connections that each had a request and now sit idle, on both workers.
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            s
        })
        .collect();
    terminate(&child);
    wait_exit(&mut child, Duration::from_secs(60));
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        assert_eq!(s.read(&mut [0u8; 64]).unwrap_or(0), 0, "closed");
    }
}

#[test]
fn the_grace_period_bounds_the_wait() {
    let upstream = Upstream::faults();
    let (mut child, addr) = start_binary(&upstream.url(), "300ms");
    // A request the upstream never answers (and the response timeout is far away): only the
    // end of the grace period lets the process exit.
    let mut in_flight = TcpStream::connect(addr).unwrap();
    in_flight
        .write_all(b"GET /never HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    upstream.wait_request("/never");
    terminate(&child);
    wait_exit(&mut child, Duration::from_secs(60));
    in_flight
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut response = Vec::new();
    let _ = in_flight.read_to_end(&mut response);
    assert!(
        !String::from_utf8_lossy(&response).contains("200 OK"),
        "cut off at the end of the grace period"
    );
}
