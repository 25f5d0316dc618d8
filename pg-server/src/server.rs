//! The PostgreSQL wire protocol front end (pgwire): simple and extended query protocols, text
//! and binary results, SQLSTATE errors.

use std::net::SocketAddr;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{
    Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    IntervalMonthDayNanoType, Time64MicrosecondType, TimestampMicrosecondType,
};
use async_trait::async_trait;
use bytes::BytesMut;
use chrono::{DateTime, NaiveDate, NaiveTime};
use dataflow::text::{format_float, format_interval, format_time, format_timestamp};
use dataflow::types::{DataType, Datum, Decimal, StructType};
use futures::{Sink, SinkExt, stream};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    CopyResponse, DataRowEncoder, DescribePortalResponse, DescribeStatementResponse, FieldFormat,
    FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{NoopQueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ConnectionManager, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::PgWireFrontendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql, accepts, to_sql_checked};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use crate::database::{CopyIn, Database, Session, StatementResult};
use crate::error::Error;

fn pg_type(t: DataType) -> Type {
    Type::from_oid(t.pg_oid() as u32).expect("every type has a PostgreSQL oid")
}

fn to_pgwire_error(e: Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&e)))
}

fn fields(columns: &[(String, DataType)], format: &Format) -> Arc<Vec<FieldInfo>> {
    Arc::new(
        columns
            .iter()
            .enumerate()
            .map(|(i, (name, ty))| {
                FieldInfo::new(name.clone(), None, None, pg_type(*ty), format.format_for(i))
            })
            .collect(),
    )
}

/// `ToSqlText` of a result value type: the text `$text` computes from the value.
macro_rules! text_form {
    ($ty:ty, |$value:ident| $text:expr) => {
        impl ToSqlText for $ty {
            fn to_sql_text(
                &self,
                _ty: &Type,
                out: &mut BytesMut,
                _options: &pgwire::types::format::FormatOptions,
            ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
                let $value = self;
                out.extend_from_slice($text.as_bytes());
                Ok(IsNull::No)
            }
        }
    };
}

/// An `interval` result value: text is PostgreSQL's output style, binary its 16 bytes
/// (microseconds, days, months).
#[derive(Debug)]
struct Interval {
    months: i32,
    days: i32,
    nanos: i64,
}

impl ToSql for Interval {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&(self.nanos / 1000).to_be_bytes());
        out.extend_from_slice(&self.days.to_be_bytes());
        out.extend_from_slice(&self.months.to_be_bytes());
        Ok(IsNull::No)
    }

    accepts!(INTERVAL);
    to_sql_checked!();
}

text_form!(Interval, |value| format_interval(
    value.months,
    value.days,
    value.nanos
));

/// A `jsonb` result value: text is the document, binary a version byte (1) and the text.
#[derive(Debug)]
struct Jsonb<'a>(&'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&[1]);
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    accepts!(JSONB);
    to_sql_checked!();
}

