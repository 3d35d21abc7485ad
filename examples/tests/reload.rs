//! `lichtara reload` and held listeners, end to end: the reference server
//! (and a few lines of Python that take descriptor 3) under the manager,
//! under steady load from the project's load generator, on 127.0.0.1.
//! Every request is judged: none may be refused, none may fail (a request
//! on a reused keep-alive connection that the old generation closed before
//! any byte of the answer is retried, as real clients do, and counted).

#![cfg(target_os = "linux")]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use lichtara_tests::load::{Config, Load, Outcome, Record};
use lichtara_tests::managed::{
    Managed, alive, answered_by, free_port, printed_pid, python_server, text,
};

const SERVER: &str = env!("CARGO_BIN_EXE_http_server");

/// The settings of a project whose service is `command` on a held
/// listener at `port`, ready when it says so.
fn settings(command: &str, port: u16, ready_timeout: &str) -> String {
    format!(
        "command = {command}\nlisten = {{ http = \"127.0.0.1:{port}\" }}\nready = \"notify\"\nready_timeout = \"{ready_timeout}\"\nstop_timeout = \"30s\"\n"
    )
}

fn server_command(port: u16) -> String {
    format!("[{SERVER:?}, \"--addr\", \"127.0.0.1:{port}\", \"--drain-timeout\", \"25s\"]")
}

fn load(port: u16) -> Load {
    Load::start(&Config::mixed(
        format!("127.0.0.1:{port}"),
        8,
        Duration::from_millis(2),
        vec!["/".into(), "/".into(), "/slow?ms={ms}".into()],
    ))
}

/// The reference server started on a held listener, and the load on it
/// answered 50 times: the project, the server's PID, the load.
fn serving_under_load(test: &str) -> (Managed, i32, Load) {
    let project = Managed::new(test, SERVER);
    let port = free_port();
    project.settings(&settings(&server_command(port), port, "60s"));
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let load = load(port);
    assert!(load.answered(50), "the load is answered");
    (project, printed_pid(&started), load)
}

/// Every request that was refused or failed (a retried one is neither:
/// its retry is a request of its own).
fn lost(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter(|record| match record.outcome {
            Outcome::Ok => false,
            Outcome::ClosedBeforeAnswer => !(record.reused && record.retried),
            Outcome::Refused | Outcome::Failed(_) => true,
        })
        .map(|record| format!("{:?} (reused: {})", record.outcome, record.reused))
        .collect()
}

fn ok(records: &[Record]) -> usize {
    records
        .iter()
        .filter(|record| record.outcome == Outcome::Ok)
        .count()
}

