//! The reference server under real clients over real TCP on 127.0.0.1:
//! every loop bounded, every process reaped by the harness.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use lichtara_tests::harness::{Ended, Proc, log_field};
use nix::sys::signal::Signal;

const SERVER: &str = env!("CARGO_BIN_EXE_http_server");
const PATIENCE: Duration = Duration::from_secs(30);

/// Starts the server on a free port; returns it and its address.
fn start(extra: &[&str]) -> (Proc, String) {
    start_with_env(extra, &[])
}

fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> (Proc, String) {
    let mut args = vec!["--addr", "127.0.0.1:0"];
    // Requests in flight finish within the drain timeout; on a loaded
    // machine the default 5 s can pass before they do. Tests of the
    // timeout itself give their own.
    if !extra.contains(&"--drain-timeout") {
        args.extend(["--drain-timeout", "25s"]);
    }
    args.extend_from_slice(extra);
    let mut server = Proc::start_with_args(SERVER, &args, env);
    let line = server.wait_for_prefix("listening on http://");
    (
        server,
        line.trim_start_matches("listening on http://").to_owned(),
    )
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Sends a GET on `stream`, keeping the connection open.
fn send_get(stream: &mut TcpStream, path: &str) {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("send the request");
}

/// Reads one response: status, headers (lowercased), body.
fn read_response(stream: &mut TcpStream) -> (u16, Vec<(String, String)>, String) {
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).expect("read the status line");
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read a header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("a header");
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(0, |(_, value)| value.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("read the body");
    (code, headers, String::from_utf8_lossy(&body).into_owned())
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Whether the server closed the connection (EOF or reset).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

#[test]
fn idle_connections_close_at_once_in_flight_requests_finish_and_new_ones_are_refused() {
    let (mut server, addr) = start(&[]);
    let mut idle: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut stream = connect(&addr);
            send_get(&mut stream, "/");
            let (code, _, body) = read_response(&mut stream);
            assert_eq!((code, body.as_str()), (200, "ok\n"));
            stream
        })
        .collect();
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = connect(&addr);
            send_get(&mut stream, "/slow?ms=1500");
            stream
        })
        .collect();
    server.wait_for_lines("slow request started", 20);
    server.signal(Signal::SIGTERM);
    server.wait_for_log("listener closed");
    assert!(
        TcpStream::connect(&addr).is_err(),
        "a new connection after the listener closed must be refused"
    );
    for stream in &mut idle {
        assert!(
            closed_by_server(stream),
            "an idle keep-alive connection must be closed at once"
        );
    }
    for stream in &mut slow {
        let (code, headers, body) = read_response(stream);
        assert_eq!(code, 200);
        assert_eq!(body, "slept 1500 ms\n");
        assert_eq!(header(&headers, "connection"), Some("close"));
    }
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        ended.stderr.contains("hook=\"lichtara::http::drain"),
        "{ended}"
    );
}

#[test]
fn a_connection_silent_since_long_before_the_drain_does_not_hold_it_up() {
    let (mut server, addr) = start_with_env(&[], &[("RUST_LOG", "info,lichtara::http=debug")]);
    let mut silent = connect(&addr);
    // Accepted in order: once this one is answered, `silent` was accepted.
    let mut answered = connect(&addr);
    send_get(&mut answered, "/");
    assert_eq!(read_response(&mut answered).0, 200);
    // Not a synchronisation: what is tested is a connection older than the
    // first-request grace (250 ms) when the drain starts.
    std::thread::sleep(Duration::from_millis(400));
    server.signal(Signal::SIGTERM);
    assert!(
        closed_by_server(&mut silent),
        "the silent connection is closed"
    );
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    let decision = ended
        .stderr
        .lines()
        .find(|line| line.contains("has not begun a request"))
        .unwrap_or_else(|| panic!("no drain decision for the silent connection: {ended}"));
    assert!(
        decision.contains("wait_ms=0"),
        "closed without waiting for a first request: {decision}"
    );
}

