//! SQL data types, single values (datums), and their Arrow representation.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, FixedSizeBinaryArray, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, LargeStringArray,
    ListArray, StringArray, StructArray, Time64MicrosecondArray, TimestampMicrosecondArray,
    new_null_array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{
    DataType as ArrowType, Field, IntervalMonthDayNano, IntervalUnit, TimeUnit,
};
use epoch_mvcc::memcomparable::{self, KeyDatum, KeyType, OrderType};
use serde::{Deserialize, Serialize};

pub use crate::decimal::{self, Decimal};

/// A SQL type. Every type maps to one Arrow type ([`DataType::to_arrow`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    /// `boolean`
    Boolean,
    /// `smallint`
    Int16,
    /// `integer`
    Int32,
    /// `bigint`
    Int64,
    /// `real`
    Float32,
    /// `double precision`
    Float64,
    /// `numeric` (exact, per-value scale; see [`Decimal`])
    Decimal,
    /// `varchar` / `text`
    Varchar,
    /// `date` (days since 1970-01-01)
    Date,
    /// `time` (microseconds since midnight)
    Time,
    /// `timestamp` (microseconds since 1970-01-01, no time zone)
    Timestamp,
    /// `timestamptz` (microseconds since 1970-01-01 UTC)
    Timestamptz,
    /// `interval` (months, days, nanoseconds)
    Interval,
    /// `bytea`: binary strings.
    Bytea,
    /// `jsonb`: JSON documents, kept as their normalized text (see [`crate::json`]).
    Jsonb,
    /// `T[]`: a one-dimensional array of `T` (which may itself be an array).
    List(ElementType),
    /// `struct<name T, ...>`: a composite of named fields (a row value).
    Struct(StructType),
}

