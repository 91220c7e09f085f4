use std::iter::{Extend, IntoIterator};

#[derive(Debug, Default)]
pub struct PgQueryResult {
    pub(super) rows_affected: u64,
    // fastio patch: the server's CommandComplete tag (e.g. "INSERT 0 1"),
    // which upstream drops.
    pub(super) command_tag: String,
}

impl PgQueryResult {
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }

    /// fastio patch: the command tag of the last completed command.
    pub fn command_tag(&self) -> &str {
        &self.command_tag
    }
}

impl Extend<PgQueryResult> for PgQueryResult {
    fn extend<T: IntoIterator<Item = PgQueryResult>>(&mut self, iter: T) {
        for elem in iter {
            self.rows_affected += elem.rows_affected;
            self.command_tag = elem.command_tag;
        }
    }
}

#[cfg(feature = "any")]
impl From<PgQueryResult> for sqlx_core::any::AnyQueryResult {
    fn from(done: PgQueryResult) -> Self {
        sqlx_core::any::AnyQueryResult {
            rows_affected: done.rows_affected,
            last_insert_id: None,
        }
    }
}
