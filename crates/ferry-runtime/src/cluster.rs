//! The runtime's object store: Kubernetes API-server semantics on one machine.
//!
//! Objects carry `uid`, `resourceVersion`, `generation`, `creationTimestamp` and
//! `managedFields`; applies follow server-side apply (field ownership per manager,
//! conflicts unless forced); status is written apart from spec; deleting an owner
//! cascades to its dependents; pods are deleted gracefully (the kubelet stops their
//! processes, then finalises). Every change is written through to SQLite and
//! broadcast to watchers.
//!
//! Every write that creates or replaces an object ([`Cluster::apply`],
//! [`Cluster::create`], [`Cluster::update_as`]) is validated first as the API server
//! validates it ([`ferry_core::names`]): names become directories and URL segments
//! downstream, so an object named `../x` is refused here, in the API server's words.
//! Objects an older ferry stored without this check still load, and can be deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_core::{Object, ObjectKey};
use ferry_store::Db;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};

use crate::fields::{self, Path};
use crate::{Error, Result};

/// The finalizer an owner deleted in the foreground carries until its dependents are gone.
const FOREGROUND_DELETION: &str = "foregroundDeletion";

pub use ferry_core::object::{CLUSTER_SCOPED, is_namespaced};

pub use ferry_core::target::{ApplyOptions, Propagation};

/// What a watcher is told.
#[derive(Clone, Debug)]
pub enum WatchEvent {
    /// A new object.
    Added(Object),
    /// A changed object.
    Modified(Object),
    /// A removed object (its last state).
    Deleted(Object),
}

impl WatchEvent {
    /// The object the event is about.
    pub fn object(&self) -> &Object {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => o,
        }
    }
}

/// The label every object an app deploys carries; indexed, since the engine lists
/// each app's objects by it on every refresh.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// An object as the store holds it: its JSON text, and what the listing paths filter
/// on without decoding it. A parsed `serde_json::Value` of a small Kubernetes object
/// costs about seven times its text in little maps, and a store of 10,000 objects is
/// read a few at a time, so text is what is kept; reads decode.
struct Stored {
    json: Box<str>,
    labels: Box<[(Box<str>, Box<str>)]>,
    /// `metadata.ownerReferences[].uid`, for cascading deletes.
    owners: Box<[Box<str>]>,
}

impl Stored {
    fn encode(obj: &Object) -> Self {
        let meta = obj.value().get("metadata");
        let labels = meta
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|l| {
                l.iter()
                    .filter_map(|(k, v)| Some((k.as_str().into(), v.as_str()?.into())))
                    .collect()
            })
            .unwrap_or_default();
        let owners = meta
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .filter_map(|r| r.get("uid").and_then(Value::as_str))
                    .map(Into::into)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            json: obj.value().to_string().into_boxed_str(),
            labels,
            owners,
        }
    }

    fn decode(&self) -> Object {
        // The text was written by `encode` from a valid object.
        let value = serde_json::from_str(&self.json).expect("the store holds valid JSON");
        Object::from_value(value).expect("the store holds valid objects")
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    fn has_labels<'a>(&self, mut want: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        want.all(|(k, v)| self.label(k) == Some(v))
    }
}

struct State {
    objects: BTreeMap<ObjectKey, Stored>,
    rv: u64,
    /// Keys of the objects carrying each value of [`INSTANCE_LABEL`].
    by_instance: std::collections::HashMap<String, BTreeSet<ObjectKey>>,
}

impl State {
    fn new(objects: Vec<(ObjectKey, Stored)>, rv: u64) -> Self {
        let mut state = Self {
            objects: BTreeMap::new(),
            rv,
            by_instance: std::collections::HashMap::new(),
        };
        for (k, o) in objects {
            state.insert(k, o);
        }
        state
    }

    fn get(&self, key: &ObjectKey) -> Option<Object> {
        self.objects.get(key).map(Stored::decode)
    }

    fn insert(&mut self, key: ObjectKey, stored: Stored) {
        self.unindex(&key);
        if let Some(v) = stored.label(INSTANCE_LABEL) {
            self.by_instance
                .entry(v.to_string())
                .or_default()
                .insert(key.clone());
        }
        self.objects.insert(key, stored);
    }

    fn remove(&mut self, key: &ObjectKey) {
        self.unindex(key);
        self.objects.remove(key);
    }

    fn unindex(&mut self, key: &ObjectKey) {
        if let Some(v) = self.objects.get(key).and_then(|o| o.label(INSTANCE_LABEL)) {
            let v = v.to_string();
            if let Some(set) = self.by_instance.get_mut(&v) {
                set.remove(key);
                if set.is_empty() {
                    self.by_instance.remove(&v);
                }
            }
        }
    }
}