#[test]
fn connections_waiting_in_the_backlog_at_sigterm_are_served_not_reset() {
    let (mut server, addr) = start(&[]);
    // Stopped, the server cannot accept: the kernel completes these
    // handshakes and queues them in the listener's backlog.
    server.signal(Signal::SIGSTOP);
    let mut queued: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut stream = connect(&addr);
            send_get(&mut stream, "/");
            stream
        })
        .collect();
    server.signal(Signal::SIGTERM);
    server.signal(Signal::SIGCONT);
    for stream in &mut queued {
        let (code, headers, body) = read_response(stream);
        assert_eq!((code, body.as_str()), (200, "ok\n"), "{headers:?}");
        assert!(closed_by_server(stream), "then the connection closes");
    }
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
}

#[test]
fn a_websocket_client_receives_close_1001() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let (mut server, addr) = start(&[]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let frame = runtime.block_on(async {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("connect");
        socket.send(Message::text("hello")).await.unwrap();
        let echo = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo, Message::text("hello"));
        server.signal(Signal::SIGTERM);
        loop {
            match tokio::time::timeout(PATIENCE, socket.next())
                .await
                .expect("a close frame in time")
            {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    });
    let frame = frame.expect("a close frame with a code");
    assert_eq!(frame.code, CloseCode::Away);
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
}

#[test]
fn during_the_drain_delay_readiness_is_503_and_requests_are_still_served() {
    // Long enough for the two requests below to be made within it on a
    // loaded machine; the test then waits it out.
    let (mut server, addr) = start(&["--drain-delay", "10s"]);
    let get = |path: &str| {
        let mut stream = connect(&addr);
        send_get(&mut stream, path);
        read_response(&mut stream).0
    };
    assert_eq!(get("/ready"), 200);
    server.signal(Signal::SIGTERM);
    server.wait_for_log("still accepting during the drain delay");
    assert_eq!(get("/ready"), 503);
    assert_eq!(get("/"), 200);
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
}

#[test]
fn a_request_that_never_finishes_is_cut_at_the_drain_timeout() {
    let (mut server, addr) = start(&["--drain-timeout", "500ms"]);
    let mut stuck = connect(&addr);
    send_get(&mut stuck, "/slow?ms=600000");
    server.wait_for_lines("slow request started", 1);
    server.signal(Signal::SIGTERM);
    let ended: Ended = server.wait();
    assert_eq!(ended.code(), Some(1), "{ended}");
    assert!(ended.stderr.contains("drain timeout: cutting"), "{ended}");
    assert!(ended.stderr.contains("outcome=\"timed out\""), "{ended}");
    assert!(closed_by_server(&mut stuck));
}

/// A directory of this test's own, removed at the end.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "lichtara-{label}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn post_items(addr: &str, count: usize, delay_ms: u64) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut stream = connect(addr);
            write!(stream, "POST /items?delay_ms={delay_ms} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n").unwrap();
            stream
        })
        .collect()
}

#[test]
fn items_in_flight_at_sigterm_all_commit_and_the_sqlite_file_is_left_clean() {
    let dir = TempDir::new("sqlite");
    let db = dir.0.join("items.sqlite");
    let (mut server, addr) = start(&["--db", db.to_str().unwrap()]);
    let mut posts = post_items(&addr, 20, 500);
    server.wait_for_lines("item request started", 20);
    server.signal(Signal::SIGTERM);
    for stream in &mut posts {
        assert_eq!(read_response(stream).0, 201);
    }
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(ended.stderr.contains("database pool closed"), "{ended}");
    // The drain (phase 0) ended before the pool closed (phase 1).
    let drained = ended
        .stderr
        .find("hook=\"lichtara::http::drain")
        .expect("drain logged");
    let closed = ended
        .stderr
        .find("database pool closed")
        .expect("close logged");
    assert!(drained < closed, "{ended}");
    // Read back by an independent SQLite reader: Python's sqlite3.
    let count = std::process::Command::new("python3")
        .args(["-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from items').fetchone()[0])"])
        .arg(&db)
        .output()
        .expect("python3 reads the file");
    assert_eq!(
        String::from_utf8_lossy(&count.stdout).trim(),
        "20",
        "{count:?}"
    );
    assert!(
        !dir.0.join("items.sqlite-wal").exists(),
        "a WAL file was left behind"
    );
}

