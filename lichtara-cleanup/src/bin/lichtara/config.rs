//! The project's settings: `Lichtara.toml`, or a `Procfile` where there is
//! none.
//!
//! A file may describe one service with keys at its top (as it always
//! could), or several in `[services.NAME]` tables. In a file with such
//! tables, the top's keys that are not about one service in particular
//! (`env`, `stop_timeout`, `stop_signal`, `start_grace`, `ready_timeout`,
//! `log_max`, `log_keep` and the `restart*` keys) are every service's
//! defaults, which its own table overrides (`env` is merged); `command`,
//! `listen`, `ready` and `depends_on` are a service's own. A `command` at
//! the top is one more service, named by `name` (else `server`).
//!
//! ```toml
//! stop_timeout = "5s"           # every service's
//! restart = "on-failure"
//!
//! [services.db]
//! command = ["./db", "--port", "5433"]
//! ready = { port = "127.0.0.1:5433" }
//!
//! [services.web]
//! command = ["./web"]
//! depends_on = ["db"]
//! listen = { http = "127.0.0.1:8000" }
//! ready = "notify"
//! ```
//!
//! Everything is checked when the project is opened, before anything is
//! spawned or signalled: unknown keys, durations, sizes, signals, unknown
//! dependencies and dependency cycles (named).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::Failure;

/// How long `stop` waits after SIGTERM before SIGKILL, by default.
pub(crate) const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `start` watches a new process for an immediate death.
pub(crate) const DEFAULT_START_GRACE: Duration = Duration::from_millis(300);

/// The size at which a log is rotated, by default.
pub(crate) const DEFAULT_LOG_MAX: u64 = 10 << 20;

/// How many rotated logs are kept, by default.
pub(crate) const DEFAULT_LOG_KEEP: u32 = 3;

/// How long a start or reload waits for readiness, by default.
pub(crate) const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The name of the service a file's top describes, by default.
pub(crate) const DEFAULT_NAME: &str = "server";

/// One service's keys, at the top of `Lichtara.toml` or in its
/// `[services.NAME]` table; all optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Keys {
    /// The command `start` and `run` use when none is given.
    pub(crate) command: Option<Vec<String>>,
    /// How long `stop` waits before SIGKILL: `"10s"`.
    pub(crate) stop_timeout: Option<String>,
    /// How long `start` watches for an immediate death: `"300ms"`.
    pub(crate) start_grace: Option<String>,
    /// The signal `stop` sends first: `"SIGTERM"` (default), `"SIGINT"`,
    /// `"SIGQUIT"`, `"SIGHUP"`, `"SIGUSR1"`, `"SIGUSR2"`.
    pub(crate) stop_signal: Option<String>,
    /// The size at which the supervisor rotates `<name>.log`: `"10MiB"`.
    pub(crate) log_max: Option<String>,
    /// How many rotated logs are kept: `3`.
    pub(crate) log_keep: Option<u32>,
    /// Extra environment for the command.
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    /// Listeners the supervisor binds and holds, passed to the service by
    /// socket activation: `{ http = "127.0.0.1:8000" }`.
    #[serde(default)]
    pub(crate) listen: BTreeMap<String, String>,
    /// When the service counts as started: `"none"` (its start grace
    /// passed), `"notify"` (it sent `READY=1`), or `{ port = "ADDR" }`.
    pub(crate) ready: Option<ReadySetting>,
    /// How long a start or a reload waits for readiness: `"30s"`.
    pub(crate) ready_timeout: Option<String>,
    /// When the supervisor starts the service again after its main
    /// process ended: `"no"` (default), `"on-failure"`, `"always"`.
    pub(crate) restart: Option<String>,
    /// The first restart's delay, doubled at each crash in a row: `"100ms"`.
    pub(crate) restart_delay: Option<String>,
    /// The longest delay: `"30s"`.
    pub(crate) restart_delay_max: Option<String>,
    /// At most this many restarts within `restart_window`; past them the
    /// service is `failed`: `5`.
    pub(crate) restart_limit: Option<u32>,
    /// `"60s"`.
    pub(crate) restart_window: Option<String>,
    /// Services started (and ready) before this one, stopped after it.
    #[serde(default)]
    pub(crate) depends_on: Vec<String>,
    /// A check the supervisor makes while the service runs: `{ http =
    /// "http://127.0.0.1:8000/health" }`, `{ tcp = "127.0.0.1:8000" }` or
    /// `{ exec = ["./check"] }`, with `interval`, `timeout`, `failures`.
    pub(crate) health: Option<HealthSetting>,
    /// The systemd watchdog: the service gets `WATCHDOG_USEC` and must
    /// send `WATCHDOG=1` at least this often once ready: `"10s"`.
    pub(crate) watchdog: Option<String>,
}

/// `health` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthSetting {
    pub(crate) http: Option<String>,
    pub(crate) tcp: Option<String>,
    pub(crate) exec: Option<Vec<String>>,
    /// `"5s"`.
    pub(crate) interval: Option<String>,
    /// `"2s"`.
    pub(crate) timeout: Option<String>,
    /// Failures in a row that restart the service: `3`.
    pub(crate) failures: Option<u32>,
}

