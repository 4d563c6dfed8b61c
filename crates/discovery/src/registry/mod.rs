//! Service registration and discovery: a [`Registry`] registers instances
//! and yields a live view of the instances of a service.
//!
//! | backend | module | registration | discovery |
//! | --- | --- | --- | --- |
//! | in-process | [`memory`] | a map in this process | a `watch` channel per service |
//! | static | [`static_list`] | in-process, on top of a configured list | the list (plus local registrations) |
//! | etcd v3 | `etcd` (feature `etcd`) | a key under a lease kept alive | a prefix watch, re-synced after reconnects |
//! | DNS | [`dns`] | by the platform (Kubernetes readiness) | periodic re-resolution of a name |

pub mod dns;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod memory;
pub mod static_list;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::instance::{Instance, InstanceError};

pub use dns::{DnsService, DnsSettings};
#[cfg(feature = "etcd")]
pub use etcd::EtcdSettings;
pub use static_list::{StaticInstance, StaticSettings};

/// The current instances of one service; replaced as a whole on every change.
pub type Instances = Arc<[Instance]>;

/// The watch channels of a backend that feeds them from a task (DNS, etcd):
/// one channel and one feeding task per service, shared by all its watchers
/// and left to stop once the last watcher goes away.
pub(crate) struct Watches {
    backend: &'static str,
    channels: Mutex<HashMap<String, watch::Sender<Instances>>>,
}

impl Watches {
    /// No channels yet, for the backend named `backend` in logs.
    pub(crate) fn new(backend: &'static str) -> Self {
        Self {
            backend,
            channels: Mutex::default(),
        }
    }

    /// A receiver on `service`'s channel. The first watcher (or the first
    /// after every earlier one went away) opens the channel and spawns the
    /// task `feed` makes from its sender; without one (nothing configured
    /// for the service, or no tokio runtime), the service has no instances.
    pub(crate) fn subscribe<F>(
        &self,
        service: &str,
        feed: impl FnOnce(watch::Sender<Instances>) -> Option<F>,
    ) -> watch::Receiver<Instances>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = channels.get(service)
            && !tx.is_closed()
        {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(Instances::from([]));
        let Some(task) = feed(tx.clone()) else {
            return rx;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let backend = self.backend;
            tracing::error!(
                service,
                backend,
                "discovery needs a tokio runtime; the service has no instances"
            );
            return rx;
        };
        runtime.spawn(task);
        channels.insert(service.to_owned(), tx);
        rx
    }
}

/// Which registry backend to use, chosen by the `backend` key.
///
/// ```toml
/// [registry]
/// backend = "etcd"
/// endpoints = ["http://etcd:2379"]
/// lease_ttl_secs = 10
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum RegistrySettings {
    /// Every service in this process shares one process-wide registry (the
    /// all-in-one binary). The default.
    #[default]
    InProcess,
    /// A fixed list of instances from the configuration.
    Static(StaticSettings),
    /// etcd v3 with leases (docker compose). Needs the `etcd` cargo feature;
    /// without it, selecting this backend fails at start-up.
    Etcd(EtcdSettingsOrDisabled),
    /// DNS names re-resolved periodically (Kubernetes headless Services).
    Dns(DnsSettings),
}

/// The etcd settings when the `etcd` feature is on.
#[cfg(feature = "etcd")]
pub type EtcdSettingsOrDisabled = EtcdSettings;

/// Without the `etcd` feature the settings are still parsed, so a config file
/// stays valid across builds; selecting the backend then fails clearly.
#[cfg(not(feature = "etcd"))]
pub type EtcdSettingsOrDisabled = std::collections::BTreeMap<String, serde::de::IgnoredAny>;

/// Why a registry could not be built or an instance registered.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The instance is malformed.
    #[error(transparent)]
    InvalidInstance(#[from] InstanceError),
    /// The settings cannot work (bad endpoint, zero TTL, ...); names the key.
    #[error("invalid registry settings: {0}")]
    InvalidSettings(String),
    /// This build does not include the selected backend.
    #[error(
        "the {0} registry backend is not compiled in (enable the `{0}` cargo feature of shop-discovery)"
    )]
    NotCompiledIn(&'static str),
    /// A backend that runs background tasks was used outside a tokio runtime.
    #[error("the registry must be used from within a tokio runtime")]
    NoRuntime,
    /// etcd refused a request.
    #[cfg(feature = "etcd")]
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
}

/// What every backend implements.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Starts registering `instance` (already validated).
    fn register(&self, instance: Instance) -> Result<Registration, RegistryError>;
    /// The live instances of `service`.
    fn watch(&self, service: &str) -> watch::Receiver<Instances>;
    /// A short name for logs.
    fn kind(&self) -> &'static str;
}

