//! The manager supervising: restart policies with backoff and a crash-loop
//! limit, a crash that costs in-flight requests only (the held listener
//! keeps its backlog while the service is down), several services started
//! in dependency order and stopped in reverse, and a Procfile project.
//! Real processes on 127.0.0.1; what is judged is what the processes do
//! and what the manager says, never how long it took.

#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use lichtara_tests::load::{Config, Load, Outcome};
use lichtara_tests::managed::{
    Managed, alive, answered_by, free_port, printed_pid, python_server, text,
};

const SERVER: &str = env!("CARGO_BIN_EXE_http_server");

/// `lichtara status --json`, parsed, and its exit code.
fn status(project: &Managed, name: &str) -> (serde_json::Value, i32) {
    let output = project.lichtara(&["status", "--json", "-N", name]);
    let value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("status --json: {err}: {}", text(&output)));
    (value, output.status.code().unwrap_or(-1))
}

/// A FIFO in the project: generation 1 of the services below blocks
/// reading it, and ends when the test writes a line.
fn fifo(project: &Managed) -> std::path::PathBuf {
    let path = project.dir.join("crash");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    path
}

/// Lets generation 1 go on past its `read < crash`.
fn release(fifo: &std::path::Path) {
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .expect("open the FIFO");
    writer.write_all(b"go\n").unwrap();
}

/// A service whose generation 1 waits for the FIFO then does `then`, and
/// whose later generations do `later`; each first says its generation, in
/// capitals (the command line the log also holds is in lower case).
fn fifo_service(then: &str, later: &str) -> String {
    format!(
        "command = [\"sh\", \"-c\", \"echo generation $LICHTARA_GENERATION | tr a-z A-Z; if [ $LICHTARA_GENERATION = 1 ]; then read line < crash; {then}; fi; {later}\"]\n"
    )
}

/// The supervisor's PID, from the service's record.
fn supervisor_of(project: &Managed) -> i32 {
    let text = std::fs::read_to_string(project.dir.join(".lichtara/server.pid")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&text).unwrap();
    record["supervisor"]["pid"].as_i64().expect("a supervisor") as i32
}

#[track_caller]
fn assert_log_has(project: &Managed, needles: &[&str]) {
    let log = project.log("server");
    for needle in needles {
        assert!(log.contains(needle), "{needle:?} in the log:\n{log}");
    }
}

