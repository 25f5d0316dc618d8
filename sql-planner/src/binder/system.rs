//! The `pg_catalog` tables clients query (psql's `\dt` first), built from the catalog when a
//! statement is bound, so they always agree with it.

use dataflow::expr::{BinaryOp, Expr};
use dataflow::func::Func;
use dataflow::types::{DataType, Datum};
use sqlparser::ast;

use super::expr::coerce;
use crate::error::{PlanError, PlanResult};

use std::sync::Arc;

use crate::PG_VERSION;
use crate::catalog::{Catalog, DEFAULT_SCHEMA, TableCatalog};

/// Oids PostgreSQL gives its built-in namespaces; user schemas get oids from 16384 on.
const PG_CATALOG_OID: i32 = 11;
const PUBLIC_OID: i32 = 2200;
const FIRST_USER_OID: i32 = 16384;
/// The heap and btree access methods.
const HEAP_AM_OID: i32 = 2;
const BTREE_AM_OID: i32 = 403;

/// A system table's contents.
pub(crate) struct SystemTable {
    /// Column names and types.
    pub columns: Vec<(&'static str, DataType)>,
    /// The rows.
    pub rows: Vec<Vec<Datum>>,
}

/// Oid of the one role, `root` (PostgreSQL's bootstrap superuser has 10).
pub(crate) const ROOT_ROLE_OID: i32 = 10;
/// PostgreSQL's collations every database has.
const COLLATIONS: [(i32, &str); 3] = [(100, "default"), (950, "C"), (951, "POSIX")];
const DEFAULT_COLLATION_OID: i32 = 100;
/// The database's oid and its encoding (UTF8).
const DATABASE_OID: i32 = 16383;
/// The one database's name.
const DATABASE_NAME: &str = "dev";
const UTF8_ENCODING: i32 = 6;

/// The oid of schema `schema` among `schemas` (sorted).
pub(crate) fn schema_oid(schemas: &[String], schema: &str) -> i32 {
    match schema {
        "pg_catalog" => PG_CATALOG_OID,
        DEFAULT_SCHEMA => PUBLIC_OID,
        other => FIRST_USER_OID + schemas.iter().position(|s| s == other).unwrap_or(0) as i32,
    }
}

/// The first oid of SQL functions, which take oids in the order of their qualified names.
const FIRST_FUNCTION_OID: i32 = 1 << 30;

/// The SQL functions with their oids.
fn functions_by_oid(
    catalog: &dyn Catalog,
) -> Vec<(i32, std::sync::Arc<crate::catalog::FunctionCatalog>)> {
    let mut functions = catalog.functions();
    functions.sort_by_key(|f| f.qualified_name());
    functions
        .into_iter()
        .enumerate()
        .map(|(i, f)| (FIRST_FUNCTION_OID + i as i32, f))
        .collect()
}

/// Names of the schemas by oid (`pg_catalog` included).
pub(crate) fn schemas_by_oid(catalog: &dyn Catalog) -> Vec<(i32, String)> {
    let mut schemas = catalog.schemas();
    schemas.sort();
    std::iter::once("pg_catalog".to_string())
        .chain(schemas.iter().cloned())
        .map(|s| (schema_oid(&schemas, &s), s))
        .collect()
}

/// The key column names of `index`: its order, without the base table's key that follows it
/// (which makes it unique).
fn index_key<'t>(tables: &'t [Arc<TableCatalog>], index: &'t TableCatalog) -> Vec<&'t str> {
    let Some(base) = tables.iter().find(|t| Some(t.id) == index.index_of()) else {
        return vec![];
    };
    let mut keys: Vec<&str> = index
        .pk
        .iter()
        .map(|k| index.columns[*k].name.as_str())
        .collect();
    let base_key: Vec<&str> = base
        .pk
        .iter()
        .map(|k| base.columns[*k].name.as_str())
        .collect();
    while keys.len() > 1 && keys.last().is_some_and(|k| base_key.contains(k)) {
        keys.pop();
    }
    keys
}

/// `CREATE INDEX` statements of the indexes, by oid (what `pg_get_indexdef` gives).
pub(crate) fn index_definitions(catalog: &dyn Catalog) -> Vec<(i32, String)> {
    let tables = catalog.tables();
    tables
        .iter()
        .filter_map(|index| {
            let base = tables.iter().find(|t| Some(t.id) == index.index_of())?;
            let keys = index_key(&tables, index);
            Some((
                index.id as i32,
                format!(
                    "CREATE INDEX {} ON {}.{} USING btree ({})",
                    index.name,
                    base.schema,
                    base.name,
                    keys.join(", ")
                ),
            ))
        })
        .collect()
}

/// The contents of system table `name`, if there is one.
pub(crate) fn system_table(catalog: &dyn Catalog, name: &str) -> Option<SystemTable> {
    let mut schemas = catalog.schemas();
    schemas.sort();
    let schema_oid = |schema: &str| schema_oid(&schemas, schema);
    let text = |s: &str| Datum::Varchar(s.to_string());
    let int = Datum::Int32;
    let boolean = Datum::Bool;
    let null = Datum::Null;
    let tables = catalog.tables();
    use DataType::{Boolean as B, Int16 as I16, Int32 as I, Varchar as V};
    let texts = DataType::list(V);
    let ints = DataType::list(I);
    let smallints = DataType::list(I16);
    let (columns, rows): (Vec<(&'static str, DataType)>, Vec<Vec<Datum>>) = match name {
        "pg_namespace" => (
            vec![
                ("oid", I),
                ("nspname", V),
                ("nspowner", I),
                ("nspacl", texts),
            ],
            schemas_by_oid(catalog)
                .into_iter()
                .map(|(oid, s)| vec![int(oid), text(&s), int(ROOT_ROLE_OID), null.clone()])
                .collect(),
        ),
        "pg_class" => (
            vec![
                ("oid", I),
                ("relname", V),
                ("relnamespace", I),
                ("relkind", V),
                ("relowner", I),
                ("relam", I),
                ("relchecks", I16),
                ("relhasindex", B),
                ("relhasrules", B),
                ("relhastriggers", B),
                ("relrowsecurity", B),
                ("relforcerowsecurity", B),
                ("relispartition", B),
                ("reltablespace", I),
                ("reloftype", I),
                ("relpersistence", V),
                ("relreplident", V),
                ("reltoastrelid", I),
                ("relpartbound", V),
                ("reloptions", texts),
                ("relnatts", I16),
            ],
            tables
                .iter()
                .map(|t| {
                    let has_index = tables.iter().any(|i| i.index_of() == Some(t.id));
                    vec![
                        int(t.id as i32),
                        text(&t.name),
                        int(schema_oid(&t.schema)),
                        text(match (t.is_view(), t.index_of()) {
                            (_, Some(_)) => "i",
                            (true, _) => "m",
                            _ if t.logical.is_some() => "v",
                            _ => "r",
                        }),
                        int(ROOT_ROLE_OID),
                        int(if t.index_of().is_some() {
                            BTREE_AM_OID
                        } else {
                            HEAP_AM_OID
                        }),
                        Datum::Int16(0),
                        boolean(has_index),
                        boolean(false),
                        boolean(false),
                        boolean(false),
                        boolean(false),
                        boolean(false),
                        int(0),
                        int(0),
                        text("p"),
                        text("d"),
                        int(0),
                        null.clone(),
                        null.clone(),
                        Datum::Int16(t.columns.iter().filter(|c| !c.hidden).count() as i16),
                    ]
                })
                .collect(),
        ),
        "pg_attribute" => (
            vec![
                ("attrelid", I),
                ("attname", V),
                ("atttypid", I),
                ("atttypmod", I),
                ("attnum", I16),
                ("attnotnull", B),
                ("atthasdef", B),
                ("attisdropped", B),
                ("attidentity", V),
                ("attgenerated", V),
                ("attcollation", I),
                ("attlen", I16),
                ("attstorage", V),
                ("attcompression", V),
                ("attstattarget", I),
            ],
            tables
                .iter()
                .flat_map(|t| {
                    t.columns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !c.hidden)
                        .enumerate()
                        .map(|(n, (i, c))| {
                            vec![
                                int(t.id as i32),
                                text(&c.name),
                                int(c.ty.pg_oid()),
                                int(-1),
                                Datum::Int16(n as i16 + 1),
                                boolean(!t.is_view() && t.pk.contains(&i)),
                                boolean(false),
                                boolean(false),
                                text(""),
                                text(""),
                                int(if c.ty == V { DEFAULT_COLLATION_OID } else { 0 }),
                                Datum::Int16(-1),
                                // Plain storage for fixed-width values, extended otherwise.
                                text(match c.ty {
                                    V
                                    | DataType::Decimal
                                    | DataType::List(_)
                                    | DataType::Struct(_)
                                    | DataType::Bytea
                                    | DataType::Jsonb => "x",
                                    _ => "p",
                                }),
                                text(""),
                                int(-1),
                            ]
                        })
                        .collect::<Vec<_>>()
                })
                .collect(),
        ),
        "pg_type" => (
            vec![
                ("oid", I),
                ("typname", V),
                ("typnamespace", I),
                ("typowner", I),
                ("typlen", I16),
                ("typtype", V),
                ("typcollation", I),
                ("typelem", I),
                ("typarray", I),
                ("typnotnull", B),
                ("typbasetype", I),
                ("typtypmod", I),
                ("typrelid", I),
            ],
            DataType::pg_types()
                .into_iter()
                .map(|t| {
                    let (elem, array) = match t.element() {
                        Some(e) => (e.pg_oid(), 0),
                        None => (0, DataType::list(t).pg_oid()),
                    };
                    vec![
                        int(t.pg_oid()),
                        text(&t.pg_internal_name()),
                        int(PG_CATALOG_OID),
                        int(ROOT_ROLE_OID),
                        Datum::Int16(-1),
                        text("b"),
                        int(if t == V { DEFAULT_COLLATION_OID } else { 0 }),
                        int(elem),
                        int(array),
                        boolean(false),
                        int(0),
                        int(-1),
                        int(0),
                    ]
                })
                .collect(),
        ),
        "pg_collation" => (
            vec![
                ("oid", I),
                ("collname", V),
                ("collnamespace", I),
                ("collprovider", V),
            ],
            COLLATIONS
                .iter()
                .map(|(oid, n)| vec![int(*oid), text(n), int(PG_CATALOG_OID), text("c")])
                .collect(),
        ),
        "pg_index" => (
            vec![
                ("indexrelid", I),
                ("indrelid", I),
                ("indnatts", I16),
                ("indisunique", B),
                ("indisprimary", B),
                ("indisclustered", B),
                ("indisvalid", B),
                ("indisreplident", B),
                ("indkey", smallints),
                ("indnkeyatts", I16),
                ("indimmediate", B),
                ("indnullsnotdistinct", B),
                ("indpred", V),
            ],
            tables
                .iter()
                .filter_map(|i| {
                    let base = i.index_of()?;
                    Some(vec![
                        int(i.id as i32),
                        int(base as i32),
                        Datum::Int16(i.pk.len() as i16),
                        boolean(false),
                        boolean(false),
                        boolean(false),
                        boolean(true),
                        boolean(false),
                        null.clone(),
                        Datum::Int16(index_key(&tables, i).len() as i16),
                        boolean(true),
                        boolean(false),
                        null.clone(),
                    ])
                })
                .collect(),
        ),
        "information_schema.schemata" => (
            vec![("catalog_name", V), ("schema_name", V), ("schema_owner", V)],
            schemas_by_oid(catalog)
                .into_iter()
                .map(|(_, s)| vec![text(DATABASE_NAME), text(&s), text("root")])
                .collect(),
        ),
        "information_schema.tables" => (
            vec![
                ("table_catalog", V),
                ("table_schema", V),
                ("table_name", V),
                ("table_type", V),
                ("is_insertable_into", V),
            ],
            tables
                .iter()
                .filter(|t| t.index_of().is_none())
                .map(|t| {
                    let (kind, insertable) = if t.is_view() {
                        ("MATERIALIZED VIEW", "NO")
                    } else if t.logical.is_some() {
                        ("VIEW", "NO")
                    } else if t.source.is_some() {
                        ("SOURCE", "NO")
                    } else {
                        ("BASE TABLE", "YES")
                    };
                    vec![
                        text(DATABASE_NAME),
                        text(&t.schema),
                        text(&t.name),
                        text(kind),
                        text(insertable),
                    ]
                })
                .collect(),
        ),
        "information_schema.views" => (
            vec![
                ("table_catalog", V),
                ("table_schema", V),
                ("table_name", V),
                ("view_definition", V),
            ],
            tables
                .iter()
                .filter_map(|t| {
                    let query = t.view_query()?;
                    Some(vec![
                        text(DATABASE_NAME),
                        text(&t.schema),
                        text(&t.name),
                        text(&query),
                    ])
                })
                .collect(),
        ),
        "information_schema.columns" => (
            vec![
                ("table_catalog", V),
                ("table_schema", V),
                ("table_name", V),
                ("column_name", V),
                ("ordinal_position", I),
                ("column_default", V),
                ("is_nullable", V),
                ("data_type", V),
                ("udt_name", V),
            ],
            tables
                .iter()
                .filter(|t| t.index_of().is_none())
                .flat_map(|t| {
                    t.columns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !c.hidden)
                        .map(|(i, c)| {
                            let default = c
                                .default
                                .as_ref()
                                .and_then(|d| d.eval_constant().ok())
                                .and_then(|d| {
                                    let shown = d.to_text()?;
                                    Some(match d {
                                        Datum::Varchar(_) => format!(
                                            "'{}'::{}",
                                            shown.replace('\'', "''"),
                                            c.ty.pg_name()
                                        ),
                                        _ => shown,
                                    })
                                })
                                .map_or(null.clone(), |d| text(&d));
                            vec![
                                text(DATABASE_NAME),
                                text(&t.schema),
                                text(&t.name),
                                text(&c.name),
                                int(i as i32 + 1),
                                default,
                                text(if t.pk.contains(&i) { "NO" } else { "YES" }),
                                text(&if c.ty.element().is_some() {
                                    "ARRAY".to_string()
                                } else {
                                    c.ty.pg_name()
                                }),
                                text(&c.ty.pg_internal_name()),
                            ]
                        })
                        .collect::<Vec<_>>()
                })
                .collect(),
        ),
        "pg_proc" => (
            vec![
                ("oid", I),
                ("proname", V),
                ("pronamespace", I),
                ("proowner", I),
                ("prokind", V),
                ("prorettype", I),
                ("pronargs", I16),
                ("proretset", B),
                ("prosrc", V),
            ],
            functions_by_oid(catalog)
                .into_iter()
                .map(|(oid, f)| {
                    vec![
                        int(oid),
                        text(&f.name),
                        int(schema_oid(&f.schema)),
                        int(ROOT_ROLE_OID),
                        text("f"),
                        int(f.returns.pg_oid()),
                        Datum::Int16(f.args.len() as i16),
                        boolean(false),
                        text(&f.body),
                    ]
                })
                .collect(),
        ),
        // One role, a member of none.
        "pg_auth_members" => (
            vec![
                ("roleid", I),
                ("member", I),
                ("grantor", I),
                ("admin_option", B),
            ],
            vec![],
        ),
        "pg_roles" | "pg_user" | "pg_authid" => (
            vec![
                ("oid", I),
                ("rolname", V),
                ("rolsuper", B),
                ("rolinherit", B),
                ("rolcreaterole", B),
                ("rolcreatedb", B),
                ("rolcanlogin", B),
                ("rolreplication", B),
                ("rolconnlimit", I),
                ("rolbypassrls", B),
                ("rolvaliduntil", DataType::Timestamptz),
                ("usename", V),
                ("usesysid", I),
            ],
            vec![vec![
                int(ROOT_ROLE_OID),
                text("root"),
                boolean(true),
                boolean(true),
                boolean(true),
                boolean(true),
                boolean(true),
                boolean(false),
                int(-1),
                boolean(true),
                null.clone(),
                text("root"),
                int(ROOT_ROLE_OID),
            ]],
        ),
        "pg_database" => (
            vec![
                ("oid", I),
                ("datname", V),
                ("datdba", I),
                ("encoding", I),
                ("datlocprovider", V),
                ("datistemplate", B),
                ("datallowconn", B),
                ("datconnlimit", I),
                ("datcollate", V),
                ("datctype", V),
                ("daticulocale", V),
                ("datacl", texts),
            ],
            vec![vec![
                int(DATABASE_OID),
                text(DATABASE_NAME),
                int(ROOT_ROLE_OID),
                int(UTF8_ENCODING),
                text("c"),
                boolean(false),
                boolean(true),
                int(-1),
                text("C"),
                text("C"),
                null.clone(),
                null.clone(),
            ]],
        ),
        "pg_am" => (
            vec![("oid", I), ("amname", V)],
            vec![
                vec![int(HEAP_AM_OID), text("heap")],
                vec![int(BTREE_AM_OID), text("btree")],
            ],
        ),
        // Features this system does not have: the tables exist, empty, so that clients'
        // catalog queries run.
        "pg_attrdef" => (
            vec![("oid", I), ("adrelid", I), ("adnum", I16), ("adbin", V)],
            vec![],
        ),
        "pg_constraint" => (
            vec![
                ("oid", I),
                ("conname", V),
                ("connamespace", I),
                ("contype", V),
                ("condeferrable", B),
                ("condeferred", B),
                ("convalidated", B),
                ("conrelid", I),
                ("conindid", I),
                ("confrelid", I),
                ("conkey", smallints),
            ],
            vec![],
        ),
        "pg_policy" => (
            vec![
                ("oid", I),
                ("polname", V),
                ("polrelid", I),
                ("polcmd", V),
                ("polpermissive", B),
                ("polroles", ints),
                ("polqual", V),
                ("polwithcheck", V),
            ],
            vec![],
        ),
        "pg_statistic_ext" => (
            vec![
                ("oid", I),
                ("stxrelid", I),
                ("stxname", V),
                ("stxnamespace", I),
                ("stxowner", I),
                ("stxstattarget", I),
                ("stxkeys", smallints),
                ("stxkind", texts),
            ],
            vec![],
        ),
        "pg_publication" => (
            vec![
                ("oid", I),
                ("pubname", V),
                ("pubowner", I),
                ("puballtables", B),
                ("pubinsert", B),
                ("pubupdate", B),
                ("pubdelete", B),
                ("pubtruncate", B),
                ("pubviaroot", B),
            ],
            vec![],
        ),
        "pg_publication_namespace" => (vec![("oid", I), ("pnpubid", I), ("pnnspid", I)], vec![]),
        "pg_publication_rel" => (
            vec![
                ("oid", I),
                ("prpubid", I),
                ("prrelid", I),
                ("prqual", V),
                ("prattrs", smallints),
            ],
            vec![],
        ),
        "pg_inherits" => (
            vec![
                ("inhrelid", I),
                ("inhparent", I),
                ("inhseqno", I),
                ("inhdetachpending", B),
            ],
            vec![],
        ),
        _ => return None,
    };
    Some(SystemTable { columns, rows })
}

