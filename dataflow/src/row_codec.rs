//! Encodings of rows for state: memcomparable keys (ordered) and compact values.
//!
//! Both encoders work a column at a time — one type dispatch per column, then a tight loop
//! over its rows — appending into one buffer per row.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    IntervalMonthDayNanoType, Time64MicrosecondType, TimestampMicrosecondType,
};
use epoch_mvcc::memcomparable::{self, OrderType};

use crate::types::{DataType, Datum, Decimal, array_from_datums};
use crate::{Error, Result};

/// Appends the memcomparable encoding of column `array` to each row's key buffer.
pub fn encode_key_column(array: &ArrayRef, order: OrderType, keys: &mut [Vec<u8>]) {
    macro_rules! each {
        ($arr:expr, $enc:expr) => {{
            let arr = $arr;
            for (i, key) in keys.iter_mut().enumerate() {
                if arr.is_null(i) {
                    memcomparable::encode_null(key, order);
                } else {
                    $enc(key, arr.value(i));
                }
            }
        }};
    }
    let ty = DataType::from_arrow(array.data_type()).expect("arrays hold SQL types");
    match ty {
        DataType::Boolean => each!(array.as_boolean(), |k, v| memcomparable::encode_bool(
            k, v, order
        )),
        DataType::Int16 => each!(array.as_primitive::<Int16Type>(), |k, v| {
            memcomparable::encode_i16(k, v, order)
        }),
        DataType::Int32 => each!(array.as_primitive::<Int32Type>(), |k, v| {
            memcomparable::encode_i32(k, v, order)
        }),
        DataType::Date => each!(array.as_primitive::<Date32Type>(), |k, v| {
            memcomparable::encode_i32(k, v, order)
        }),
        DataType::Int64 => each!(array.as_primitive::<Int64Type>(), |k, v| {
            memcomparable::encode_i64(k, v, order)
        }),
        DataType::Time => each!(array.as_primitive::<Time64MicrosecondType>(), |k, v| {
            memcomparable::encode_i64(k, v, order)
        }),
        DataType::Timestamp | DataType::Timestamptz => {
            each!(array.as_primitive::<TimestampMicrosecondType>(), |k, v| {
                memcomparable::encode_i64(k, v, order)
            })
        }
        DataType::Float32 => each!(array.as_primitive::<Float32Type>(), |k, v| {
            memcomparable::encode_f32(k, v, order)
        }),
        DataType::Float64 => each!(array.as_primitive::<Float64Type>(), |k, v| {
            memcomparable::encode_f64(k, v, order)
        }),
        DataType::Varchar => each!(array.as_string::<i32>(), |k, v: &str| {
            memcomparable::encode_bytes(k, v.as_bytes(), order)
        }),
        DataType::Jsonb => each!(array.as_string::<i64>(), |k, v: &str| {
            memcomparable::encode_bytes(k, v.as_bytes(), order)
        }),
        DataType::Bytea => each!(array.as_binary::<i32>(), |k, v: &[u8]| {
            memcomparable::encode_bytes(k, v, order)
        }),
        DataType::Decimal => each!(array.as_fixed_size_binary(), |k, v: &[u8]| {
            let d = Decimal::from_bytes(v).expect("numeric arrays hold valid values");
            memcomparable::encode_bytes(k, &d.key_bytes(), order)
        }),
        DataType::Interval | DataType::List(_) | DataType::Struct(_) => {
            for (i, key) in keys.iter_mut().enumerate() {
                memcomparable::encode_datum(
                    key,
                    &Datum::from_array(array.as_ref(), i).to_key(),
                    order,
                );
            }
        }
    }
}

/// Memcomparable keys of `columns` of every row of `batch`.
pub fn encode_keys(batch: &RecordBatch, columns: &[usize], orders: &[OrderType]) -> Vec<Vec<u8>> {
    let mut keys = row_buffers(batch, columns, 0, key_bytes_len);
    for (c, order) in columns.iter().zip(orders) {
        encode_key_column(batch.column(*c), *order, &mut keys);
    }
    keys
}

/// At least the length of the memcomparable encoding of a string of `len` bytes: a tag,
/// then 9 bytes per group of up to 8 (one group when empty).
pub(crate) fn key_bytes_len(len: usize) -> usize {
    len + len / 8 + 10
}