/// The element type of an array type: an interned [`DataType`], so that `DataType` stays
/// `Copy`. There are as many distinct element types as array types ever named, a handful.
#[derive(Clone, Copy)]
pub struct ElementType(&'static DataType);

impl ElementType {
    /// The handle of `ty`.
    pub fn new(ty: DataType) -> ElementType {
        static TYPES: OnceLock<Mutex<Vec<&'static DataType>>> = OnceLock::new();
        let mut types = TYPES
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(t) = types.iter().find(|t| ***t == ty) {
            return ElementType(t);
        }
        let t: &'static DataType = Box::leak(Box::new(ty));
        types.push(t);
        ElementType(t)
    }

    /// The element type.
    pub fn get(self) -> DataType {
        *self.0
    }
}

impl PartialEq for ElementType {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for ElementType {}

impl Hash for ElementType {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl fmt::Debug for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for ElementType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ElementType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DataType::deserialize(d).map(ElementType::new)
    }
}

/// The fields of a struct type, interned like [`ElementType`]: as many distinct struct types
/// exist as are ever named.
#[derive(Clone, Copy)]
pub struct StructType(&'static [(String, DataType)]);

impl StructType {
    /// The handle of a struct with `fields` (name and type each, in order).
    pub fn new(fields: Vec<(String, DataType)>) -> StructType {
        type Interned = Vec<&'static [(String, DataType)]>;
        static TYPES: OnceLock<Mutex<Interned>> = OnceLock::new();
        let mut types = TYPES
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(t) = types.iter().find(|t| ***t == *fields) {
            return StructType(t);
        }
        let t: &'static [(String, DataType)] = Box::leak(fields.into_boxed_slice());
        types.push(t);
        StructType(t)
    }

    /// The fields, in order.
    pub fn fields(self) -> &'static [(String, DataType)] {
        self.0
    }
}

impl PartialEq for StructType {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for StructType {}

impl Hash for StructType {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl fmt::Debug for StructType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for StructType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for StructType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<(String, DataType)>::deserialize(d).map(StructType::new)
    }
}

impl DataType {
    /// The length of a non-NULL value's memcomparable key encoding, when all have one.
    pub fn key_width(self) -> Option<usize> {
        match self {
            DataType::Boolean => Some(2),
            DataType::Int16 => Some(3),
            DataType::Int32 | DataType::Date | DataType::Float32 => Some(5),
            DataType::Int64
            | DataType::Time
            | DataType::Timestamp
            | DataType::Timestamptz
            | DataType::Float64 => Some(9),
            _ => None,
        }
    }

    /// The Arrow type that holds values of this type.
    pub fn to_arrow(self) -> ArrowType {
        match self {
            DataType::Boolean => ArrowType::Boolean,
            DataType::Int16 => ArrowType::Int16,
            DataType::Int32 => ArrowType::Int32,
            DataType::Int64 => ArrowType::Int64,
            DataType::Float32 => ArrowType::Float32,
            DataType::Float64 => ArrowType::Float64,
            DataType::Decimal => ArrowType::FixedSizeBinary(decimal::ENCODED_LEN as i32),
            DataType::Varchar => ArrowType::Utf8,
            DataType::Date => ArrowType::Date32,
            DataType::Time => ArrowType::Time64(TimeUnit::Microsecond),
            DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamptz => {
                ArrowType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00")))
            }
            DataType::Interval => ArrowType::Interval(IntervalUnit::MonthDayNano),
            DataType::Bytea => ArrowType::Binary,
            // Large strings tell jsonb apart from varchar.
            DataType::Jsonb => ArrowType::LargeUtf8,
            DataType::List(e) => {
                ArrowType::List(Arc::new(Field::new_list_field(e.get().to_arrow(), true)))
            }
            DataType::Struct(s) => ArrowType::Struct(struct_fields(s)),
        }
    }

    /// `struct<fields>`.
    pub fn structure(fields: Vec<(String, DataType)>) -> DataType {
        DataType::Struct(StructType::new(fields))
    }

    /// Whether values compare (and sort) by their key bytes, Arrow having no order of them
    /// that is SQL's: numeric, interval, arrays and structs.
    pub fn compares_by_key(self) -> bool {
        matches!(
            self,
            DataType::Decimal | DataType::Interval | DataType::List(_) | DataType::Struct(_)
        )
    }

    /// `elem[]`.
    pub fn list(elem: DataType) -> DataType {
        DataType::List(ElementType::new(elem))
    }

    /// The element type of an array type.
    pub fn element(self) -> Option<DataType> {
        match self {
            DataType::List(e) => Some(e.get()),
            _ => None,
        }
    }

    /// The SQL type of an Arrow type, if it is one this system uses.
    pub fn from_arrow(ty: &ArrowType) -> Option<DataType> {
        Some(match ty {
            ArrowType::Boolean => DataType::Boolean,
            ArrowType::Int16 => DataType::Int16,
            ArrowType::Int32 => DataType::Int32,
            ArrowType::Int64 => DataType::Int64,
            ArrowType::Float32 => DataType::Float32,
            ArrowType::Float64 => DataType::Float64,
            ArrowType::FixedSizeBinary(n) if *n as usize == decimal::ENCODED_LEN => {
                DataType::Decimal
            }
            ArrowType::Utf8 => DataType::Varchar,
            ArrowType::Date32 => DataType::Date,
            ArrowType::Time64(TimeUnit::Microsecond) => DataType::Time,
            ArrowType::Timestamp(TimeUnit::Microsecond, None) => DataType::Timestamp,
            ArrowType::Timestamp(TimeUnit::Microsecond, Some(_)) => DataType::Timestamptz,
            ArrowType::Interval(IntervalUnit::MonthDayNano) => DataType::Interval,
            ArrowType::Binary => DataType::Bytea,
            ArrowType::LargeUtf8 => DataType::Jsonb,
            ArrowType::List(f) => DataType::list(DataType::from_arrow(f.data_type())?),
            ArrowType::Struct(fields) => DataType::structure(
                fields
                    .iter()
                    .map(|f| Some((f.name().clone(), DataType::from_arrow(f.data_type())?)))
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        })
    }

    /// Whether values are integers.
    pub fn is_integer(self) -> bool {
        matches!(self, DataType::Int16 | DataType::Int32 | DataType::Int64)
    }

    /// Whether values are numbers (for arithmetic and implicit casts).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::Float32
                | DataType::Float64
                | DataType::Decimal
        )
    }

    /// The key type used to decode memcomparable keys of this type.
    pub fn key_type(self) -> KeyType {
        match self {
            DataType::Boolean => KeyType::Bool,
            DataType::Int16 => KeyType::Int16,
            DataType::Int32 | DataType::Date => KeyType::Int32,
            DataType::Int64 | DataType::Time | DataType::Timestamp | DataType::Timestamptz => {
                KeyType::Int64
            }
            DataType::Float32 => KeyType::Float32,
            DataType::Float64 => KeyType::Float64,
            DataType::Varchar | DataType::Jsonb => KeyType::Str,
            DataType::Bytea => KeyType::Bytes,
            // Order-preserving bytes of the value (see `Decimal::key_bytes`).
            DataType::Decimal => KeyType::Bytes,
            // Months, days and nanoseconds, big-endian: orders by months first, as the
            // interval's three fields are kept apart (as in PostgreSQL's storage).
            DataType::Interval => KeyType::Bytes,
            // Each element's (field's) key after a 1 byte, then a 0 byte (see `list_key`).
            DataType::List(_) | DataType::Struct(_) => KeyType::Bytes,
        }
    }

    /// The types with PostgreSQL oids: each scalar type and its array type.
    pub fn pg_types() -> Vec<DataType> {
        let scalars = [
            DataType::Boolean,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal,
            DataType::Varchar,
            DataType::Date,
            DataType::Time,
            DataType::Timestamp,
            DataType::Timestamptz,
            DataType::Interval,
            DataType::Bytea,
            DataType::Jsonb,
        ];
        scalars
            .iter()
            .copied()
            .chain(scalars.iter().map(|t| DataType::list(*t)))
            .collect()
    }

    /// The oid of the PostgreSQL type: an array of arrays has its element's array type, as
    /// PostgreSQL's arrays have one type whatever their dimensions.
    pub fn pg_oid(self) -> i32 {
        match self {
            DataType::Boolean => 16,
            DataType::Int16 => 21,
            DataType::Int32 => 23,
            DataType::Int64 => 20,
            DataType::Float32 => 700,
            DataType::Float64 => 701,
            DataType::Decimal => 1700,
            DataType::Varchar => 1043,
            DataType::Date => 1082,
            DataType::Time => 1083,
            DataType::Timestamp => 1114,
            DataType::Timestamptz => 1184,
            DataType::Interval => 1186,
            DataType::Bytea => 17,
            DataType::Jsonb => 3802,
            DataType::List(e) => match e.get() {
                DataType::Boolean => 1000,
                DataType::Int16 => 1005,
                DataType::Int32 => 1007,
                DataType::Int64 => 1016,
                DataType::Float32 => 1021,
                DataType::Float64 => 1022,
                DataType::Decimal => 1231,
                DataType::Varchar => 1015,
                DataType::Date => 1182,
                DataType::Time => 1183,
                DataType::Timestamp => 1115,
                DataType::Timestamptz => 1185,
                DataType::Interval => 1187,
                DataType::Bytea => 1001,
                DataType::Jsonb => 3807,
                nested @ DataType::List(_) => nested.pg_oid(),
                DataType::Struct(_) => 2287,
            },
            // PostgreSQL's anonymous `record`.
            DataType::Struct(_) => 2249,
        }
    }

    /// The type of PostgreSQL oid `oid` (`text`, `name` and `char` read as varchar).
    pub fn from_pg_oid(oid: i32) -> Option<DataType> {
        match oid {
            25 | 19 | 18 | 1042 => Some(DataType::Varchar),
            1009 => Some(DataType::list(DataType::Varchar)),
            26 => Some(DataType::Int32),
            _ => DataType::pg_types().into_iter().find(|t| t.pg_oid() == oid),
        }
    }

    /// PostgreSQL's internal name of the type (`int4`, `_int4` for its array).
    pub fn pg_internal_name(self) -> String {
        let name = match self {
            DataType::Boolean => "bool",
            DataType::Int16 => "int2",
            DataType::Int32 => "int4",
            DataType::Int64 => "int8",
            DataType::Float32 => "float4",
            DataType::Float64 => "float8",
            DataType::Decimal => "numeric",
            DataType::Varchar => "varchar",
            DataType::Date => "date",
            DataType::Time => "time",
            DataType::Timestamp => "timestamp",
            DataType::Timestamptz => "timestamptz",
            DataType::Interval => "interval",
            DataType::Bytea => "bytea",
            DataType::Jsonb => "jsonb",
            DataType::List(e) => return format!("_{}", e.get().pg_internal_name()),
            DataType::Struct(_) => "record",
        };
        name.to_string()
    }

    /// The PostgreSQL name of the type.
    pub fn pg_name(self) -> String {
        let name = match self {
            DataType::Boolean => "boolean",
            DataType::Int16 => "smallint",
            DataType::Int32 => "integer",
            DataType::Int64 => "bigint",
            DataType::Float32 => "real",
            DataType::Float64 => "double precision",
            DataType::Decimal => "numeric",
            DataType::Varchar => "character varying",
            DataType::Date => "date",
            DataType::Time => "time without time zone",
            DataType::Timestamp => "timestamp without time zone",
            DataType::Timestamptz => "timestamp with time zone",
            DataType::Interval => "interval",
            DataType::Bytea => "bytea",
            DataType::Jsonb => "jsonb",
            DataType::List(e) => return format!("{}[]", e.get().pg_name()),
            // RisingWave's name: `struct<a integer, b character varying>`.
            DataType::Struct(s) => {
                let fields: Vec<String> = s
                    .fields()
                    .iter()
                    .map(|(name, ty)| format!("{name} {}", ty.pg_name()))
                    .collect();
                return format!("struct<{}>", fields.join(", "));
            }
        };
        name.to_string()
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pg_name())
    }
}