/// What a health check asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A `GET` of `path` on `address` answered 2xx or 3xx.
    Http {
        address: std::net::SocketAddr,
        host: String,
        path: String,
    },
    /// `address` accepts a connection.
    Tcp(std::net::SocketAddr),
    /// The command exits 0.
    Exec(Vec<String>),
}

/// A service's health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    pub(crate) probe: Probe,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) failures: u32,
}

impl Probe {
    /// How `status` shows it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Probe::Http { host, path, .. } => format!("http://{host}{path}"),
            Probe::Tcp(address) => format!("tcp {address}"),
            Probe::Exec(command) => format!("exec {}", command.join(" ")),
        }
    }
}

/// `http://HOST:PORT/PATH` with an IP host (a health check must not wait
/// on a name lookup): the address, the `Host` header, the path.
fn parse_http(url: &str) -> Result<Probe, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} is not an http:// URL (https is not checked)"))?;
    let (host, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let address = host
        .parse::<std::net::SocketAddr>()
        .or_else(|_| format!("{host}:80").parse())
        .map_err(|_| format!("{url:?}: the host must be IP:PORT (127.0.0.1:8000), not a name"))?;
    if path.contains(char::is_whitespace) {
        return Err(format!("{url:?}: the path has a space"));
    }
    Ok(Probe::Http {
        address,
        host: host.to_owned(),
        path: path.to_owned(),
    })
}

impl Keys {
    /// What a service inherits from the top of a file with services.
    fn inheritable(&self) -> Keys {
        Keys {
            command: None,
            listen: BTreeMap::new(),
            ready: None,
            depends_on: Vec::new(),
            health: None,
            watchdog: None,
            ..self.clone()
        }
    }

    /// `self` (the defaults) under `own`.
    fn under(mut self, own: &Keys) -> Keys {
        macro_rules! take {
            ($($key:ident),*) => {$(
                if own.$key.is_some() {
                    self.$key = own.$key.clone();
                }
            )*};
        }
        take!(
            command,
            health,
            watchdog,
            stop_timeout,
            start_grace,
            stop_signal,
            log_max,
            log_keep,
            ready,
            ready_timeout,
            restart,
            restart_delay,
            restart_delay_max,
            restart_limit,
            restart_window
        );
        self.env
            .extend(own.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.listen = own.listen.clone();
        self.depends_on = own.depends_on.clone();
        self
    }
}

/// `ready` as written in `Lichtara.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum ReadySetting {
    Word(String),
    Port { port: String },
}

/// When a started service counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// Once its start grace has passed, alive.
    None,
    /// Once a process of it sent `READY=1` on its `NOTIFY_SOCKET`.
    Notify,
    /// Once this address accepts a connection.
    Port(std::net::SocketAddr),
}

impl Ready {
    /// `none`, `notify` or `port=ADDR` (the command line's form).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "none" => Ok(Self::None),
            "notify" => Ok(Self::Notify),
            "port" => Err("`port` needs the address to try: port=127.0.0.1:8000".into()),
            other => match other.strip_prefix("port=") {
                Some(addr) => addr
                    .trim()
                    .parse()
                    .map(Self::Port)
                    .map_err(|_| format!("{addr:?} is not IP:PORT")),
                None => Err(format!(
                    "{other:?} is not a readiness: use none, notify or port=ADDR"
                )),
            },
        }
    }

    /// The command line's form.
    pub(crate) fn arg(self) -> String {
        match self {
            Self::None => "none".into(),
            Self::Notify => "notify".into(),
            Self::Port(addr) => format!("port={addr}"),
        }
    }
}

/// When a service whose main process ended is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartWhen {
    /// Never: the supervisor ends with it.
    No,
    /// When it exited with a code other than 0, or died of a signal other
    /// than its stop signal.
    OnFailure,
    /// Whenever it ended by itself.
    Always,
}

impl RestartWhen {
    /// The setting's own words.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::OnFailure => "on-failure",
            Self::Always => "always",
        }
    }
}

/// The restart policy of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RestartPolicy {
    pub(crate) when: RestartWhen,
    /// The first restart's delay; doubled at each crash in a row.
    pub(crate) delay: Duration,
    /// The longest delay.
    pub(crate) delay_max: Duration,
    /// Restarts allowed within `window`: `limit = 3` allows 4 starts.
    pub(crate) limit: u32,
    /// Also how long a generation must run for its crash to count as the
    /// first in a row again.
    pub(crate) window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            when: RestartWhen::No,
            delay: Duration::from_millis(100),
            delay_max: Duration::from_secs(30),
            limit: 5,
            window: Duration::from_secs(60),
        }
    }
}

impl RestartPolicy {
    /// The delay before restart number `in_a_row` (0 for the first crash
    /// in a row): `delay × 2^in_a_row`, at most `delay_max`.
    pub(crate) fn delay_for(&self, in_a_row: u32) -> Duration {
        let factor = 1u32.checked_shl(in_a_row.min(31)).unwrap_or(u32::MAX);
        self.delay
            .checked_mul(factor)
            .unwrap_or(self.delay_max)
            .min(self.delay_max)
    }
}

/// Where the services were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Neither file exists.
    Nothing,
    Toml,
    Procfile,
}

/// The project's settings.
#[derive(Debug)]
pub(crate) struct Config {
    /// `name` at the top: the name of the service the top describes, and
    /// the default `--name`.
    name: Option<String>,
    top: Keys,
    services: BTreeMap<String, Keys>,
    pub(crate) source: Source,
}