/// One empty buffer per row of `batch`, each with room for `reserved` bytes and the
/// encodings of `columns`: a fixed width per value, or `per_bytes` of the length of a string
/// or byte string, so that encoding a row allocates once.
pub(crate) fn row_buffers(
    batch: &RecordBatch,
    columns: &[usize],
    reserved: usize,
    per_bytes: impl Fn(usize) -> usize,
) -> Vec<Vec<u8>> {
    let mut sizes = vec![reserved; batch.num_rows()];
    for c in columns {
        let array = batch.column(*c);
        let mut add = |len: &dyn Fn(usize) -> usize| {
            for (i, size) in sizes.iter_mut().enumerate() {
                *size += len(i);
            }
        };
        match DataType::from_arrow(array.data_type()).expect("arrays hold SQL types") {
            DataType::Varchar => {
                let a = array.as_string::<i32>();
                add(&|i| per_bytes(a.value_length(i) as usize));
            }
            DataType::Jsonb => {
                let a = array.as_string::<i64>();
                add(&|i| per_bytes(a.value_length(i) as usize));
            }
            DataType::Bytea => {
                let a = array.as_binary::<i32>();
                add(&|i| per_bytes(a.value_length(i) as usize));
            }
            ty => {
                let width = ty.key_width().unwrap_or(24);
                add(&|_| width);
            }
        }
    }
    sizes.into_iter().map(Vec::with_capacity).collect()
}

/// Decodes a key made by [`encode_keys`].
pub fn decode_key(key: &[u8], types: &[DataType], orders: &[OrderType]) -> Result<Vec<Datum>> {
    let key_types: Vec<_> = types.iter().map(|t| t.key_type()).collect();
    let datums = memcomparable::decode_row(key, &key_types, orders)
        .map_err(|e| Error::CorruptState(format!("key: {e}")))?;
    datums
        .into_iter()
        .zip(types)
        .map(|(d, t)| {
            Datum::from_key(d, *t)
                .ok_or_else(|| Error::CorruptState(format!("key column of type {t}")))
        })
        .collect()
}

const NULL: u8 = 0;
const PRESENT: u8 = 1;

/// Compact values of `columns` of every row: per column a presence byte, then fixed-width
/// little-endian values, or a varint length and bytes for strings.
pub fn encode_values(batch: &RecordBatch, columns: &[usize]) -> Vec<Vec<u8>> {
    let mut rows = row_buffers(batch, columns, 0, |len| len + 6);
    for c in columns {
        let array = batch.column(*c);
        macro_rules! each {
            ($arr:expr, $put:expr) => {{
                let arr = $arr;
                for (i, row) in rows.iter_mut().enumerate() {
                    if arr.is_null(i) {
                        row.push(NULL);
                    } else {
                        row.push(PRESENT);
                        $put(row, arr.value(i));
                    }
                }
            }};
        }
        let le = |row: &mut Vec<u8>, b: &[u8]| row.extend_from_slice(b);
        match DataType::from_arrow(array.data_type()).expect("arrays hold SQL types") {
            DataType::Boolean => each!(array.as_boolean(), |r: &mut Vec<u8>, v: bool| r
                .push(u8::from(v))),
            DataType::Int16 => each!(
                array.as_primitive::<Int16Type>(),
                |r: &mut Vec<u8>, v: i16| le(r, &v.to_le_bytes())
            ),
            DataType::Int32 => each!(
                array.as_primitive::<Int32Type>(),
                |r: &mut Vec<u8>, v: i32| le(r, &v.to_le_bytes())
            ),
            DataType::Date => each!(
                array.as_primitive::<Date32Type>(),
                |r: &mut Vec<u8>, v: i32| le(r, &v.to_le_bytes())
            ),
            DataType::Int64 => each!(
                array.as_primitive::<Int64Type>(),
                |r: &mut Vec<u8>, v: i64| le(r, &v.to_le_bytes())
            ),
            DataType::Time => each!(
                array.as_primitive::<Time64MicrosecondType>(),
                |r: &mut Vec<u8>, v: i64| le(r, &v.to_le_bytes())
            ),
            DataType::Timestamp | DataType::Timestamptz => {
                each!(
                    array.as_primitive::<TimestampMicrosecondType>(),
                    |r: &mut Vec<u8>, v: i64| le(r, &v.to_le_bytes())
                )
            }
            DataType::Float32 => each!(
                array.as_primitive::<Float32Type>(),
                |r: &mut Vec<u8>, v: f32| le(r, &v.to_le_bytes())
            ),
            DataType::Float64 => each!(
                array.as_primitive::<Float64Type>(),
                |r: &mut Vec<u8>, v: f64| le(r, &v.to_le_bytes())
            ),
            DataType::Varchar => each!(array.as_string::<i32>(), |r: &mut Vec<u8>, v: &str| {
                put_bytes(r, v.as_bytes())
            }),
            DataType::Jsonb => each!(array.as_string::<i64>(), |r: &mut Vec<u8>, v: &str| {
                put_bytes(r, v.as_bytes())
            }),
            DataType::Bytea => each!(array.as_binary::<i32>(), put_bytes),
            DataType::Decimal => each!(array.as_fixed_size_binary(), |r: &mut Vec<u8>, v| le(r, v)),
            DataType::Interval => each!(
                array.as_primitive::<IntervalMonthDayNanoType>(),
                |r: &mut Vec<u8>, v: arrow::datatypes::IntervalMonthDayNano| {
                    r.extend_from_slice(&v.months.to_le_bytes());
                    r.extend_from_slice(&v.days.to_le_bytes());
                    r.extend_from_slice(&v.nanoseconds.to_le_bytes());
                }
            ),
            // An array's or struct's key bytes (see `Datum::to_key`), length first.
            DataType::List(_) | DataType::Struct(_) => {
                for (i, row) in rows.iter_mut().enumerate() {
                    match Datum::from_array(array.as_ref(), i).to_key() {
                        epoch_mvcc::memcomparable::KeyDatum::Bytes(b) => {
                            row.push(PRESENT);
                            put_bytes(row, &b);
                        }
                        _ => row.push(NULL),
                    }
                }
            }
        }
    }
    rows
}