/// `metadata.uid` (empty when unset).
fn uid_of(obj: &Object) -> &str {
    obj.value()
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The object store.
pub struct Cluster {
    state: RwLock<State>,
    db: Option<Arc<Db>>,
    tx: broadcast::Sender<WatchEvent>,
    changed: watch::Sender<u64>,
}

/// Now as RFC 3339, seconds precision, UTC.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Now in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Refuses an object the API server would refuse for its names (see
/// [`ferry_core::names::validate_object`]), with the API server's message.
pub fn check_names(obj: &Object) -> Result<()> {
    ferry_core::names::validate_object(obj).map_err(|e| Error::Invalid(e.to_string()))
}

/// Largest object stored, in bytes of JSON: etcd's default request limit (1.5 MiB),
/// which a Kubernetes API server meets as `etcdserver: request is too large`.
pub const MAX_OBJECT_BYTES: usize = 3 << 19;

/// Refuses a body over [`MAX_OBJECT_BYTES`] of JSON, as etcd would refuse it, so one
/// object cannot grow the store (and every watch and list that copies it) without bound.
fn check_size(body: &Value) -> Result<()> {
    /// Counts bytes without keeping them.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail; a Value always serialises.
    let _ = serde_json::to_writer(&mut count, body);
    if count.0 <= MAX_OBJECT_BYTES {
        return Ok(());
    }
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("object");
    let name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(Error::Invalid(format!(
        "{kind} {name:?} is {} bytes of JSON, more than the {MAX_OBJECT_BYTES}-byte limit for one object (etcdserver: request is too large); keep large data out of the object (mount it from an image or a volume)",
        count.0
    )))
}

/// Refuses a body its kind's schema refuses (see [`ferry_core::schema`]): missing
/// required fields, wrong types, the rules the runtime relies on. The body is the
/// merged object about to be stored, so its size is judged here too.
fn check_schema(body: &Value) -> Result<()> {
    check_size(body)?;
    let obj = Object::from_value(body.clone()).map_err(|e| Error::Invalid(e.to_string()))?;
    let report = ferry_core::schema::check(&obj);
    if report.errors.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(
        ferry_core::names::InvalidObject {
            group: obj.group().to_string(),
            kind: obj.kind().to_string(),
            name: obj.name().to_string(),
            errors: report.errors,
        }
        .to_string(),
    ))
}

/// `obj`'s body as the API server stores it (Secret `stringData` folded into `data`,
/// `type` defaulted; see [`ferry_core::admit`]), or its refusal in its words.
fn admitted(obj: &Object) -> Result<Value> {
    check_size(obj.value())?;
    let mut body = obj.value().clone();
    ferry_core::admit::admit(&mut body).map_err(|errors| {
        Error::Invalid(ferry_core::admit::refusal(obj.kind(), obj.name(), &errors))
    })?;
    Ok(body)
}

fn key_string(key: &ObjectKey) -> String {
    key.to_string()
}