/// One service's settings, resolved (its own over the file's defaults).
#[derive(Debug, Clone)]
pub(crate) struct ServiceConfig {
    pub(crate) name: String,
    pub(crate) keys: Keys,
}

impl Config {
    /// Reads `Lichtara.toml` in `dir`, else its `Procfile`, and checks
    /// every setting.
    pub(crate) fn read(dir: &Path) -> Result<Self, Failure> {
        let config = match read_text(&dir.join("Lichtara.toml"))? {
            Some(text) => Self::from_toml(&text).map_err(|why| {
                Failure::new(format!("{}: {why}", dir.join("Lichtara.toml").display()))
            })?,
            None => match read_text(&dir.join("Procfile"))? {
                Some(text) => Self::from_procfile(&text).map_err(|why| {
                    Failure::new(format!("{}: {why}", dir.join("Procfile").display()))
                })?,
                None => Self {
                    name: None,
                    top: Keys::default(),
                    services: BTreeMap::new(),
                    source: Source::Nothing,
                },
            },
        };
        config.check()?;
        Ok(config)
    }

    /// A `Lichtara.toml`'s text.
    pub(crate) fn from_toml(text: &str) -> Result<Self, String> {
        let mut table: toml::Table = toml::from_str(text).map_err(|err| err.to_string())?;
        let name = match table.remove("name") {
            None => None,
            Some(toml::Value::String(name)) => Some(name),
            Some(other) => {
                return Err(format!("`name` must be a string, not {}", other.type_str()));
            }
        };
        let mut services = BTreeMap::new();
        match table.remove("services") {
            None => {}
            Some(toml::Value::Table(tables)) => {
                for (service, keys) in tables {
                    let keys: Keys = keys
                        .try_into()
                        .map_err(|err: toml::de::Error| format!("[services.{service}]: {err}"))?;
                    services.insert(service, keys);
                }
            }
            Some(other) => {
                return Err(format!(
                    "`services` must hold tables (`[services.web]`), not {}",
                    other.type_str()
                ));
            }
        }
        let top: Keys = toml::Value::Table(table)
            .try_into()
            .map_err(|err: toml::de::Error| err.to_string())?;
        Ok(Self {
            name,
            top,
            services,
            source: Source::Toml,
        })
    }

