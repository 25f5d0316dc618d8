#![doc = include_str!("../README.md")]
mod append_only;
mod binder;
pub mod catalog;
mod corresponding;
pub mod dialect;
mod emit;
mod error;
mod optimizer;
mod source;
pub mod stream;
mod watermark;

use std::sync::Arc;

use crate::dialect::StreamDialect;
use dataflow::batch::plan::BatchPlan;
use dataflow::types::DataType;
use sqlparser::parser::Parser;

pub use catalog::{
    Catalog, ColumnCatalog, DEFAULT_SCHEMA, FunctionCatalog, LogicalView, ROW_ID_COLUMN,
    TableCatalog, ViewCatalog, qualified,
};
pub use error::{PlanError, PlanResult};

/// The PostgreSQL version the server speaks for (its `server_version`, and `version()`).
pub const PG_VERSION: &str = "15.0.0";

/// A DML statement's `RETURNING` list.
#[derive(Clone, Debug)]
pub struct Returning {
    /// The values, over each written row whole (the table's columns, hidden ones too).
    pub exprs: Vec<dataflow::expr::Expr>,
    /// The result columns' names and types.
    pub columns: Vec<(String, dataflow::types::DataType)>,
}

/// What a statement does, ready to run.
#[derive(Clone, Debug)]
pub enum Plan {
    /// A query: its plan and output columns.
    Query {
        /// The plan.
        plan: BatchPlan,
        /// Output column names and types.
        columns: Vec<(String, DataType)>,
    },
    /// `CREATE TABLE`.
    CreateTable {
        /// Schema.
        schema: String,
        /// Table name.
        name: String,
        /// Columns (a hidden row id last when there is no primary key).
        columns: Vec<ColumnCatalog>,
        /// Primary key positions.
        pk: Vec<usize>,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
        /// `APPEND ONLY`: rows are only inserted.
        append_only: bool,
        /// The statement, for the catalog.
        definition: String,
        /// For `CREATE SOURCE`: the source (with its watermark).
        source: Option<dataflow::source::SourceSpec>,
        /// A table's `WATERMARK FOR column AS expr`.
        watermark: Option<dataflow::watermark::WatermarkDesc>,
    },
    /// `DROP TABLE`, `DROP SOURCE`, or `DROP VIEW` of views that are not materialized:
    /// relations with no job to stop.
    DropTable {
        /// Qualified names (`schema.name`).
        names: Vec<String>,
        /// `IF EXISTS`.
        if_exists: bool,
        /// What the statement drops.
        kind: RelationKind,
    },
    /// `CREATE MATERIALIZED VIEW`.
    CreateView {
        /// Schema.
        schema: String,
        /// View name.
        name: String,
        /// The query it maintains.
        query: BatchPlan,
        /// Names and types of its columns.
        columns: Vec<(String, DataType)>,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
        /// The statement, for the catalog.
        definition: String,
        /// For `CREATE INDEX`: the table, and the output columns the index is ordered by.
        index: Option<(u32, Vec<usize>)>,
        /// `EMIT ON WINDOW CLOSE`: rows enter the view once the watermark passes them, final.
        emit_on_window_close: bool,
        /// Ids of the views (not materialized) the query named.
        views_read: Vec<u32>,
    },
    /// `CREATE VIEW` (not materialized).
    CreateLogicalView {
        /// Schema.
        schema: String,
        /// View name.
        name: String,
        /// Names and types of its columns.
        columns: Vec<(String, DataType)>,
        /// Its query and what it reads.
        view: LogicalView,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
        /// `OR REPLACE`: a view of that name gets the new query.
        or_replace: bool,
        /// The statement, for the catalog.
        definition: String,
    },
    /// `DROP MATERIALIZED VIEW` or `DROP INDEX`.
    DropView {
        /// Qualified view names (`schema.name`).
        names: Vec<String>,
        /// `IF EXISTS`.
        if_exists: bool,
        /// `DROP INDEX`.
        index: bool,
    },
    /// `INSERT`: `source` yields every visible column of the table, in table order.
    Insert {
        /// Target.
        table: Arc<TableCatalog>,
        /// Rows to insert.
        source: BatchPlan,
        /// `RETURNING`, of the inserted rows.
        returning: Option<Returning>,
    },
    /// `DELETE`: `rows` yields the whole rows to delete.
    Delete {
        /// Target.
        table: Arc<TableCatalog>,
        /// Rows to delete.
        rows: BatchPlan,
        /// `RETURNING`, of the deleted rows.
        returning: Option<Returning>,
    },
    /// `UPDATE`: `rows` yields each updated row whole, old values then new values (primary
    /// keys never change).
    Update {
        /// Target.
        table: Arc<TableCatalog>,
        /// The updated rows.
        rows: BatchPlan,
        /// `RETURNING`, of the rows' new values.
        returning: Option<Returning>,
    },
    /// `CREATE FUNCTION ... LANGUAGE SQL`.
    CreateFunction {
        /// The function.
        function: FunctionCatalog,
        /// `OR REPLACE`.
        or_replace: bool,
    },
    /// `DROP FUNCTION`.
    DropFunction {
        /// Qualified function names (`schema.name`).
        names: Vec<String>,
        /// `IF EXISTS`.
        if_exists: bool,
    },
    /// `EXPLAIN`: the plan, one line per node.
    Explain(Vec<String>),
    /// `BEGIN`, `COMMIT`, `ROLLBACK`: every statement commits on its own.
    Transaction,
}

/// The kind of relation a `DROP` statement names; each drops only its own kind, as in
/// PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// `DROP TABLE`.
    Table,
    /// `DROP SOURCE`.
    Source,
    /// `DROP VIEW`: a view that is not materialized.
    View,
}

/// Parses `sql` (one or more statements) and plans each.
pub fn plan_sql(sql: &str, catalog: &dyn Catalog) -> PlanResult<Vec<Plan>> {
    parse_sql(sql)?
        .iter()
        .map(|s| binder::Binder::new(catalog).bind_statement(s))
        .collect()
}

/// Parses `sql` into statements without binding them.
pub fn parse_sql(sql: &str) -> PlanResult<Vec<sqlparser::ast::Statement>> {
    let sql = corresponding::rewrite(sql)?;
    let sql = append_only::rewrite(&sql)?;
    let sql = emit::rewrite(&sql)?;
    let sql = source::rewrite(&sql)?;
    let sql = watermark::rewrite(&sql)?;
    let sql = dialect::rewrite(&sql)?;
    Parser::parse_sql(&StreamDialect, &sql).map_err(|e| PlanError::Syntax(e.to_string()))
}

/// Plans one parsed statement.
pub fn plan_statement(stmt: &sqlparser::ast::Statement, catalog: &dyn Catalog) -> PlanResult<Plan> {
    binder::Binder::new(catalog).bind_statement(stmt)
}

/// Plans a statement with `$n` parameters, returning the parameters' inferred types with it.
pub fn plan_with_parameters(
    stmt: &sqlparser::ast::Statement,
    catalog: &dyn Catalog,
) -> PlanResult<(Plan, Vec<DataType>)> {
    let mut binder = binder::Binder::new(catalog);
    let plan = binder.bind_statement(stmt)?;
    Ok((plan, binder.parameter_types()))
}