/// The value encoding of one row of datums: byte for byte what [`encode_values`] gives for
/// the same row, without building Arrow arrays (for single-row writes).
pub fn encode_value_datums(row: &[Datum]) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.len() * 9);
    for d in row {
        if d.is_null() {
            out.push(NULL);
            continue;
        }
        out.push(PRESENT);
        match d {
            Datum::Null => {}
            Datum::Bool(v) => out.push(u8::from(*v)),
            Datum::Int16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Datum::Int32(v) | Datum::Date(v) => out.extend_from_slice(&v.to_le_bytes()),
            Datum::Int64(v) | Datum::Time(v) | Datum::Timestamp(v) | Datum::Timestamptz(v) => {
                out.extend_from_slice(&v.to_le_bytes())
            }
            Datum::Float32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Datum::Float64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Datum::Decimal(v) => out.extend_from_slice(&v.to_bytes()),
            Datum::Varchar(s) | Datum::Jsonb(s) => put_bytes(&mut out, s.as_bytes()),
            Datum::Bytea(b) => put_bytes(&mut out, b),
            Datum::Interval {
                months,
                days,
                nanos,
            } => {
                out.extend_from_slice(&months.to_le_bytes());
                out.extend_from_slice(&days.to_le_bytes());
                out.extend_from_slice(&nanos.to_le_bytes());
            }
            Datum::List(_) | Datum::Struct(_) => {
                if let epoch_mvcc::memcomparable::KeyDatum::Bytes(b) = d.to_key() {
                    put_bytes(&mut out, &b);
                }
            }
        }
    }
    out
}