    /// A `Procfile`'s text (`name: command` a line, as foreman, honcho and
    /// overmind read it): each command runs under `sh -c`, with `PORT`
    /// set as foreman sets it (5000 for the first, 5100 for the next…).
    pub(crate) fn from_procfile(text: &str) -> Result<Self, String> {
        let mut services = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, command)) = line.split_once(':') else {
                return Err(format!(
                    "line {}: {line:?} is not `name: command`",
                    number + 1
                ));
            };
            let (name, command) = (name.trim(), command.trim());
            if command.is_empty() {
                return Err(format!("line {}: `{name}` has no command", number + 1));
            }
            let port = 5000 + 100 * services.len();
            let keys = Keys {
                command: Some(vec!["sh".into(), "-c".into(), command.into()]),
                env: BTreeMap::from([("PORT".into(), port.to_string())]),
                ..Keys::default()
            };
            if services.insert(name.to_owned(), keys).is_some() {
                return Err(format!("line {}: `{name}` is declared twice", number + 1));
            }
        }
        Ok(Self {
            name: None,
            top: Keys::default(),
            services,
            source: Source::Procfile,
        })
    }

    /// Every setting of every declared service, their names and their
    /// dependencies.
    fn check(&self) -> Result<(), Failure> {
        let file = match self.source {
            Source::Procfile => "Procfile",
            _ => "Lichtara.toml",
        };
        if let Some(name) = &self.name {
            valid_name(name).map_err(|why| Failure::new(format!("{file}: `name`: {why}")))?;
        }
        if self.services.is_empty() && !self.top.depends_on.is_empty() {
            return Err(Failure::new(format!(
                "{file}: `depends_on` names services, but the file declares none (`[services.NAME]`)"
            )));
        }
        for name in self.services.keys() {
            valid_name(name).map_err(|why| Failure::new(format!("{file}: {why}")))?;
        }
        let names = self.names();
        for name in &names {
            let service = self.service(name);
            service.check().map_err(|failure| {
                let within = if self.has_services() {
                    format!("service `{name}`: ")
                } else {
                    String::new()
                };
                Failure::new(format!("{file}: {within}{}", failure.message()))
            })?;
            for dependency in &service.keys.depends_on {
                if dependency == name {
                    return Err(Failure::new(format!("{file}: `{name}` depends on itself")));
                }
                if !names.contains(dependency) {
                    return Err(Failure::new(format!(
                        "{file}: `{name}` depends on `{dependency}`, which is not a service of this project (it declares {})",
                        names.join(", ")
                    )));
                }
            }
        }
        if let Some(cycle) = self.cycle() {
            return Err(Failure::new(format!(
                "{file}: the dependencies make a cycle: {}",
                cycle.join(" -> ")
            )));
        }
        // The defaults alone, for services not declared.
        if !self.services.is_empty() {
            ServiceConfig {
                name: DEFAULT_NAME.into(),
                keys: self.top.inheritable(),
            }
            .check()
            .map_err(|failure| Failure::new(format!("{file}: {}", failure.message())))?;
        } else if names.is_empty() {
            self.service(DEFAULT_NAME)
                .check()
                .map_err(|failure| Failure::new(format!("{file}: {}", failure.message())))?;
        }
        Ok(())
    }

    /// The services the project declares, by name.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.services.keys().cloned().collect();
        let top = self.top_name();
        if self.top.command.as_ref().is_some_and(|c| !c.is_empty())
            && !names.iter().any(|name| *name == top)
        {
            names.push(top.to_owned());
            names.sort();
        }
        names
    }

    /// Whether the project declares several services in tables.
    pub(crate) fn has_services(&self) -> bool {
        !self.services.is_empty()
    }

    /// The settings every service starts from (and, in a file without
    /// tables, the service's own).
    pub(crate) fn defaults(&self) -> ServiceConfig {
        ServiceConfig {
            name: self.top_name().to_owned(),
            keys: if self.services.is_empty() {
                self.top.clone()
            } else {
                self.top.inheritable()
            },
        }
    }

    /// The longest stop timeout of any service (what a supervisor of this
    /// project may take to stop its run).
    pub(crate) fn longest_stop_timeout(&self) -> Duration {
        self.names()
            .iter()
            .map(|name| self.service(name))
            .chain([self.defaults()])
            .filter_map(|service| service.stop_timeout(None).ok())
            .max()
            .unwrap_or(DEFAULT_STOP_TIMEOUT)
    }

    /// The command the file declares for `name` (its table's, or the
    /// top's when the top describes `name`), if any: what `reload` and
    /// `restart` pass on when it changed.
    pub(crate) fn declared_command(&self, name: &str) -> Option<Vec<String>> {
        let keys = match self.services.get(name) {
            Some(own) => own,
            None if name == self.top_name() => &self.top,
            None => return None,
        };
        keys.command.clone().filter(|command| !command.is_empty())
    }

    /// `name` at the top, else `server`.
    pub(crate) fn top_name(&self) -> &str {
        self.name.as_deref().unwrap_or(DEFAULT_NAME)
    }

    /// `name` at the top, if set.
    pub(crate) fn default_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The settings of service `name`: its table over the file's
    /// defaults; the whole top for the service the top describes (and, in
    /// a file without tables, for any name, as ever).
    pub(crate) fn service(&self, name: &str) -> ServiceConfig {
        let keys = match self.services.get(name) {
            Some(own) => self.top.inheritable().under(own),
            None if self.services.is_empty() || name == self.top_name() => self.top.clone(),
            None => self.top.inheritable(),
        };
        ServiceConfig {
            name: name.to_owned(),
            keys,
        }
    }

    /// A dependency cycle, as the names along it (the first again at the
    /// end), if there is one.
    fn cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        fn visit(
            config: &Config,
            name: &str,
            marks: &mut BTreeMap<String, Mark>,
            path: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            match marks.get(name).copied().unwrap_or(Mark::New) {
                Mark::Done => return None,
                Mark::OnPath => {
                    let from = path.iter().position(|step| step == name).unwrap_or(0);
                    let mut cycle = path[from..].to_vec();
                    cycle.push(name.to_owned());
                    return Some(cycle);
                }
                Mark::New => {}
            }
            marks.insert(name.to_owned(), Mark::OnPath);
            path.push(name.to_owned());
            for dependency in config.service(name).keys.depends_on {
                if let Some(cycle) = visit(config, &dependency, marks, path) {
                    return Some(cycle);
                }
            }
            path.pop();
            marks.insert(name.to_owned(), Mark::Done);
            None
        }
        let mut marks = BTreeMap::new();
        for name in self.names() {
            if let Some(cycle) = visit(self, &name, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
        None
    }

    /// `roots` (every declared service if empty) and what they depend on,
    /// each after its dependencies; ties in name order.
    pub(crate) fn start_order(&self, roots: &[String]) -> Result<Vec<String>, Failure> {
        let names = self.names();
        let roots: Vec<String> = if roots.is_empty() {
            names.clone()
        } else {
            roots.to_vec()
        };
        for root in &roots {
            if !names.contains(root) {
                return Err(self.unknown(root));
            }
        }
        let mut order = Vec::new();
        fn add(config: &Config, name: &str, order: &mut Vec<String>) {
            if order.iter().any(|done| done == name) {
                return;
            }
            for dependency in config.service(name).keys.depends_on {
                add(config, &dependency, order);
            }
            order.push(name.to_owned());
        }
        for root in &roots {
            add(self, root, &mut order);
        }
        Ok(order)
    }

    /// `roots` (every declared service if empty) and every service that
    /// depends on them, each before what it depends on: the order to stop
    /// them in.
    pub(crate) fn stop_order(&self, roots: &[String]) -> Result<Vec<String>, Failure> {
        let names = self.names();
        for root in roots {
            if !names.contains(root) {
                return Err(self.unknown(root));
            }
        }
        let everything = self.start_order(&[])?;
        let mut chosen: Vec<String> = if roots.is_empty() {
            everything.clone()
        } else {
            roots.to_vec()
        };
        // A dependent of a chosen service is chosen: it would lose what
        // it depends on. Dependents come later in the start order.
        for name in &everything {
            let depends = self.service(name).keys.depends_on;
            if !chosen.contains(name) && depends.iter().any(|d| chosen.contains(d)) {
                chosen.push(name.clone());
            }
        }
        Ok(everything
            .into_iter()
            .rev()
            .filter(|name| chosen.contains(name))
            .collect())
    }

    fn unknown(&self, name: &str) -> Failure {
        let names = self.names();
        Failure::new(if names.is_empty() {
            format!(
                "`{name}` is not a service of this project: it declares none (add `[services.{name}]` to Lichtara.toml, or a Procfile)"
            )
        } else {
            format!(
                "`{name}` is not a service of this project; it declares {}",
                names.join(", ")
            )
        })
    }
}