text_form!(Jsonb<'_>, |value| value.0);

/// A struct result value: text is PostgreSQL's record form, binary its record form (the
/// field count, then each field's type oid and value).
#[derive(Debug)]
struct PgRecord {
    value: Datum,
    ty: StructType,
}

impl ToSql for PgRecord {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let Datum::Struct(values) = &self.value else {
            return Err("not a struct".into());
        };
        out.extend_from_slice(&(values.len() as i32).to_be_bytes());
        for ((_, ty), value) in self.ty.fields().iter().zip(values) {
            out.extend_from_slice(&ty.pg_oid().to_be_bytes());
            if value.is_null() {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            let start = out.len();
            out.extend_from_slice(&0i32.to_be_bytes());
            match (value, ty) {
                (Datum::List(_), _) => PgArray(value.clone()).to_sql(&pg_type(*ty), out)?,
                (Datum::Struct(_), DataType::Struct(inner)) => PgRecord {
                    value: value.clone(),
                    ty: *inner,
                }
                .to_sql(&pg_type(*ty), out)?,
                _ => PgArray::element(value, &pg_type(*ty), out)?,
            };
            let len = (out.len() - start - 4) as i32;
            out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(IsNull::No)
    }

    accepts!(RECORD);
    to_sql_checked!();
}

text_form!(PgRecord, |value| value.value.to_text().unwrap_or_default());

/// An array result value in PostgreSQL's binary form: dimensions, then each element.
#[derive(Debug)]
struct PgArray(Datum);

impl PgArray {
    /// Appends the binary form of `d` (non-NULL) of element type `ty`.
    fn element(
        d: &Datum,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match d {
            Datum::Bool(v) => v.to_sql(ty, out),
            Datum::Int16(v) => v.to_sql(ty, out),
            Datum::Int32(v) => v.to_sql(ty, out),
            Datum::Int64(v) => v.to_sql(ty, out),
            Datum::Float32(v) => v.to_sql(ty, out),
            Datum::Float64(v) => v.to_sql(ty, out),
            Datum::Decimal(v) => Numeric(*v).to_sql(ty, out),
            Datum::Date(v) => NaiveDate::from_num_days_from_ce_opt(v + 719_163)
                .unwrap_or_default()
                .to_sql(ty, out),
            Datum::Time(us) => NaiveTime::from_num_seconds_from_midnight_opt(
                (us / 1_000_000) as u32,
                (us % 1_000_000) as u32 * 1000,
            )
            .unwrap_or_default()
            .to_sql(ty, out),
            Datum::Timestamp(us) => DateTime::from_timestamp_micros(*us)
                .unwrap_or_default()
                .naive_utc()
                .to_sql(ty, out),
            Datum::Timestamptz(us) => DateTime::from_timestamp_micros(*us)
                .unwrap_or_default()
                .to_sql(ty, out),
            Datum::Interval {
                months,
                days,
                nanos,
            } => Interval {
                months: *months,
                days: *days,
                nanos: *nanos,
            }
            .to_sql(ty, out),
            Datum::Bytea(v) => v.as_slice().to_sql(ty, out),
            Datum::Jsonb(v) => Jsonb(v).to_sql(ty, out),
            other => {
                out.extend_from_slice(other.to_text().unwrap_or_default().as_bytes());
                Ok(IsNull::No)
            }
        }
    }
}

impl ToSql for PgArray {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let Datum::List(items) = &self.0 else {
            return Err("not an array".into());
        };
        let elem = match ty.kind() {
            postgres_types::Kind::Array(e) => e.clone(),
            _ => return Err("not an array type".into()),
        };
        // Nested arrays are PostgreSQL's multidimensional arrays: the lengths of each
        // dimension, then the innermost elements in order. They must be rectangular.
        // An empty array has no dimensions.
        let mut dims = if items.is_empty() {
            vec![]
        } else {
            vec![items.len()]
        };
        let mut level: &[Datum] = items;
        while let Some(Datum::List(inner)) = level.first() {
            dims.push(inner.len());
            level = inner;
        }
        let mut leaves = Vec::new();
        fn flatten<'a>(items: &'a [Datum], dims: &[usize], out: &mut Vec<&'a Datum>) -> bool {
            match dims {
                [n] => {
                    out.extend(items);
                    items.len() == *n && !items.iter().any(|d| matches!(d, Datum::List(_)))
                }
                [n, rest @ ..] => {
                    items.len() == *n
                        && items.iter().all(|d| match d {
                            Datum::List(inner) => flatten(inner, rest, out),
                            _ => false,
                        })
                }
                [] => items.is_empty(),
            }
        }
        if !flatten(items, &dims, &mut leaves) {
            return Err("multidimensional arrays must have sub-arrays of one length".into());
        }
        out.extend_from_slice(&(dims.len() as i32).to_be_bytes());
        out.extend_from_slice(&i32::from(leaves.iter().any(|d| d.is_null())).to_be_bytes());
        out.extend_from_slice(&elem.oid().to_be_bytes());
        for n in &dims {
            out.extend_from_slice(&(*n as i32).to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
        }
        for item in leaves {
            if item.is_null() {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            let start = out.len();
            out.extend_from_slice(&0i32.to_be_bytes());
            Self::element(item, &elem, out)?;
            let len = (out.len() - start - 4) as i32;
            out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(ty.kind(), postgres_types::Kind::Array(_))
    }

    to_sql_checked!();
}

text_form!(PgArray, |value| value.0.to_text().unwrap_or_default());

/// A `numeric` result value: text is its decimal form, binary PostgreSQL's base-10000 form.
#[derive(Debug)]
struct Numeric(Decimal);

impl ToSql for Numeric {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0.to_pg_binary());
        Ok(IsNull::No)
    }

    accepts!(NUMERIC);
    to_sql_checked!();
}

text_form!(Numeric, |value| value.0.to_string());

/// Encodes every row of `batch` with `encoder`; a per-row loop, as the wire format is rows.
fn encode_batch(
    batch: &RecordBatch,
    format: &Format,
    encoder: &mut DataRowEncoder,
    out: &mut Vec<PgWireResult<DataRow>>,
) {
    for row in 0..batch.num_rows() {
        for (i, column) in batch.columns().iter().enumerate() {
            let text = format.format_for(i) == pgwire::api::results::FieldFormat::Text;
            let c = column.as_ref();
            let null = c.is_null(row);
            macro_rules! put {
                ($v:expr) => {
                    encoder.encode_field(&if null { None } else { Some($v) })
                };
            }
            let result = match DataType::from_arrow(c.data_type()).expect("results hold SQL types")
            {
                DataType::List(_) => put!(PgArray(Datum::from_array(c, row))),
                DataType::Struct(ty) => put!(PgRecord {
                    value: Datum::from_array(c, row),
                    ty,
                }),
                DataType::Boolean => put!(c.as_boolean().value(row)),
                DataType::Int16 => put!(c.as_primitive::<Int16Type>().value(row)),
                DataType::Int32 => put!(c.as_primitive::<Int32Type>().value(row)),
                DataType::Int64 => put!(c.as_primitive::<Int64Type>().value(row)),
                DataType::Float32 if text => put!(format_float(
                    f64::from(c.as_primitive::<Float32Type>().value(row)),
                    6
                )),
                DataType::Float32 => put!(c.as_primitive::<Float32Type>().value(row)),
                DataType::Float64 if text => {
                    put!(format_float(c.as_primitive::<Float64Type>().value(row), 15))
                }
                DataType::Float64 => put!(c.as_primitive::<Float64Type>().value(row)),
                DataType::Decimal => put!(Numeric(
                    Decimal::from_bytes(c.as_fixed_size_binary().value(row))
                        .expect("numeric arrays hold valid values")
                )),
                DataType::Varchar => put!(c.as_string::<i32>().value(row)),
                DataType::Bytea => put!(c.as_binary::<i32>().value(row)),
                DataType::Jsonb => put!(Jsonb(c.as_string::<i64>().value(row))),
                DataType::Date => put!(
                    NaiveDate::from_num_days_from_ce_opt(
                        c.as_primitive::<Date32Type>().value(row) + 719_163
                    )
                    .unwrap_or_default()
                ),
                DataType::Time if text => {
                    let us = c.as_primitive::<Time64MicrosecondType>().value(row);
                    put!(format_time(us))
                }
                DataType::Timestamp | DataType::Timestamptz if text => {
                    let us = c.as_primitive::<TimestampMicrosecondType>().value(row);
                    let with_zone = c.data_type() != &DataType::Timestamp.to_arrow();
                    put!(format_timestamp(us, with_zone))
                }
                DataType::Time => {
                    let us = c.as_primitive::<Time64MicrosecondType>().value(row);
                    put!(
                        NaiveTime::from_num_seconds_from_midnight_opt(
                            (us / 1_000_000) as u32,
                            (us % 1_000_000) as u32 * 1000
                        )
                        .unwrap_or_default()
                    )
                }
                DataType::Timestamp => put!(
                    DateTime::from_timestamp_micros(
                        c.as_primitive::<TimestampMicrosecondType>().value(row)
                    )
                    .unwrap_or_default()
                    .naive_utc()
                ),
                DataType::Timestamptz => {
                    put!(
                        DateTime::from_timestamp_micros(
                            c.as_primitive::<TimestampMicrosecondType>().value(row)
                        )
                        .unwrap_or_default()
                    )
                }
                DataType::Interval => {
                    let v = c.as_primitive::<IntervalMonthDayNanoType>().value(row);
                    put!(Interval {
                        months: v.months,
                        days: v.days,
                        nanos: v.nanoseconds,
                    })
                }
            };
            if let Err(e) = result {
                out.push(Err(e));
                return;
            }
        }
        out.push(Ok(encoder.take_row()));
    }
}

fn to_response(result: StatementResult, format: &Format) -> Response {
    match result {
        StatementResult::Rows {
            columns,
            batches,
            tag,
        } => {
            let schema = fields(&columns, format);
            let mut encoder = DataRowEncoder::new(Arc::clone(&schema));
            let mut rows = Vec::new();
            for batch in &batches {
                encode_batch(batch, format, &mut encoder, &mut rows);
            }
            let mut response = QueryResponse::new(schema, stream::iter(rows));
            if let Some(tag) = tag {
                response.set_command_tag(&tag);
            }
            Response::Query(response)
        }
        StatementResult::Command { tag, rows } => {
            let t = Tag::new(&tag);
            Response::Execution(match (tag.as_str(), rows) {
                ("INSERT", Some(n)) => t.with_oid(0).with_rows(n),
                (_, Some(n)) => t.with_rows(n),
                (_, None) => t,
            })
        }
    }
}

/// Walks `sql`, calling `visit` with the offset of every byte outside string literals,
/// quoted identifiers, comments and dollar-quoted strings; `visit` returns how many bytes it
/// consumed (at least one).
fn scan_code(sql: &str, mut visit: impl FnMut(usize) -> usize) {
    let b = sql.as_bytes();
    let mut i = 0;
    let skip_quoted = |mut i: usize, quote: u8, backslash: bool| {
        i += 1;
        while i < b.len() {
            if backslash && b[i] == b'\\' {
                i += 2;
                continue;
            }
            if b[i] == quote {
                if b.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                return i + 1;
            }
            i += 1;
        }
        i
    };
    while i < b.len() {
        match b[i] {
            b'\'' => {
                let escaped = i > 0 && matches!(b[i - 1], b'e' | b'E');
                i = skip_quoted(i, b'\'', escaped);
            }
            b'"' => i = skip_quoted(i, b'"', false),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(b.len(), |n| i + n + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
            }
            b'$' if !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                // A dollar-quoted string: $tag$ ... $tag$.
                let tag_len = b[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count();
                if b.get(i + 1 + tag_len) == Some(&b'$') {
                    let tag = &sql[i..i + tag_len + 2];
                    i = sql[i + tag.len()..]
                        .find(tag)
                        .map_or(b.len(), |n| i + tag.len() + n + tag.len());
                } else {
                    i += visit(i).max(1);
                }
            }
            _ => i += visit(i).max(1),
        }
    }
}

/// Byte ranges and numbers of the `$n` placeholders in `sql`.
fn placeholders(sql: &str) -> Vec<(std::ops::Range<usize>, usize)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    scan_code(sql, |i| {
        if b[i] != b'$' {
            return 1;
        }
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let n = sql[i + 1..i + 1 + digits].parse().unwrap_or(usize::MAX);
        out.push((i..i + 1 + digits, n));
        1 + digits
    });
    out
}

