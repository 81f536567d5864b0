//! The PostgreSQL catalog in a build without the `postgres` feature: no
//! such catalog can be opened, and every attempt says why.

use super::sql::Sql;
use crate::config::PoolOptions;
use crate::error::{Error, Result};

/// No value of this type exists.
enum Never {}

/// A PostgreSQL catalog connection, which this build cannot make.
pub struct Postgres {
    never: Never,
}

impl Postgres {
    /// Fails: this build has no PostgreSQL support.
    pub fn connect(url: &str, _options: &PoolOptions) -> Result<Postgres> {
        Err(Error::InvalidArgument(format!(
            "{}: this build of Shale has no PostgreSQL catalog support \
             (built without the `postgres` feature)",
            super::without_password(url)
        )))
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        match self.never {}
    }

    /// Runs a write transaction.
    pub fn write<T>(&mut self, _f: impl FnMut(&dyn Sql) -> Result<T>) -> Result<T> {
        match self.never {}
    }

    /// Runs a read-only closure.
    pub fn read<T>(&mut self, _f: impl FnMut(&dyn Sql) -> Result<T>) -> Result<T> {
        match self.never {}
    }
}