impl ServiceConfig {
    /// Every setting, checked.
    fn check(&self) -> Result<(), Failure> {
        self.stop_timeout(None)?;
        self.start_grace()?;
        self.stop_signal()?;
        self.log_limits()?;
        self.listeners(&[])?;
        self.ready(None)?;
        self.ready_timeout(None)?;
        self.restart()?;
        self.health()?;
        self.watchdog()?;
        Ok(())
    }

    /// The signal `stop` sends first.
    pub(crate) fn stop_signal(&self) -> Result<rustix::process::Signal, Failure> {
        use rustix::process::Signal;
        let Some(text) = &self.keys.stop_signal else {
            return Ok(Signal::TERM);
        };
        let name = text.trim().to_ascii_uppercase();
        let name = name.strip_prefix("SIG").unwrap_or(&name);
        Ok(match name {
            "TERM" => Signal::TERM,
            "INT" => Signal::INT,
            "QUIT" => Signal::QUIT,
            "HUP" => Signal::HUP,
            "USR1" => Signal::USR1,
            "USR2" => Signal::USR2,
            _ => {
                return Err(Failure::new(format!(
                    "`stop_signal = {text:?}` is not a stop signal; use one of \"SIGTERM\", \"SIGINT\", \"SIGQUIT\", \"SIGHUP\", \"SIGUSR1\", \"SIGUSR2\" (SIGKILL follows after stop_timeout anyway)"
                )));
            }
        })
    }

    /// `(log_max in bytes, log_keep)`: from 1 KiB to 1 TiB, and at most
    /// 100 rotated files.
    pub(crate) fn log_limits(&self) -> Result<(u64, u32), Failure> {
        let max = match &self.keys.log_max {
            None => DEFAULT_LOG_MAX,
            Some(text) => parse_size(text).filter(|size| (1 << 10..=1 << 40).contains(size)).ok_or_else(|| {
                Failure::new(format!(
                    "`log_max = {text:?}` is not a size from 1KiB to 1TiB; write it like \"10MiB\""
                ))
            })?,
        };
        let keep = self.keys.log_keep.unwrap_or(DEFAULT_LOG_KEEP);
        if keep > 100 {
            return Err(Failure::new(format!(
                "`log_keep = {keep}` keeps too many files; at most 100"
            )));
        }
        Ok((max, keep))
    }

    pub(crate) fn stop_timeout(&self, given: Option<Duration>) -> Result<Duration, Failure> {
        match (given, &self.keys.stop_timeout) {
            (Some(timeout), _) => Ok(timeout),
            (None, Some(text)) => parse_duration("stop_timeout", text),
            (None, None) => Ok(DEFAULT_STOP_TIMEOUT),
        }
    }

    pub(crate) fn start_grace(&self) -> Result<Duration, Failure> {
        match &self.keys.start_grace {
            Some(text) => parse_duration("start_grace", text),
            None => Ok(DEFAULT_START_GRACE),
        }
    }

    /// The declared listeners: `--listen` arguments when any is given
    /// (they replace the file's), else `listen`.
    pub(crate) fn listeners(
        &self,
        given: &[String],
    ) -> Result<Vec<crate::listeners::Declared>, Failure> {
        use crate::listeners::Declared;
        if !given.is_empty() {
            return Declared::parse_all(given);
        }
        self.keys
            .listen
            .iter()
            .map(|(name, address)| {
                Declared::parse(name, address)
                    .map_err(|why| Failure::new(format!("`listen`: {why}")))
            })
            .collect()
    }

    /// The readiness: `--ready` if given, else `ready`, else `none`.
    pub(crate) fn ready(&self, given: Option<&str>) -> Result<Ready, Failure> {
        if let Some(given) = given {
            return Ready::parse(given).map_err(|why| Failure::new(format!("--ready: {why}")));
        }
        let text = match &self.keys.ready {
            None => return Ok(Ready::None),
            Some(ReadySetting::Word(word)) => word.clone(),
            Some(ReadySetting::Port { port }) => format!("port={port}"),
        };
        Ready::parse(&text).map_err(|why| Failure::new(format!("`ready`: {why}")))
    }

    pub(crate) fn ready_timeout(&self, given: Option<Duration>) -> Result<Duration, Failure> {
        match (given, &self.keys.ready_timeout) {
            (Some(timeout), _) => Ok(timeout),
            (None, Some(text)) => parse_duration("ready_timeout", text),
            (None, None) => Ok(DEFAULT_READY_TIMEOUT),
        }
    }