#[test]
fn reloads_under_load_refuse_and_fail_no_request_and_leave_no_old_generation() {
    let reloads: usize = std::env::var("LICHTARA_RELOADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let (project, mut pid, load) = serving_under_load("reloads");
    let mut took = Vec::new();
    for round in 1..=reloads {
        let began = Instant::now();
        let reloaded = project.lichtara(&["reload"]);
        took.push(began.elapsed());
        assert!(
            reloaded.status.success(),
            "reload {round}: {}",
            text(&reloaded)
        );
        let new = printed_pid(&reloaded);
        assert_ne!(new, pid);
        // The old generation is gone when `reload` returns: reaped by the
        // supervisor, its cgroup removed.
        assert!(
            !alive(pid),
            "reload {round}: the old generation {pid} lives on"
        );
        if let Some(base) = &project.cgroups {
            let old = format!("g{round}");
            let left: Vec<_> = walk(base)
                .into_iter()
                .filter(|dir| dir.ends_with(&old))
                .collect();
            assert!(left.is_empty(), "reload {round}: {left:?} is still there");
        }
        pid = new;
    }
    assert!(load.answered(100), "the last generation serves");
    let records = load.finish();
    let lost = lost(&records);
    let retried = records.iter().filter(|r| r.retried).count();
    took.sort();
    eprintln!(
        "{reloads} reloads: {} requests answered, {retried} retried, {} lost; reload command took {:?} (median) to {:?} (max)",
        ok(&records),
        lost.len(),
        took[took.len() / 2],
        took[took.len() - 1]
    );
    assert_nothing_lost(&lost);
    project.stop_leaving_nothing();
}

#[test]
fn restart_keeps_held_listeners_and_says_when_connections_are_refused() {
    let (project, mut pid, load) = serving_under_load("restart");
    for round in 1..=3 {
        let restarted = project.lichtara(&["restart"]);
        assert!(
            restarted.status.success(),
            "restart {round}: {}",
            text(&restarted)
        );
        assert!(
            text(&restarted).contains("on its held listeners"),
            "{}",
            text(&restarted)
        );
        let new = printed_pid(&restarted);
        assert_ne!(new, pid);
        assert!(!alive(pid));
        pid = new;
    }
    assert!(load.answered(100));
    assert_nothing_lost(&lost(&load.finish()));
    project.stop_leaving_nothing();
    // Without declared listeners, restart is stop then start, and says
    // what that costs.
    let plain = Managed::new("restart-plain", SERVER);
    let started = plain.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(started.status.success(), "{}", text(&started));
    let restarted = plain.lichtara(&["restart"]);
    assert!(restarted.status.success(), "{}", text(&restarted));
    assert!(
        text(&restarted).contains("no declared listeners"),
        "{}",
        text(&restarted)
    );
    plain.stop_leaving_nothing();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            found.push(entry.path());
            found.extend(walk(&entry.path()));
        }
    }
    found
}

#[test]
fn a_generation_that_exits_or_never_becomes_ready_is_rolled_back_and_the_old_one_keeps_serving() {
    let project = Managed::new("rollback", SERVER);
    let port = free_port();
    // The same command each time; files in the project make the next
    // generation fail one way or the other.
    let script = format!(
        "if [ -e exit-next ]; then echo exiting on purpose | tr a-z A-Z; exit 3; fi; \
         if [ -e hang-next ]; then echo hanging on purpose | tr a-z A-Z; exec sleep 1000; fi; \
         exec {SERVER:?} --addr 127.0.0.1:{port} --drain-timeout 25s"
    );
    let command = format!("[\"sh\", \"-c\", {script:?}]");
    project.settings(&settings(&command, port, "15s"));
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let pid = printed_pid(&started);
    let load = load(port);
    assert!(load.answered(50));
    let supervisor_and_server = project.processes().len();
    for (file, says, why) in [
        (
            "exit-next",
            "EXITING ON PURPOSE",
            "ended before it was ready (exit code 3)",
        ),
        (
            "hang-next",
            "HANGING ON PURPOSE",
            "did not send READY=1 within 15s",
        ),
    ] {
        std::fs::write(project.dir.join(file), "").unwrap();
        let reloading = reload_in_background(&project);
        if file == "hang-next" {
            // While the hanging generation is waited for, a second reload
            // is refused, and says why.
            // (Its own words: the command line in the log holds them
            // in lower case.)
            project.wait_for_log("server", "HANGING ON PURPOSE");
            let second = project.lichtara(&["reload"]);
            assert!(!second.status.success(), "{}", text(&second));
            assert!(
                text(&second).contains("already under way"),
                "{}",
                text(&second)
            );
        }
        let reloaded = reloading.wait_with_output().unwrap();
        std::fs::remove_file(project.dir.join(file)).unwrap();
        assert!(!reloaded.status.success(), "{}", text(&reloaded));
        let said = text(&reloaded);
        for needle in [says, why, "keeps serving"] {
            assert!(said.contains(needle), "{needle:?} in {said}");
        }
        // The old generation serves on, recorded; the failed one is gone.
        assert!(alive(pid));
        let record = service_record(&project);
        assert_eq!(record["pid"], pid, "{record}");
        assert_eq!(
            project.processes().len(),
            supervisor_and_server,
            "the failed generation left nothing: {:?}",
            project.processes()
        );
    }
    // And a good reload still works after two failed ones: asked by
    // SIGHUP to the supervisor, as systemd's ExecReload= and operators do.
    let record = service_record(&project);
    let supervisor = record["supervisor"]["pid"].as_i64().unwrap() as i32;
    assert!(project.processes().contains(&supervisor));
    // The project's own supervisor, by PID.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    project.wait_for_log("server", "reloaded `server`");
    assert!(!alive(pid), "the old generation ended");
    let record = service_record(&project);
    assert_ne!(record["pid"], pid, "the record names the new generation");
    assert!(load.answered(200));
    let records = load.finish();
    assert_nothing_lost(&lost(&records));
    project.stop_leaving_nothing();
}

