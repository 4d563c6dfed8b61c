//! The Docker engine, through the `docker` CLI: the compose project's
//! containers by service, the faults (kill, stop, start, pause, network
//! disconnect), health, and two ways into the stack's networks through the
//! PostgreSQL container (psql, and /metrics of an unpublished admin port).

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::process::Command;
use tokio::time::{Instant, sleep};

/// The PostgreSQL container's compose service.
const POSTGRES: &str = "postgres";
/// Separates psql's output fields (a character no value of ours holds).
const FIELD_SEPARATOR: char = '\u{1f}';
/// How long a read of /metrics may take before it counts as failed.
const METRICS_TIMEOUT: Duration = Duration::from_secs(5);

/// One compose project on the local engine.
#[derive(Debug, Clone)]
pub struct Docker {
    project: String,
}

impl Docker {
    /// The project named `project` (COMPOSE_PROJECT_NAME).
    pub fn new(project: impl Into<String>) -> Self {
        Self {
            project: project.into(),
        }
    }

    /// The compose project's name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Runs `docker ARGS` and returns its standard output.
    ///
    /// # Errors
    /// The CLI could not run or exited non-zero (its stderr in the error).
    pub async fn run(&self, args: &[&str]) -> Result<String> {
        let output = Command::new("docker")
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running docker {}", args.join(" ")))?;
        if !output.status.success() {
            bail!(
                "docker {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The container of compose service `service` (running or not).
    ///
    /// # Errors
    /// No such container, or more than one.
    pub async fn container(&self, service: &str) -> Result<String> {
        let project = format!("label=com.docker.compose.project={}", self.project);
        let label = format!("label=com.docker.compose.service={service}");
        let out = self
            .run(&["ps", "-aq", "--filter", &project, "--filter", &label])
            .await?;
        let ids: Vec<&str> = out.split_whitespace().collect();
        match ids.as_slice() {
            [id] => Ok((*id).to_owned()),
            [] => bail!(
                "no container of service {service} in project {}",
                self.project
            ),
            _ => bail!("{} containers of service {service}", ids.len()),
        }
    }

    /// The compose services of the project's running containers.
    ///
    /// # Errors
    /// The CLI failed.
    pub async fn services(&self) -> Result<Vec<String>> {
        let project = format!("label=com.docker.compose.project={}", self.project);
        let out = self
            .run(&[
                "ps",
                "--filter",
                &project,
                "--format",
                "{{.Label \"com.docker.compose.service\"}}",
            ])
            .await?;
        let mut services: Vec<String> = out
            .lines()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        services.sort();
        services.dedup();
        Ok(services)
    }

    /// `docker <verb> <service's container>`: kill, stop, start, pause, unpause.
    ///
    /// # Errors
    /// The container is missing or the CLI failed.
    pub async fn act(&self, verb: &str, service: &str) -> Result<()> {
        let id = self.container(service).await?;
        self.run(&[verb, &id]).await.map(drop)
    }

    /// The container's health (`healthy`, `starting`, `unhealthy`), or its
    /// state when it is not running or has no health check.
    ///
    /// # Errors
    /// The container is missing or the CLI failed.
    pub async fn health(&self, service: &str) -> Result<String> {
        let id = self.container(service).await?;
        let out = self
            .run(&[
                "inspect",
                "--format",
                "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
                &id,
            ])
            .await?;
        let out = out.trim();
        Ok(match out.split_once('/') {
            Some(("running", "none")) => "running".to_owned(),
            Some(("running", health)) => health.to_owned(),
            Some((state, _)) => state.to_owned(),
            None => out.to_owned(),
        })
    }

    /// Waits until `service`'s container is healthy (or running, without a
    /// health check).
    ///
    /// # Errors
    /// Not healthy within `timeout`.
    pub async fn wait_healthy(&self, service: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let health = self.health(service).await?;
            if health == "healthy" || health == "running" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{service} is {health}, not healthy, after {}s",
                    timeout.as_secs()
                );
            }
            sleep(Duration::from_millis(500)).await;
        }
    }

    /// The project's network `name` (compose's `<project>_<name>`).
    pub fn network(&self, name: &str) -> String {
        format!("{}_{name}", self.project)
    }

    /// The DNS aliases `service`'s container has on `network`.
    ///
    /// # Errors
    /// The container is missing or the CLI failed.
    pub async fn aliases(&self, service: &str, network: &str) -> Result<Vec<String>> {
        let id = self.container(service).await?;
        let format = format!(
            "{{{{with index .NetworkSettings.Networks \"{network}\"}}}}{{{{range .Aliases}}}}{{{{.}}}} {{{{end}}}}{{{{end}}}}"
        );
        let out = self.run(&["inspect", "--format", &format, &id]).await?;
        Ok(out.split_whitespace().map(str::to_owned).collect())
    }

    /// Disconnects `service`'s container from `network` (a partition).
    ///
    /// # Errors
    /// The container is missing or the CLI failed.
    pub async fn disconnect(&self, service: &str, network: &str) -> Result<()> {
        let id = self.container(service).await?;
        self.run(&["network", "disconnect", network, &id])
            .await
            .map(drop)
    }

    /// Connects `service`'s container to `network` again, with `aliases`
    /// (those compose gave it: without them the service's name no longer
    /// resolves to it).
    ///
    /// # Errors
    /// The container is missing or the CLI failed.
    pub async fn connect(&self, service: &str, network: &str, aliases: &[String]) -> Result<()> {
        let id = self.container(service).await?;
        let mut args = vec!["network", "connect"];
        for alias in aliases {
            // The container's short id is an alias Docker adds by itself.
            if !id.starts_with(alias.as_str()) {
                args.push("--alias");
                args.push(alias);
            }
        }
        args.push(network);
        args.push(&id);
        self.run(&args).await.map(drop)
    }

    /// Runs `sql` in database `database` as the superuser, inside the
    /// PostgreSQL container, and returns its rows, fields split.
    ///
    /// # Errors
    /// psql failed (the SQL, the server or the container).
    pub async fn psql(&self, database: &str, sql: &str) -> Result<Vec<Vec<String>>> {
        let id = self.container(POSTGRES).await?;
        let separator = FIELD_SEPARATOR.to_string();
        let out = self
            .run(&[
                "exec",
                &id,
                "psql",
                "-X",
                "-q",
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-F",
                &separator,
                "-c",
                sql,
            ])
            .await
            .with_context(|| format!("psql -d {database}"))?;
        Ok(out
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| line.split(FIELD_SEPARATOR).map(str::to_owned).collect())
            .collect())
    }

    /// The Prometheus text `host:port/metrics` serves inside the stack's
    /// networks, read through the PostgreSQL container's bash (admin ports
    /// are not published; PostgreSQL is on every network).
    ///
    /// # Errors
    /// The connection failed or the read timed out.
    pub async fn metrics(&self, host: &str, port: u16) -> Result<String> {
        let id = self.container(POSTGRES).await?;
        let port = port.to_string();
        let script = r#"exec 3<>"/dev/tcp/$0/$1" || exit 1
printf "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n" "$0" >&3
cat <&3"#;
        let args = [
            "exec", &id, "timeout", "4", "bash", "-c", script, host, &port,
        ];
        let read = self.run(&args);
        let text = tokio::time::timeout(METRICS_TIMEOUT, read)
            .await
            .with_context(|| format!("reading {host}:{port}/metrics timed out"))??;
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            bail!("{host}:{port}/metrics answered no HTTP response");
        };
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            bail!(
                "{host}:{port}/metrics answered {}",
                head.lines().next().unwrap_or_default()
            );
        }
        Ok(body.to_owned())
    }
}
