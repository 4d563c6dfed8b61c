//! The in-process backend: a map of services to instances in this process,
//! with a `watch` channel per service. Used by the all-in-one binary (one
//! process-wide registry) and by tests (one registry each).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::watch;

use super::{Backend, Instances, Registration, RegistryError, canonical, publish};
use crate::instance::Instance;

/// One service's registered instances, each tagged with the registration
/// that owns it so that an old guard cannot remove a newer registration of
/// the same id.
struct Entry {
    instances: BTreeMap<String, (u64, Instance)>,
    tx: watch::Sender<Instances>,
}

impl Entry {
    fn new() -> Self {
        Self {
            instances: BTreeMap::new(),
            tx: watch::Sender::new(Instances::from([])),
        }
    }

    fn publish(&self) {
        let all = self
            .instances
            .values()
            .map(|(_, instance)| instance.clone())
            .collect();
        publish(&self.tx, canonical(all));
    }
}

#[derive(Default)]
struct Shared {
    services: Mutex<HashMap<String, Entry>>,
    next_registration: AtomicU64,
}

impl Shared {
    fn services(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave the map half-updated in
        // a way that matters more than losing discovery altogether.
        self.services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The in-process registry.
#[derive(Clone)]
pub(crate) struct Memory {
    shared: Arc<Shared>,
    kind: &'static str,
}

impl Default for Memory {
    fn default() -> Self {
        Self::named("in_process")
    }
}

impl Memory {
    /// An empty registry reporting `kind` (the static backend reuses this one).
    pub(crate) fn named(kind: &'static str) -> Self {
        Self {
            shared: Arc::default(),
            kind,
        }
    }

    /// Adds (or replaces) an instance and returns the token owning it.
    pub(crate) fn insert(&self, instance: Instance) -> u64 {
        let token = self
            .shared
            .next_registration
            .fetch_add(1, Ordering::Relaxed);
        let mut services = self.shared.services();
        let entry = services
            .entry(instance.service.clone())
            .or_insert_with(Entry::new);
        entry
            .instances
            .insert(instance.id.clone(), (token, instance));
        entry.publish();
        token
    }

    fn remove(shared: &Weak<Shared>, service: &str, id: &str, token: u64) {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut services = shared.services();
        if let Some(entry) = services.get_mut(service)
            && entry
                .instances
                .get(id)
                .is_some_and(|(owner, _)| *owner == token)
        {
            entry.instances.remove(id);
            entry.publish();
        }
    }
}

impl Backend for Memory {
    fn register(&self, instance: Instance) -> Result<Registration, RegistryError> {
        let token = self.insert(instance.clone());
        let shared = Arc::downgrade(&self.shared);
        let (service, id) = (instance.service.clone(), instance.id.clone());
        Ok(Registration::local(instance, move || {
            Self::remove(&shared, &service, &id, token)
        }))
    }

    fn watch(&self, service: &str) -> watch::Receiver<Instances> {
        self.shared
            .services()
            .entry(service.to_owned())
            .or_insert_with(Entry::new)
            .tx
            .subscribe()
    }

    fn kind(&self) -> &'static str {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use crate::instance::Instance;
    use crate::registry::Registry;

    fn ids(instances: &[Instance]) -> Vec<&str> {
        instances.iter().map(|i| i.id.as_str()).collect()
    }

    #[tokio::test]
    async fn registrations_appear_and_disappear_in_watches() {
        let registry = Registry::in_process();
        let mut watch = registry.watch("cart");
        assert!(watch.borrow_and_update().is_empty());

        let a = registry
            .register(Instance::new("cart", "a", "127.0.0.1:1"))
            .unwrap();
        watch.changed().await.unwrap();
        assert_eq!(ids(&watch.borrow_and_update()), ["a"]);

        let b = registry
            .register(Instance::new("cart", "b", "127.0.0.1:2"))
            .unwrap();
        watch.changed().await.unwrap();
        assert_eq!(ids(&watch.borrow_and_update()), ["a", "b"]);

        drop(a);
        watch.changed().await.unwrap();
        assert_eq!(ids(&watch.borrow_and_update()), ["b"]);

        b.deregister().await;
        watch.changed().await.unwrap();
        assert!(watch.borrow_and_update().is_empty());
        // Other services are unaffected and late watchers see the current set.
        assert!(registry.watch("catalog").borrow().is_empty());
    }

    #[tokio::test]
    async fn an_old_guard_does_not_remove_a_newer_registration_of_the_same_id() {
        let registry = Registry::in_process();
        // Registered in this order: the same id, first at :1, then at :2.
        let [old, new] = ["127.0.0.1:1", "127.0.0.1:2"].map(|address| {
            registry
                .register(Instance::new("cart", "a", address))
                .unwrap()
        });
        drop(old);
        let watch = registry.watch("cart");
        assert_eq!(watch.borrow()[0].address, "127.0.0.1:2");
        drop(new);
        assert!(watch.borrow().is_empty());
    }

    #[tokio::test]
    async fn clones_share_state_and_the_process_wide_registry_is_one() {
        let registry = Registry::in_process();
        let clone = registry.clone();
        let _guard = clone
            .register(Instance::new("users", "u", "127.0.0.1:3"))
            .unwrap();
        assert_eq!(registry.watch("users").borrow().len(), 1);

        let _shared = Registry::process_wide()
            .register(Instance::new("pw-test", "x", "127.0.0.1:4"))
            .unwrap();
        assert_eq!(Registry::process_wide().watch("pw-test").borrow().len(), 1);
    }
}