#[test]
fn a_python_server_that_takes_descriptor_3_is_started_and_reloaded() {
    let (project, port) = python_project("python");
    project.settings(&python_settings("server.py", port));
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let first = printed_pid(&started);
    assert_eq!(answered_by(port), first);
    let reloaded = project.lichtara(&["reload"]);
    assert!(reloaded.status.success(), "{}", text(&reloaded));
    let second = printed_pid(&reloaded);
    assert_ne!(second, first);
    assert!(!alive(first));
    assert_eq!(answered_by(port), second);
    // A new version under another name, in Lichtara.toml: the next
    // generation runs it, and the record says so once it is ready.
    std::fs::copy(
        project.dir.join("server.py"),
        project.dir.join("server2.py"),
    )
    .unwrap();
    project.settings(&python_settings("server2.py", port));
    let reloaded = project.lichtara(&["reload"]);
    assert!(reloaded.status.success(), "{}", text(&reloaded));
    let third = printed_pid(&reloaded);
    assert_eq!(answered_by(port), third);
    let record = service_record(&project);
    assert_eq!(record["command"][1], "server2.py", "{record}");
    project.stop_leaving_nothing();
}

#[test]
fn run_watch_restarts_on_a_change_and_a_client_connecting_meanwhile_is_served_by_the_new_process() {
    let (project, port) = python_project("watch");
    std::fs::create_dir(project.dir.join("src")).unwrap();
    let listen = format!("http=127.0.0.1:{port}");
    let (mut run, lines) = spawn_run(
        &project,
        &[
            "run",
            "--listen",
            &listen,
            "--watch",
            "src",
            "--",
            "python3",
            "server.py",
        ],
    );
    // `run` says so once it holds the listener; from then on connections
    // wait in its backlog, never refused.
    next_line_with(&lines, "holding http=");
    // The held listener queues the first request until Python accepts it.
    let first = answered_by(port);
    std::fs::write(project.dir.join("src/app.py"), "changed = True\n").unwrap();
    let restarting = "changed: the old process ended";
    next_line_with(&lines, restarting);
    // The old process is gone and the new one may not listen yet: this
    // client waits in the held socket's backlog, not refused.
    assert!(!alive(first));
    let second = answered_by(port);
    assert_ne!(second, first);
    // A change inside an ignored folder restarts nothing.
    std::fs::create_dir(project.dir.join("src/target")).unwrap();
    std::fs::write(project.dir.join("src/target/out"), "x").unwrap();
    std::fs::write(project.dir.join("src/app.py"), "changed = 2\n").unwrap();
    let line = next_line_with(&lines, restarting);
    assert!(line.contains("app.py"), "{line}");
    let third = answered_by(port);
    assert_ne!(third, second);
    // Our own child, by PID.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = run.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "python died of the forwarded SIGTERM"
    );
    assert_eq!(project.processes(), Vec::<i32>::new(), "nothing is left");
}

