//! What the shared journal code needs from a database session, and nothing more: run a
//! statement with parameters, read the rows it returns. SQLite and PostgreSQL each implement
//! [`Sql`] and [`Row`] once (in their own module); everything the journal writes and reads
//! is then written once, in `store`.
//!
//! Statements are written in PostgreSQL's placeholder style (`$1`, `$2`, ...); the SQLite
//! session rewrites them to its own (`?1`, `?2`, ...), which binds the same way. A backend
//! hands out each result row as its [`Cell`]s; [`Row`] reads them as the journal's types.

use std::ops::ControlFlow;

use super::{JournalError, JournalResult};

/// A statement parameter both drivers can bind.
pub trait Value: Sync {
    fn sqlite(&self) -> &dyn rusqlite::ToSql;
    fn postgres(&self) -> &(dyn ::postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + ::postgres::types::ToSql + Sync> Value for T {
    fn sqlite(&self) -> &dyn rusqlite::ToSql {
        self
    }

    fn postgres(&self) -> &(dyn ::postgres::types::ToSql + Sync) {
        self
    }
}

/// A statement to run: its text, its parameters and the name it fails under.
#[derive(Clone, Copy)]
pub struct Query<'a> {
    pub sql: &'a str,
    pub params: &'a [&'a dyn Value],
    pub what: &'static str,
}

/// One value of a result row, as the database holds it.
#[derive(Debug)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    /// PostgreSQL's `BOOLEAN` (SQLite keeps booleans as integers).
    Bool(bool),
}

/// One row of a result, as the backend read it. What its cells must be is said here, once:
/// a cell of the wrong kind is an error naming the statement, never a panic.
pub struct Row {
    cells: Vec<Cell>,
    /// The statement the row came from.
    what: &'static str,
}

impl Row {
    fn cell(&self, column: usize) -> JournalResult<&Cell> {
        self.cells.get(column).ok_or_else(|| JournalError::Corrupt {
            what: self.what,
            detail: format!("no column {column}"),
        })
    }

    fn unexpected<T>(&self, column: usize, cell: &Cell, wanted: &str) -> JournalResult<T> {
        Err(JournalError::Corrupt {
            what: self.what,
            detail: format!("column {column} holds {cell:?}, not {wanted}"),
        })
    }

    pub fn int(&self, column: usize) -> JournalResult<i64> {
        match self.cell(column)? {
            Cell::Int(n) => Ok(*n),
            other => self.unexpected(column, other, "an integer"),
        }
    }

    pub fn text(&self, column: usize) -> JournalResult<String> {
        match self.cell(column)? {
            Cell::Text(text) => Ok(text.clone()),
            other => self.unexpected(column, other, "text"),
        }
    }

    pub fn opt_text(&self, column: usize) -> JournalResult<Option<String>> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Text(text) => Ok(Some(text.clone())),
            other => self.unexpected(column, other, "text or NULL"),
        }
    }

    /// A boolean: `BOOLEAN` (and `EXISTS`) in PostgreSQL, an integer in SQLite.
    pub fn flag(&self, column: usize) -> JournalResult<bool> {
        match self.cell(column)? {
            Cell::Bool(flag) => Ok(*flag),
            Cell::Int(n) => Ok(*n != 0),
            other => self.unexpected(column, other, "a boolean"),
        }
    }
}

/// Hands a backend's rows (their cells, in order) to `each` until it says stop: the one
/// loop over results, whatever the driver.
pub fn feed(
    rows: impl Iterator<Item = JournalResult<Vec<Cell>>>,
    what: &'static str,
    each: EachRow<'_>,
) -> JournalResult<()> {
    for cells in rows {
        if each(&Row {
            cells: cells?,
            what,
        })?
        .is_break()
        {
            break;
        }
    }
    Ok(())
}

/// What a session does with each row: go on or stop.
pub type EachRow<'a> = &'a mut dyn FnMut(&Row) -> JournalResult<ControlFlow<()>>;

/// A session (or an open transaction) on the journal's database.
pub trait Sql {
    /// Runs the query and hands its rows to `each` in order until it says stop.
    fn stream(&mut self, query: Query<'_>, each: EachRow<'_>) -> JournalResult<()>;
    /// Runs a statement that returns no rows; how many rows it changed.
    fn execute(&mut self, query: Query<'_>) -> JournalResult<u64>;
}

impl dyn Sql + '_ {
    /// Runs a statement that returns no rows; how many rows it changed.
    pub fn write(
        &mut self,
        sql: &str,
        params: &[&dyn Value],
        what: &'static str,
    ) -> JournalResult<u64> {
        self.execute(Query { sql, params, what })
    }

    /// Hands the rows of `sql` to `each` in order until it says stop.
    pub fn each(
        &mut self,
        sql: &str,
        params: &[&dyn Value],
        what: &'static str,
        each: EachRow<'_>,
    ) -> JournalResult<()> {
        self.stream(Query { sql, params, what }, each)
    }

    /// Every row of `sql`, mapped.
    pub fn rows<T>(
        &mut self,
        sql: &str,
        params: &[&dyn Value],
        what: &'static str,
        mut map: impl FnMut(&Row) -> JournalResult<T>,
    ) -> JournalResult<Vec<T>> {
        let mut out = Vec::new();
        self.stream(Query { sql, params, what }, &mut |row| {
            out.push(map(row)?);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// The first row of `sql`, mapped, if there is one.
    pub fn first<T>(
        &mut self,
        sql: &str,
        params: &[&dyn Value],
        what: &'static str,
        map: impl FnOnce(&Row) -> JournalResult<T>,
    ) -> JournalResult<Option<T>> {
        let mut map = Some(map);
        let mut out = None;
        self.stream(Query { sql, params, what }, &mut |row| {
            if let Some(map) = map.take() {
                out = Some(map(row)?);
            }
            Ok(ControlFlow::Break(()))
        })?;
        Ok(out)
    }

    /// The one row a query always returns (an aggregate, `EXISTS`), mapped.
    pub fn one<T>(
        &mut self,
        sql: &str,
        params: &[&dyn Value],
        what: &'static str,
        map: impl FnOnce(&Row) -> JournalResult<T>,
    ) -> JournalResult<T> {
        self.first(sql, params, what, map)?
            .ok_or_else(|| JournalError::Corrupt {
                what,
                detail: "the query returned no row".into(),
            })
    }
}
