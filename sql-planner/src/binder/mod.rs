//! Binding statements: names resolved against the catalog, types checked, plans built.

mod builtin;
pub(crate) mod expr;
mod function;
mod query;
mod subquery;
mod system;

use std::sync::Arc;

use dataflow::batch::plan::BatchPlan;
use dataflow::expr::Expr;
use dataflow::types::DataType;
use sqlparser::ast::{self, Statement};

use crate::catalog::{
    Catalog, ColumnCatalog, DEFAULT_SCHEMA, ROW_ID_COLUMN, TableCatalog, qualified,
};
use crate::error::{PlanError, PlanResult};
use crate::{Plan, RelationKind};
use expr::{ExprBinder, Params, Scope, ScopeColumn, coerce, ident_name, note_param, sql_type};
use query::BoundQuery;

/// Binds statements against a catalog.
pub(crate) struct Binder<'c> {
    catalog: &'c dyn Catalog,
    /// Common table expressions in scope, innermost last.
    ctes: Vec<(String, BoundQuery)>,
    /// Types inferred for `$n` parameters.
    params: Params<'c>,
    /// Subqueries unnested so far (numbers their hidden columns).
    subqueries: usize,
    /// Window functions bound so far (numbers their hidden columns).
    windows: usize,
    /// Ids of the catalog relations the statement names.
    referenced: Vec<u32>,
}

/// `(schema, name)` of a possibly qualified name; unqualified names are in the default schema.
pub(crate) fn schema_and_name(name: &ast::ObjectName) -> (String, String) {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map_or(p.to_string(), ident_name))
        .collect();
    match parts.as_slice() {
        [.., schema, table] => (schema.clone(), table.clone()),
        [table] => (DEFAULT_SCHEMA.to_string(), table.clone()),
        [] => (DEFAULT_SCHEMA.to_string(), String::new()),
    }
}

pub(crate) fn object_name(name: &ast::ObjectName) -> String {
    name.0
        .last()
        .map(|p| p.as_ident().map_or(p.to_string(), ident_name))
        .unwrap_or_default()
}

impl<'c> Binder<'c> {
    pub(crate) fn new(catalog: &'c dyn Catalog) -> Self {
        Binder {
            catalog,
            ctes: Vec::new(),
            subqueries: 0,
            windows: 0,
            referenced: Vec::new(),
            params: Params {
                catalog: Some(catalog),
                ..Params::default()
            },
        }
    }

    /// The inferred parameter types; parameters nothing constrains are text.
    pub(crate) fn parameter_types(&self) -> Vec<DataType> {
        self.params
            .types
            .borrow()
            .iter()
            .map(|t| t.unwrap_or(DataType::Varchar))
            .collect()
    }

    /// The table a DML statement writes: a table, not a view.
    /// A table whose existing rows may change (UPDATE, DELETE): not a view, not append-only.
    fn changeable_table(&self, name: &ast::ObjectName) -> PlanResult<Arc<TableCatalog>> {
        let table = self.writable_table(name)?;
        if table.append_only {
            return Err(PlanError::WrongObjectType(format!(
                "table \"{}\" is append-only: its rows cannot be updated or deleted",
                table.name
            )));
        }
        Ok(table)
    }

    fn writable_table(&self, name: &ast::ObjectName) -> PlanResult<Arc<TableCatalog>> {
        let name = qualified_name(name);
        let table = self
            .catalog
            .table(&name)
            .ok_or(PlanError::UndefinedTable(name))?;
        if table.is_view() {
            return Err(PlanError::WrongObjectType(format!(
                "cannot change materialized view \"{}\"",
                table.name
            )));
        }
        if table.logical.is_some() {
            return Err(PlanError::WrongObjectType(format!(
                "cannot change view \"{}\"",
                table.name
            )));
        }
        if table.source.is_some() {
            return Err(PlanError::WrongObjectType(format!(
                "cannot change source \"{}\": its rows come from its connector",
                table.name
            )));
        }
        Ok(table)
    }

    /// The plan of `stmt`, optimized (see [`crate::optimizer`]).
    pub(crate) fn bind_statement(&mut self, stmt: &Statement) -> PlanResult<Plan> {
        let mut plan = self.bind_unoptimized(stmt)?;
        if let Plan::Query { plan: p, .. }
        | Plan::Insert { source: p, .. }
        | Plan::Delete { rows: p, .. }
        | Plan::Update { rows: p, .. }
        | Plan::CreateView { query: p, .. } = &mut plan
        {
            let unoptimized = std::mem::replace(
                p,
                BatchPlan::Values {
                    rows: vec![],
                    types: vec![],
                },
            );
            *p = crate::optimizer::optimize(unoptimized);
        }
        Ok(plan)
    }