#[test]
fn the_default_databases_temporary_folder_is_removed_at_exit() {
    let (mut server, addr) = start(&[]);
    let file = server
        .stdout_so_far()
        .iter()
        .find_map(|line| line.strip_prefix("database "))
        .map(std::path::PathBuf::from)
        .expect("the server names its database");
    let folder = file.parent().expect("a folder").to_owned();
    assert!(folder.is_dir(), "{}", folder.display());
    // A row, so that the file and its WAL exist when the server stops.
    let mut post = post_items(&addr, 1, 0);
    assert_eq!(read_response(&mut post[0]).0, 201);
    server.signal(Signal::SIGTERM);
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        !folder.exists(),
        "{} is left behind:\n{ended}",
        folder.display()
    );
    // After the pool closed (phase 1): removed in phase 2.
    let closed = ended
        .stderr
        .find("database pool closed")
        .expect("close logged");
    let removed = ended
        .stderr
        .find("temporary folder removed")
        .expect("removal logged");
    assert!(closed < removed, "{ended}");
}

#[test]
fn with_postgresql_every_connection_is_gone_and_the_transaction_in_flight_committed() {
    let Ok(url) = std::env::var("LICHTARA_TEST_POSTGRES_URL") else {
        eprintln!(
            "SKIPPED: LICHTARA_TEST_POSTGRES_URL is not set; `.ci/run` sets it after starting PostgreSQL (see .ci/postgres)"
        );
        return;
    };
    let application = format!("lichtara-test-{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let observer = runtime
        .block_on(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url),
        )
        .expect("connect to PostgreSQL");
    let count_items = || -> i64 {
        runtime
            .block_on(
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM items").fetch_one(&observer),
            )
            .unwrap_or(0)
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    let db = format!("{url}{separator}application_name={application}");
    let (mut server, addr) = start(&["--db", &db]);
    let before = count_items();
    let mut post = post_items(&addr, 1, 1500);
    server.wait_for_lines("item request started", 1);
    let connections = || -> i64 {
        runtime
            .block_on(
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                )
                .bind(&application)
                .fetch_one(&observer),
            )
            .unwrap()
    };
    assert!(
        connections() >= 1,
        "the application's connection is not visible"
    );
    server.signal(Signal::SIGTERM);
    assert_eq!(read_response(&mut post[0]).0, 201);
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert_eq!(
        count_items(),
        before + 1,
        "the transaction in flight at the signal must have committed"
    );
    // The server closes its sockets before it exits; PostgreSQL's backends
    // end as they notice. Bounded wait for that, not for the application.
    let until = std::time::Instant::now() + PATIENCE;
    while connections() > 0 {
        assert!(
            std::time::Instant::now() < until,
            "connections of the application remain in pg_stat_activity"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_leaked_connection_cannot_hang_the_shutdown() {
    let dir = TempDir::new("leak");
    let db = dir.0.join("items.sqlite");
    let (mut server, _addr) = start(&["--db", db.to_str().unwrap(), "--leak-connection"]);
    server.signal(Signal::SIGTERM);
    let ended = server.wait();
    // The pool's close waits for the leaked connection forever; its hook's
    // timeout (5 s) ends the wait and the report says so.
    assert_eq!(ended.code(), Some(1), "{ended}");
    assert!(
        ended.stderr.contains("database pool close timed out"),
        "{ended}"
    );
    assert!(ended.stderr.contains("held=1"), "{ended}");
    assert!(
        ended
            .stderr
            .contains("hook=\"http_server::Database\" order=1"),
        "{ended}"
    );
}

/// Whether the server ended the connection: end of file, or a reset. Not a
/// read timeout (that is a panic: the server did not close it).
fn ended_by_server(stream: &mut TcpStream) -> Result<(), String> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(err) => {
                panic!("the server did not close the connection within {PATIENCE:?}: {err}")
            }
        }
    }
    if bytes.is_empty() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[test]
fn a_client_that_sends_its_head_too_slowly_is_disconnected_while_others_are_served() {
    let (mut server, addr) = start(&["--header-read-timeout", "1s"]);
    let mut slow = connect(&addr);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        .unwrap();
    // The slow client goes on sending a byte every 100 ms, for at most
    // 30 s, and never ends its head; it stops when a write fails.
    let mut writer = slow.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for _ in 0..300 {
            if writer.write_all(b"a").is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    // Meanwhile, another client is served.
    let mut other = connect(&addr);
    send_get(&mut other, "/");
    assert_eq!(read_response(&mut other).0, 200);
    assert_eq!(
        ended_by_server(&mut slow),
        Ok(()),
        "the slow client is disconnected without an answer"
    );
    assert!(
        sender.join().unwrap(),
        "its writes fail once the server closed the connection"
    );
    // And the server goes on serving.
    let mut after = connect(&addr);
    send_get(&mut after, "/");
    assert_eq!(read_response(&mut after).0, 200);
    server.signal(Signal::SIGTERM);
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert_eq!(
        log_field(&ended.stderr, " drained ", "header_timeouts"),
        1,
        "{ended}"
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_at_the_keep_alive_timeout() {
    let (mut server, addr) = start(&["--keep-alive-timeout", "1s"]);
    let mut idle = connect(&addr);
    send_get(&mut idle, "/");
    let (code, headers, _) = read_response(&mut idle);
    assert_eq!(code, 200);
    assert_eq!(header(&headers, "connection"), None, "kept alive");
    assert_eq!(
        ended_by_server(&mut idle),
        Ok(()),
        "closed once idle too long"
    );
    let mut next = connect(&addr);
    send_get(&mut next, "/");
    assert_eq!(
        read_response(&mut next).0,
        200,
        "the server goes on serving"
    );
    server.signal(Signal::SIGTERM);
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert_eq!(
        log_field(&ended.stderr, " drained ", "idle_timeouts"),
        1,
        "{ended}"
    );
}

/// Sends a WebSocket upgrade request on a new connection; returns the
/// status, the headers and the stream.
fn upgrade_request(addr: &str) -> (u16, Vec<(String, String)>, TcpStream) {
    let mut stream = connect(addr);
    write!(
        stream,
        "GET /ws HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let (code, headers, _) = read_response(&mut stream);
    (code, headers, stream)
}

#[test]
fn during_the_drain_delay_a_reconnecting_websocket_client_gets_503_and_is_not_upgraded() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    // Long enough for the requests below to be made within it on a loaded
    // machine; the test then waits it out.
    let (mut server, addr) = start(&["--drain-delay", "5s"]);
    let (upgraded, _, _) = upgrade_request(&addr);
    assert_eq!(upgraded, 101, "before shutdown, upgrades are accepted");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("connect");
        socket.send(Message::text("hello")).await.unwrap();
        let echo = tokio::time::timeout(PATIENCE, socket.next()).await.unwrap();
        assert_eq!(echo.unwrap().unwrap(), Message::text("hello"));
        server.signal(Signal::SIGTERM);
        loop {
            match tokio::time::timeout(PATIENCE, socket.next())
                .await
                .expect("a close frame in time")
            {
                Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    });
    // The client reconnects at once, and again: sent elsewhere each time.
    for attempt in 1..=3 {
        let (code, headers, mut stream) = upgrade_request(&addr);
        assert_eq!(code, 503, "attempt {attempt}: {headers:?}");
        assert_eq!(header(&headers, "retry-after"), Some("1"), "{headers:?}");
        assert_eq!(header(&headers, "connection"), Some("close"), "{headers:?}");
        assert_eq!(
            ended_by_server(&mut stream),
            Ok(()),
            "and the connection closes"
        );
    }
    // Plain requests are still served during the delay, and so is one that
    // offers another upgrade the server does not do (`h2c`).
    let mut plain = connect(&addr);
    send_get(&mut plain, "/");
    assert_eq!(read_response(&mut plain).0, 200);
    let mut h2c = connect(&addr);
    write!(
        h2c,
        "GET / HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_response(&mut h2c).0, 200);
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert_eq!(
        log_field(&ended.stderr, " drained ", "refused_upgrades"),
        3,
        "{ended}"
    );
}

/// CPU time (user + system) of a process, from /proc.
#[cfg(target_os = "linux")]
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read its stat");
    // After the command's closing parenthesis: fields 3 onwards.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[cfg(target_os = "linux")]
#[test]
fn out_of_file_descriptors_the_server_backs_off_says_so_once_and_serves_again() {
    use std::os::unix::process::CommandExt;

    let mut command = Proc::command(
        SERVER,
        &["--addr", "127.0.0.1:0", "--drain-timeout", "25s"],
        &[],
    );
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 48, 48)
                .map_err(std::io::Error::from)
        });
    }
    let mut server = Proc::spawn(command);
    let addr = server
        .wait_for_prefix("listening on http://")
        .trim_start_matches("listening on http://")
        .to_owned();
    // More connections than descriptors: the kernel completes them all
    // (the backlog), the server cannot accept them all.
    let mut clients: Vec<TcpStream> = (0..60).map(|_| connect(&addr)).collect();
    server.wait_for_log("accept failing");
    // The connections it did accept are served meanwhile (the first one
    // was accepted: the server accepts in order).
    send_get(&mut clients[0], "/");
    assert_eq!(read_response(&mut clients[0]).0, 200);
    // A measurement window, not a synchronisation: what the exhaustion
    // costs while it lasts.
    let before = cpu_seconds(server.pid());
    std::thread::sleep(Duration::from_secs(3));
    let burned = cpu_seconds(server.pid()) - before;
    println!("CPU time during 3 s without file descriptors: {burned:.2} s");
    drop(clients);
    // Once descriptors free up, new connections are served.
    let mut fresh = connect(&addr);
    send_get(&mut fresh, "/");
    assert_eq!(read_response(&mut fresh).0, 200);
    server.wait_for_log("accepting again after");
    server.signal(Signal::SIGTERM);
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    let warnings = ended
        .stderr
        .lines()
        .filter(|line| line.contains("accept failing"))
        .count();
    let failed = log_field(&ended.stderr, "accepting again after", "failed_accepts");
    println!("{failed} failed accepts in the episode, {warnings} warning(s)");
    assert_eq!(
        warnings, 1,
        "one warning for the episode:\n{}",
        ended.stderr
    );
    assert!(
        failed >= 1,
        "the recovery counts the failed accepts: {}",
        ended.stderr
    );
}

#[test]
fn http2_streams_in_flight_at_sigterm_finish_and_the_connection_gets_goaway() {
    use http_body_util::BodyExt;

    let (mut server, addr) = start(&[]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("an HTTP/2 handshake (prior knowledge)");
        let connection = tokio::spawn(connection);
        let get = |path: &str| {
            axum::http::Request::get(format!("http://{addr}{path}"))
                .body(String::new())
                .unwrap()
        };
        // Several streams in normal running: the connection is HTTP/2.
        for _ in 0..3 {
            let response = sender.send_request(get("/")).await.expect("answered");
            assert_eq!(response.status(), 200);
            assert_eq!(response.version(), axum::http::Version::HTTP_2);
        }
        let slow = sender.send_request(get("/slow?ms=1500"));
        let slow = tokio::spawn(slow);
        server.wait_for_line("slow request started (1500 ms)");
        server.signal(Signal::SIGTERM);
        let response = slow
            .await
            .unwrap()
            .expect("the stream in flight is answered");
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"slept 1500 ms\n");
        // GOAWAY: the connection ends cleanly, and takes no new stream.
        tokio::time::timeout(PATIENCE, connection)
            .await
            .expect("the connection ends after GOAWAY")
            .unwrap()
            .expect("cleanly");
        assert!(sender.send_request(get("/")).await.is_err());
    });
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
}