#[test]
fn an_old_generation_whose_main_process_ends_during_the_reload_is_ended_whole() {
    let project = Managed::new("leftover", SERVER);
    // Generation 1 leaves a worker behind and ends its main process once
    // generation 2 has started; generation 2 is ready after its grace.
    let script = "if [ -e first ]; then rm first; sleep 1000 & \
         while [ ! -e exit-now ]; do sleep 0.05; done; echo old main exits; exit 0; fi; \
         touch exit-now; exec sleep 1000";
    project.settings(&format!(
        "command = [\"sh\", \"-c\", {script:?}]\nstart_grace = \"2s\"\n"
    ));
    std::fs::write(project.dir.join("first"), "").unwrap();
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let old = printed_pid(&started);
    let before = project.processes();
    let reloaded = project.lichtara(&["reload"]);
    assert!(reloaded.status.success(), "{}", text(&reloaded));
    let said = text(&reloaded);
    assert!(said.contains(&format!("the old one (pid {old})")), "{said}");
    assert!(
        project
            .log("server")
            .contains("ended by itself while the next one starts"),
        "{}",
        project.log("server")
    );
    // Its worker went with it; the supervisor and generation 2 are left.
    let after = project.processes();
    assert!(!after.contains(&old));
    let survivors: Vec<i32> = before
        .iter()
        .copied()
        .filter(|pid| after.contains(pid))
        .collect();
    assert_eq!(
        survivors.len(),
        1,
        "only the supervisor is left of before: {survivors:?} of {before:?}"
    );
    assert_eq!(after.len(), 2, "{after:?}");
    project.stop_leaving_nothing();
}

#[test]
fn a_held_listener_a_generation_shut_down_is_bound_again_for_the_next() {
    // Generation 1 shuts the shared socket down (shutdown(2) ends it for
    // every holder) and idles.
    let (project, port) = python_behind(
        "revive",
        "socket.socket(fileno=3).shutdown(socket.SHUT_RDWR)\n\
         print('shut the listener down', flush=True)\n\
         time.sleep(1000)\n",
    );
    project.wait_for_log("server", "shut the listener down");
    let reloaded = project.lichtara(&["reload"]);
    assert!(reloaded.status.success(), "{}", text(&reloaded));
    assert_eq!(answered_by(port), printed_pid(&reloaded));
    assert!(project.log("server").contains("bound it again"));
    project.stop_leaving_nothing();
}

/// A project whose service is the Python server of [`python_server`]
/// behind `prelude`, which its first generation alone runs first (Python,
/// with `os`, `signal`, `socket` and `time` imported); started.
fn python_behind(test: &str, prelude: &str) -> (Managed, u16) {
    let (project, port) = python_project(test);
    let indented: String = prelude
        .lines()
        .map(|line| format!("    {line}\n"))
        .collect();
    std::fs::write(
        project.dir.join("wrapper.py"),
        format!(
            "import os, signal, socket, time\nif os.path.exists('first'):\n    os.remove('first')\n{indented}exec(open('server.py').read())\n"
        ),
    )
    .unwrap();
    std::fs::write(project.dir.join("first"), "").unwrap();
    project.settings(&python_settings("wrapper.py", port));
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    (project, port)
}

#[test]
fn without_a_cgroup_a_rollback_ends_the_failed_generations_daemon_and_not_the_old_one() {
    let project = Managed::new("pgrp", SERVER).without_cgroup();
    // The next generation forks a daemon into a session of its own (out of
    // its process group, its environment kept) and exits.
    let script = "if [ -e daemon-next ]; then setsid sleep 1000 & echo forked a daemon; exit 3; fi; \
         exec sleep 1000";
    project.settings(&format!("command = [\"sh\", \"-c\", {script:?}]\n"));
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    assert!(text(&started).contains("process group and LICHTARA_MARKER only"));
    let old = printed_pid(&started);
    let before = project.processes();
    std::fs::write(project.dir.join("daemon-next"), "").unwrap();
    let reloaded = project.lichtara(&["reload"]);
    assert!(!reloaded.status.success(), "{}", text(&reloaded));
    assert!(
        text(&reloaded).contains("keeps serving"),
        "{}",
        text(&reloaded)
    );
    assert!(alive(old), "the old generation is untouched");
    let mut after = project.processes();
    after.sort_unstable();
    let mut expected = before.clone();
    expected.sort_unstable();
    assert_eq!(
        after, expected,
        "the failed generation's daemon was ended with it"
    );
    project.stop_leaving_nothing();
}