    fn bind_unoptimized(&mut self, stmt: &Statement) -> PlanResult<Plan> {
        match stmt {
            Statement::Query(q) => {
                let bound = self.bind_query(q)?;
                Ok(Plan::Query {
                    columns: bound.columns(),
                    plan: bound.plan,
                })
            }
            Statement::CreateTable(ct) => self.bind_create_table(ct),
            Statement::Drop {
                object_type:
                    object @ (ast::ObjectType::Table | ast::ObjectType::View | ast::ObjectType::Stream),
                if_exists,
                names,
                ..
            } => Ok(Plan::DropTable {
                names: names.iter().map(qualified_name).collect(),
                if_exists: *if_exists,
                kind: match object {
                    ast::ObjectType::View => RelationKind::View,
                    // What `DROP SOURCE` is parsed as (see `source::rewrite`).
                    ast::ObjectType::Stream => RelationKind::Source,
                    _ => RelationKind::Table,
                },
            }),
            Statement::Drop {
                object_type: object @ (ast::ObjectType::MaterializedView | ast::ObjectType::Index),
                if_exists,
                names,
                ..
            } => Ok(Plan::DropView {
                index: *object == ast::ObjectType::Index,
                names: names.iter().map(qualified_name).collect(),
                if_exists: *if_exists,
            }),
            Statement::CreateView(cv) => self.bind_create_view(cv),
            Statement::CreateFunction(cf) => function::bind_create_function(cf, &self.params),
            Statement::DropFunction(df) => Ok(Plan::DropFunction {
                names: df
                    .func_desc
                    .iter()
                    .map(|f| qualified_name(&f.name))
                    .collect(),
                if_exists: df.if_exists,
            }),
            Statement::CreateIndex(ci) => self.bind_create_index(ci),
            Statement::Insert(insert) => self.bind_insert(insert),
            Statement::Delete(delete) => self.bind_delete(delete),
            Statement::Truncate(truncate) => self.bind_truncate(truncate),
            Statement::Update(update) => self.bind_update(update),
            Statement::Explain { statement, .. } => match self.bind_statement(statement)? {
                Plan::Query { plan, .. }
                | Plan::Insert { source: plan, .. }
                | Plan::Delete { rows: plan, .. }
                | Plan::Update { rows: plan, .. } => Ok(Plan::Explain(plan.explain())),
                Plan::CreateView {
                    query,
                    columns,
                    index,
                    emit_on_window_close,
                    ..
                } => {
                    let order = index.map(|(_, o)| o).unwrap_or_default();
                    Ok(Plan::Explain(
                        crate::stream::plan_view(
                            query,
                            &columns,
                            &order,
                            0,
                            self.catalog.upstreams(),
                            emit_on_window_close,
                        )?
                        .plan
                        .explain(),
                    ))
                }
                _ => Err(PlanError::NotSupported("EXPLAIN of this statement".into())),
            },
            Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. } => Ok(Plan::Transaction),
            other => Err(PlanError::NotSupported(format!(
                "statement {}",
                statement_kind(other)
            ))),
        }
    }

    fn bind_create_view(&mut self, cv: &ast::CreateView) -> PlanResult<Plan> {
        if cv.or_replace && cv.materialized {
            return Err(PlanError::NotSupported(
                "CREATE OR REPLACE MATERIALIZED VIEW".into(),
            ));
        }
        let (schema, name) = schema_and_name(&cv.name);
        let bound = self.bind_query(&cv.query)?;
        let mut columns = bound.columns();
        if !cv.columns.is_empty() {
            if cv.columns.len() != columns.len() {
                return Err(PlanError::Syntax(format!(
                    "the view has {} columns but {} names",
                    columns.len(),
                    cv.columns.len()
                )));
            }
            for (c, def) in columns.iter_mut().zip(&cv.columns) {
                c.0 = ident_name(&def.name);
            }
        }
        for (i, (name, _)) in columns.iter().enumerate() {
            if columns[..i].iter().any(|(n, _)| n == name) {
                return Err(PlanError::DuplicateColumn(name.clone()));
            }
        }
        let mut emit_on_window_close = false;
        let mut definition = cv.clone();
        if let ast::CreateTableOptions::With(options) = &cv.options {
            for option in options {
                match option {
                    ast::SqlOption::KeyValue { key, value }
                        if ident_name(key) == crate::emit::OPTION =>
                    {
                        emit_on_window_close = value.to_string().eq_ignore_ascii_case("true");
                    }
                    other => {
                        return Err(PlanError::NotSupported(format!("view option {other}")));
                    }
                }
            }
            // The statement as written, for the catalog.
            definition.options = ast::CreateTableOptions::None;
        }
        let mut definition = definition.to_string();
        if emit_on_window_close {
            if !cv.materialized {
                return Err(PlanError::NotSupported(
                    "EMIT ON WINDOW CLOSE in a view that is not materialized".into(),
                ));
            }
            definition.push_str(" EMIT ON WINDOW CLOSE");
        }
        if !cv.materialized {
            // Every relation the query reads, through the views it names too.
            let mut reads = std::mem::take(&mut self.referenced);
            reads.sort_unstable();
            reads.dedup();
            let replaced = self
                .catalog
                .table(&crate::catalog::qualified(&schema, &name));
            if let Some(old) = replaced.filter(|_| cv.or_replace) {
                if reads.contains(&old.id) {
                    return Err(PlanError::InvalidArgument(format!(
                        "view \"{name}\" would read itself"
                    )));
                }
                // Readers of the view keep binding: its columns stay, new ones may follow.
                let kept = old.columns.len() <= columns.len()
                    && old
                        .columns
                        .iter()
                        .zip(&columns)
                        .all(|(o, (n, t))| o.name == *n && o.ty == *t);
                if !kept {
                    return Err(PlanError::InvalidArgument(format!(
                        "cannot change the columns of view \"{name}\" (new columns may only \
                         follow the old ones)"
                    )));
                }
            }
            return Ok(Plan::CreateLogicalView {
                or_replace: cv.or_replace,
                schema,
                name,
                columns,
                view: crate::LogicalView {
                    query: cv.query.to_string(),
                    reads,
                },
                if_not_exists: cv.if_not_exists,
                definition,
            });
        }
        Ok(Plan::CreateView {
            schema,
            name,
            query: bound.plan,
            columns,
            if_not_exists: cv.if_not_exists,
            definition,
            index: None,
            emit_on_window_close,
            views_read: self
                .catalog
                .tables()
                .iter()
                .filter(|t| t.logical.is_some() && self.referenced.contains(&t.id))
                .map(|t| t.id)
                .collect(),
        })
    }

    /// An index: a view of the table's index columns and included columns (all columns when
    /// none are named), keyed by the index columns.
    fn bind_create_index(&mut self, ci: &ast::CreateIndex) -> PlanResult<Plan> {
        let table = self.writable_table(&ci.table_name)?;
        let Some(name) = &ci.name else {
            return Err(PlanError::NotSupported(
                "CREATE INDEX without a name".into(),
            ));
        };
        let (_, name) = schema_and_name(name);
        let column = |name: &str| {
            table
                .column_index(name)
                .filter(|i| !table.columns[*i].hidden)
                .ok_or_else(|| PlanError::UndefinedColumn(name.to_string()))
        };
        let mut columns = Vec::new();
        for c in &ci.columns {
            let ast::Expr::Identifier(id) = &c.column.expr else {
                return Err(PlanError::NotSupported("an index on an expression".into()));
            };
            columns.push(column(&ident_name(id))?);
        }
        let order: Vec<usize> = (0..columns.len()).collect();
        let included: Vec<usize> = if ci.include.is_empty() {
            (0..table.columns.len())
                .filter(|i| !table.columns[*i].hidden)
                .collect()
        } else {
            ci.include
                .iter()
                .map(|id| column(&ident_name(id)))
                .collect::<PlanResult<_>>()?
        };
        for c in included {
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
        let output = columns
            .iter()
            .map(|c| (table.columns[*c].name.clone(), table.columns[*c].ty))
            .collect();
        Ok(Plan::CreateView {
            schema: table.schema.clone(),
            name,
            query: BatchPlan::Scan {
                table: table.desc(),
                columns,
            },
            columns: output,
            if_not_exists: ci.if_not_exists,
            definition: ci.to_string(),
            index: Some((table.id, order)),
            emit_on_window_close: false,
            views_read: vec![],
        })
    }

    fn bind_create_table(&mut self, ct: &ast::CreateTable) -> PlanResult<Plan> {
        if ct.query.is_some() {
            return Err(PlanError::NotSupported("CREATE TABLE AS".into()));
        }
        let (schema, name) = schema_and_name(&ct.name);
        let mut columns = Vec::new();
        let mut pk = Vec::new();
        for (i, c) in ct.columns.iter().enumerate() {
            let col_name = ident_name(&c.name);
            if columns.iter().any(|x: &ColumnCatalog| x.name == col_name) {
                return Err(PlanError::DuplicateTable(format!("column {col_name}")));
            }
            let ty = sql_type(&c.data_type)?;
            let mut column = ColumnCatalog::new(col_name, ty);
            for option in &c.options {
                if let ast::ColumnOption::Default(e) = &option.option {
                    let value = coerce(
                        ExprBinder::bind_plain(&Scope::default(), &self.params, e)?,
                        ty,
                    )?;
                    if !matches!(value, Expr::Literal { .. }) {
                        return Err(PlanError::NotSupported(
                            "a DEFAULT that is not a constant".into(),
                        ));
                    }
                    column.default = Some(value);
                }
            }
            columns.push(column);
            if c.options
                .iter()
                .any(|o| matches!(o.option, ast::ColumnOption::PrimaryKey(_)))
            {
                pk.push(i);
            }
        }
        for constraint in &ct.constraints {
            if let ast::TableConstraint::PrimaryKey(p) = constraint {
                if !pk.is_empty() {
                    return Err(PlanError::Syntax(format!(
                        "multiple primary keys for table \"{name}\" are not allowed"
                    )));
                }
                for col in &p.columns {
                    let col_name = match &col.column.expr {
                        ast::Expr::Identifier(id) => ident_name(id),
                        other => {
                            return Err(PlanError::NotSupported(format!("primary key on {other}")));
                        }
                    };
                    let i = columns
                        .iter()
                        .position(|c| c.name == col_name)
                        .ok_or_else(|| PlanError::UndefinedColumn(col_name.clone()))?;
                    pk.push(i);
                }
            }
        }
        if pk.is_empty() {
            pk.push(columns.len());
            columns.push(ColumnCatalog {
                hidden: true,
                ..ColumnCatalog::new(ROW_ID_COLUMN, DataType::Int64)
            });
        }
        let mut append_only = false;
        let mut connector_options = Vec::new();
        let mut is_source = false;
        if let ast::CreateTableOptions::With(options) = &ct.table_options {
            for option in options {
                match option {
                    ast::SqlOption::KeyValue { key, value }
                        if ident_name(key) == crate::append_only::OPTION =>
                    {
                        append_only = value.to_string().eq_ignore_ascii_case("true");
                    }
                    ast::SqlOption::KeyValue { key, .. }
                        if ident_name(key) == crate::source::OPTION =>
                    {
                        is_source = true;
                    }
                    // Read below.
                    ast::SqlOption::KeyValue { key, .. }
                        if [crate::watermark::COLUMN, crate::watermark::EXPR]
                            .contains(&key.value.as_str()) => {}
                    ast::SqlOption::KeyValue { key, value } => {
                        let value = match value {
                            ast::Expr::Value(v) => match &v.value {
                                ast::Value::SingleQuotedString(s) => s.clone(),
                                other => other.to_string(),
                            },
                            other => other.to_string(),
                        };
                        connector_options.push((key.value.to_lowercase(), value));
                    }
                    // RisingWave's other table options (retention, ...) have no meaning
                    // here.
                    _ => {}
                }
            }
        }
        let has_connector = connector_options.iter().any(|(k, _)| k == "connector");
        if has_connector && !is_source {
            return Err(PlanError::NotSupported(
                "tables with a connector (CREATE SOURCE makes a source)".into(),
            ));
        }
        let watermark_text = crate::watermark::options(ct);
        let watermark = match &watermark_text {
            None => None,
            Some(_) if !(append_only || is_source) => {
                return Err(PlanError::NotSupported(
                    "a watermark on a table that is not APPEND ONLY".into(),
                ));
            }
            Some((column, expr)) => Some(self.bind_watermark(&columns, column, expr)?),
        };
        let mut definition = if is_source {
            crate::source::definition(ct)
        } else {
            ct.to_string()
        };
        if let Some((column, expr)) = &watermark_text {
            definition = crate::watermark::definition(&definition, column, expr);
        }
        // A table without a declared primary key has one hidden column: its row id.
        let has_primary_key = ct
            .constraints
            .iter()
            .any(|c| matches!(c, ast::TableConstraint::PrimaryKey(_)))
            || columns.iter().filter(|c| !c.hidden).count() + 1 != columns.len();
        // An insert with an existing key would replace a row, which an append-only table's
        // readers cannot take.
        if append_only && has_primary_key {
            return Err(PlanError::NotSupported(
                "a primary key on an APPEND ONLY table (its rows are only ever added)".into(),
            ));
        }
        let source = if is_source {
            if has_primary_key {
                return Err(PlanError::NotSupported("a primary key on a source".into()));
            }
            let mut spec = crate::source::spec(&connector_options, &columns)?;
            spec.watermark = watermark.clone();
            Some(spec)
        } else {
            None
        };
        Ok(Plan::CreateTable {
            schema,
            name,
            columns,
            pk,
            if_not_exists: ct.if_not_exists,
            append_only: append_only || source.is_some(),
            definition,
            watermark: if source.is_some() { None } else { watermark },
            source,
        })
    }

    /// `WATERMARK FOR column AS expr` over `columns`: a timestamp column, and an expression of
    /// its type over the row.
    fn bind_watermark(
        &self,
        columns: &[ColumnCatalog],
        column: &str,
        expr: &str,
    ) -> PlanResult<dataflow::watermark::WatermarkDesc> {
        let name = match subquery::parse_expr(column)? {
            ast::Expr::Identifier(id) => ident_name(&id),
            _ => return Err(PlanError::Syntax(format!("WATERMARK FOR {column}"))),
        };
        let position = columns
            .iter()
            .position(|c| !c.hidden && c.name == name)
            .ok_or_else(|| PlanError::UndefinedColumn(name.clone()))?;
        let ty = columns[position].ty;
        if !matches!(ty, DataType::Timestamp | DataType::Timestamptz) {
            return Err(PlanError::TypeMismatch(format!(
                "the watermark column {name} must be a timestamp or timestamptz, not {ty}"
            )));
        }
        let scope = expr::Scope {
            columns: columns
                .iter()
                .map(|c| expr::ScopeColumn {
                    table: None,
                    name: c.name.clone(),
                    ty: c.ty,
                    hidden: c.hidden,
                    outer: false,
                })
                .collect(),
        };
        let bound =
            expr::ExprBinder::bind_plain(&scope, &self.params, &subquery::parse_expr(expr)?)?;
        if bound.data_type() != ty || bound.is_volatile() {
            return Err(PlanError::TypeMismatch(format!(
                "the watermark expression must give a {ty} from the row's columns, not {}",
                bound.data_type()
            )));
        }
        Ok(dataflow::watermark::WatermarkDesc {
            column: position,
            expr: bound,
        })
    }

    fn bind_insert(&mut self, insert: &ast::Insert) -> PlanResult<Plan> {
        let ast::TableObject::TableName(name) = &insert.table else {
            return Err(PlanError::NotSupported(
                "INSERT into a table function".into(),
            ));
        };
        let table = self.writable_table(name)?;
        let source = insert
            .source
            .as_ref()
            .ok_or_else(|| PlanError::NotSupported("INSERT without a source".into()))?;
        let visible: Vec<usize> = (0..table.columns.len())
            .filter(|i| !table.columns[*i].hidden)
            .collect();
        let targets: Vec<usize> = if insert.columns.is_empty() {
            visible.clone()
        } else {
            insert
                .columns
                .iter()
                .map(|c| {
                    let n = object_name(c);
                    table
                        .column_index(&n)
                        .filter(|i| !table.columns[*i].hidden)
                        .ok_or(PlanError::UndefinedColumn(n))
                })
                .collect::<PlanResult<_>>()?
        };
        // Parameters in VALUES take the types of their target columns.
        if let ast::SetExpr::Values(values) = source.body.as_ref() {
            for row in &values.rows {
                for (e, col) in row.content.iter().zip(&targets) {
                    note_param(&self.params, e, table.columns[*col].ty);
                }
            }
        }
        let bound = self.bind_query(source)?;
        let source_types = bound.plan.output_types();
        if source_types.len() > targets.len() {
            return Err(PlanError::Syntax(
                "INSERT has more expressions than target columns".into(),
            ));
        }
        if source_types.len() < targets.len() && insert.columns.is_empty() {
            // Missing trailing columns are NULL, as PostgreSQL allows.
        } else if source_types.len() < targets.len() {
            return Err(PlanError::Syntax(
                "INSERT has more target columns than expressions".into(),
            ));
        }
        // One expression per visible column, in table order: the source value or NULL.
        let exprs = visible
            .iter()
            .map(|col| {
                let ty = table.columns[*col].ty;
                match targets
                    .iter()
                    .position(|t| t == col)
                    .filter(|p| *p < source_types.len())
                {
                    Some(p) => coerce(Expr::column(p, source_types[p]), ty).map_err(|_| {
                        PlanError::TypeMismatch(format!(
                            "column \"{}\" is of type {ty} but expression is of type {}",
                            table.columns[*col].name, source_types[p]
                        ))
                    }),
                    None => Ok(table.columns[*col].default_value()),
                }
            })
            .collect::<PlanResult<Vec<_>>>()?;
        let source = BatchPlan::Project {
            input: Box::new(bound.plan),
            exprs,
        };
        let qualifier = insert
            .table_alias
            .as_ref()
            .map_or(table.name.clone(), |a| ident_name(&a.alias));
        let returning = self.bind_returning(&table, &qualifier, insert.returning.as_deref())?;
        Ok(Plan::Insert {
            table,
            source,
            returning,
        })
    }

    /// A DML statement's `RETURNING items` over the written rows of `table` (named
    /// `qualifier`); `*` is its visible columns.
    fn bind_returning(
        &self,
        table: &TableCatalog,
        qualifier: &str,
        items: Option<&[ast::SelectItem]>,
    ) -> PlanResult<Option<crate::Returning>> {
        let Some(items) = items else {
            return Ok(None);
        };
        let scope = Self::table_scope(table, qualifier);
        let mut returning = crate::Returning {
            exprs: Vec::new(),
            columns: Vec::new(),
        };
        for item in items {
            let (e, name) = match item {
                ast::SelectItem::UnnamedExpr(e) => (e, query::column_name(e)),
                ast::SelectItem::ExprWithAlias { expr, alias } => (expr, ident_name(alias)),
                ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..) => {
                    for (i, c) in table.columns.iter().enumerate().filter(|(_, c)| !c.hidden) {
                        returning.exprs.push(Expr::column(i, c.ty));
                        returning.columns.push((c.name.clone(), c.ty));
                    }
                    continue;
                }
                other => {
                    return Err(PlanError::NotSupported(format!("RETURNING {other}")));
                }
            };
            let bound = ExprBinder::bind_plain(&scope, &self.params, e)?;
            returning.columns.push((name, bound.data_type()));
            returning.exprs.push(bound);
        }
        Ok(Some(returning))
    }

    fn table_scope(table: &TableCatalog, qualifier: &str) -> Scope {
        Scope {
            columns: table
                .columns
                .iter()
                .map(|c| ScopeColumn {
                    table: Some(qualifier.to_string()),
                    name: c.name.clone(),
                    ty: c.ty,
                    hidden: c.hidden,
                    outer: false,
                })
                .collect(),
        }
    }

    /// The rows of `table` that `selection` keeps, with subqueries in it unnested as in a
    /// SELECT's WHERE; the plan and `scope` may have hidden columns after the table's.
    fn filtered_scan(
        &mut self,
        table: &TableCatalog,
        scope: &mut Scope,
        selection: Option<&ast::Expr>,
    ) -> PlanResult<BatchPlan> {
        let mut plan = BatchPlan::Scan {
            table: table.desc(),
            columns: (0..table.columns.len()).collect(),
        };
        let Some(selection) = selection else {
            return Ok(plan);
        };
        let mut conjuncts = Vec::new();
        subquery::split_and(selection, &mut conjuncts);
        let mut rest = Vec::new();
        for c in conjuncts {
            if !self.semi_join(&c, &mut plan, scope)? {
                rest.push(c);
            }
        }
        if let Some(selection) = subquery::and_all(rest) {
            let selection = self.unnest_subqueries(&selection, &mut plan, scope)?;
            let predicate = coerce(
                ExprBinder::bind_plain(scope, &self.params, &selection)?,
                DataType::Boolean,
            )?;
            plan = BatchPlan::Filter {
                input: Box::new(plan),
                predicate,
            };
        }
        Ok(plan)
    }

    /// `plan` with only the first `n` columns of `scope` (a table's, without hidden columns
    /// that subqueries added).
    fn table_columns(plan: BatchPlan, scope: &Scope, n: usize) -> BatchPlan {
        if scope.columns.len() == n {
            return plan;
        }
        BatchPlan::Project {
            input: Box::new(plan),
            exprs: (0..n)
                .map(|i| Expr::column(i, scope.columns[i].ty))
                .collect(),
        }
    }

    fn bind_delete(&mut self, delete: &ast::Delete) -> PlanResult<Plan> {
        let from = match &delete.from {
            ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
        };
        let [
            ast::TableWithJoins {
                relation: ast::TableFactor::Table { name, alias, .. },
                joins,
            },
        ] = from.as_slice()
        else {
            return Err(PlanError::NotSupported("DELETE from several tables".into()));
        };
        if !joins.is_empty() {
            return Err(PlanError::NotSupported("DELETE with joins".into()));
        }
        let table = self.changeable_table(name)?;
        let qualifier = alias
            .as_ref()
            .map_or(table.name.clone(), |a| ident_name(&a.name));
        let mut scope = Self::table_scope(&table, &qualifier);
        let rows = self.filtered_scan(&table, &mut scope, delete.selection.as_ref())?;
        let rows = Self::table_columns(rows, &scope, table.columns.len());
        let returning = self.bind_returning(&table, &qualifier, delete.returning.as_deref())?;
        Ok(Plan::Delete {
            table,
            rows,
            returning,
        })
    }

    /// `TRUNCATE t`: a DELETE of every row (readers see the deletes like any others).
    fn bind_truncate(&mut self, truncate: &ast::Truncate) -> PlanResult<Plan> {
        let [target] = truncate.table_names.as_slice() else {
            return Err(PlanError::NotSupported(
                "TRUNCATE of several tables at once".into(),
            ));
        };
        let table = self.changeable_table(&target.name)?;
        let mut scope = Self::table_scope(&table, &table.name);
        let rows = self.filtered_scan(&table, &mut scope, None)?;
        let rows = Self::table_columns(rows, &scope, table.columns.len());
        Ok(Plan::Delete {
            table,
            rows,
            returning: None,
        })
    }

    fn bind_update(&mut self, update: &ast::Update) -> PlanResult<Plan> {
        let ast::TableFactor::Table { name, alias, .. } = &update.table.relation else {
            return Err(PlanError::NotSupported("UPDATE of a derived table".into()));
        };
        if update.from.is_some() || !update.table.joins.is_empty() {
            return Err(PlanError::NotSupported("UPDATE ... FROM".into()));
        }
        let table = self.changeable_table(name)?;
        let qualifier = alias
            .as_ref()
            .map_or(table.name.clone(), |a| ident_name(&a.name));
        let mut scope = Self::table_scope(&table, &qualifier);
        let mut input = self.filtered_scan(&table, &mut scope, update.selection.as_ref())?;
        let mut new_values: Vec<Expr> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| Expr::column(i, c.ty))
            .collect();
        let mut assigned = std::collections::HashSet::new();
        for assignment in &update.assignments {
            // `SET c = e`, `SET (a, b) = (x, y)` or `SET (a, b) = (SELECT x, y ...)`: pairs
            // of target columns and values.
            let mismatch =
                || PlanError::Syntax("number of columns does not match number of values".into());
            let pairs: Vec<(&ast::ObjectName, ast::Expr)> = match (
                &assignment.target,
                &assignment.value,
            ) {
                (ast::AssignmentTarget::ColumnName(col), value) => vec![(col, value.clone())],
                (ast::AssignmentTarget::Tuple(cols), ast::Expr::Tuple(values))
                    if cols.len() == values.len() =>
                {
                    cols.iter().zip(values.iter().cloned()).collect()
                }
                (ast::AssignmentTarget::Tuple(_), ast::Expr::Tuple(_)) => return Err(mismatch()),
                // Each column from its own scalar subquery over the row subquery.
                (ast::AssignmentTarget::Tuple(cols), ast::Expr::Subquery(q)) => {
                    let names: Vec<String> = (0..cols.len()).map(|k| format!("__c{k}")).collect();
                    if let Ok(row) = self.bind_query(q) {
                        let row = row.columns();
                        if row.len() != cols.len() {
                            return Err(mismatch());
                        }
                        let targets = cols
                            .iter()
                            .map(|c| {
                                let name = object_name(c);
                                let i = table
                                    .column_index(&name)
                                    .ok_or_else(|| PlanError::UndefinedColumn(name.clone()))?;
                                Ok((name, table.columns[i].ty))
                            })
                            .collect::<PlanResult<Vec<_>>>()?;
                        check_row_assignment(&row, &targets)?;
                    }
                    cols.iter()
                        .zip(&names)
                        .map(|(col, name)| {
                            let value = subquery::parse_expr(&format!(
                                "(SELECT {name} FROM ({q}) AS __row({}))",
                                names.join(", ")
                            ))?;
                            Ok((col, value))
                        })
                        .collect::<PlanResult<_>>()?
                }
                _ => {
                    return Err(PlanError::NotSupported(
                        "source for a multiple-column UPDATE item must be a sub-SELECT or ROW() expression".into(),
                    ));
                }
            };
            for (col, value) in pairs {
                let col_name = object_name(col);
                if col_name == crate::catalog::COMMIT_TIME_COLUMN {
                    return Err(PlanError::NotSupported(format!(
                        "update modifying column `{col_name}` is unsupported"
                    )));
                }
                let i = table
                    .column_index(&col_name)
                    .filter(|i| !table.columns[*i].hidden)
                    .ok_or_else(|| PlanError::UndefinedColumn(col_name.clone()))?;
                if table.pk.contains(&i) {
                    // As in RisingWave: a row's key never changes (delete and insert instead).
                    return Err(PlanError::NotSupported(
                        "update modifying the PK column is unsupported".into(),
                    ));
                }
                if !assigned.insert(i) {
                    return Err(PlanError::Syntax(format!(
                        "multiple assignments to the same column \"{col_name}\""
                    )));
                }
                // `SET c = DEFAULT` (the parser sees an identifier).
                let is_default = matches!(&value, ast::Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"));
                if is_default {
                    new_values[i] = table.columns[i].default_value();
                    continue;
                }
                note_param(&self.params, &value, table.columns[i].ty);
                let value = self.unnest_subqueries(&value, &mut input, &mut scope)?;
                let bound = ExprBinder::bind_plain(&scope, &self.params, &value)?;
                new_values[i] = coerce(bound, table.columns[i].ty)?;
            }
        }
        let mut exprs: Vec<Expr> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| Expr::column(i, c.ty))
            .collect();
        exprs.extend(new_values);
        let rows = BatchPlan::Project {
            input: Box::new(input),
            exprs,
        };
        let returning = self.bind_returning(&table, &qualifier, update.returning.as_deref())?;
        Ok(Plan::Update {
            table,
            rows,
            returning,
        })
    }
}