/// One SQL value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Datum {
    /// SQL NULL (of any type).
    Null,
    /// `boolean`
    Bool(bool),
    /// `smallint`
    Int16(i16),
    /// `integer`
    Int32(i32),
    /// `bigint`
    Int64(i64),
    /// `real`
    Float32(f32),
    /// `double precision`
    Float64(f64),
    /// `numeric`
    Decimal(Decimal),
    /// `varchar`
    Varchar(String),
    /// `date`: days since the Unix epoch.
    Date(i32),
    /// `time`: microseconds since midnight.
    Time(i64),
    /// `timestamp`: microseconds since the Unix epoch.
    Timestamp(i64),
    /// `timestamptz`: microseconds since the Unix epoch, UTC.
    Timestamptz(i64),
    /// `interval`
    Interval {
        /// Months.
        months: i32,
        /// Days.
        days: i32,
        /// Nanoseconds.
        nanos: i64,
    },
    /// `bytea`
    Bytea(Vec<u8>),
    /// `jsonb`: the document's normalized text.
    Jsonb(String),
    /// An array's elements (each NULL or of the element type).
    List(Vec<Datum>),
    /// A struct's fields, in order (each NULL or of its field's type).
    Struct(Vec<Datum>),
}

impl Datum {
    /// The value as a group key shows it: numeric normalized, since `1.1` and `1.10` are one
    /// group whichever row came first.
    pub fn into_group_key(self) -> Datum {
        match self {
            Datum::Decimal(d) => Datum::Decimal(d.normalized()),
            other => other,
        }
    }

    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }

    /// The value at `row` of `array` (NULL if the slot is null).
    pub fn from_array(array: &dyn Array, row: usize) -> Datum {
        if array.is_null(row) {
            return Datum::Null;
        }
        let any = array.as_any();
        macro_rules! get {
            ($ty:ty) => {
                any.downcast_ref::<$ty>()
                    .expect("array matches its data type")
                    .value(row)
            };
        }
        match DataType::from_arrow(array.data_type()).expect("arrays hold SQL types") {
            DataType::List(_) => {
                let items = get!(ListArray);
                Datum::List(
                    (0..items.len())
                        .map(|i| Datum::from_array(items.as_ref(), i))
                        .collect(),
                )
            }
            DataType::Struct(_) => {
                let fields = any
                    .downcast_ref::<StructArray>()
                    .expect("array matches its data type");
                Datum::Struct(
                    fields
                        .columns()
                        .iter()
                        .map(|c| Datum::from_array(c.as_ref(), row))
                        .collect(),
                )
            }
            DataType::Boolean => Datum::Bool(get!(BooleanArray)),
            DataType::Int16 => Datum::Int16(get!(Int16Array)),
            DataType::Int32 => Datum::Int32(get!(Int32Array)),
            DataType::Int64 => Datum::Int64(get!(Int64Array)),
            DataType::Float32 => Datum::Float32(get!(Float32Array)),
            DataType::Float64 => Datum::Float64(get!(Float64Array)),
            DataType::Decimal => Datum::Decimal(
                Decimal::from_bytes(get!(FixedSizeBinaryArray))
                    .expect("numeric arrays hold valid values"),
            ),
            DataType::Varchar => Datum::Varchar(get!(StringArray).to_string()),
            DataType::Bytea => Datum::Bytea(get!(BinaryArray).to_vec()),
            DataType::Jsonb => Datum::Jsonb(get!(LargeStringArray).to_string()),
            DataType::Date => Datum::Date(get!(Date32Array)),
            DataType::Time => Datum::Time(get!(Time64MicrosecondArray)),
            DataType::Timestamp => Datum::Timestamp(get!(TimestampMicrosecondArray)),
            DataType::Timestamptz => Datum::Timestamptz(get!(TimestampMicrosecondArray)),
            DataType::Interval => {
                let v = get!(IntervalMonthDayNanoArray);
                Datum::Interval {
                    months: v.months,
                    days: v.days,
                    nanos: v.nanoseconds,
                }
            }
        }
    }

    /// An array of `len` copies of this value, of type `ty`.
    pub fn to_array(&self, ty: DataType, len: usize) -> ArrayRef {
        match (self, ty) {
            (Datum::Null, _) => new_null_array(&ty.to_arrow(), len),
            (Datum::Bool(v), _) => Arc::new(BooleanArray::from(vec![*v; len])),
            (Datum::Int16(v), _) => Arc::new(Int16Array::from_value(*v, len)),
            (Datum::Int32(v), _) => Arc::new(Int32Array::from_value(*v, len)),
            (Datum::Int64(v), _) => Arc::new(Int64Array::from_value(*v, len)),
            (Datum::Float32(v), _) => Arc::new(Float32Array::from_value(*v, len)),
            (Datum::Float64(v), _) => Arc::new(Float64Array::from_value(*v, len)),
            (Datum::Decimal(v), _) => Arc::new(
                FixedSizeBinaryArray::try_from_iter(std::iter::repeat_n(v.to_bytes(), len))
                    .expect("equal widths"),
            ),
            (Datum::Varchar(v), _) => {
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(v, len)))
            }
            (Datum::Date(v), _) => Arc::new(Date32Array::from_value(*v, len)),
            (Datum::Time(v), _) => Arc::new(Time64MicrosecondArray::from_value(*v, len)),
            (Datum::Timestamp(v), _) => Arc::new(TimestampMicrosecondArray::from_value(*v, len)),
            (Datum::Timestamptz(v), _) => {
                Arc::new(TimestampMicrosecondArray::from_value(*v, len).with_timezone("+00:00"))
            }
            (
                Datum::Interval {
                    months,
                    days,
                    nanos,
                },
                _,
            ) => Arc::new(IntervalMonthDayNanoArray::from_value(
                IntervalMonthDayNano::new(*months, *days, *nanos),
                len,
            )),
            (Datum::List(_) | Datum::Struct(_) | Datum::Bytea(_) | Datum::Jsonb(_), _) => {
                array_from_datums(ty, std::iter::repeat_n(self, len))
            }
        }
    }

    /// The memcomparable key form of this value.
    pub fn to_key(&self) -> KeyDatum {
        match self {
            Datum::Null => KeyDatum::Null,
            Datum::Bool(v) => KeyDatum::Bool(*v),
            Datum::Int16(v) => KeyDatum::Int16(*v),
            Datum::Int32(v) | Datum::Date(v) => KeyDatum::Int32(*v),
            Datum::Int64(v) | Datum::Time(v) | Datum::Timestamp(v) | Datum::Timestamptz(v) => {
                KeyDatum::Int64(*v)
            }
            Datum::Float32(v) => KeyDatum::Float32(*v),
            Datum::Float64(v) => KeyDatum::Float64(*v),
            Datum::Decimal(v) => KeyDatum::Bytes(v.key_bytes()),
            Datum::Varchar(v) | Datum::Jsonb(v) => KeyDatum::Str(v.clone()),
            Datum::Bytea(v) => KeyDatum::Bytes(v.clone()),
            Datum::Interval {
                months,
                days,
                nanos,
            } => {
                let mut b = Vec::with_capacity(16);
                b.extend_from_slice(&((*months as u32) ^ (1 << 31)).to_be_bytes());
                b.extend_from_slice(&((*days as u32) ^ (1 << 31)).to_be_bytes());
                b.extend_from_slice(&((*nanos as u64) ^ (1 << 63)).to_be_bytes());
                KeyDatum::Bytes(b)
            }
            Datum::List(items) | Datum::Struct(items) => KeyDatum::Bytes(list_key(items)),
        }
    }

    /// About how many bytes the value takes in memory (for cache budgets).
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<Datum>()
            + match self {
                Datum::Varchar(s) | Datum::Jsonb(s) => s.capacity(),
                Datum::Bytea(b) => b.capacity(),
                Datum::List(items) | Datum::Struct(items) => {
                    items.iter().map(Datum::memory_size).sum()
                }
                _ => 0,
            }
    }

    /// The value of a decoded key of type `ty`.
    pub fn from_key(key: KeyDatum, ty: DataType) -> Option<Datum> {
        Some(match (key, ty) {
            (KeyDatum::Null, _) => Datum::Null,
            (KeyDatum::Bool(v), DataType::Boolean) => Datum::Bool(v),
            (KeyDatum::Int16(v), DataType::Int16) => Datum::Int16(v),
            (KeyDatum::Int32(v), DataType::Int32) => Datum::Int32(v),
            (KeyDatum::Int32(v), DataType::Date) => Datum::Date(v),
            (KeyDatum::Int64(v), DataType::Int64) => Datum::Int64(v),
            (KeyDatum::Int64(v), DataType::Time) => Datum::Time(v),
            (KeyDatum::Int64(v), DataType::Timestamp) => Datum::Timestamp(v),
            (KeyDatum::Int64(v), DataType::Timestamptz) => Datum::Timestamptz(v),
            (KeyDatum::Float32(v), DataType::Float32) => Datum::Float32(v),
            (KeyDatum::Float64(v), DataType::Float64) => Datum::Float64(v),
            (KeyDatum::Str(v), DataType::Varchar) => Datum::Varchar(v),
            (KeyDatum::Str(v), DataType::Jsonb) => Datum::Jsonb(v),
            (KeyDatum::Bytes(b), DataType::Bytea) => Datum::Bytea(b),
            (KeyDatum::Bytes(b), DataType::Decimal) => Datum::Decimal(Decimal::from_key_bytes(&b)?),
            (KeyDatum::Bytes(b), DataType::Interval) if b.len() == 16 => {
                let months = (u32::from_be_bytes(b[0..4].try_into().ok()?) ^ (1 << 31)) as i32;
                let days = (u32::from_be_bytes(b[4..8].try_into().ok()?) ^ (1 << 31)) as i32;
                let nanos = (u64::from_be_bytes(b[8..16].try_into().ok()?) ^ (1 << 63)) as i64;
                Datum::Interval {
                    months,
                    days,
                    nanos,
                }
            }
            (KeyDatum::Bytes(b), DataType::List(e)) => {
                Datum::List(list_from_key(&b, |_| Some(e.get()))?)
            }
            (KeyDatum::Bytes(b), DataType::Struct(s)) => {
                let fields = list_from_key(&b, |i| s.fields().get(i).map(|f| f.1))?;
                (fields.len() == s.fields().len()).then_some(Datum::Struct(fields))?
            }
            _ => return None,
        })
    }
}