    /// The restart policy: `restart`, `restart_delay`,
    /// `restart_delay_max`, `restart_limit`, `restart_window`.
    pub(crate) fn restart(&self) -> Result<RestartPolicy, Failure> {
        let mut policy = RestartPolicy::default();
        if let Some(text) = &self.keys.restart {
            policy.when = match text.trim() {
                "no" => RestartWhen::No,
                "on-failure" => RestartWhen::OnFailure,
                "always" => RestartWhen::Always,
                _ => {
                    return Err(Failure::new(format!(
                        "`restart = {text:?}` is not a restart policy; use \"no\", \"on-failure\" or \"always\""
                    )));
                }
            };
        }
        if let Some(text) = &self.keys.restart_delay {
            policy.delay = parse_duration("restart_delay", text)?;
        }
        if let Some(text) = &self.keys.restart_delay_max {
            policy.delay_max = parse_duration("restart_delay_max", text)?;
        }
        if let Some(text) = &self.keys.restart_window {
            policy.window = parse_duration("restart_window", text)?;
        }
        if let Some(limit) = self.keys.restart_limit {
            policy.limit = limit;
        }
        if policy.delay > policy.delay_max {
            return Err(Failure::new(format!(
                "`restart_delay` ({}) is longer than `restart_delay_max` ({})",
                humantime::format_duration(policy.delay),
                humantime::format_duration(policy.delay_max)
            )));
        }
        if policy.window.is_zero() {
            return Err(Failure::new(
                "`restart_window` must be longer than 0s: it is the span `restart_limit` counts restarts in",
            ));
        }
        if policy.limit > 10_000 {
            return Err(Failure::new(format!(
                "`restart_limit = {}` is more restarts than a window can tell apart; at most 10000",
                policy.limit
            )));
        }
        Ok(policy)
    }

    /// The health check, if the service has one.
    pub(crate) fn health(&self) -> Result<Option<Health>, Failure> {
        let Some(setting) = &self.keys.health else {
            return Ok(None);
        };
        let bad = |why: String| Failure::new(format!("`health`: {why}"));
        let probe = match (&setting.http, &setting.tcp, &setting.exec) {
            (Some(url), None, None) => parse_http(url).map_err(bad)?,
            (None, Some(address), None) => Probe::Tcp(
                address
                    .parse()
                    .map_err(|_| bad(format!("tcp = {address:?} is not IP:PORT")))?,
            ),
            (None, None, Some(command)) if !command.is_empty() => Probe::Exec(command.clone()),
            (None, None, Some(_)) => return Err(bad("exec = [] has no command".into())),
            _ => {
                return Err(bad(
                    "give exactly one of http = \"http://IP:PORT/PATH\", tcp = \"IP:PORT\", exec = [\"…\"]".into(),
                ));
            }
        };
        let interval = match &setting.interval {
            Some(text) => parse_duration("health.interval", text)?,
            None => Duration::from_secs(5),
        };
        let timeout = match &setting.timeout {
            Some(text) => parse_duration("health.timeout", text)?,
            None => Duration::from_secs(2),
        };
        let failures = setting.failures.unwrap_or(3);
        if interval.is_zero() || timeout.is_zero() || failures == 0 {
            return Err(bad(
                "interval, timeout and failures must each be more than 0".into(),
            ));
        }
        Ok(Some(Health {
            probe,
            interval,
            timeout,
            failures,
        }))
    }

    /// The watchdog's interval, if the service has one.
    pub(crate) fn watchdog(&self) -> Result<Option<Duration>, Failure> {
        let Some(text) = &self.keys.watchdog else {
            return Ok(None);
        };
        let interval = parse_duration("watchdog", text)?;
        if interval < Duration::from_millis(10) {
            return Err(Failure::new(format!(
                "`watchdog = {text:?}` is too short to be kept by anyone; at least 10ms"
            )));
        }
        Ok(Some(interval))
    }

    /// The command to run: given on the command line, else `command`.
    pub(crate) fn command(&self, given: &[String]) -> Result<Vec<String>, Failure> {
        if !given.is_empty() {
            return Ok(given.to_vec());
        }
        match &self.keys.command {
            Some(command) if !command.is_empty() => Ok(command.clone()),
            _ => Err(Failure::new(format!(
                "no command for `{}`: give one after `--` (`lichtara start -- python3 -m http.server`) or set `command = [...]` in Lichtara.toml",
                self.name
            ))),
        }
    }

    /// The environment the file gives it.
    pub(crate) fn env(&self) -> &BTreeMap<String, String> {
        &self.keys.env
    }
}

/// A service name: letters, digits, `-`, `_`, `.`; at most 64, not
/// starting with `.`.
pub(crate) fn valid_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid service name {name:?}: use letters, digits, '-', '_' or '.' (at most 64, not starting with '.')"
        ))
    }
}

fn parse_duration(key: &str, text: &str) -> Result<Duration, Failure> {
    crate::cli::duration_arg(text).map_err(|err| {
        Failure::new(format!(
            "`{key} = {text:?}` is not a duration ({err}); write it like \"10s\""
        ))
    })
}

/// Parses a size: a whole number and an optional unit, `B`, `KiB`, `MiB`,
/// `GiB`, `TiB` (or `K`, `KB`, `M`, `MB`…, the same binary multiples).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let shift = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// The most a settings file may hold: settings, not data.
const SETTINGS_MAX: u64 = 1 << 20;