/// The statements of `sql`, split at top-level semicolons, without empty ones.
fn split_statements(sql: &str) -> Vec<&str> {
    let mut cuts = Vec::new();
    scan_code(sql, |i| {
        if sql.as_bytes()[i] == b';' {
            cuts.push(i);
        }
        1
    });
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain(std::iter::once(sql.len())) {
        let stmt = sql[start..cut].trim();
        if !stmt.is_empty() {
            out.push(stmt);
        }
        start = cut + 1;
    }
    out
}

/// Replaces `$n` placeholders with literals of the bound parameter values.
fn substitute_parameters(sql: &str, params: &[Option<String>]) -> PgWireResult<String> {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for (range, n) in placeholders(sql) {
        out.push_str(&sql[last..range.start]);
        match params.get(n.wrapping_sub(1)) {
            Some(Some(v)) if v.contains('\0') => {
                return Err(to_pgwire_error(Error::sql(
                    "22021",
                    "invalid byte sequence for encoding \"UTF8\": 0x00",
                )));
            }
            Some(Some(v)) => {
                out.push('\'');
                out.push_str(&v.replace('\'', "''"));
                out.push('\'');
            }
            Some(None) => out.push_str("NULL"),
            None => {
                return Err(to_pgwire_error(Error::sql(
                    "42P02",
                    format!("there is no parameter ${n}"),
                )));
            }
        }
        last = range.end;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

/// The text of parameter `i` of a portal, decoded (from text or binary) as type `ty`.
fn parameter_text(portal: &Portal<String>, i: usize, ty: &Type) -> PgWireResult<Option<String>> {
    macro_rules! as_text {
        ($t:ty) => {
            portal
                .parameter::<$t>(i, ty)
                .map(|v| v.map(|v| v.to_string()))
        };
    }
    match *ty {
        Type::BOOL => as_text!(bool),
        Type::INT2 => as_text!(i16),
        Type::INT4 => as_text!(i32),
        Type::INT8 => as_text!(i64),
        Type::FLOAT4 => as_text!(f32),
        Type::FLOAT8 => as_text!(f64),
        Type::DATE => as_text!(NaiveDate),
        Type::TIME => as_text!(NaiveTime),
        Type::TIMESTAMP => as_text!(chrono::NaiveDateTime),
        Type::TIMESTAMPTZ => portal
            .parameter::<DateTime<chrono::FixedOffset>>(i, ty)
            .map(|v| v.map(|v| v.to_rfc3339())),
        Type::VARCHAR | Type::TEXT | Type::BPCHAR | Type::NAME => as_text!(String),
        Type::NUMERIC if portal.parameter_format.format_for(i) == FieldFormat::Binary => {
            match portal.parameters.get(i).cloned().flatten() {
                Some(b) => Decimal::from_pg_binary(&b)
                    .map(|d| Some(d.to_string()))
                    .map_err(|e| to_pgwire_error(Error::from(e))),
                None => Ok(None),
            }
        }
        Type::BYTEA if portal.parameter_format.format_for(i) == FieldFormat::Binary => Ok(portal
            .parameters
            .get(i)
            .cloned()
            .flatten()
            .map(|b| dataflow::text::format_bytea(&b))),
        // Binary jsonb is a version byte (1) and the text.
        Type::JSONB if portal.parameter_format.format_for(i) == FieldFormat::Binary => {
            match portal.parameters.get(i).cloned().flatten() {
                Some(b) if b.first() == Some(&1) => {
                    Ok(Some(String::from_utf8_lossy(&b[1..]).into_owned()))
                }
                Some(_) => Err(to_pgwire_error(Error::sql(
                    "22P03",
                    "unsupported jsonb version number",
                ))),
                None => Ok(None),
            }
        }
        _ => Ok(portal
            .parameters
            .get(i)
            .cloned()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())),
    }
}

/// One client connection: its session settings and the database.
pub struct Connection {
    db: Database,
    session: Mutex<Session>,
    parser: Arc<NoopQueryParser>,
    /// A `COPY ... FROM STDIN` in progress: its target and the data received so far.
    copy: Mutex<Option<(CopyIn, Vec<u8>)>>,
    /// Registers the connection so a cancel request (by pid and secret key) reaches it.
    connections: Arc<ConnectionManager>,
}

impl Connection {
    fn new(db: Database, connections: Arc<ConnectionManager>) -> Self {
        Connection {
            db,
            session: Mutex::new(Session::default()),
            parser: Arc::new(NoopQueryParser::new()),
            copy: Mutex::new(None),
            connections,
        }
    }

    async fn run(&self, sql: &str, format: &Format) -> Vec<Response> {
        let statements = split_statements(sql);
        if statements.is_empty() {
            return vec![Response::EmptyQuery];
        }
        let mut session = self.session.lock().await;
        let mut responses = Vec::new();
        for stmt in statements {
            match self.start_copy(stmt).await {
                Ok(Some(response)) => {
                    // COPY FROM STDIN ends the query: the client now sends data.
                    responses.push(response);
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    responses.push(Response::Error(Box::new(error_info(&e))));
                    break;
                }
            }
            match self.db.execute(&mut session, stmt).await {
                Ok(results) => {
                    responses.extend(results.into_iter().map(|r| to_response(r, format)))
                }
                Err(e) => {
                    responses.push(Response::Error(Box::new(error_info(&e))));
                    break;
                }
            }
        }
        responses
    }

    /// Enters copy-in mode if `stmt` is `COPY ... FROM STDIN`.
    async fn start_copy(&self, stmt: &str) -> Result<Option<Response>, Error> {
        if !stmt
            .get(..4)
            .is_some_and(|w| w.eq_ignore_ascii_case("copy"))
        {
            return Ok(None);
        }
        let parsed = sql_planner::parse_sql(stmt)?;
        let Some(target) = parsed
            .first()
            .map(|s| self.db.copy_in_target(s))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        let width = target.width();
        *self.copy.lock().await = Some((target, Vec::new()));
        Ok(Some(Response::CopyIn(CopyResponse::new(
            0,
            width,
            stream::empty(),
        ))))
    }

    /// Parameter types and result fields of `sql` (the first statement).
    fn describe(
        &self,
        sql: &str,
        format: &Format,
    ) -> PgWireResult<(Vec<Type>, Arc<Vec<FieldInfo>>)> {
        let d = match self.db.describe_special(sql) {
            Some(d) => d,
            None => {
                let statements =
                    sql_planner::parse_sql(sql).map_err(|e| to_pgwire_error(e.into()))?;
                let Some(stmt) = statements.first() else {
                    return Ok((vec![], fields(&[], format)));
                };
                self.db.describe(stmt).map_err(to_pgwire_error)?
            }
        };
        Ok((
            d.params.into_iter().map(pg_type).collect(),
            fields(&d.columns, format),
        ))
    }
}

/// The error response of `e`: severity, SQLSTATE and message.
fn error_info(e: &Error) -> ErrorInfo {
    ErrorInfo::new("ERROR".into(), e.sqlstate().into(), e.to_string())
}

impl NoopStartupHandler for Connection {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(Arc::clone(&self.connections))
    }
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
    {
        Ok(self.run(query, &Format::UnifiedText).await)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = String;
    type QueryParser = NoopQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
    {
        let declared = &portal.statement.parameter_types;
        let known = |i: usize| {
            declared
                .get(i)
                .cloned()
                .flatten()
                .filter(|t| *t != Type::UNKNOWN)
        };
        let inferred = if (0..portal.parameters.len()).all(|i| known(i).is_some()) {
            Vec::new()
        } else {
            self.describe(&portal.statement.statement, &Format::UnifiedText)?
                .0
        };
        let params = (0..portal.parameters.len())
            .map(|i| {
                let ty = known(i)
                    .or_else(|| inferred.get(i).cloned())
                    .unwrap_or(Type::VARCHAR);
                parameter_text(portal, i, &ty)
            })
            .collect::<PgWireResult<Vec<_>>>()?;
        let sql = substitute_parameters(&portal.statement.statement, &params)?;
        let mut responses = self.run(&sql, &portal.result_column_format).await;
        match responses.len() {
            0 => Ok(Response::EmptyQuery),
            _ => match responses.remove(0) {
                Response::Error(e) => Err(PgWireError::UserError(e)),
                r => Ok(r),
            },
        }
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        stmt: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
    {
        let (inferred, fields) = self.describe(&stmt.statement, &Format::UnifiedBinary)?;
        // Types the client declared win over inferred ones.
        let param_types: Vec<Type> = inferred
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                stmt.parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|d| *d != Type::UNKNOWN)
                    .unwrap_or(t)
            })
            .collect();
        Ok(DescribeStatementResponse::new(param_types, fields.to_vec()))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
    {
        let (_, fields) =
            self.describe(&portal.statement.statement, &portal.result_column_format)?;
        Ok(DescribePortalResponse::new(fields.to_vec()))
    }
}