/// Everything but `metadata` and `status`: what `generation` counts changes of.
fn spec_part(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn managers(obj: &Value) -> BTreeMap<String, (String, BTreeSet<Path>)> {
    let mut out = BTreeMap::new();
    if let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    {
        for entry in list {
            let manager = entry
                .get("manager")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let op = entry
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or("Apply");
            let paths = entry
                .get("fieldsV1")
                .map(fields::from_fields_v1)
                .unwrap_or_default();
            out.insert(manager.to_string(), (op.to_string(), paths));
        }
    }
    out
}

fn set_managers(
    obj: &mut Value,
    api_version: &str,
    m: &BTreeMap<String, (String, BTreeSet<Path>)>,
) {
    let now = now_rfc3339();
    let list: Vec<Value> = m
        .iter()
        .filter(|(_, (_, p))| !p.is_empty())
        .map(|(manager, (op, paths))| {
            json!({
                "manager": manager,
                "operation": op,
                "apiVersion": api_version,
                "time": now,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields::to_fields_v1(paths),
            })
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

impl Cluster {
    /// Opens the store, loading what `db` holds.
    pub fn open(db: Option<Arc<Db>>) -> Result<Self> {
        let mut objects = Vec::new();
        let mut rv = 0u64;
        if let Some(db) = &db {
            for (_, body) in db.objects()? {
                let obj = Object::from_value(body).map_err(|e| Error::Invalid(e.to_string()))?;
                if let Some(r) = obj
                    .value()
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    rv = rv.max(r);
                }
                objects.push((obj.key(), Stored::encode(&obj)));
            }
            if let Some(stored) = db
                .meta("resourceVersion")?
                .and_then(|s| s.parse::<u64>().ok())
            {
                rv = rv.max(stored);
            }
        }
        let (tx, _) = broadcast::channel(4096);
        let (changed, _) = watch::channel(rv);
        let cluster = Self {
            state: RwLock::new(State::new(objects, rv)),
            db,
            tx,
            changed,
        };
        cluster.release_waiting_owners()?;
        Ok(cluster)
    }

    /// Removes the owners left waiting in foreground deletion with no dependent: a
    /// daemon killed between removing an owner's last dependent and the owner itself
    /// leaves one behind.
    fn release_waiting_owners(&self) -> Result<()> {
        let mut state = self.write();
        let waiting: Vec<ObjectKey> = state
            .objects
            .iter()
            .filter(|(_, o)| o.json.contains(FOREGROUND_DELETION))
            .map(|(k, _)| k.clone())
            .collect();
        for key in waiting {
            let Some(owner) = state.get(&key) else {
                continue;
            };
            let uid = uid_of(&owner).to_string();
            self.release_if_done(&mut state, key, owner, &uid)?;
        }
        Ok(())
    }

    /// An in-memory store, for tests.
    pub fn in_memory() -> Self {
        Self::open(None).expect("no database to fail")
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Watchers: every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
        self.tx.subscribe()
    }

    /// The latest resourceVersion; changes whenever anything changes.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The key an object is stored under (namespaced kinds default to `default`).
    pub fn canonical_key(obj: &Object) -> ObjectKey {
        let mut key = obj.key();
        if is_namespaced(&key.kind) {
            if key.namespace.is_empty() {
                key.namespace = "default".into();
            }
        } else {
            key.namespace.clear();
        }
        key
    }

    /// One object.
    pub fn get(&self, key: &ObjectKey) -> Option<Object> {
        self.read().get(key)
    }

    /// Objects of a kind (all kinds when `None`) in a namespace (all when `None`), by key order.
    pub fn list(&self, kind: Option<&str>, namespace: Option<&str>) -> Vec<Object> {
        self.read()
            .objects
            .iter()
            .filter(|(k, _)| kind.is_none_or(|kind| k.kind == kind))
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, o)| o.decode())
            .collect()
    }

    /// How many objects of a kind there are (all kinds when `None`).
    pub fn count(&self, kind: Option<&str>) -> usize {
        self.read()
            .objects
            .keys()
            .filter(|k| kind.is_none_or(|kind| k.kind == kind))
            .count()
    }

    /// Objects a selector picks; kind, namespace and labels are tested before
    /// anything is decoded (a selector over a large store costs a scan, not a copy).
    pub fn list_selected(&self, selector: &ferry_core::target::Selector) -> Vec<Object> {
        self.read()
            .objects
            .iter()
            .filter(|(k, _)| selector.kind.as_deref().is_none_or(|kind| k.kind == kind))
            .filter(|(k, _)| {
                selector
                    .namespace
                    .as_deref()
                    .is_none_or(|ns| k.namespace == ns)
            })
            .filter(|(_, o)| {
                o.has_labels(
                    selector
                        .labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                )
            })
            .map(|(_, o)| o.decode())
            .collect()
    }

    /// Objects carrying `app.kubernetes.io/instance: value`, from the index.
    pub fn list_instance(&self, value: &str) -> Vec<Object> {
        let state = self.read();
        state
            .by_instance
            .get(value)
            .map(|keys| keys.iter().filter_map(|k| state.get(k)).collect())
            .unwrap_or_default()
    }

    /// Objects in a namespace carrying every given label.
    pub fn list_labelled(
        &self,
        kind: &str,
        namespace: &str,
        labels: &Map<String, Value>,
    ) -> Vec<Object> {
        self.read()
            .objects
            .iter()
            .filter(|(k, _)| k.kind == kind && k.namespace == namespace)
            .filter(|(_, o)| {
                labels
                    .iter()
                    .all(|(lk, lv)| lv.as_str().is_some_and(|lv| o.label(lk) == Some(lv)))
            })
            .map(|(_, o)| o.decode())
            .collect()
    }

    fn commit(
        &self,
        state: &mut State,
        key: ObjectKey,
        obj: Option<Object>,
        event: Option<WatchEvent>,
    ) -> Result<()> {
        let stored = obj.as_ref().map(Stored::encode);
        if let Some(db) = &self.db {
            match &stored {
                Some(s) => db.put_object_text(
                    &key_string(&key),
                    &key.kind,
                    &key.namespace,
                    &key.name,
                    &s.json,
                )?,
                None => db.delete_object(&key_string(&key))?,
            }
        }
        match stored {
            Some(s) => state.insert(key, s),
            None => state.remove(&key),
        }
        if let Some(ev) = event {
            let _ = self.tx.send(ev);
        }
        self.changed.send_replace(state.rv);
        Ok(())
    }

    fn next_rv(state: &mut State) -> String {
        state.rv += 1;
        state.rv.to_string()
    }

    /// Server-side apply of `obj` by `opts.field_manager`.
    pub fn apply(&self, obj: &Object, opts: &ApplyOptions) -> Result<Object> {
        let key = Self::canonical_key(obj);
        if key.name.is_empty() {
            return Err(Error::Invalid(format!(
                "{key}: metadata.name is required to apply"
            )));
        }
        check_names(obj)?;
        let mut applied = admitted(obj)?;
        if is_namespaced(&key.kind) {
            applied["metadata"]["namespace"] = Value::String(key.namespace.clone());
        }
        let applied_paths = fields::paths(&applied);
        let mut state = self.write();
        let existing = state.get(&key);
        let (mut body, mut owners, is_new) = match &existing {
            Some(live) => (live.value().clone(), managers(live.value()), false),
            None => (json!({}), BTreeMap::new(), true),
        };
        if let Some(live) = &existing
            && live.is_being_deleted()
        {
            return Err(Error::Conflict(format!(
                "{key} is being deleted; apply again once it is gone"
            )));
        }
        // Conflicts: fields another manager owns, set here to a different value.
        let mut conflicts = Vec::new();
        for (manager, (_, paths)) in owners.iter_mut() {
            if *manager == opts.field_manager {
                continue;
            }
            let clash: Vec<Path> = paths
                .intersection(&applied_paths)
                .filter(|p| fields::get(&body, p) != fields::get(&applied, p))
                .cloned()
                .collect();
            if clash.is_empty() {
                continue;
            }
            if opts.force {
                for p in &clash {
                    paths.remove(p);
                }
            } else {
                for p in clash {
                    conflicts.push(format!("{} (owned by {manager:?})", fields::display(&p)));
                }
            }
        }
        if !conflicts.is_empty() {
            return Err(Error::Conflict(format!(
                "apply of {key} by {:?} conflicts on {}; apply with force to take ownership",
                opts.field_manager,
                conflicts.join(", ")
            )));
        }
        // Fields this manager set before and no longer sets are removed, unless another owns them.
        let previously = owners
            .get(&opts.field_manager)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        for p in previously.difference(&applied_paths) {
            let shared = owners
                .iter()
                .any(|(m, (_, paths))| *m != opts.field_manager && paths.contains(p));
            if !shared {
                fields::remove(&mut body, p);
            }
        }
        fields::merge(&mut body, &applied);
        owners.insert(opts.field_manager.clone(), ("Apply".into(), applied_paths));
        let api_version = obj.api_version().to_string();
        self.finish_write(
            &mut state,
            key,
            existing,
            body,
            owners,
            &api_version,
            is_new,
            opts.dry_run,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_write(
        &self,
        state: &mut State,
        key: ObjectKey,
        existing: Option<Object>,
        mut body: Value,
        owners: BTreeMap<String, (String, BTreeSet<Path>)>,
        api_version: &str,
        is_new: bool,
        dry_run: bool,
    ) -> Result<Object> {
        // Server-owned metadata and status come from the live object.
        if let Some(live) = &existing {
            for f in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
                if let Some(v) = live.value().pointer(&format!("/metadata/{f}")) {
                    body["metadata"][f] = v.clone();
                }
            }
            match live.value().get("status") {
                Some(s) => body["status"] = s.clone(),
                None => {
                    if let Some(m) = body.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        body["apiVersion"] = Value::String(api_version.to_string());
        body["kind"] = Value::String(key.kind.clone());
        body["metadata"]["name"] = Value::String(key.name.clone());
        if !key.namespace.is_empty() {
            body["metadata"]["namespace"] = Value::String(key.namespace.clone());
        }
        set_managers(&mut body, api_version, &owners);
        let spec_changed = existing
            .as_ref()
            .is_none_or(|live| spec_part(live.value()) != spec_part(&body));
        let unchanged = existing.as_ref().is_some_and(|live| {
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("managedFields");
                }
                v
            };
            strip(live.value()) == strip(&body) && managers(live.value()) == owners
        });
        if unchanged {
            return Ok(existing.expect("checked above"));
        }
        if is_new {
            body["metadata"]["uid"] = Value::String(uuid::Uuid::new_v4().to_string());
            body["metadata"]["creationTimestamp"] = Value::String(now_rfc3339());
            body["metadata"]["generation"] = json!(1);
        } else if spec_changed {
            let g = body
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            body["metadata"]["generation"] = json!(g + 1);
        }
        // The schema is judged on the merged object, as the API server judges an
        // apply: a partial intent (`{"spec": {"replicas": 4}}`) is fine when the rest
        // is already there.
        check_schema(&body)?;
        if dry_run {
            return Object::from_value(body).map_err(|e| Error::Invalid(e.to_string()));
        }
        body["metadata"]["resourceVersion"] = Value::String(Self::next_rv(state));
        let obj = Object::from_value(body).map_err(|e| Error::Invalid(e.to_string()))?;
        let ev = if is_new {
            WatchEvent::Added(obj.clone())
        } else {
            WatchEvent::Modified(obj.clone())
        };
        self.commit(state, key, Some(obj.clone()), Some(ev))?;
        Ok(obj)
    }

    /// Creates an object as a controller does (`generateName` honoured); fails if it exists.
    pub fn create(&self, obj: &Object, manager: &str) -> Result<Object> {
        let mut obj = obj.clone();
        if obj
            .value()
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            let prefix = obj.name().to_string();
            let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..5].to_string();
            obj.metadata_mut()
                .insert("name".into(), Value::String(format!("{prefix}{suffix}")));
        }
        let key = Self::canonical_key(&obj);
        if self.read().objects.contains_key(&key) {
            return Err(Error::AlreadyExists(key.to_string()));
        }
        self.update_as(&obj, manager)
    }

    /// Replaces an object's spec and metadata as `manager` (an `Update` operation):
    /// the manager takes ownership of every field it sets. Status is kept.
    pub fn update_as(&self, obj: &Object, manager: &str) -> Result<Object> {
        check_names(obj)?;
        let key = Self::canonical_key(obj);
        let mut body = admitted(obj)?;
        if is_namespaced(&key.kind) {
            body["metadata"]["namespace"] = Value::String(key.namespace.clone());
        }
        let mut state = self.write();
        let existing = state.get(&key);
        let is_new = existing.is_none();
        let mut owners = existing
            .as_ref()
            .map(|l| managers(l.value()))
            .unwrap_or_default();
        let paths = fields::paths(&body);
        // Fields set here are now this manager's alone; fields removed lose their owners.
        for (m, (_, p)) in owners.iter_mut() {
            if m != manager {
                p.retain(|path| fields::get(&body, path).is_some());
            }
        }
        owners.insert(manager.to_string(), ("Update".into(), paths));
        let api_version = obj.api_version().to_string();
        self.finish_write(
            &mut state,
            key,
            existing,
            body,
            owners,
            &api_version,
            is_new,
            false,
        )
    }

    /// Writes an object's `status`; a status equal to the stored one writes nothing.
    pub fn update_status(&self, key: &ObjectKey, status: Value) -> Result<Option<Object>> {
        let mut state = self.write();
        let Some(live) = state.get(key) else {
            return Ok(None);
        };
        if live.value().get("status") == Some(&status) {
            return Ok(Some(live));
        }
        let mut body = live.value().clone();
        body["status"] = status;
        body["metadata"]["resourceVersion"] = Value::String(Self::next_rv(&mut state));
        let obj = Object::from_value(body).map_err(|e| Error::Invalid(e.to_string()))?;
        self.commit(
            &mut state,
            key.clone(),
            Some(obj.clone()),
            Some(WatchEvent::Modified(obj.clone())),
        )?;
        Ok(Some(obj))
    }

    /// Changes an object's metadata (labels, annotations, owner references) in place.
    pub fn patch_metadata(
        &self,
        key: &ObjectKey,
        f: impl FnOnce(&mut Map<String, Value>),
    ) -> Result<Option<Object>> {
        let mut state = self.write();
        let Some(live) = state.get(key) else {
            return Ok(None);
        };
        let mut obj = live.clone();
        f(obj.metadata_mut());
        if obj.value() == live.value() {
            return Ok(Some(obj));
        }
        let rv = Self::next_rv(&mut state);
        obj.metadata_mut()
            .insert("resourceVersion".into(), Value::String(rv));
        self.commit(
            &mut state,
            key.clone(),
            Some(obj.clone()),
            Some(WatchEvent::Modified(obj.clone())),
        )?;
        Ok(Some(obj))
    }

    /// Deletes an object and (unless orphaned) its dependents. Pods are marked with a
    /// `deletionTimestamp` and removed by [`Cluster::finalize`] once their processes stopped.
    /// Returns whether the object existed.
    pub fn delete(&self, key: &ObjectKey, propagation: Propagation) -> Result<bool> {
        let mut state = self.write();
        let Some(obj) = state.get(key) else {
            return Ok(false);
        };
        self.delete_locked(&mut state, obj, propagation)?;
        Ok(true)
    }

    fn delete_locked(
        &self,
        state: &mut State,
        obj: Object,
        propagation: Propagation,
    ) -> Result<()> {
        let key = obj.key();
        let uid = uid_of(&obj).to_string();
        let dependents: Vec<Object> = state
            .objects
            .values()
            .filter(|o| o.owners.iter().any(|u| **u == *uid))
            .map(Stored::decode)
            .collect();
        for dep in dependents {
            match propagation {
                Propagation::Orphan => {
                    let mut d = dep.clone();
                    if let Some(refs) = d
                        .metadata_mut()
                        .get_mut("ownerReferences")
                        .and_then(Value::as_array_mut)
                    {
                        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(&uid));
                    }
                    d.metadata_mut().insert(
                        "resourceVersion".into(),
                        Value::String(Self::next_rv(state)),
                    );
                    let dk = d.key();
                    self.commit(state, dk, Some(d.clone()), Some(WatchEvent::Modified(d)))?;
                }
                _ => self.delete_locked(state, dep, propagation)?,
            }
        }
        if key.kind == "Pod" {
            if obj.is_being_deleted() {
                return Ok(());
            }
            let mut o = obj;
            let grace = o
                .value()
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30);
            o.metadata_mut()
                .insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
            o.metadata_mut()
                .insert("deletionGracePeriodSeconds".into(), json!(grace));
            o.metadata_mut().insert(
                "resourceVersion".into(),
                Value::String(Self::next_rv(state)),
            );
            self.commit(state, key, Some(o.clone()), Some(WatchEvent::Modified(o)))?;
        } else if propagation == Propagation::Foreground && Self::has_dependents(state, &uid) {
            // Kubernetes' foreground deletion: the owner stays, marked, until its
            // dependents (pods still stopping) are gone; `release_owners` removes it then.
            if obj.is_being_deleted() {
                return Ok(());
            }
            let mut o = obj;
            let meta = o.metadata_mut();
            meta.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
            let finalizers = meta
                .entry("finalizers")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(list) = finalizers.as_array_mut()
                && !list.iter().any(|f| f == FOREGROUND_DELETION)
            {
                list.push(Value::String(FOREGROUND_DELETION.into()));
            }
            o.metadata_mut().insert(
                "resourceVersion".into(),
                Value::String(Self::next_rv(state)),
            );
            self.commit(state, key, Some(o.clone()), Some(WatchEvent::Modified(o)))?;
        } else {
            Self::next_rv(state);
            self.commit(state, key, None, Some(WatchEvent::Deleted(obj.clone())))?;
            self.release_owners(state, &obj)?;
        }
        Ok(())
    }

    /// Whether any object names `uid` among its owners.
    fn has_dependents(state: &State, uid: &str) -> bool {
        !uid.is_empty()
            && state
                .objects
                .values()
                .any(|o| o.owners.iter().any(|u| **u == *uid))
    }

    /// After `gone` was removed: removes each owner of it that waits in foreground
    /// deletion and has no dependent left (and so on up the chain).
    fn release_owners(&self, state: &mut State, gone: &Object) -> Result<()> {
        let refs = gone
            .value()
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for r in refs {
            let field = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or_default();
            let kind = field("kind");
            let group = ferry_core::object::split_api_version(field("apiVersion")).0;
            let ns = if is_namespaced(kind) {
                gone.namespace()
            } else {
                ""
            };
            let key = ObjectKey::new(group, kind, ns, field("name"));
            let Some(owner) = state.get(&key) else {
                continue;
            };
            self.release_if_done(state, key, owner, field("uid"))?;
        }
        Ok(())
    }

    /// Removes `owner` (stored under `key`) if it is the object `uid` names, waits in
    /// foreground deletion, and has no dependent left; then its own owners, in turn.
    fn release_if_done(
        &self,
        state: &mut State,
        key: ObjectKey,
        owner: Object,
        uid: &str,
    ) -> Result<()> {
        let waiting = uid_of(&owner) == uid
            && owner.is_being_deleted()
            && owner
                .value()
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|f| f == FOREGROUND_DELETION));
        if waiting && !Self::has_dependents(state, uid) {
            Self::next_rv(state);
            self.commit(state, key, None, Some(WatchEvent::Deleted(owner.clone())))?;
            self.release_owners(state, &owner)?;
        }
        Ok(())
    }

    /// Removes an object for good (a pod whose processes have stopped).
    pub fn finalize(&self, key: &ObjectKey) -> Result<()> {
        let mut state = self.write();
        if let Some(obj) = state.get(key) {
            Self::next_rv(&mut state);
            self.commit(
                &mut state,
                key.clone(),
                None,
                Some(WatchEvent::Deleted(obj.clone())),
            )?;
            self.release_owners(&mut state, &obj)?;
        }
        Ok(())
    }

    /// Records an event about `obj`.
    pub fn record_event(&self, obj: &ObjectKey, warning: bool, reason: &str, message: &str) {
        if let Some(db) = &self.db {
            let kind = if warning { "Warning" } else { "Normal" };
            let object = format!("{}/{}", obj.kind, obj.name);
            if let Err(e) = db.add_event(now_ms(), &obj.namespace, &object, kind, reason, message) {
                tracing::warn!("recording event for {obj}: {e}");
            }
        }
        self.changed.send_modify(|_| {});
    }

    /// Events, oldest first.
    pub fn events(
        &self,
        namespace: Option<&str>,
        object: Option<&str>,
    ) -> Result<Vec<ferry_store::EventRow>> {
        match &self.db {
            Some(db) => Ok(db.events(namespace, object)?),
            None => Ok(Vec::new()),
        }
    }

    /// The database, when there is one.
    pub fn db(&self) -> Option<&Arc<Db>> {
        self.db.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Object {
        Object::from_value(v).unwrap()
    }

    fn deploy(replicas: i64, image: &str) -> Object {
        obj(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}
        }))
    }

    /// A Deployment whose container args make it about `bytes` bytes of JSON.
    fn padded(bytes: usize) -> Object {
        let mut d = deploy(1, "a");
        let arg = "x".repeat(1000);
        d.value_mut()["spec"]["template"]["spec"]["containers"][0]["args"] =
            json!(vec![arg; bytes / 1003]);
        d
    }

    #[test]
    fn regression_objects_over_the_etcd_limit_are_refused_on_every_write() {
        let c = Cluster::in_memory();
        let err = c
            .apply(&padded(2 << 20), &ApplyOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Deployment \"web\"") && err.contains(&MAX_OBJECT_BYTES.to_string()),
            "{err}"
        );
        assert!(c.list(None, None).is_empty(), "nothing stored");
        // Just under the limit is fine; growing it past the limit with an update is not.
        let fits = c
            .apply(
                &padded(MAX_OBJECT_BYTES - 64 * 1024),
                &ApplyOptions::default(),
            )
            .unwrap();
        let mut grown = fits.clone();
        grown.value_mut()["spec"]["template"]["spec"]["containers"][0]["args"] =
            json!(vec!["y".repeat(1000); 1700]);
        let err = c.update_as(&grown, "someone").unwrap_err().to_string();
        assert!(err.contains("etcdserver: request is too large"), "{err}");
    }

    #[test]
    fn apply_creates_then_updates_with_generation_and_rv() {
        let c = Cluster::in_memory();
        let a = c.apply(&deploy(1, "a"), &ApplyOptions::default()).unwrap();
        assert_eq!(a.namespace(), "default");
        assert_eq!(a.value()["metadata"]["generation"], 1);
        let rv1 = a.value()["metadata"]["resourceVersion"].clone();
        let same = c.apply(&deploy(1, "a"), &ApplyOptions::default()).unwrap();
        assert_eq!(
            same.value()["metadata"]["resourceVersion"],
            rv1,
            "a no-op apply writes nothing"
        );
        let b = c.apply(&deploy(2, "a"), &ApplyOptions::default()).unwrap();
        assert_eq!(b.value()["metadata"]["generation"], 2);
        assert_ne!(b.value()["metadata"]["resourceVersion"], rv1);
        assert_eq!(b.value()["metadata"]["uid"], a.value()["metadata"]["uid"]);
    }

    #[test]
    fn apply_conflicts_with_another_manager_unless_forced() {
        let c = Cluster::in_memory();
        c.apply(&deploy(1, "a"), &ApplyOptions::default()).unwrap();
        let mut scaled = c.get(&Cluster::canonical_key(&deploy(1, "a"))).unwrap();
        scaled.value_mut()["spec"]["replicas"] = json!(5);
        c.update_as(&scaled, "ferry-scale").unwrap();
        let err = c
            .apply(&deploy(2, "a"), &ApplyOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(".spec.replicas") && err.contains("ferry-scale"),
            "{err}"
        );
        let forced = ApplyOptions {
            force: true,
            ..Default::default()
        };
        let d = c.apply(&deploy(2, "a"), &forced).unwrap();
        assert_eq!(d.value()["spec"]["replicas"], 2);
    }

    #[test]
    fn removing_a_field_from_the_applied_config_removes_it() {
        let c = Cluster::in_memory();
        let mut with_label = deploy(1, "a");
        with_label.set_meta_entry("labels", "tier", "web");
        c.apply(&with_label, &ApplyOptions::default()).unwrap();
        let d = c.apply(&deploy(1, "a"), &ApplyOptions::default()).unwrap();
        assert!(d.label("tier").is_none());
    }

    /// A Deployment `web` and a pod it owns.
    fn deployment_and_pod(c: &Cluster) -> (Object, Object) {
        let d = c.apply(&deploy(1, "a"), &ApplyOptions::default()).unwrap();
        let uid = d.value()["metadata"]["uid"].clone();
        let pod = obj(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid}]},
            "spec": {"containers": [{"name": "web", "image": "a"}]}}));
        let pod = c.create(&pod, "test").unwrap();
        (d, pod)
    }

    #[test]
    fn delete_cascades_and_pods_terminate_gracefully() {
        let c = Cluster::in_memory();
        let (d, pod) = deployment_and_pod(&c);
        assert!(c.delete(&d.key(), Propagation::Background).unwrap());
        assert!(c.get(&d.key()).is_none());
        let p = c.get(&pod.key()).unwrap();
        assert!(p.is_being_deleted());
        c.finalize(&pod.key()).unwrap();
        assert!(c.get(&pod.key()).is_none());
    }

    #[test]
    fn a_foreground_delete_keeps_the_owner_until_its_pods_are_gone() {
        let c = Cluster::in_memory();
        let (d, pod) = deployment_and_pod(&c);
        assert!(c.delete(&d.key(), Propagation::Foreground).unwrap());
        let owner = c.get(&d.key()).expect("kept while its pod stops");
        assert!(owner.is_being_deleted());
        assert_eq!(
            owner.value()["metadata"]["finalizers"],
            json!(["foregroundDeletion"])
        );
        assert!(c.apply(&deploy(1, "a"), &ApplyOptions::default()).is_err());
        assert!(c.get(&pod.key()).unwrap().is_being_deleted());
        c.finalize(&pod.key()).unwrap();
        assert!(c.get(&pod.key()).is_none());
        assert!(c.get(&d.key()).is_none(), "gone with its last pod");
    }

    #[test]
    fn an_owner_left_waiting_by_a_killed_daemon_is_removed_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&dir.path().join("ferry.db")).unwrap());
        let c = Cluster::open(Some(db.clone())).unwrap();
        let (d, pod) = deployment_and_pod(&c);
        c.delete(&d.key(), Propagation::Foreground).unwrap();
        // As if the daemon died right after removing the pod, before the owner.
        db.delete_object(&key_string(&pod.key())).unwrap();
        drop(c);
        let c = Cluster::open(Some(db)).unwrap();
        assert!(c.get(&pod.key()).is_none());
        assert!(c.get(&d.key()).is_none(), "released at start");
    }

    #[test]
    fn instance_index_follows_label_changes_and_deletes() {
        let c = Cluster::in_memory();
        let mut d = deploy(1, "a");
        d.set_meta_entry("labels", INSTANCE_LABEL, "shop");
        c.apply(&d, &ApplyOptions::default()).unwrap();
        assert_eq!(c.list_instance("shop").len(), 1);
        let mut moved = deploy(1, "a");
        moved.set_meta_entry("labels", INSTANCE_LABEL, "cart");
        c.apply(&moved, &ApplyOptions::default()).unwrap();
        assert!(c.list_instance("shop").is_empty());
        assert_eq!(c.list_instance("cart").len(), 1);
        assert!(
            c.delete(&Cluster::canonical_key(&moved), Propagation::Background)
                .unwrap()
        );
        assert!(c.list_instance("cart").is_empty());
    }

    #[test]
    fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&dir.path().join("ferry.db")).unwrap());
        let c = Cluster::open(Some(db.clone())).unwrap();
        let a = c.apply(&deploy(3, "a"), &ApplyOptions::default()).unwrap();
        drop(c);
        let c = Cluster::open(Some(db)).unwrap();
        let b = c.get(&a.key()).unwrap();
        assert_eq!(a, b);
        let next = c.apply(&deploy(4, "a"), &ApplyOptions::default()).unwrap();
        let rv = |o: &Object| {
            o.value()["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert!(rv(&next) > rv(&a));
    }
}