/// Order-preserving bytes of an array: each element's key after a 1 byte, then a 0 byte, so
/// arrays compare element by element and a prefix sorts first.
fn list_key(items: &[Datum]) -> Vec<u8> {
    let mut b = Vec::new();
    for item in items {
        b.push(1);
        memcomparable::encode_datum(&mut b, &item.to_key(), OrderType::ASC);
    }
    b.push(0);
    b
}

/// The elements of an array (fields of a struct) from [`list_key`] bytes; element `i` has
/// type `ty(i)`.
fn list_from_key(mut b: &[u8], ty: impl Fn(usize) -> Option<DataType>) -> Option<Vec<Datum>> {
    let mut items = Vec::new();
    loop {
        match b.split_first()? {
            (0, []) => return Some(items),
            (1, rest) => {
                let elem = ty(items.len())?;
                let (key, used) =
                    memcomparable::decode_datum(rest, elem.key_type(), OrderType::ASC, 0).ok()?;
                items.push(Datum::from_key(key, elem)?);
                b = &rest[used..];
            }
            _ => return None,
        }
    }
}

/// The Arrow fields of a struct type.
fn struct_fields(s: StructType) -> arrow::datatypes::Fields {
    s.fields()
        .iter()
        .map(|(name, ty)| Field::new(name, ty.to_arrow(), true))
        .collect()
}