/// `CASE key WHEN oid THEN value ... ELSE otherwise END` over `entries`.
fn lookup(key: Expr, entries: Vec<(i32, String)>, otherwise: Expr) -> Expr {
    if entries.is_empty() {
        return otherwise;
    }
    Expr::Case {
        branches: entries
            .into_iter()
            .map(|(oid, value)| {
                (
                    Expr::binary(
                        BinaryOp::Eq,
                        key.clone(),
                        Expr::literal(Datum::Int32(oid), DataType::Int32),
                    ),
                    Expr::literal(Datum::Varchar(value), DataType::Varchar),
                )
            })
            .collect(),
        otherwise: Some(Box::new(otherwise)),
        ty: DataType::Varchar,
    }
}

fn null_text() -> Expr {
    Expr::literal(Datum::Null, DataType::Varchar)
}

/// Whether `name` is a function of PostgreSQL's catalog that [`system_function`] binds.
pub(crate) fn is_system_function(name: &str) -> bool {
    matches!(
        name,
        "pg_get_userbyid"
            | "pg_table_is_visible"
            | "pg_function_is_visible"
            | "pg_type_is_visible"
            | "pg_get_function_result"
            | "pg_get_function_arguments"
            | "pg_get_function_identity_arguments"
            | "format_type"
            | "pg_get_expr"
            | "pg_get_indexdef"
            | "pg_get_viewdef"
            | "pg_get_constraintdef"
            | "pg_get_statisticsobjdef_columns"
            | "pg_relation_is_publishable"
            | "pg_encoding_to_char"
            | "pg_size_pretty"
            | "quote_ident"
            | "pg_table_size"
            | "pg_relation_size"
            | "pg_total_relation_size"
            | "obj_description"
            | "col_description"
            | "shobj_description"
    ) || SESSION_FUNCTIONS.contains(&name)
}