/// A handle on a registry backend; cheap to clone and share between services.
#[derive(Clone)]
pub struct Registry {
    backend: Arc<dyn Backend>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("backend", &self.backend.kind())
            .finish()
    }
}

impl Registry {
    /// Builds the backend the settings select.
    ///
    /// `in_process` returns the process-wide registry, so every service the
    /// all-in-one binary starts sees the others without passing a handle
    /// around; tests that want isolation use [`Registry::in_process`].
    ///
    /// # Errors
    /// [`RegistryError::InvalidSettings`] for unusable settings,
    /// [`RegistryError::NotCompiledIn`] for `etcd` without the feature.
    /// etcd being down is not an error: registrations and watches retry.
    pub async fn from_settings(settings: &RegistrySettings) -> Result<Self, RegistryError> {
        match settings {
            RegistrySettings::InProcess => Ok(Self::process_wide()),
            RegistrySettings::Static(settings) => Self::static_list(settings),
            RegistrySettings::Dns(settings) => Ok(Self::dns(settings.clone())),
            #[cfg(feature = "etcd")]
            RegistrySettings::Etcd(settings) => Self::etcd(settings.clone()).await,
            #[cfg(not(feature = "etcd"))]
            RegistrySettings::Etcd(_) => Err(RegistryError::NotCompiledIn("etcd")),
        }
    }

    /// A new, empty in-process registry of its own.
    pub fn in_process() -> Self {
        Self {
            backend: Arc::new(memory::Memory::default()),
        }
    }

    /// The one in-process registry shared by everything in this process.
    pub fn process_wide() -> Self {
        static SHARED: OnceLock<Registry> = OnceLock::new();
        SHARED.get_or_init(Self::in_process).clone()
    }

    /// A registry serving a fixed list of instances (local registrations are
    /// added to it).
    ///
    /// # Errors
    /// [`RegistryError::InvalidInstance`] when a listed instance is malformed.
    pub fn static_list(settings: &StaticSettings) -> Result<Self, RegistryError> {
        Ok(Self {
            backend: Arc::new(static_list::build(settings)?),
        })
    }

    /// A registry that resolves DNS names.
    pub fn dns(settings: DnsSettings) -> Self {
        Self {
            backend: Arc::new(dns::Dns::new(settings)),
        }
    }

    /// A registry on etcd v3.
    ///
    /// # Errors
    /// [`RegistryError::InvalidSettings`] or [`RegistryError::Etcd`] when the
    /// endpoints cannot be used at all. An etcd that is down is not an error.
    #[cfg(feature = "etcd")]
    pub async fn etcd(settings: EtcdSettings) -> Result<Self, RegistryError> {
        Ok(Self {
            backend: Arc::new(etcd::Etcd::connect(settings).await?),
        })
    }

    /// Registers an instance until the returned guard is dropped or
    /// [`Registration::deregister`]ed.
    ///
    /// Backends that talk to a server register in the background, retrying
    /// with backoff while the server is down; [`Registration::registered`]
    /// waits until the instance is visible.
    ///
    /// # Errors
    /// [`RegistryError::InvalidInstance`] for a malformed instance,
    /// [`RegistryError::NoRuntime`] outside a tokio runtime (etcd).
    pub fn register(&self, instance: Instance) -> Result<Registration, RegistryError> {
        instance.validate()?;
        self.backend.register(instance)
    }

    /// The instances of `service`: the receiver holds the current set and
    /// is notified on every change. The set may start empty while a remote
    /// backend loads it.
    pub fn watch(&self, service: &str) -> watch::Receiver<Instances> {
        self.backend.watch(service)
    }

    /// Which backend this is (`in_process`, `static`, `etcd`, `dns`).
    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }
}

/// How a registration is undone.
enum Lifecycle {
    /// Removal is immediate and synchronous (in-process).
    Local(Box<dyn FnOnce() + Send + Sync>),
    /// A background task owns the registration; cancelling `stop` makes it
    /// remove the instance and end.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    Task {
        stop: CancellationToken,
        task: JoinHandle<()>,
    },
}

/// An instance kept registered for as long as this guard lives.
///
/// Dropping it deregisters (in the background for remote backends); call
/// [`Registration::deregister`] on graceful shutdown to wait until the
/// instance is gone.
#[must_use = "the instance is deregistered when the registration is dropped"]
pub struct Registration {
    instance: Instance,
    registered: watch::Receiver<bool>,
    lifecycle: Option<Lifecycle>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("instance", &self.instance)
            .field("registered", &*self.registered.borrow())
            .finish_non_exhaustive()
    }
}

