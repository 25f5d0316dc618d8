//! The `pg_catalog` tables clients query (psql's `\dt` first), built from the catalog when a
//! statement is bound, so they always agree with it.

use dataflow::types::{DataType, Datum};

use crate::catalog::{Catalog, DEFAULT_SCHEMA};

/// Oids PostgreSQL gives its built-in namespaces; user schemas get oids from 16384 on.
const PG_CATALOG_OID: i32 = 11;
const PUBLIC_OID: i32 = 2200;
const FIRST_USER_OID: i32 = 16384;
/// The heap access method.
const HEAP_AM_OID: i32 = 2;

/// A system table's contents.
pub(crate) struct SystemTable {
    /// Column names and types.
    pub columns: Vec<(&'static str, DataType)>,
    /// The rows.
    pub rows: Vec<Vec<Datum>>,
}

/// The contents of system table `name`, if there is one.
pub(crate) fn system_table(catalog: &dyn Catalog, name: &str) -> Option<SystemTable> {
    let mut schemas = catalog.schemas();
    schemas.sort();
    let schema_oid = |schema: &str| match schema {
        "pg_catalog" => PG_CATALOG_OID,
        DEFAULT_SCHEMA => PUBLIC_OID,
        other => FIRST_USER_OID + schemas.iter().position(|s| s == other).unwrap_or(0) as i32,
    };
    let text = |s: &str| Datum::Varchar(s.to_string());
    let (columns, rows) = match name {
        "pg_namespace" => (
            vec![
                ("oid", DataType::Int32),
                ("nspname", DataType::Varchar),
                ("nspowner", DataType::Int32),
            ],
            std::iter::once("pg_catalog".to_string())
                .chain(schemas.iter().cloned())
                .map(|s| vec![Datum::Int32(schema_oid(&s)), text(&s), Datum::Int32(10)])
                .collect(),
        ),
        "pg_class" => (
            vec![
                ("oid", DataType::Int32),
                ("relname", DataType::Varchar),
                ("relnamespace", DataType::Int32),
                ("relkind", DataType::Varchar),
                ("relowner", DataType::Int32),
                ("relam", DataType::Int32),
            ],
            catalog
                .tables()
                .iter()
                .map(|t| {
                    vec![
                        Datum::Int32(t.id as i32),
                        text(&t.name),
                        Datum::Int32(schema_oid(&t.schema)),
                        text(match (t.is_view(), t.index_of()) {
                            (true, _) => "m",
                            (_, Some(_)) => "i",
                            _ => "r",
                        }),
                        Datum::Int32(10),
                        Datum::Int32(HEAP_AM_OID),
                    ]
                })
                .collect(),
        ),
        "pg_am" => (
            vec![("oid", DataType::Int32), ("amname", DataType::Varchar)],
            vec![vec![Datum::Int32(HEAP_AM_OID), text("heap")]],
        ),
        _ => return None,
    };
    Some(SystemTable { columns, rows })
}
