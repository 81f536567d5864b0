//! The pools a driver serves, by name (`--pool NAME=SPEC`; the first is
//! the default, and the one a StorageClass without a `pool` parameter
//! uses), each opened once and shared by every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shale_core::{Pool, PoolOptions, PoolSpec};
use tonic::Status;

use crate::status::status;

/// A configured pool.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The name CSI ids and StorageClasses use.
    pub name: String,
    /// Where it is, as `shale --pool` takes it.
    pub spec: String,
}

impl PoolConfig {
    /// `NAME=SPEC`, or a bare `SPEC` named `default`.
    pub fn parse(arg: &str) -> Result<PoolConfig, String> {
        let (name, spec) = match arg.split_once('=') {
            Some((n, s)) if !n.contains('/') && !n.contains(':') => (n, s),
            _ => ("default", arg),
        };
        shale_core::names::check_name(name).map_err(|e| format!("pool name: {e}"))?;
        if spec.is_empty() {
            return Err(format!("{arg}: no pool given after '='"));
        }
        Ok(PoolConfig {
            name: name.into(),
            spec: spec.into(),
        })
    }
}

/// The configured pools, opened on first use.
pub struct Pools {
    configs: Vec<PoolConfig>,
    options: PoolOptions,
    open: Mutex<HashMap<String, Arc<Pool>>>,
    /// For the default pool, when it is in an object store: the PostgreSQL
    /// catalog to create it with if it does not exist yet (`--catalog`).
    create_with: Option<String>,
}

impl Pools {
    /// The pools `configs` names (at least one), opened with `options`.
    pub fn new(configs: Vec<PoolConfig>, options: PoolOptions) -> Pools {
        Pools {
            configs,
            options,
            open: Mutex::new(HashMap::new()),
            create_with: None,
        }
    }

    /// These pools, the default one created with the PostgreSQL catalog
    /// `url` when it is an object-store pool that does not exist yet (the
    /// controller does so; node plugins wait for it).
    pub fn creating_with(mut self, url: Option<String>) -> Pools {
        self.create_with = url;
        self
    }

    /// The default pool's name.
    pub fn default_name(&self) -> &str {
        &self.configs[0].name
    }

    /// The configuration of pool `name`; NOT_FOUND if none has it.
    pub fn config(&self, name: &str) -> Result<&PoolConfig, Status> {
        self.configs.iter().find(|c| c.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.configs.iter().map(|c| c.name.as_str()).collect();
            Status::not_found(format!(
                "no pool named {name:?} is configured (this driver serves {known:?})"
            ))
        })
    }

    /// Pool `name`, opened (and kept) on first use; a local pool is created
    /// if its directory is empty.
    pub fn get(&self, name: &str) -> Result<Arc<Pool>, Status> {
        let config = self.config(name)?;
        if let Some(p) = self.open.lock().unwrap().get(name) {
            return Ok(p.clone());
        }
        let spec = PoolSpec::parse(std::ffi::OsStr::new(&config.spec)).map_err(status)?;
        let pool = match Pool::open_or_init_spec(&spec, &self.options) {
            Err(shale_core::Error::NoPool(_)) => {
                let catalog = self
                    .create_with
                    .as_ref()
                    .filter(|_| name == self.default_name())
                    .ok_or_else(|| {
                        Status::unavailable(format!(
                            "pool {name} ({}) does not exist yet: create it with `shale pool init`, \
                             or give the controller --catalog",
                            config.spec
                        ))
                    })?;
                let settings = shale_core::pool::PoolSettings {
                    catalog: Some(catalog.clone()),
                    ..Default::default()
                };
                tracing::info!(pool = %config.spec, "creating the pool");
                match Pool::init_spec(&spec, &settings, &self.options) {
                    // Made meanwhile by another controller.
                    Err(shale_core::Error::PoolExists(_)) => Pool::open_spec(&spec, &self.options),
                    other => other,
                }
                .map_err(status)?
            }
            other => other.map_err(status)?,
        };
        let pool = Arc::new(pool);
        let mut open = self.open.lock().unwrap();
        Ok(open.entry(name.to_string()).or_insert(pool).clone())
    }

    /// Every configured pool's name, the default first.
    pub fn names(&self) -> Vec<String> {
        self.configs.iter().map(|c| c.name.clone()).collect()
    }

    /// Runs `f` on pool `name` on a blocking thread (pool operations wait
    /// on disks, stores and catalogs).
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        name: String,
        f: impl FnOnce(&Pool) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let pools = self.clone();
        crate::status::blocking(move || f(&*pools.get(&name)?)).await
    }

    /// The options pools are opened with.
    pub fn options(&self) -> &PoolOptions {
        &self.options
    }
}