#[test]
fn a_keep_alive_timeout_of_zero_closes_after_each_answer_and_never_spins() {
    let (mut server, addr) = start(&[
        "--keep-alive-timeout",
        "0s",
        "--header-read-timeout",
        "100ms",
    ]);
    let mut stream = connect(&addr);
    // Longer than the header-read timeout: the connection's task looks at
    // it while it is served, and must not spin.
    send_get(&mut stream, "/slow?ms=500");
    let (code, headers, body) = read_response(&mut stream);
    assert_eq!((code, body.as_str()), (200, "slept 500 ms\n"));
    assert_eq!(header(&headers, "connection"), Some("close"), "{headers:?}");
    assert_eq!(ended_by_server(&mut stream), Ok(()));
    server.signal(Signal::SIGTERM);
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
}

/// The two timers of an idle keep-alive connection do not stretch each
/// other: a head begun on it is timed by the header-read timeout, not the
/// keep-alive one, and an idle one by the keep-alive timeout, not the
/// header-read one. (The other timer is far longer than the wait.)
#[test]
fn each_timer_of_a_keep_alive_connection_holds_whatever_the_other_is() {
    let (mut server, addr) = start(&[
        "--header-read-timeout",
        "1s",
        "--keep-alive-timeout",
        "1000s",
    ]);
    let mut slow = connect(&addr);
    send_get(&mut slow, "/");
    assert_eq!(read_response(&mut slow).0, 200);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert_eq!(
        ended_by_server(&mut slow),
        Ok(()),
        "closed by the header-read timeout"
    );
    server.signal(Signal::SIGTERM);
    let ended = server.wait();
    assert_eq!(
        log_field(&ended.stderr, " drained ", "header_timeouts"),
        1,
        "{ended}"
    );

    let (mut server, addr) = start(&[
        "--header-read-timeout",
        "1000s",
        "--keep-alive-timeout",
        "1s",
    ]);
    let mut idle = connect(&addr);
    send_get(&mut idle, "/");
    assert_eq!(read_response(&mut idle).0, 200);
    assert_eq!(
        ended_by_server(&mut idle),
        Ok(()),
        "closed by the keep-alive timeout"
    );
    server.signal(Signal::SIGTERM);
    let ended = server.wait();
    assert_eq!(
        log_field(&ended.stderr, " drained ", "idle_timeouts"),
        1,
        "{ended}"
    );
}