#[async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some((_, data)) = self.copy.lock().await.as_mut() {
            data.extend_from_slice(&copy_data.data);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some((target, data)) = self.copy.lock().await.take() else {
            return Err(to_pgwire_error(Error::sql(
                "08P01",
                "COPY data without COPY",
            )));
        };
        let session = self.session.lock().await;
        match self
            .db
            .copy_in(&session, &target, &data)
            .await
            .map_err(to_pgwire_error)?
        {
            StatementResult::Command { tag, rows } => {
                let tag = rows.map_or(Tag::new(&tag), |n| Tag::new(&tag).with_rows(n));
                client
                    .send(PgWireBackendMessage::CommandComplete(tag.into()))
                    .await?;
                Ok(())
            }
            StatementResult::Rows { .. } => {
                Err(to_pgwire_error(Error::sql("XX000", "COPY returned rows")))
            }
        }
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.copy.lock().await.take();
        to_pgwire_error(Error::sql(
            "57014",
            format!("COPY from stdin failed: {}", fail.message),
        ))
    }
}

/// How clients authenticate.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// Anyone who can connect is trusted (the default on loopback).
    #[default]
    Trust,
    /// SCRAM-SHA-256 against this password (any user name).
    Password(String),
}

const SCRAM_ITERATIONS: usize = 4096;