impl Registration {
    pub(crate) fn local(instance: Instance, remove: impl FnOnce() + Send + Sync + 'static) -> Self {
        // Local registrations are visible at once and stay so.
        let (tx, registered) = watch::channel(true);
        drop(tx);
        Self {
            instance,
            registered,
            lifecycle: Some(Lifecycle::Local(Box::new(remove))),
        }
    }

    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn task(
        instance: Instance,
        registered: watch::Receiver<bool>,
        stop: CancellationToken,
        task: JoinHandle<()>,
    ) -> Self {
        Self {
            instance,
            registered,
            lifecycle: Some(Lifecycle::Task { stop, task }),
        }
    }

    /// The registered instance.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// Whether the backend currently holds the instance (false while etcd is
    /// unreachable and the registration is being retried).
    pub fn is_registered(&self) -> bool {
        *self.registered.borrow()
    }

    /// Waits until the backend holds the instance, at most `timeout`;
    /// returns whether it does.
    pub async fn registered(&self, timeout: Duration) -> bool {
        let mut registered = self.registered.clone();
        if *registered.borrow_and_update() {
            return true;
        }
        matches!(
            tokio::time::timeout(timeout, registered.wait_for(|now| *now)).await,
            Ok(Ok(_))
        )
    }

    /// Removes the instance and waits until the backend confirmed it (or
    /// gave up trying: a remote backend bounds the removal by a timeout, and
    /// the lease expiry removes the instance anyway).
    pub async fn deregister(mut self) {
        match self.lifecycle.take() {
            Some(Lifecycle::Local(remove)) => remove(),
            Some(Lifecycle::Task { stop, task }) => {
                stop.cancel();
                if let Err(err) = task.await {
                    tracing::warn!(error = %err, "registration task ended abnormally");
                }
            }
            None => {}
        }
    }

    /// Stops keeping the instance registered *without* removing it, as a
    /// crashed process would: with etcd it disappears when its lease expires.
    /// In-process registrations are removed at once (there is no lease).
    /// Meant for failure-injection tests.
    pub fn abandon(mut self) {
        match self.lifecycle.take() {
            Some(Lifecycle::Local(remove)) => remove(),
            Some(Lifecycle::Task { task, .. }) => task.abort(),
            None => {}
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        match self.lifecycle.take() {
            Some(Lifecycle::Local(remove)) => remove(),
            // The task removes the instance on its own once told to stop.
            Some(Lifecycle::Task { stop, .. }) => stop.cancel(),
            None => {}
        }
    }
}

/// Sorts instances by id so that equal sets compare equal and watchers are
/// only woken by real changes.
pub(crate) fn canonical(mut instances: Vec<Instance>) -> Instances {
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    instances.dedup_by(|a, b| a.id == b.id);
    instances.into()
}

/// Publishes `instances` unless they equal what watchers already have.
pub(crate) fn publish(tx: &watch::Sender<Instances>, instances: Instances) {
    tx.send_if_modified(|current| {
        if *current == instances {
            false
        } else {
            *current = instances;
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_select_a_backend_by_tag_and_default_to_in_process() {
        let settings: RegistrySettings =
            serde_json::from_str(r#"{"backend":"in_process"}"#).unwrap();
        assert!(matches!(settings, RegistrySettings::InProcess));
        assert!(matches!(
            RegistrySettings::default(),
            RegistrySettings::InProcess
        ));
        let settings: RegistrySettings = serde_json::from_str(
            r#"{"backend":"static","instances":[{"service":"cart","address":"127.0.0.1:1"}]}"#,
        )
        .unwrap();
        assert!(matches!(settings, RegistrySettings::Static(ref s) if s.instances.len() == 1));
        let settings: RegistrySettings = serde_json::from_str(
            r#"{"backend":"dns","services":{"cart":{"host":"cart","port":8083}}}"#,
        )
        .unwrap();
        assert!(matches!(settings, RegistrySettings::Dns(_)));
        assert!(
            serde_json::from_str::<RegistrySettings>(r#"{"backend":"dns","bogus":1}"#).is_err()
        );
        assert!(serde_json::from_str::<RegistrySettings>(r#"{"backend":"zookeeper"}"#).is_err());
    }

    #[cfg(not(feature = "etcd"))]
    #[tokio::test]
    async fn etcd_without_the_feature_fails_clearly() {
        let settings: RegistrySettings = serde_json::from_str(r#"{"backend":"etcd"}"#).unwrap();
        let err = Registry::from_settings(&settings).await.unwrap_err();
        assert!(matches!(err, RegistryError::NotCompiledIn("etcd")));
    }
}