/// The file's text, or `None` if it does not exist.
fn read_text(path: &Path) -> Result<Option<String>, Failure> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Never blocks on a FIFO; a link to something that is not a regular
    // file (/dev/zero) is refused, a large file read only so far.
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Failure::new(format!("{}: {err}", path.display()))),
    };
    let meta = file
        .metadata()
        .map_err(|err| Failure::new(format!("{}: {err}", path.display())))?;
    if !meta.is_file() {
        return Err(Failure::new(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(SETTINGS_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|err| Failure::new(format!("{}: {err}", path.display())))?;
    if text.len() as u64 > SETTINGS_MAX {
        return Err(Failure::new(format!(
            "{} is larger than 1 MiB; it holds settings, not data",
            path.display()
        )));
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(text: &str) -> Result<Config, String> {
        let config = Config::from_toml(text)?;
        config
            .check()
            .map_err(|failure| failure.message().to_owned())?;
        Ok(config)
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("10MiB"), Some(10 << 20));
        assert_eq!(parse_size(" 4 KiB "), Some(4096));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("10 parsecs"), None);
        assert_eq!(parse_size("-1M"), None);
        assert_eq!(parse_size("99999999999999999999T"), None);
    }

    #[test]
    fn settings_refuse_unknown_keys_at_the_top_and_in_tables() {
        let err = Config::from_toml("comand = [\"x\"]").unwrap_err();
        assert!(err.contains("comand"), "{err}");
        let err = Config::from_toml("[services.web]\ncomand = [\"x\"]").unwrap_err();
        assert!(
            err.contains("[services.web]") && err.contains("comand"),
            "{err}"
        );
        let config = checked(
            "command = [\"python3\", \"-m\", \"http.server\"]\nstop_timeout = \"3s\"\n[env]\nPORT = \"8000\"\n",
        )
        .unwrap();
        let server = config.service("server");
        assert_eq!(server.command(&[]).unwrap().len(), 3);
        assert_eq!(server.env()["PORT"], "8000");
        assert_eq!(config.names(), ["server"]);
    }

    #[test]
    fn a_single_service_file_applies_to_any_name_as_before() {
        let config = checked("stop_timeout = \"3s\"\ncommand = [\"x\"]\n").unwrap();
        let other = config.service("other");
        assert_eq!(other.stop_timeout(None).unwrap(), Duration::from_secs(3));
        assert_eq!(other.command(&[]).unwrap(), ["x"]);
    }

    #[test]
    fn services_inherit_the_defaults_but_not_another_service_s_own_keys() {
        let config = checked(
            "stop_timeout = \"3s\"\nrestart = \"always\"\nlisten = { http = \"127.0.0.1:8000\" }\ncommand = [\"top\"]\n[env]\nA = \"1\"\n\
             [services.web]\ncommand = [\"web\"]\nstop_timeout = \"7s\"\nenv = { B = \"2\" }\n\
             [services.worker]\ncommand = [\"worker\"]\n",
        )
        .unwrap();
        assert_eq!(config.names(), ["server", "web", "worker"]);
        let web = config.service("web");
        assert_eq!(web.stop_timeout(None).unwrap(), Duration::from_secs(7));
        assert_eq!(web.restart().unwrap().when, RestartWhen::Always);
        assert_eq!(web.env().len(), 2);
        assert!(
            web.listeners(&[]).unwrap().is_empty(),
            "listen is the top service's own"
        );
        let worker = config.service("worker");
        assert_eq!(worker.stop_timeout(None).unwrap(), Duration::from_secs(3));
        assert_eq!(worker.command(&[]).unwrap(), ["worker"]);
        assert_eq!(config.service("server").listeners(&[]).unwrap().len(), 1);
        assert!(config.service("undeclared").command(&[]).is_err());
    }

    #[test]
    fn dependencies_order_starts_and_stops_and_cycles_are_named() {
        let config = checked(
            "[services.db]\ncommand = [\"db\"]\n[services.web]\ncommand = [\"web\"]\ndepends_on = [\"db\", \"cache\"]\n\
             [services.cache]\ncommand = [\"cache\"]\n[services.worker]\ncommand = [\"w\"]\ndepends_on = [\"db\"]\n",
        )
        .unwrap();
        assert_eq!(
            config.start_order(&[]).unwrap(),
            ["cache", "db", "web", "worker"]
        );
        assert_eq!(
            config.start_order(&["web".into()]).unwrap(),
            ["db", "cache", "web"]
        );
        assert_eq!(
            config.stop_order(&[]).unwrap(),
            ["worker", "web", "db", "cache"]
        );
        assert_eq!(
            config.stop_order(&["db".into()]).unwrap(),
            ["worker", "web", "db"]
        );
        assert!(
            config
                .start_order(&["nope".into()])
                .unwrap_err()
                .message()
                .contains("declares cache, db, web, worker")
        );

        let err = checked(
            "[services.a]\ncommand = [\"a\"]\ndepends_on = [\"b\"]\n[services.b]\ncommand = [\"b\"]\ndepends_on = [\"c\"]\n[services.c]\ncommand = [\"c\"]\ndepends_on = [\"a\"]\n",
        )
        .unwrap_err();
        assert!(err.contains("cycle: a -> b -> c -> a"), "{err}");
        let err =
            checked("[services.a]\ncommand = [\"a\"]\ndepends_on = [\"ghost\"]\n").unwrap_err();
        assert!(err.contains("`a` depends on `ghost`"), "{err}");
        let err = checked("[services.a]\ncommand = [\"a\"]\ndepends_on = [\"a\"]\n").unwrap_err();
        assert!(err.contains("depends on itself"), "{err}");
    }

    #[test]
    fn a_bad_setting_of_one_service_is_named_with_it() {
        let err =
            checked("[services.web]\ncommand = [\"w\"]\nrestart = \"sometimes\"\n").unwrap_err();
        assert!(
            err.contains("service `web`") && err.contains("on-failure"),
            "{err}"
        );
        let err = checked("[services.web]\ncommand = [\"w\"]\nrestart_delay = \"1m\"\nrestart_delay_max = \"1s\"\n").unwrap_err();
        assert!(err.contains("longer than `restart_delay_max`"), "{err}");
        let err = checked("[services.\"bad name\"]\ncommand = [\"w\"]\n").unwrap_err();
        assert!(err.contains("invalid service name"), "{err}");
        let err =
            checked("stop_signal = \"KILL\"\n[services.web]\ncommand = [\"w\"]\n").unwrap_err();
        assert!(err.contains("stop_signal"), "{err}");
    }

    #[test]
    fn health_checks_parse_in_their_three_forms_and_refuse_the_rest() {
        let config = checked(
            "[services.a]\ncommand = [\"a\"]\nhealth = { http = \"http://127.0.0.1:8000/health\", interval = \"1s\", failures = 2 }\n\
             [services.b]\ncommand = [\"b\"]\nhealth = { tcp = \"127.0.0.1:9000\" }\n\
             [services.c]\ncommand = [\"c\"]\nhealth = { exec = [\"./check\", \"--quick\"], timeout = \"500ms\" }\n",
        )
        .unwrap();
        let a = config.service("a").health().unwrap().unwrap();
        assert_eq!(
            a.probe,
            Probe::Http {
                address: "127.0.0.1:8000".parse().unwrap(),
                host: "127.0.0.1:8000".into(),
                path: "/health".into()
            }
        );
        assert_eq!(
            (a.interval, a.timeout, a.failures),
            (Duration::from_secs(1), Duration::from_secs(2), 2)
        );
        assert_eq!(
            config.service("b").health().unwrap().unwrap().probe,
            Probe::Tcp("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            config.service("c").health().unwrap().unwrap().timeout,
            Duration::from_millis(500)
        );
        for (health, needle) in [
            ("{ http = \"https://127.0.0.1/\" }", "not an http:// URL"),
            ("{ http = \"http://localhost:8000/\" }", "not a name"),
            (
                "{ tcp = \"x\", http = \"http://127.0.0.1:1/\" }",
                "exactly one",
            ),
            ("{ exec = [] }", "no command"),
            ("{ tcp = \"127.0.0.1:1\", failures = 0 }", "more than 0"),
            ("{ tcp = \"127.0.0.1:1\", every = \"1s\" }", "every"),
        ] {
            let err = checked(&format!(
                "[services.a]\ncommand = [\"a\"]\nhealth = {health}\n"
            ))
            .unwrap_err();
            assert!(err.contains(needle), "{health}: {err}");
        }
    }

    #[test]
    fn restart_delays_double_up_to_their_cap() {
        let policy = RestartPolicy {
            delay: Duration::from_millis(100),
            delay_max: Duration::from_millis(1000),
            ..RestartPolicy::default()
        };
        let delays: Vec<u128> = (0..6).map(|n| policy.delay_for(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.delay_for(u32::MAX), Duration::from_millis(1000));
    }

    #[test]
    fn a_procfile_declares_services_run_by_sh_with_foreman_s_ports() {
        let config = Config::from_procfile(
            "# a comment\nweb: ./web --port $PORT\n\nworker:  python3 worker.py\n",
        )
        .unwrap();
        assert_eq!(config.names(), ["web", "worker"]);
        let web = config.service("web");
        assert_eq!(
            web.command(&[]).unwrap(),
            ["sh", "-c", "./web --port $PORT"]
        );
        assert_eq!(web.env()["PORT"], "5000");
        assert_eq!(config.service("worker").env()["PORT"], "5100");
        assert!(
            Config::from_procfile("web ./web\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            Config::from_procfile("web: a\nweb: b\n")
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            Config::from_procfile("web:\n")
                .unwrap_err()
                .contains("no command")
        );
    }

    #[test]
    fn readiness_parses_in_both_forms() {
        let config = checked(
            "ready = { port = \"127.0.0.1:8000\" }\nlisten = { http = \"127.0.0.1:8001\" }\n",
        )
        .unwrap();
        assert!(matches!(
            config.service("server").keys.ready,
            Some(ReadySetting::Port { .. })
        ));
        assert_eq!(Ready::parse("notify"), Ok(Ready::Notify));
        assert_eq!(
            Ready::parse("port=127.0.0.1:8000"),
            Ok(Ready::Port("127.0.0.1:8000".parse().unwrap()))
        );
        assert!(
            Ready::parse("port")
                .unwrap_err()
                .contains("needs the address")
        );
        assert!(
            Ready::parse("sometimes")
                .unwrap_err()
                .contains("none, notify")
        );
        assert_eq!(Ready::parse(&Ready::Notify.arg()), Ok(Ready::Notify));
    }
}