/// The password, salted once at startup: hashing per connection would cost every login the
/// full key stretching.
#[derive(Debug)]
struct SaltedPassword {
    salt: Vec<u8>,
    salted: Vec<u8>,
}

#[async_trait]
impl AuthSource for SaltedPassword {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        Ok(Password::new(Some(self.salt.clone()), self.salted.clone()))
    }
}

/// Trust or SCRAM, decided once per server.
enum Startup {
    Trust(Arc<Connection>),
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Trust(connection) => connection.on_startup(client, message).await,
            Startup::Scram(handler) => handler.on_startup(client, message).await,
        }
    }
}

struct Handlers {
    connection: Arc<Connection>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.connection)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.connection)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        Arc::clone(&self.connection)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

/// Accepts connections on `listener` and serves each with `db`, authenticating with `auth`,
/// until the task is dropped.
pub async fn serve(listener: TcpListener, db: Database, auth: Auth) -> std::io::Result<()> {
    let salted = match &auth {
        Auth::Trust => None,
        Auth::Password(password) => {
            let salt: Vec<u8> = (0..16).map(|_| rand::random::<u8>()).collect();
            let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
            Some(Arc::new(SaltedPassword { salt, salted }))
        }
    };
    // Cancel requests arrive on a new connection and name the target by pid and secret key.
    let connections = Arc::new(ConnectionManager::new());
    let cancel = Arc::new(DefaultCancelHandler::new(Arc::clone(&connections)));
    loop {
        let (socket, peer): (_, SocketAddr) = listener.accept().await?;
        let connection = Arc::new(Connection::new(db.clone(), Arc::clone(&connections)));
        let startup = Arc::new(match &salted {
            None => Startup::Trust(Arc::clone(&connection)),
            Some(source) => {
                let mut scram = ScramAuth::new(Arc::clone(source) as Arc<dyn AuthSource>);
                scram.set_iterations(SCRAM_ITERATIONS);
                Startup::Scram(
                    SASLAuthStartupHandler::new(
                        Arc::new(DefaultServerParameterProvider::default()),
                    )
                    .with_scram(scram)
                    .with_connection_manager(Arc::clone(&connections)),
                )
            }
        });
        let handlers = Arc::new(Handlers {
            connection,
            startup,
            cancel: Arc::clone(&cancel),
        });
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_are_sent_as_records() {
        let inner = DataType::structure(vec![("c".into(), DataType::Varchar)]);
        let DataType::Struct(ty) = DataType::structure(vec![
            ("a".into(), DataType::Int32),
            ("b".into(), DataType::Int64),
            ("n".into(), inner),
        ]) else {
            unreachable!("a struct")
        };
        let value = Datum::Struct(vec![
            Datum::Int32(7),
            Datum::Null,
            Datum::Struct(vec![Datum::Varchar("x y".into())]),
        ]);
        assert_eq!(value.to_text().as_deref(), Some("(7,,\"(\"\"x y\"\")\")"));
        let mut out = BytesMut::new();
        PgRecord { value, ty }
            .to_sql(&Type::RECORD, &mut out)
            .unwrap();
        let mut want: Vec<u8> = Vec::new();
        let mut put = |v: i32| want.extend_from_slice(&v.to_be_bytes());
        // Three fields: int4 7; int8 NULL; a record of one varchar.
        put(3);
        put(23);
        put(4);
        put(7);
        put(20);
        put(-1);
        put(2249);
        put(4 + 4 + 4 + 3);
        put(1);
        put(1043);
        put(3);
        want.extend_from_slice(b"x y");
        assert_eq!(out.to_vec(), want);
    }

    #[test]
    fn placeholders_are_found_and_substituted() {
        let sql = "SELECT * FROM t WHERE a = $1 AND b = '$2' AND c = $2";
        assert_eq!(
            placeholders(sql).iter().map(|p| p.1).collect::<Vec<_>>(),
            vec![1, 2]
        );
        let out = substitute_parameters(sql, &[Some("it's".into()), None]).unwrap();
        assert_eq!(
            out,
            "SELECT * FROM t WHERE a = 'it''s' AND b = '$2' AND c = NULL"
        );
    }
}