#[test]
fn a_stop_during_a_slow_end_of_the_old_generation_is_carried_out_and_the_reload_told() {
    let project = Managed::new("slow-old", SERVER);
    // Generation 1 ignores SIGTERM; its stop timeout is long.
    let script = "if [ -e first ]; then rm first; trap '' TERM; while :; do sleep 0.1; done; fi; \
         exec sleep 1000";
    project.settings(&format!(
        "command = [\"sh\", \"-c\", {script:?}]\nstop_timeout = \"60s\"\n"
    ));
    std::fs::write(project.dir.join("first"), "").unwrap();
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let reloading = reload_in_background(&project);
    project.wait_for_log("server", "stopping generation 1");
    // The supervisor still answers while generation 1 is being ended.
    let stopped = project.lichtara(&["stop", "--timeout", "1s"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let reloaded = reloading.wait_with_output().unwrap();
    assert!(!reloaded.status.success(), "{}", text(&reloaded));
    assert!(
        text(&reloaded).contains("stopped while generation 1"),
        "{}",
        text(&reloaded)
    );
    assert_eq!(project.processes(), Vec::<i32>::new(), "nothing is left");
}

#[test]
fn an_old_generation_that_shuts_the_shared_listener_down_does_not_take_the_new_one_with_it() {
    // Generation 1 calls shutdown(2) on the listener when it is stopped:
    // that ends the socket for every process holding it.
    let (project, port) = python_behind(
        "shutter",
        "held = socket.socket(fileno=3)\n\
         def bye(*_):\n\
         \x20   held.shutdown(socket.SHUT_RDWR)\n\
         \x20   os._exit(0)\n\
         signal.signal(signal.SIGTERM, bye)\n",
    );
    let reloaded = project.lichtara(&["reload"]);
    assert!(reloaded.status.success(), "{}", text(&reloaded));
    project.wait_for_log("server", "shut the shared listener");
    // The generation now serving listens on a socket bound anew.
    assert_eq!(answered_by(port), printed_pid(&reloaded));
    project.stop_leaving_nothing();
}

#[test]
fn run_fails_early_leaving_no_cgroup_and_watch_waits_out_a_missing_program() {
    let project = Managed::new("run-early", SERVER);
    // Early failures leave nothing: a missing watched path, a port taken.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = format!("http={}", holder.local_addr().unwrap());
    for args in [
        vec!["run", "--watch", "nowhere", "--", "sleep", "1"],
        vec!["run", "--listen", &taken, "--", "sleep", "1"],
    ] {
        let ran = project.lichtara(&args);
        assert!(!ran.status.success(), "{}", text(&ran));
        if let Some(base) = &project.cgroups {
            assert!(walk(base).is_empty(), "{args:?} left {:?}", walk(base));
        }
    }
    // A program that vanishes (a rebuild) is waited out, not fatal.
    std::fs::write(
        project.dir.join("app.sh"),
        "#!/bin/sh\necho app up | tr a-z A-Z >&2\nexec sleep 1000\n",
    )
    .unwrap();
    std::fs::set_permissions(
        project.dir.join("app.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir(project.dir.join("src")).unwrap();
    let (mut run, lines) = spawn_run(&project, &["run", "--watch", "src", "--", "./app.sh"]);
    let wait_for = |needle: &str| {
        next_line_with(&lines, needle);
    };
    // The command says it is up (its stderr is run's) before its program
    // goes: a rebuild that removes it while it runs.
    wait_for("APP UP");
    std::fs::remove_file(project.dir.join("app.sh")).unwrap();
    std::fs::write(project.dir.join("src/a"), "1").unwrap();
    wait_for("waiting for a change to try again");
    std::fs::write(
        project.dir.join("app.sh"),
        "#!/bin/sh\necho app up | tr a-z A-Z >&2\nexec sleep 1000\n",
    )
    .unwrap();
    std::fs::set_permissions(
        project.dir.join("app.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(project.dir.join("src/a"), "2").unwrap();
    wait_for("starting it again");
    assert!(run.try_wait().unwrap().is_none(), "run still runs");
    // Our own child, by PID.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    run.wait().unwrap();
    assert_eq!(project.processes(), Vec::<i32>::new(), "nothing is left");
}

/// A project holding [`python_server`], and a free port for it.
fn python_project(test: &str) -> (Managed, u16) {
    let project = Managed::new(test, SERVER);
    python_server(&project);
    (project, free_port())
}

#[test]
fn a_start_that_never_becomes_ready_fails_with_the_reason_and_leaves_nothing() {
    let project = Managed::new("unready", SERVER);
    let started = project.lichtara(&[
        "start",
        "--ready",
        "notify",
        "--ready-timeout",
        "2s",
        "--",
        "sh",
        "-c",
        "echo preparing forever | tr a-z A-Z; exec sleep 1000",
    ]);
    assert!(!started.status.success(), "{}", text(&started));
    let said = text(&started);
    for needle in [
        "did not send READY=1 within 2s",
        "it was stopped",
        // Its own words, from its output (the command line is in lower case).
        "PREPARING FOREVER",
    ] {
        assert!(said.contains(needle), "{needle:?} in {said}");
    }
    assert_eq!(project.processes(), Vec::<i32>::new(), "nothing is left");
    assert!(!project.dir.join(".lichtara/server.pid").exists());
}

/// The service's PID file, as JSON.
fn service_record(project: &Managed) -> serde_json::Value {
    let text = std::fs::read_to_string(project.dir.join(".lichtara/server.pid")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The settings of a Python `script` on a held listener at `port`.
fn python_settings(script: &str, port: u16) -> String {
    format!(
        "command = [\"python3\", \"{script}\"]\nlisten = {{ http = \"127.0.0.1:{port}\" }}\nstart_grace = \"500ms\"\n"
    )
}

/// `lichtara run ARGS`, not waited for, and its stderr's lines as they
/// come.
fn spawn_run(
    project: &Managed,
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut run = project
        .command(args)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("lichtara run");
    let stderr = run.stderr.take().unwrap();
    let (said, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = said.send(line);
        }
    });
    (run, lines)
}

/// The next line of `lines` that holds `needle` (read as they come; the
/// lines before it are skipped). Panics, with what was said, if the
/// process ends first: no deadline.
fn next_line_with(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let mut seen = Vec::new();
    loop {
        match lines.recv() {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("it ended before it said {needle:?}; it said {seen:?}"),
        }
    }
}

/// `lichtara reload`, its output captured, not waited for.
fn reload_in_background(project: &Managed) -> std::process::Child {
    project
        .command(&["reload"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("lichtara reload")
}

#[track_caller]
fn assert_nothing_lost(lost: &[String]) {
    assert!(
        lost.is_empty(),
        "{} lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn a_port_held_by_a_foreign_process_is_named_and_left_alone() {
    let project = Managed::new("preflight", SERVER);
    // This test holds the port: a process that is not the project's.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let listen = format!("http=127.0.0.1:{port}");
    let started = project.lichtara(&["start", "--listen", &listen, "--", "sleep", "1000"]);
    assert!(!started.status.success(), "{}", text(&started));
    let said = text(&started);
    for needle in [
        format!("cannot listen on 127.0.0.1:{port}"),
        format!("pid {}", std::process::id()),
        "not this project's; it is left alone".to_owned(),
    ] {
        assert!(said.contains(&needle), "{needle:?} in {said}");
    }
    // Nothing was started, and the holder still listens.
    assert_eq!(project.processes(), Vec::<i32>::new());
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the holder listens");
    let (accepted, _) = holder.accept().unwrap();
    assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
}