/// Whether a value of type `from` may be stored in a column of type `to` without an
/// explicit cast (PostgreSQL's and RisingWave's assignment casts): numbers to numbers,
/// anything to text, dates and timestamps to each other.
fn assignable(from: DataType, to: DataType) -> bool {
    use DataType::*;
    from == to
        || (from.is_numeric() && to.is_numeric())
        || to == Varchar
        || matches!(
            (from, to),
            (Date | Timestamp | Timestamptz, Timestamp | Timestamptz) | (Timestamp, Date)
        )
}

/// `SET (a, b) = (SELECT x, y ...)` stores the row as a struct of the target columns: each
/// value must be assignable to its column. The error names the types as RisingWave does.
fn check_row_assignment(
    row: &[(String, DataType)],
    targets: &[(String, DataType)],
) -> PlanResult<()> {
    let Some(k) = (0..row.len()).find(|&k| !assignable(row[k].1, targets[k].1)) else {
        return Ok(());
    };
    let named = row.iter().all(|(name, _)| name != "?column?");
    let field = |k: usize| {
        if named {
            row[k].0.clone()
        } else {
            format!("f{}", k + 1)
        }
    };
    let source = if named {
        DataType::structure(row.to_vec()).to_string()
    } else {
        "record".to_string()
    };
    let target = DataType::structure(targets.to_vec());
    Err(PlanError::Caused {
        causes: vec![
            format!("cannot cast type \"{source}\" to \"{target}\""),
            format!(
                "cannot cast struct field \"{}\" to struct field \"{}\"",
                field(k),
                targets[k].0
            ),
            format!(
                "cannot cast type \"{}\" to \"{}\" in Assign context",
                row[k].1, targets[k].1
            ),
        ],
        sqlstate: "42846",
    })
}

/// The catalog lookup key (`schema.name`) of `name`.
fn qualified_name(name: &ast::ObjectName) -> String {
    let (schema, name) = schema_and_name(name);
    qualified(&schema, &name)
}

fn statement_kind(stmt: &Statement) -> String {
    let text = stmt.to_string();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}