/// Length-prefixed bytes.
fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads values encoded by [`encode_values`].
struct ValueReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ValueReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let out = self
            .data
            .get(self.pos..self.pos + n)
            .ok_or_else(|| Error::CorruptState("value row is truncated".into()))?;
        self.pos += n;
        Ok(out)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::CorruptState("value row has a bad varint".into()))
    }

    /// Length-prefixed bytes.
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = usize::try_from(self.varint()?)
            .map_err(|_| Error::CorruptState("value length".into()))?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| Error::CorruptState("string is not UTF-8".into()))
    }

    fn datum(&mut self, ty: DataType) -> Result<Datum> {
        match self.take(1)?[0] {
            NULL => return Ok(Datum::Null),
            PRESENT => {}
            _ => {
                return Err(Error::CorruptState(
                    "value row has a bad presence byte".into(),
                ));
            }
        }
        macro_rules! fixed {
            ($t:ty) => {
                <$t>::from_le_bytes(
                    self.take(std::mem::size_of::<$t>())?
                        .try_into()
                        .expect("sized"),
                )
            };
        }
        Ok(match ty {
            DataType::Boolean => Datum::Bool(self.take(1)?[0] != 0),
            DataType::Int16 => Datum::Int16(fixed!(i16)),
            DataType::Int32 => Datum::Int32(fixed!(i32)),
            DataType::Date => Datum::Date(fixed!(i32)),
            DataType::Int64 => Datum::Int64(fixed!(i64)),
            DataType::Time => Datum::Time(fixed!(i64)),
            DataType::Timestamp => Datum::Timestamp(fixed!(i64)),
            DataType::Timestamptz => Datum::Timestamptz(fixed!(i64)),
            DataType::Float32 => Datum::Float32(fixed!(f32)),
            DataType::Float64 => Datum::Float64(fixed!(f64)),
            DataType::Decimal => Datum::Decimal(Decimal::from_bytes(
                self.take(crate::decimal::ENCODED_LEN)?,
            )?),
            DataType::Varchar => Datum::Varchar(self.string()?),
            DataType::Jsonb => Datum::Jsonb(self.string()?),
            DataType::Bytea => Datum::Bytea(self.bytes()?.to_vec()),
            DataType::Interval => Datum::Interval {
                months: fixed!(i32),
                days: fixed!(i32),
                nanos: fixed!(i64),
            },
            DataType::List(_) | DataType::Struct(_) => {
                let bytes = self.bytes()?.to_vec();
                Datum::from_key(epoch_mvcc::memcomparable::KeyDatum::Bytes(bytes), ty)
                    .ok_or_else(|| Error::CorruptState(format!("{ty} value")))?
            }
        })
    }
}

/// Decodes one value row.
pub fn decode_value(row: &[u8], types: &[DataType]) -> Result<Vec<Datum>> {
    let mut r = ValueReader { data: row, pos: 0 };
    let datums = types
        .iter()
        .map(|t| r.datum(*t))
        .collect::<Result<Vec<_>>>()?;
    if r.pos != row.len() {
        return Err(Error::CorruptState("value row has trailing bytes".into()));
    }
    Ok(datums)
}

/// Columns of `types` from decoded rows.
pub fn columns_from_rows(rows: &[Vec<Datum>], types: &[DataType]) -> Vec<ArrayRef> {
    types
        .iter()
        .enumerate()
        .map(|(c, ty)| array_from_datums(*ty, rows.iter().map(|r| &r[c])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::StreamChunk;

    #[test]
    fn keys_order_and_values_roundtrip() {
        let chunk = StreamChunk::from_pretty(
            " I T F
             + 2 b 1.5
             + -1 a .
             + . zz 0.25
             + 2 a -3",
        );
        let batch = chunk.data();
        let orders = [OrderType::ASC, OrderType::DESC];
        let keys = encode_keys(batch, &[0, 1], &orders);
        let mut sorted: Vec<usize> = (0..4).collect();
        sorted.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
        // -1 < 2 (then 'b' before 'a' descending) < NULL (last).
        assert_eq!(sorted, vec![1, 0, 3, 2]);
        let types = [DataType::Int64, DataType::Varchar, DataType::Float64];
        for (row, key) in keys.iter().enumerate() {
            assert_eq!(
                decode_key(key, &types[..2], &orders).unwrap(),
                chunk.row(row)[..2].to_vec()
            );
        }
        let values = encode_values(batch, &[0, 1, 2]);
        let decoded: Vec<_> = values
            .iter()
            .map(|v| decode_value(v, &types).unwrap())
            .collect();
        for (row, d) in decoded.iter().enumerate() {
            assert_eq!(d, &chunk.row(row));
        }
        let rebuilt = columns_from_rows(&decoded, &types);
        assert_eq!(rebuilt[1].as_ref(), batch.column(1).as_ref());
        assert!(decode_value(&values[0][..3], &types).is_err());
    }

    #[test]
    fn rows_of_datums_encode_as_their_arrays_do() {
        let samples = crate::types::tests::samples();
        let types: Vec<DataType> = samples.iter().map(|(_, t)| *t).collect();
        let row: Vec<Datum> = samples.iter().map(|(d, _)| d.clone()).collect();
        let columns = columns_from_rows(std::slice::from_ref(&row), &types);
        let batch = crate::chunk::batch_of(crate::chunk::schema_of(&types), columns, 1).unwrap();
        let all: Vec<usize> = (0..types.len()).collect();
        let from_arrays = encode_values(&batch, &all).pop().unwrap();
        assert_eq!(encode_value_datums(&row), from_arrays);
        assert_eq!(decode_value(&from_arrays, &types).unwrap(), row);
    }
}