/// A first read of `P` might begin the HTTP/2 preface; `POST` does not:
/// the connection is HTTP/1, and its next head is timed as such.
#[test]
fn a_request_whose_first_packet_is_one_byte_of_the_http2_preface_is_http1() {
    let (mut server, addr) = start(&["--header-read-timeout", "1s"]);
    let mut stream = connect(&addr);
    stream.set_nodelay(true).unwrap();
    stream.write_all(b"P").unwrap();
    stream.flush().unwrap();
    // Two packets, not one; the pause is not a synchronisation.
    std::thread::sleep(Duration::from_millis(100));
    stream
        .write_all(b"OST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream).0, 201);
    stream.write_all(b"GET / HT").unwrap();
    assert_eq!(
        ended_by_server(&mut stream),
        Ok(()),
        "its next head is timed by the header-read timeout"
    );
    server.signal(Signal::SIGTERM);
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
}

#[test]
fn an_empty_line_or_a_stalled_head_does_not_hold_the_drain_up() {
    for extra in [&b"\r\n"[..], &b"GET / HT"[..]] {
        let (mut server, addr) = start(&[]);
        let mut stream = connect(&addr);
        send_get(&mut stream, "/");
        assert_eq!(read_response(&mut stream).0, 200);
        stream.write_all(extra).unwrap();
        // Until the server has seen the bytes: a second connection's answer
        // comes after them (one server task reads both in turn, and the
        // bytes are already in the socket).
        let mut other = connect(&addr);
        send_get(&mut other, "/");
        assert_eq!(read_response(&mut other).0, 200);
        server.signal(Signal::SIGTERM);
        assert_eq!(ended_by_server(&mut stream), Ok(()));
        let ended = server.wait();
        // The drain timeout is 25 s: had it been reached, the exit code
        // would be 1.
        assert_eq!(ended.code(), Some(0), "{extra:?}: {ended}");
    }
}

#[test]
fn an_http2_peer_that_never_answers_the_goaway_does_not_hold_the_drain_up() {
    let (mut server, addr) = start(&[]);
    let mut stream = connect(&addr);
    // The preface and an empty SETTINGS frame; then silence: no SETTINGS
    // acknowledgement, no PING answer.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    // The server's SETTINGS: it is speaking HTTP/2 to this connection.
    let mut frame = [0u8; 9];
    stream.read_exact(&mut frame).unwrap();
    assert_eq!(frame[3], 4, "a SETTINGS frame");
    server.signal(Signal::SIGTERM);
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert_eq!(
        log_field(&ended.stderr, " drained ", "closed_idle"),
        1,
        "{ended}"
    );
}

/// Starts the reference server as systemd's socket activation would: the
/// test's own listener at descriptor 3, `LISTEN_FDS=1`, `LISTEN_FDNAMES`,
/// and `LISTEN_PID` the server's own PID (a shell sets it to `$$`, then
/// execs the server in the same process). `pid` overrides `LISTEN_PID`.
fn start_activated(listener: &std::net::TcpListener, pid: Option<u32>) -> Proc {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let addr = listener.local_addr().unwrap().to_string();
    let script = match pid {
        None => "export LISTEN_PID=$$; exec \"$0\" \"$@\"".to_owned(),
        Some(pid) => format!("export LISTEN_PID={pid}; exec \"$0\" \"$@\""),
    };
    let mut command = Proc::command(
        "/bin/sh",
        &[
            "-c",
            &script,
            SERVER,
            "--addr",
            &addr,
            "--drain-timeout",
            "25s",
        ],
        &[("LISTEN_FDS", "1"), ("LISTEN_FDNAMES", "http")],
    );
    // A copy well above 3: the listener itself may be descriptor 3 here,
    // and dup2(3, 3) would leave it close-on-exec.
    // SAFETY: fcntl(2) on a descriptor this test owns; the copy is
    // close-on-exec and closed once the server is spawned.
    let fd = unsafe { nix::libc::fcntl(listener.as_raw_fd(), nix::libc::F_DUPFD_CLOEXEC, 100) };
    assert!(fd >= 100, "{}", std::io::Error::last_os_error());
    // SAFETY: dup2(2) only, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if nix::libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = Proc::spawn(command);
    // SAFETY: the copy made above, no longer needed.
    unsafe { nix::libc::close(fd) };
    server
}

#[test]
fn under_socket_activation_the_server_serves_on_the_inherited_listener_and_leaves_it_open() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut server = start_activated(&listener, None);
    let line = server.wait_for_prefix("listening on http://");
    assert_eq!(line.trim_start_matches("listening on http://"), addr);
    server.wait_for_log("using the inherited listener");
    let mut stream = connect(&addr);
    send_get(&mut stream, "/");
    let (code, _, _) = read_response(&mut stream);
    assert_eq!(code, 200);
    drop(stream);
    server.signal(Signal::SIGTERM);
    let ended = server.wait();
    assert_eq!(ended.code(), Some(0), "{}", ended.stderr);
    // The server closed its descriptor, not the socket: it still listens
    // here, for the next generation (a connect completes in the backlog).
    let waiting = TcpStream::connect(&addr).expect("the shared socket still listens");
    let (accepted, _) = listener.accept().unwrap();
    assert_eq!(accepted.peer_addr().unwrap(), waiting.local_addr().unwrap());
}

#[test]
fn sockets_meant_for_another_process_are_not_taken() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // LISTEN_PID names this test, not the server: the server must not
    // take descriptor 3, so its own bind finds the port held and fails.
    let mut server = start_activated(&listener, Some(std::process::id()));
    let ended = server.wait();
    assert_ne!(ended.code(), Some(0), "{}", ended.stderr);
    assert!(
        ended.stderr.contains("meant for another process"),
        "{}",
        ended.stderr
    );
    assert!(
        ended.stderr.contains("Address already in use") || ended.stderr.contains("in use"),
        "{}",
        ended.stderr
    );
}
