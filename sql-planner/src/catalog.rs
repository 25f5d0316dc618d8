//! The catalog model: what tables exist and what they hold.

use std::sync::Arc;

use dataflow::state_table::TableDesc;
use dataflow::types::DataType;
use epoch_mvcc::memcomparable::OrderType;
use serde::{Deserialize, Serialize};

/// Name of the hidden row-id column of tables without a primary key.
pub const ROW_ID_COLUMN: &str = "_row_id";

/// Name of the pseudo-column every table and view has in queries: when each row was last
/// changed (the commit time of the epoch that wrote it).
pub const COMMIT_TIME_COLUMN: &str = "_rw_timestamp";

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnCatalog {
    /// Name (lower case unless quoted).
    pub name: String,
    /// Type.
    pub ty: DataType,
    /// Hidden columns (the row id) are left out of `SELECT *`.
    pub hidden: bool,
    /// The value of the column when an INSERT omits it or an UPDATE sets it to `DEFAULT`
    /// (NULL when absent); a constant of the column's type.
    #[serde(default)]
    pub default: Option<dataflow::expr::Expr>,
}

impl ColumnCatalog {
    /// A visible column without a default.
    pub fn new(name: impl Into<String>, ty: DataType) -> Self {
        ColumnCatalog {
            name: name.into(),
            ty,
            hidden: false,
            default: None,
        }
    }

    /// The value an omitted or `DEFAULT` column gets.
    pub fn default_value(&self) -> dataflow::expr::Expr {
        self.default
            .clone()
            .unwrap_or_else(|| dataflow::expr::Expr::literal(dataflow::types::Datum::Null, self.ty))
    }
}

/// A table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableCatalog {
    /// Unique id (the key prefix of its rows).
    pub id: u32,
    /// The schema it belongs to.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Name.
    pub name: String,
    /// Columns, the hidden row id (if any) last.
    pub columns: Vec<ColumnCatalog>,
    /// Positions of the primary key columns (the row id if no key was declared).
    pub pk: Vec<usize>,
    /// Set for a materialized view: how it is maintained.
    #[serde(default)]
    pub view: Option<ViewCatalog>,
    /// An `APPEND ONLY` table: rows are only inserted (UPDATE and DELETE are refused).
    #[serde(default)]
    pub append_only: bool,
    /// The `CREATE TABLE` statement of a table (for `SHOW CREATE TABLE`; a view's is in its
    /// [`ViewCatalog`]).
    #[serde(default)]
    pub definition: String,
    /// Set for a source (`CREATE SOURCE`): its rows come from a connector, are stored
    /// nowhere, and only materialized views read them.
    #[serde(default)]
    pub source: Option<dataflow::source::SourceSpec>,
    /// A table's `WATERMARK FOR column AS expr` (an `APPEND ONLY` table's: late rows are
    /// dropped on insert). A source's is in its [`dataflow::source::SourceSpec`].
    #[serde(default)]
    pub watermark: Option<dataflow::watermark::WatermarkDesc>,
    /// Set for a view (`CREATE VIEW`, not materialized): stores nothing; its query is bound
    /// in place of its name wherever it is read.
    #[serde(default)]
    pub logical: Option<LogicalView>,
}

/// What makes a relation a (non-materialized) view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogicalView {
    /// The query, as SQL.
    pub query: String,
    /// Ids of the tables, views and sources the query names: none can be dropped while the
    /// view exists.
    pub reads: Vec<u32>,
}

/// What makes a table a materialized view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewCatalog {
    /// The `CREATE MATERIALIZED VIEW` statement.
    pub definition: String,
    /// The plan of the job that maintains it.
    pub plan: dataflow::stream::plan::StreamPlan,
    /// One past the last id its state tables use.
    pub next_table_id: u32,
    /// Set for an index: the id of its table (an index is a view of the table's columns
    /// keyed by the index columns).
    #[serde(default)]
    pub index_of: Option<u32>,
    /// One actor computes every row, so the rows are stored under one vnode and a scan
    /// returns them in key order (a view of `VALUES` lists its rows in the order written).
    #[serde(default)]
    pub singleton: bool,
    /// The views (not materialized) its query named: its plan reads their tables, and they
    /// cannot be dropped while it exists.
    #[serde(default)]
    pub views_read: Vec<u32>,
}

impl TableCatalog {
    /// Column types in order.
    pub fn types(&self) -> Vec<DataType> {
        self.columns.iter().map(|c| c.ty).collect()
    }

    /// Whether rows get a generated row id.
    pub fn has_row_id(&self) -> bool {
        self.columns
            .last()
            .is_some_and(|c| c.hidden && c.name == ROW_ID_COLUMN)
    }

    /// The storage layout: keyed by primary key, distributed by it (a singleton view's rows
    /// all in vnode 0).
    pub fn desc(&self) -> TableDesc {
        let singleton = self.view.as_ref().is_some_and(|v| v.singleton);
        TableDesc {
            table_id: self.id,
            types: self.types(),
            pk: self.pk.clone(),
            pk_orders: vec![OrderType::ASC; self.pk.len()],
            dist_key_in_pk: if singleton {
                Vec::new()
            } else {
                (0..self.pk.len()).collect()
            },
        }
    }