/// Functions of the session, which take no arguments.
const SESSION_FUNCTIONS: &[&str] = &[
    "version",
    "current_user",
    "session_user",
    "current_role",
    "user",
    "current_database",
    "current_catalog",
    "current_schema",
];

/// A catalog function of `args`, answered from `catalog`.
pub(crate) fn system_function(
    name: &str,
    args: Vec<Expr>,
    catalog: Option<&dyn Catalog>,
) -> PlanResult<Expr> {
    let first = || -> PlanResult<Expr> {
        let arg = args.first().cloned().ok_or_else(|| {
            PlanError::UndefinedFunction(format!("function {name}() does not exist"))
        })?;
        coerce(arg, DataType::Int32)
    };
    let tables = catalog.map(|c| c.tables()).unwrap_or_default();
    let text = |s: &str| Expr::literal(Datum::Varchar(s.to_string()), DataType::Varchar);
    if !args.is_empty() && SESSION_FUNCTIONS.contains(&name) {
        return Err(PlanError::UndefinedFunction(format!(
            "function {name} takes no arguments"
        )));
    }
    Ok(match name {
        "version" => text(&format!(
            "PostgreSQL {PG_VERSION} (streamdb {})",
            env!("CARGO_PKG_VERSION")
        )),
        // Every session is the one role's, in the one database, resolving names in public.
        "current_user" | "session_user" | "current_role" | "user" => text("root"),
        "current_database" | "current_catalog" => text(DATABASE_NAME),
        "current_schema" => text(DEFAULT_SCHEMA),
        // Every object is owned by the one role.
        "pg_get_userbyid" => lookup(
            first()?,
            vec![(ROOT_ROLE_OID, "root".to_string())],
            null_text(),
        ),
        "pg_table_is_visible" => {
            let visible = tables
                .iter()
                .filter(|t| t.schema == DEFAULT_SCHEMA)
                .map(|t| t.id as i32);
            one_of(first()?, visible)
        }
        "pg_function_is_visible" => {
            let visible = catalog
                .map(functions_by_oid)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, f)| f.schema == DEFAULT_SCHEMA)
                .map(|(oid, _)| oid);
            one_of(first()?, visible)
        }
        // Every type is built in, in pg_catalog, which is always searched.
        "pg_type_is_visible" => Expr::literal(Datum::Bool(true), DataType::Boolean),
        "pg_get_function_result" => lookup(
            first()?,
            catalog
                .map(functions_by_oid)
                .unwrap_or_default()
                .into_iter()
                .map(|(oid, f)| (oid, f.returns.pg_name()))
                .collect(),
            null_text(),
        ),
        "pg_get_function_arguments" | "pg_get_function_identity_arguments" => lookup(
            first()?,
            catalog
                .map(functions_by_oid)
                .unwrap_or_default()
                .into_iter()
                .map(|(oid, f)| {
                    let args: Vec<String> = f
                        .args
                        .iter()
                        .map(|(name, ty)| format!("{name} {}", ty.pg_name()))
                        .collect();
                    (oid, args.join(", "))
                })
                .collect(),
            null_text(),
        ),
        "format_type" => Expr::Func {
            func: Func::FormatType,
            args: vec![first()?],
            ty: DataType::Varchar,
        },
        // Expressions are kept as their text.
        "pg_get_expr" => match args.into_iter().next() {
            Some(e) => coerce(e, DataType::Varchar)?,
            None => null_text(),
        },
        // `pg_get_indexdef(index, 0, ..)` is the index's definition, with a column number
        // that key column's name.
        "pg_get_indexdef" => {
            let index = first()?;
            let definition = lookup(
                index.clone(),
                catalog.map(index_definitions).unwrap_or_default(),
                null_text(),
            );
            match args.get(1) {
                None => definition,
                Some(column) => {
                    let column = coerce(column.clone(), DataType::Int32)?;
                    let is = |e: &Expr, v: i32| {
                        Expr::binary(
                            BinaryOp::Eq,
                            e.clone(),
                            Expr::literal(Datum::Int32(v), DataType::Int32),
                        )
                    };
                    let mut branches = vec![(is(&column, 0), definition)];
                    for i in tables.iter().filter(|t| t.index_of().is_some()) {
                        for (n, name) in index_key(&tables, i).iter().enumerate() {
                            branches.push((
                                Expr::binary(
                                    BinaryOp::And,
                                    is(&index, i.id as i32),
                                    is(&column, n as i32 + 1),
                                ),
                                Expr::literal(Datum::Varchar(name.to_string()), DataType::Varchar),
                            ));
                        }
                    }
                    Expr::Case {
                        branches,
                        otherwise: Some(Box::new(null_text())),
                        ty: DataType::Varchar,
                    }
                }
            }
        }
        // Sizes are not tracked per relation.
        "pg_table_size" | "pg_relation_size" | "pg_total_relation_size" => {
            Expr::literal(Datum::Int64(0), DataType::Int64)
        }
        "pg_get_viewdef" => lookup(
            first()?,
            tables
                .iter()
                .filter_map(|t| Some((t.id as i32, format!("{};", t.view_query()?))))
                .collect(),
            null_text(),
        ),
        "pg_encoding_to_char" => lookup(
            first()?,
            vec![(UTF8_ENCODING, "UTF8".to_string())],
            Expr::literal(Datum::Varchar(String::new()), DataType::Varchar),
        ),
        "pg_relation_is_publishable" => Expr::literal(Datum::Bool(false), DataType::Boolean),
        "quote_ident" => Expr::Func {
            func: Func::QuoteIdent,
            args: vec![coerce(
                args.into_iter().next().ok_or_else(|| {
                    PlanError::UndefinedFunction("function quote_ident() does not exist".into())
                })?,
                DataType::Varchar,
            )?],
            ty: DataType::Varchar,
        },
        "pg_size_pretty" => Expr::Func {
            func: Func::SizePretty,
            args: vec![coerce(
                args.into_iter().next().ok_or_else(|| {
                    PlanError::UndefinedFunction("function pg_size_pretty() does not exist".into())
                })?,
                DataType::Int64,
            )?],
            ty: DataType::Varchar,
        },
        // Constraints, statistics objects and comments do not exist here.
        _ => null_text(),
    })
}

