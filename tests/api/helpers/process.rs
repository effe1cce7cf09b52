//! `BrokerProcess`: the real `sse-broker` binary as a child process, for
//! what only a process shows (signals, exit codes, its log output).

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use super::{LONG, broker_command, free_port};

/// The real `sse-broker` binary, killed if a test leaves it running.
pub struct BrokerProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    log: PathBuf,
}

impl BrokerProcess {
    /// Starts the binary on a free port with the SQLite file `database`,
    /// logging at `info` into `log`.
    pub fn spawn(database: &Path, log: PathBuf) -> Self {
        Self::spawn_with(database, log, &[], &[])
    }

    /// [`Self::spawn`] with extra flags and environment variables.
    pub fn spawn_with(database: &Path, log: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_on(free_port(), database, log, args, env)
    }

    /// [`Self::spawn_with`] on `port` (a restart where the last one listened).
    pub fn spawn_on(
        port: u16,
        database: &Path,
        log: PathBuf,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let database_url = format!("sqlite://{}", database.display());
        Self::launch(port, &database_url, log, args, env)
    }

    /// [`Self::spawn`] on the store at `database_url` (a `postgres://` one).
    pub fn spawn_on_store(database_url: &str, log: PathBuf) -> Self {
        Self::launch(free_port(), database_url, log, &[], &[])
    }

    /// [`Self::spawn_on_store`] with extra flags.
    pub fn spawn_on_store_with(database_url: &str, log: PathBuf, args: &[&str]) -> Self {
        Self::launch(free_port(), database_url, log, args, &[])
    }

    fn launch(
        port: u16,
        database_url: &str,
        log: PathBuf,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log_file = File::create(&log).expect("a log file");
        let mut command = broker_command();
        command
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--database-url", database_url])
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("a log handle"))
            .stderr(log_file);
        let child = command.spawn().expect("the sse-broker binary starts");
        Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn wait_until_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + LONG;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "the broker exited early with {status}; logs:\n{}",
                    self.logs()
                );
            }
            if let Ok(response) = client.get(format!("{}/health", self.address)).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the broker is not ready after {LONG:?}; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends `kill -<name>` to the broker.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.address
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("an address with a port")
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    pub async fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not exit within {timeout:?} of SIGTERM; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