/// An array of type `ty` holding `values` (each NULL or of that type).
pub fn array_from_datums<'a>(ty: DataType, values: impl Iterator<Item = &'a Datum>) -> ArrayRef {
    use arrow::array::{
        BinaryBuilder, BooleanBuilder, Date32Builder, FixedSizeBinaryBuilder, Float32Builder,
        Float64Builder, Int16Builder, Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder,
        LargeStringBuilder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
    };
    // `x => take`: what the builder appends of a value `x`: a copy of a number, a reference
    // to text or bytes (which the builder copies into its buffer).
    macro_rules! build {
        ($builder:ty, $variant:ident) => {
            build!(<$builder>::new(), $variant, x => *x)
        };
        ($new:expr, $variant:ident, $x:ident => $take:expr) => {{
            let mut b = $new;
            for v in values {
                match v {
                    Datum::$variant($x) => b.append_value($take),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match ty {
        DataType::List(e) => {
            let (mut offsets, mut valid, mut items) = (vec![0i32], Vec::new(), Vec::new());
            for v in values {
                if let Datum::List(l) = v {
                    items.extend(l);
                }
                valid.push(matches!(v, Datum::List(_)));
                offsets.push(items.len() as i32);
            }
            Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(e.get().to_arrow(), true)),
                OffsetBuffer::new(offsets.into()),
                array_from_datums(e.get(), items.into_iter()),
                Some(NullBuffer::from(valid)),
            ))
        }
        DataType::Struct(s) => {
            let values: Vec<&Datum> = values.collect();
            let children = s
                .fields()
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| {
                    let field: Vec<&Datum> = values
                        .iter()
                        .map(|v| match v {
                            Datum::Struct(fields) => &fields[i],
                            _ => &Datum::Null,
                        })
                        .collect();
                    array_from_datums(*ty, field.into_iter())
                })
                .collect();
            let valid: Vec<bool> = values
                .iter()
                .map(|v| matches!(v, Datum::Struct(_)))
                .collect();
            Arc::new(StructArray::new(
                struct_fields(s),
                children,
                Some(NullBuffer::from(valid)),
            ))
        }
        DataType::Boolean => build!(BooleanBuilder, Bool),
        DataType::Int16 => build!(Int16Builder, Int16),
        DataType::Int32 => build!(Int32Builder, Int32),
        DataType::Int64 => build!(Int64Builder, Int64),
        DataType::Float32 => build!(Float32Builder, Float32),
        DataType::Float64 => build!(Float64Builder, Float64),
        DataType::Varchar => build!(StringBuilder::new(), Varchar, x => x),
        DataType::Jsonb => build!(LargeStringBuilder::new(), Jsonb, x => x),
        DataType::Bytea => build!(BinaryBuilder::new(), Bytea, x => x),
        DataType::Decimal => {
            let mut b = FixedSizeBinaryBuilder::new(decimal::ENCODED_LEN as i32);
            for v in values {
                match v {
                    Datum::Decimal(x) => b.append_value(x.to_bytes()).expect("equal widths"),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Date => build!(Date32Builder, Date),
        DataType::Time => build!(Time64MicrosecondBuilder, Time),
        DataType::Timestamp => build!(TimestampMicrosecondBuilder, Timestamp),
        DataType::Timestamptz => build!(
            TimestampMicrosecondBuilder::new().with_timezone("+00:00"),
            Timestamptz,
            x => *x
        ),
        DataType::Interval => {
            let mut b = IntervalMonthDayNanoBuilder::new();
            for v in values {
                match v {
                    Datum::Interval {
                        months,
                        days,
                        nanos,
                    } => b.append_value(IntervalMonthDayNano::new(*months, *days, *nanos)),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn key_widths_are_the_encoded_lengths() {
        let samples = [
            (Datum::Bool(true), DataType::Boolean),
            (Datum::Int16(-3), DataType::Int16),
            (Datum::Int32(7), DataType::Int32),
            (Datum::Date(19_000), DataType::Date),
            (Datum::Float32(1.5), DataType::Float32),
            (Datum::Int64(-9), DataType::Int64),
            (Datum::Time(1), DataType::Time),
            (Datum::Timestamp(2), DataType::Timestamp),
            (Datum::Timestamptz(3), DataType::Timestamptz),
            (Datum::Float64(2.5), DataType::Float64),
        ];
        for (d, ty) in samples {
            let mut encoded = Vec::new();
            epoch_mvcc::memcomparable::encode_datum(
                &mut encoded,
                &d.to_key(),
                epoch_mvcc::memcomparable::OrderType::ASC,
            );
            assert_eq!(ty.key_width(), Some(encoded.len()), "{d:?}");
        }
        assert_eq!(DataType::Varchar.key_width(), None);
    }

    /// A value of every type (and a NULL).
    pub(crate) fn samples() -> Vec<(Datum, DataType)> {
        vec![
            (Datum::Bool(true), DataType::Boolean),
            (Datum::Int16(-3), DataType::Int16),
            (Datum::Int32(7), DataType::Int32),
            (Datum::Int64(i64::MIN), DataType::Int64),
            (Datum::Float32(1.5), DataType::Float32),
            (Datum::Float64(-2.25), DataType::Float64),
            (Datum::Decimal("-12.5".parse().unwrap()), DataType::Decimal),
            (Datum::Decimal(Decimal::NaN), DataType::Decimal),
            (Datum::Varchar("héllo".into()), DataType::Varchar),
            (Datum::Bytea(vec![0, 255, 1]), DataType::Bytea),
            (Datum::Jsonb(r#"{"a": [1, null]}"#.into()), DataType::Jsonb),
            (Datum::Date(19_000), DataType::Date),
            (Datum::Time(3_600_000_000), DataType::Time),
            (Datum::Timestamp(1_700_000_000_000_000), DataType::Timestamp),
            (Datum::Timestamptz(-5), DataType::Timestamptz),
            (
                Datum::Interval {
                    months: 1,
                    days: -2,
                    nanos: 3,
                },
                DataType::Interval,
            ),
            (Datum::Null, DataType::Varchar),
            (
                Datum::List(vec![Datum::Int32(1), Datum::Null]),
                DataType::list(DataType::Int32),
            ),
            (
                Datum::List(vec![
                    Datum::List(vec![Datum::Varchar("a".into())]),
                    Datum::List(vec![]),
                ]),
                DataType::list(DataType::list(DataType::Varchar)),
            ),
            (
                Datum::Struct(vec![
                    Datum::Int32(1),
                    Datum::Null,
                    Datum::Struct(vec![Datum::Varchar("x".into())]),
                ]),
                DataType::structure(vec![
                    ("a".into(), DataType::Int32),
                    ("b".into(), DataType::Varchar),
                    (
                        "c".into(),
                        DataType::structure(vec![("d".into(), DataType::Varchar)]),
                    ),
                ]),
            ),
        ]
    }

    #[test]
    fn arrays_and_keys_roundtrip() {
        for (d, ty) in samples() {
            let array = d.to_array(ty, 3);
            assert_eq!(array.data_type(), &ty.to_arrow());
            assert_eq!(DataType::from_arrow(array.data_type()), Some(ty));
            assert_eq!(Datum::from_array(array.as_ref(), 2), d);
            assert_eq!(Datum::from_key(d.to_key(), ty), Some(d.clone()));
        }
    }

    #[test]
    fn array_keys_sort_element_by_element() {
        let list = |v: &[i32]| Datum::List(v.iter().map(|x| Datum::Int32(*x)).collect());
        let sorted = [
            list(&[]),
            list(&[-1, 5]),
            list(&[1]),
            list(&[1, 2]),
            list(&[2]),
        ];
        let keys: Vec<_> = sorted
            .iter()
            .map(|d| memcomparable::encode_row(&[d.to_key()], &[OrderType::ASC]))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    }
}
