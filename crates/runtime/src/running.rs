//! A service running on its own task, and how to stop it.

use std::net::SocketAddr;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running service (see [`crate::Application::spawn`]). Dropping it
/// signals the service to stop without waiting.
#[derive(Debug)]
pub struct Running {
    name: String,
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    stop: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub(crate) fn new(
        name: String,
        addr: SocketAddr,
        admin: Option<SocketAddr>,
        stop: CancellationToken,
        task: JoinHandle<std::io::Result<()>>,
    ) -> Self {
        Self {
            name,
            addr,
            admin,
            stop,
            task: Some(task),
        }
    }

    /// Its instance id (`cart-1`, `orders-…`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its API address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its API base URL, `http://host:port`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its admin address (`/metrics`), when it has an admin listener.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Its admin base URL, `http://host:port`, when it has an admin
    /// listener.
    pub fn admin_base(&self) -> Option<String> {
        self.admin.map(|admin| format!("http://{admin}"))
    }

    /// Signals the service to stop (deregister, drain, close) and returns at
    /// once; [`Running::stopped`] waits for it.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Signals the service to stop and waits until it has drained and
    /// stopped; its outcome (an error of a listener, or a panic of its task
    /// as an error).
    ///
    /// # Errors
    /// The error the service stopped with.
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        self.stop.cancel();
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }

    /// Ends the service's task at once: no drain and no stop signal to its
    /// workers. Dropping the task drops its registration, which removes the
    /// instance (an in-process registry at once, etcd by revoking its
    /// lease); connections already accepted run on their own tasks until
    /// they end. A crash that leaves its registration to lapse is a separate
    /// process killed (see the process tests).
    pub fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