/// `oid = ANY (oids)`: whether an oid is one of `oids`.
fn one_of(oid: Expr, oids: impl Iterator<Item = i32>) -> Expr {
    let oids = oids.map(Datum::Int32).collect();
    Expr::Func {
        func: Func::ArrayAny(BinaryOp::Eq),
        args: vec![
            oid,
            Expr::literal(Datum::List(oids), DataType::list(DataType::Int32)),
        ],
        ty: DataType::Boolean,
    }
}

/// `value::regclass` (and `regtype`, `regnamespace`): a name for an oid, an oid for a name.
/// `None` when `to` is not one of these types.
pub(crate) fn object_reference_cast(
    value: Expr,
    to: &ast::DataType,
    catalog: Option<&dyn Catalog>,
) -> Option<PlanResult<Expr>> {
    let kind = match to {
        // The parser knows `regclass` itself; `regtype` and the qualified names it does not.
        ast::DataType::Regclass => "regclass".to_string(),
        ast::DataType::Custom(name, _) => {
            let name = name.to_string().to_lowercase();
            name.strip_prefix("pg_catalog.")
                .unwrap_or(&name)
                .to_string()
        }
        _ => return None,
    };
    if !matches!(kind.as_str(), "regclass" | "regtype" | "regnamespace") {
        return None;
    }
    let tables = catalog.map(|c| c.tables()).unwrap_or_default();
    let names: Vec<(i32, String)> = match kind.as_str() {
        "regclass" => tables
            .iter()
            .map(|t| (t.id as i32, t.name.clone()))
            .collect(),
        "regnamespace" => catalog.map(schemas_by_oid).unwrap_or_default(),
        _ => DataType::pg_types()
            .into_iter()
            .map(|t| (t.pg_oid(), t.pg_name()))
            .collect(),
    };
    Some((|| {
        if value.data_type() == DataType::Varchar {
            // A name: its oid, which must exist.
            let text = match value.eval_constant() {
                Ok(Datum::Varchar(s)) => s,
                Ok(_) => return Ok(Expr::literal(Datum::Null, DataType::Int32)),
                Err(_) => {
                    return Err(PlanError::NotSupported(format!(
                        "a {kind} of a non-constant name"
                    )));
                }
            };
            let wanted = text.rsplit('.').next().unwrap_or(&text).trim_matches('"');
            return names
                .iter()
                .find(|(_, n)| n == wanted)
                .map(|(oid, _)| Expr::literal(Datum::Int32(*oid), DataType::Int32))
                .ok_or_else(|| match kind.as_str() {
                    "regclass" => PlanError::UndefinedTable(text.clone()),
                    _ => PlanError::UndefinedObject(format!("{kind} \"{text}\" does not exist")),
                });
        }
        // An oid: its name, or the number where nothing has it.
        let oid = coerce(value, DataType::Int32)?;
        let otherwise = Expr::Cast {
            expr: Box::new(oid.clone()),
            to: DataType::Varchar,
        };
        Ok(lookup(oid, names, otherwise))
    })())
}