#[test]
fn a_service_that_keeps_failing_is_restarted_with_growing_delays_then_marked_failed() {
    let project = Managed::new("crashloop", SERVER);
    let fifo = fifo(&project);
    project.settings(&format!(
        "{}restart = \"on-failure\"\nrestart_delay = \"50ms\"\nrestart_delay_max = \"150ms\"\nrestart_limit = 3\nrestart_window = \"1h\"\n",
        fifo_service("exit 3", "exit 3")
    ));
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let (running, code) = status(&project, "server");
    assert_eq!(code, 0, "{running}");
    assert_eq!(running["supervisor"]["restart"], "on-failure");
    assert_eq!(running["supervisor"]["restarts"], 0);

    let supervisor = supervisor_of(&project);
    release(&fifo);
    project.wait_for_log("server", "it is failed");
    // It gave up: its end (it was re-parented to this test) is awaited.
    nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(supervisor), None).expect("reap it");
    // restart_limit = 3 allows 4 starts; the delays double up to the cap.
    assert_log_has(
        &project,
        &[
            "in 50ms (restart 1 of at most 3 within 1h",
            "in 100ms (restart 2 of at most 3 within 1h",
            "in 150ms (restart 3 of at most 3 within 1h",
            "GENERATION 4",
            "after 3 restart(s) within 1h (restart_limit = 3)",
        ],
    );
    assert!(!project.log("server").contains("GENERATION 5"));
    // The supervisor gave up and left nothing running.
    let (failed, code) = status(&project, "server");
    assert_eq!(code, 3, "LSB: not running; {failed}");
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["ended"], "exit code 3");
    assert_eq!(failed["restarts"], 3);
    assert!(
        failed["last_lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|line| line == "GENERATION 4"),
        "{failed}"
    );
    let words = project.lichtara(&["status"]);
    assert!(
        text(&words).contains("has failed") && text(&words).contains("lichtara start"),
        "{}",
        text(&words)
    );
    let listed = project.lichtara(&["ps"]);
    assert!(text(&listed).contains("failed"), "{}", text(&listed));
    // Nothing restarts it until `start`, which clears the failure.
    std::fs::remove_file(&fifo).unwrap();
    let _ = self::fifo(&project);
    let again = project.lichtara(&["start"]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(status(&project, "server").0["state"], "running");
    assert!(!project.dir.join(".lichtara/server.failed").exists());
    project.stop_leaving_nothing();
}

#[test]
fn always_restarts_after_a_clean_exit_and_on_failure_does_not() {
    let always = Managed::new("always", SERVER);
    let fifo = fifo(&always);
    always.settings(&format!(
        "{}restart = \"always\"\n",
        fifo_service("exit 0", "exec sleep 1000")
    ));
    let started = always.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let first = printed_pid(&started);
    release(&fifo);
    always.wait_for_log("server", "restarted `server` after it ended by itself");
    let (value, code) = status(&always, "server");
    assert_eq!(code, 0, "{value}");
    assert_eq!(value["state"], "running", "{value}");
    assert_ne!(value["pid"], first);
    assert_eq!(value["supervisor"]["restarts"], 1);
    assert_eq!(value["supervisor"]["last_exit"], "exit code 0");
    assert!(!alive(first));
    always.stop_leaving_nothing();

    let on_failure = Managed::new("on-failure-clean", SERVER);
    let fifo = self::fifo(&on_failure);
    on_failure.settings(&format!(
        "{}restart = \"on-failure\"\n",
        fifo_service("exit 0", "exec sleep 1000")
    ));
    let started = on_failure.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    release(&fifo);
    on_failure.wait_for_log("server", "ended by itself: exit code 0");
    let (value, code) = status(&on_failure, "server");
    assert_eq!((code, &value["state"]), (3, &"stopped".into()), "{value}");
    assert!(!on_failure.log("server").contains("GENERATION 2"));
}

#[test]
fn a_stop_during_the_restart_delay_stops_cleanly_and_is_no_failure() {
    let project = Managed::new("stop-in-backoff", SERVER);
    let fifo = fifo(&project);
    project.settings(&format!(
        "{}restart = \"on-failure\"\nrestart_delay = \"10m\"\nrestart_delay_max = \"10m\"\n",
        fifo_service("exit 3", "exit 3")
    ));
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    release(&fifo);
    project.wait_for_log("server", "restarting it in 600.000s");
    let (value, code) = status(&project, "server");
    assert_eq!(
        (code, &value["state"]),
        (0, &"restarting".into()),
        "{value}"
    );
    let stopped = project.lichtara(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_eq!(project.processes(), Vec::<i32>::new(), "nothing is left");
    let (value, code) = status(&project, "server");
    assert_eq!((code, &value["state"]), (3, &"stopped".into()), "{value}");
    assert!(!project.log("server").contains("GENERATION 2"));
}

#[test]
fn a_connection_made_while_a_crashed_service_is_down_is_served_by_the_next_instance() {
    let project = Managed::new("crash-backlog", SERVER);
    python_server(&project);
    let port = free_port();
    project.settings(&format!(
        "command = [\"python3\", \"server.py\"]\nlisten = {{ http = \"127.0.0.1:{port}\" }}\nstart_grace = \"500ms\"\nrestart = \"on-failure\"\nrestart_delay = \"3s\"\nrestart_delay_max = \"3s\"\n"
    ));
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let first = printed_pid(&started);
    assert_eq!(answered_by(port), first);
    // The crash: the service's own process (started by this test through
    // the manager), SIGKILLed by PID.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    project.wait_for_log("server", "restarting it in 3.000s");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    // Connected and sent before the next instance was started: the
    // connection waits in the held listener's backlog.
    assert!(
        !project.log("server").contains("started generation 2"),
        "the next instance was not started yet when the client connected"
    );
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let by: i32 = answer
        .rsplit("\r\n\r\n")
        .next()
        .and_then(|body| body.trim().parse().ok())
        .unwrap_or_else(|| panic!("no PID in {answer:?}"));
    assert_ne!(by, first, "answered by the next instance");
    let (value, _) = status(&project, "server");
    assert_eq!(value["pid"], by);
    assert_eq!(value["supervisor"]["last_exit"], "signal 9");
    project.stop_leaving_nothing();
}

#[test]
fn a_crash_under_load_refuses_no_connection_and_costs_only_what_was_in_flight() {
    let project = Managed::new("crash-load", SERVER);
    let port = free_port();
    project.settings(&format!(
        "command = [{SERVER:?}, \"--addr\", \"127.0.0.1:{port}\"]\nlisten = {{ http = \"127.0.0.1:{port}\" }}\nready = \"notify\"\nrestart = \"on-failure\"\nrestart_delay = \"100ms\"\n"
    ));
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let first = printed_pid(&started);
    let workers = 8;
    let load = Load::start(&Config::mixed(
        format!("127.0.0.1:{port}"),
        workers,
        Duration::from_millis(2),
        vec!["/".into()],
    ));
    assert!(load.answered(100), "the load is answered");
    let crashed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    project.wait_for_log("server", "restarted `server` after it ended by itself");
    let restarted_in = crashed.elapsed();
    assert!(load.answered(400), "the next instance serves the load");
    let records = load.finish();
    let refused = records
        .iter()
        .filter(|record| record.outcome == Outcome::Refused)
        .count();
    let failed: Vec<&Outcome> = records
        .iter()
        .map(|record| &record.outcome)
        .filter(|outcome| **outcome != Outcome::Ok)
        .collect();
    // A figure for the record, not a verdict: load stretches it.
    println!(
        "crash restart under load: {} requests, {refused} refused, {} failed ({failed:?}); from the SIGKILL to the next instance ready: {restarted_in:?} (restart_delay 100ms)",
        records.len(),
        failed.len()
    );
    assert_eq!(refused, 0, "the held listener refuses nothing");
    // At most one request in flight per worker when the process died.
    assert!(
        failed.len() <= workers,
        "only in-flight requests are lost: {failed:?}"
    );
    project.stop_leaving_nothing();
}

/// A Python service that checks its dependency answers (when it has one),
/// says so in `events`, listens on `port`, and on SIGTERM says it stops.
const SERVICE_PY: &str = "import signal, socket, sys\n\
name, port = sys.argv[1], int(sys.argv[2])\n\
for dependency in sys.argv[3:]:\n\
\x20   socket.create_connection(('127.0.0.1', int(dependency)), timeout=5).close()\n\
def say(what):\n\
\x20   with open('events', 'a') as events:\n\
\x20       events.write(name + ' ' + what + '\\n')\n\
def stop(*_):\n\
\x20   say('down')\n\
\x20   sys.exit(0)\n\
signal.signal(signal.SIGTERM, stop)\n\
server = socket.socket()\n\
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
server.bind(('127.0.0.1', port))\n\
server.listen()\n\
say('up')\n\
while True:\n\
\x20   server.accept()[0].close()\n";

fn events(project: &Managed) -> Vec<String> {
    std::fs::read_to_string(project.dir.join("events"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn services_start_in_dependency_order_each_ready_first_and_stop_in_reverse() {
    let project = Managed::new("depends", SERVER);
    std::fs::write(project.dir.join("service.py"), SERVICE_PY).unwrap();
    let [db, web, worker] = [free_port(), free_port(), free_port()];
    let service = |name: &str, port: u16, after: &[(&str, u16)]| {
        let ports: String = after
            .iter()
            .map(|(_, port)| format!(", \"{port}\""))
            .collect();
        let names: Vec<String> = after
            .iter()
            .map(|(name, _)| format!("\"{name}\""))
            .collect();
        format!(
            "[services.{name}]\ncommand = [\"python3\", \"service.py\", \"{name}\", \"{port}\"{ports}]\nready = {{ port = \"127.0.0.1:{port}\" }}\ndepends_on = [{}]\n",
            names.join(", ")
        )
    };
    project.settings(&format!(
        "stop_timeout = \"20s\"\n{}{}{}",
        service("worker", worker, &[("web", web)]),
        service("web", web, &[("db", db)]),
        service("db", db, &[]),
    ));
    // Only what `web` needs.
    let up = project.lichtara(&["up", "web"]);
    assert!(up.status.success(), "{}", text(&up));
    assert_eq!(events(&project), ["db up", "web up"]);
    // Then everything: what runs is left as it is.
    let up = project.lichtara(&["up"]);
    assert!(up.status.success(), "{}", text(&up));
    assert!(
        text(&up).contains("`db` is already running"),
        "{}",
        text(&up)
    );
    assert_eq!(events(&project), ["db up", "web up", "worker up"]);
    let listed = project.lichtara(&["ps", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let states: Vec<(&str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["name"].as_str().unwrap(),
                row["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("db", "running"), ("web", "running"), ("worker", "running")]
    );
    let table = project.lichtara(&["ps"]);
    for needle in ["NAME", "RESTARTS", "db", "port=127.0.0.1"] {
        assert!(
            text(&table).contains(needle),
            "{needle:?}: {}",
            text(&table)
        );
    }
    // `status` without a name cannot guess which.
    let unnamed = project.lichtara(&["status"]);
    assert!(
        text(&unnamed).contains("declares the services db, web, worker"),
        "{}",
        text(&unnamed)
    );
    let down = project.lichtara(&["down"]);
    assert!(down.status.success(), "{}", text(&down));
    assert_eq!(
        events(&project)[3..],
        ["worker down", "web down", "db down"]
    );
    assert_eq!(project.processes(), Vec::<i32>::new(), "nothing is left");
}

#[test]
fn a_dependency_cycle_is_refused_by_name_before_anything_starts() {
    let project = Managed::new("cycle", SERVER);
    project.settings(
        "[services.a]\ncommand = [\"sleep\", \"1000\"]\ndepends_on = [\"c\"]\n\
         [services.b]\ncommand = [\"sleep\", \"1000\"]\ndepends_on = [\"a\"]\n\
         [services.c]\ncommand = [\"sleep\", \"1000\"]\ndepends_on = [\"b\"]\n",
    );
    let up = project.lichtara(&["up"]);
    assert_eq!(up.status.code(), Some(1), "{}", text(&up));
    assert!(
        text(&up).contains("the dependencies make a cycle: a -> c -> b -> a"),
        "{}",
        text(&up)
    );
    assert_eq!(project.processes(), Vec::<i32>::new());
    assert!(!project.dir.join(".lichtara").exists(), "nothing was made");
}

#[test]
fn a_procfile_project_comes_up_and_goes_down() {
    let project = Managed::new("procfile", SERVER);
    std::fs::write(
        project.dir.join("Procfile"),
        "# foreman's format\nweb: echo web on port $PORT | tr a-z A-Z; exec sleep 1000\nclock: echo clock on port $PORT | tr a-z A-Z; exec sleep 1000\n",
    )
    .unwrap();
    let up = project.lichtara(&["up"]);
    assert!(up.status.success(), "{}", text(&up));
    let web_log = project.dir.join(".lichtara/web.log");
    lichtara_tests::managed::wait_for_text(&web_log, "WEB ON PORT 5000", || {
        !project.processes().is_empty()
    });
    let clock_log = project.dir.join(".lichtara/clock.log");
    lichtara_tests::managed::wait_for_text(&clock_log, "CLOCK ON PORT 5100", || {
        !project.processes().is_empty()
    });
    let listed = project.lichtara(&["ps", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|row| row["state"] == "running"),
        "{rows}"
    );
    let down = project.lichtara(&["down"]);
    assert!(down.status.success(), "{}", text(&down));
    assert_eq!(project.processes(), Vec::<i32>::new(), "nothing is left");
}

/// `systemd-analyze verify` of the unit files in `dir` (`--user` ones
/// with a runtime folder of their own): its output, if it failed.
fn verify(dir: &std::path::Path, user: bool) -> Result<(), String> {
    let units: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    let runtime = dir.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    let mut command = std::process::Command::new("systemd-analyze");
    if user {
        command.arg("--user").env("XDG_RUNTIME_DIR", &runtime);
    }
    let output = command
        .arg("verify")
        .args(units.iter().filter(|unit| unit.is_file()))
        .output()
        .expect("systemd-analyze");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[test]
fn generated_units_pass_systemd_analyze_verify_and_run_says_ready_as_type_notify_expects() {
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: systemd-analyze is not installed (`apt-get install systemd`)");
        return;
    }
    let project = Managed::new("units", SERVER);
    std::fs::write(project.dir.join("service.py"), SERVICE_PY).unwrap();
    let [db, web] = [free_port(), free_port()];
    project.settings(&format!(
        "restart = \"on-failure\"\nstop_timeout = \"7s\"\n\
         [services.db]\ncommand = [\"python3\", \"service.py\", \"db\", \"{db}\"]\nready = {{ port = \"127.0.0.1:{db}\" }}\n\
         [services.web]\ncommand = [{SERVER:?}, \"--addr\", \"127.0.0.1:{web}\"]\nready = \"notify\"\ndepends_on = [\"db\"]\nenv = {{ GREETING = \"hello $USER, 100%\" }}\n\
         [services.worker]\ncommand = [\"sleep\", \"1000\"]\ndepends_on = [\"db\"]\n"
    ));
    for user in [false, true] {
        let units = project.dir.join(if user { "user-units" } else { "units" });
        std::fs::create_dir_all(&units).unwrap();
        for name in ["db", "web", "worker"] {
            let mut args = vec!["unit", name];
            if user {
                args.push("--user");
            }
            let printed = project.lichtara(&args);
            assert!(printed.status.success(), "{}", text(&printed));
            let unit = String::from_utf8(printed.stdout).unwrap();
            for needle in [
                "Type=notify",
                "KillMode=mixed",
                "TimeoutStopSec=12s",
                "ExecReload=/bin/kill -HUP $MAINPID",
                "Restart=on-failure",
                &format!("run --name {name}"),
            ] {
                assert!(unit.contains(needle), "{needle:?} in {unit}");
            }
            let file = format!(
                "lichtara-{}-{name}.service",
                project.dir.file_name().unwrap().to_string_lossy()
            );
            std::fs::write(units.join(file), unit).unwrap();
        }
        if let Err(said) = verify(&units, user) {
            panic!("systemd-analyze verify (user: {user}): {said}");
        }
    }
    // --install writes them where systemd looks (here: XDG_CONFIG_HOME).
    let config = project.dir.join("config");
    let installed = project
        .command(&["unit", "--user", "--install"])
        .env("XDG_CONFIG_HOME", &config)
        .output()
        .unwrap();
    assert!(installed.status.success(), "{}", text(&installed));
    assert_eq!(
        std::fs::read_dir(config.join("systemd/user"))
            .unwrap()
            .count(),
        3
    );

    // What systemd sees of `run` as a unit's main process: READY=1 once
    // the service is ready, from `run` itself (db, ready by its port) or
    // from the service, given the socket (web, which says it itself).
    let socket_path = project.dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    for (name, port) in [("db", db), ("web", web)] {
        let mut run = project
            .command(&["run", "--name", name])
            .env("NOTIFY_SOCKET", &socket_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut datagram = [0u8; 4096];
        let read = socket.recv(&mut datagram).expect("a notification");
        let said = String::from_utf8_lossy(&datagram[..read]).into_owned();
        assert!(said.contains("READY=1"), "{name}: {said:?}");
        if name == "db" {
            assert!(said.contains(&format!("MAINPID={}", run.id())), "{said:?}");
        }
        // Ready means serving.
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("it serves");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(run.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = run.wait().unwrap();
        assert!(status.success(), "{name}: {status:?}");
    }
    assert_eq!(project.processes(), Vec::<i32>::new(), "nothing is left");
}

/// A Python server on descriptor 3 that answers `/health` with 200, or
/// 503 while the file `unhealthy` exists, and `/` with its PID.
const HEALTH_PY: &str = "import os, socket, http.server\n\
class Handler(http.server.BaseHTTPRequestHandler):\n\
\x20   def do_GET(self):\n\
\x20       sick = self.path == '/health' and os.path.exists('unhealthy')\n\
\x20       body = b'%d\\n' % os.getpid()\n\
\x20       self.send_response(503 if sick else 200)\n\
\x20       self.send_header('Content-Length', str(len(body)))\n\
\x20       self.end_headers()\n\
\x20       self.wfile.write(body)\n\
\x20   def log_message(self, *args):\n\
\x20       pass\n\
server = http.server.HTTPServer(('127.0.0.1', 0), Handler, bind_and_activate=False)\n\
server.socket = socket.socket(fileno=3)\n\
server.serve_forever()\n";

#[test]
fn a_health_endpoint_that_starts_failing_restarts_the_service_through_its_stop_path() {
    let project = Managed::new("health", SERVER);
    std::fs::write(project.dir.join("health.py"), HEALTH_PY).unwrap();
    let port = free_port();
    project.settings(&format!(
        "command = [\"python3\", \"health.py\"]\nlisten = {{ http = \"127.0.0.1:{port}\" }}\nstart_grace = \"500ms\"\n\
         health = {{ http = \"http://127.0.0.1:{port}/health\", interval = \"100ms\", timeout = \"2s\", failures = 2 }}\n"
    ));
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let first = printed_pid(&started);
    assert_eq!(answered_by(port), first);
    std::fs::write(project.dir.join("unhealthy"), "").unwrap();
    project.wait_for_log("server", "restarting `server`: health check");
    // Healthy again for the next generation.
    std::fs::remove_file(project.dir.join("unhealthy")).unwrap();
    project.wait_for_log("server", "restarted `server`: generation 2");
    assert_log_has(
        &project,
        &[
            "(1 of 2 in a row): answered 503",
            "(2 of 2 in a row): answered 503",
        ],
    );
    assert!(!alive(first), "the unhealthy generation was stopped");
    let by = answered_by(port);
    assert_ne!(by, first);
    let (value, _) = status(&project, "server");
    assert_eq!(value["pid"], by);
    assert!(
        value["supervisor"]["last_exit"]
            .as_str()
            .is_some_and(|why| why.starts_with("unhealthy: health check http://127.0.0.1")),
        "{value}"
    );
    project.stop_leaving_nothing();
}

#[test]
fn an_exec_health_check_that_fails_restarts_the_service_and_one_that_hangs_is_cut() {
    let project = Managed::new("health-exec", SERVER);
    // The check fails while `unhealthy` exists, and hangs (past its
    // timeout, then killed) while `hang` does.
    std::fs::write(
        project.dir.join("check.sh"),
        "while [ -e hang ]; do sleep 0.05; done\n[ ! -e unhealthy ]\n",
    )
    .unwrap();
    project.settings(
        "command = [\"sh\", \"-c\", \"echo generation $LICHTARA_GENERATION | tr a-z A-Z; exec sleep 1000\"]\n\
         health = { exec = [\"sh\", \"check.sh\"], interval = \"100ms\", timeout = \"300ms\", failures = 1 }\n",
    );
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    std::fs::write(project.dir.join("hang"), "").unwrap();
    project.wait_for_log("server", "did not end within 300ms");
    std::fs::remove_file(project.dir.join("hang")).unwrap();
    project.wait_for_log("server", "GENERATION 2");
    std::fs::write(project.dir.join("unhealthy"), "").unwrap();
    project.wait_for_log("server", "`sh check.sh` ended: exit code 1");
    std::fs::remove_file(project.dir.join("unhealthy")).unwrap();
    project.wait_for_log("server", "GENERATION 3");
    project.stop_leaving_nothing();
}

#[test]
fn a_service_that_stops_its_watchdog_pings_is_restarted() {
    let project = Managed::new("watchdog", SERVER);
    let port = free_port();
    project.settings(&format!(
        "command = [{SERVER:?}, \"--addr\", \"127.0.0.1:{port}\"]\nlisten = {{ http = \"127.0.0.1:{port}\" }}\nready = \"notify\"\nwatchdog = \"1s\"\nstop_timeout = \"1s\"\n"
    ));
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let first = printed_pid(&started);
    // The service pings (a lichtara service does, at half the interval).
    project.wait_for_log("server", "the first WATCHDOG=1 of `server` came");
    // Frozen, by PID (the service this test started): no more pings.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    project.wait_for_log(
        "server",
        "restarting `server`: it sent no WATCHDOG=1 for 1s",
    );
    project.wait_for_log("server", "restarted `server`: generation 2");
    assert!(!alive(first), "the frozen generation was ended");
    let (value, _) = status(&project, "server");
    assert_ne!(value["pid"], first);
    assert!(
        value["supervisor"]["last_exit"]
            .as_str()
            .is_some_and(|why| why.starts_with("watchdog:")),
        "{value}"
    );
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the next generation serves");
    project.stop_leaving_nothing();
}