    /// Whether this is a materialized view (indexes are not).
    pub fn is_view(&self) -> bool {
        self.view.as_ref().is_some_and(|v| v.index_of.is_none())
    }

    /// The table this index is on, if it is an index.
    pub fn index_of(&self) -> Option<u32> {
        self.view.as_ref().and_then(|v| v.index_of)
    }

    /// Ids of the tables and views a view reads (none for a table).
    pub fn dependencies(&self) -> Vec<u32> {
        match (&self.view, &self.logical) {
            (Some(v), _) => {
                let mut reads = v.plan.upstreams();
                reads.extend(&v.views_read);
                reads
            }
            (None, Some(l)) => l.reads.clone(),
            (None, None) => Vec::new(),
        }
    }

    /// A view's query (materialized or not), as `pg_get_viewdef` and
    /// `information_schema.views` show it.
    pub fn view_query(&self) -> Option<String> {
        match (&self.view, &self.logical) {
            (Some(v), _) if v.index_of.is_none() => Some(v.query()),
            (_, Some(l)) => Some(l.query.clone()),
            _ => None,
        }
    }

    /// Whether this is a table whose rows are stored (not a view, index or source).
    pub fn is_stored_table(&self) -> bool {
        self.view.is_none() && self.source.is_none() && self.logical.is_none()
    }

    /// Position of the column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// The schema of unqualified names.
pub const DEFAULT_SCHEMA: &str = "public";

fn default_schema() -> String {
    DEFAULT_SCHEMA.to_string()
}

impl ViewCatalog {
    /// The view's query, as `pg_get_viewdef` and `information_schema.views` show it (the
    /// whole definition if it does not parse, which a stored one always does).
    pub fn query(&self) -> String {
        match crate::parse_sql(&self.definition).as_deref() {
            Ok([sqlparser::ast::Statement::CreateView(view)]) => view.query.to_string(),
            _ => self.definition.clone(),
        }
    }
}

impl TableCatalog {
    /// `schema.name`, the key tables are looked up by.
    pub fn qualified_name(&self) -> String {
        qualified(&self.schema, &self.name)
    }
}

/// The lookup key of table `name` in `schema`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{schema}.{name}")
}

/// A SQL function (`CREATE FUNCTION ... LANGUAGE SQL`): its body is one expression over its
/// arguments, inlined wherever it is called.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionCatalog {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// Argument names and types, in order.
    pub args: Vec<(String, DataType)>,
    /// The result type.
    pub returns: DataType,
    /// The body: one SQL expression over the arguments (by name).
    pub body: String,
}

impl FunctionCatalog {
    /// `schema.name`, the key functions are looked up by.
    pub fn qualified_name(&self) -> String {
        qualified(&self.schema, &self.name)
    }
}

/// Looks up tables (and functions) by schema-qualified name (`schema.name`).
pub trait Catalog {
    /// The table with qualified name `qualified` (see [`qualified`]), if it exists.
    fn table(&self, qualified: &str) -> Option<Arc<TableCatalog>>;

    /// Every table (for the system catalog views).
    fn tables(&self) -> Vec<Arc<TableCatalog>>;

    /// Every schema name, `public` included.
    fn schemas(&self) -> Vec<String>;

    /// The SQL function with qualified name `qualified`, if it exists (a catalog without
    /// functions has none).
    fn function(&self, qualified: &str) -> Option<Arc<FunctionCatalog>> {
        let _ = qualified;
        None
    }

    /// Every SQL function (for the system catalog views).
    fn functions(&self) -> Vec<Arc<FunctionCatalog>> {
        Vec::new()
    }

    /// What a view's planner needs to know of the tables and views: which only take
    /// inserts (append-only tables and sources, keyed by their hidden row id: a declared key
    /// would let an insert replace a row), and which columns get watermarks (a table's
    /// `WATERMARK FOR` column, the columns a view's job passes watermarks on for).
    fn upstreams(&self) -> crate::stream::Upstreams {
        let mut tables = self.tables();
        // A view reads only relations created before it, with smaller ids.
        tables.sort_by_key(|t| t.id);
        let mut watermarks = std::collections::HashMap::new();
        for t in &tables {
            let marked = match (&t.view, &t.watermark) {
                (Some(view), _) => view
                    .plan
                    .watermark_columns(&|id| watermarks.get(&id).cloned().unwrap_or_default()),
                (None, Some(w)) => vec![w.column],
                (None, None) => continue,
            };
            if !marked.is_empty() {
                watermarks.insert(t.id, marked);
            }
        }
        crate::stream::Upstreams {
            append_only: tables
                .iter()
                .filter(|t| t.append_only && t.pk.iter().all(|c| t.columns[*c].hidden))
                .map(|t| t.id)
                .collect(),
            watermarks,
        }
    }
}
