//! Memcomparable encoding of typed key columns: encoded keys compare bytewise in the same order
//! as the typed values, so primary keys and sort keys can live in an ordered byte-keyed store.
//!
//! Each datum starts with a tag byte (NULL or not), placed so that NULLs sort last in ascending
//! order and first in descending order unless asked otherwise, as in PostgreSQL. Descending
//! columns are encoded ascending and then every byte is inverted. Every encoding is
//! self-delimiting, so a row of datums decodes without separators.

use thiserror::Error;

/// Sort direction and NULL placement of one key column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct OrderType {
    /// Descending order.
    pub descending: bool,
    /// NULLs before every value.
    pub nulls_first: bool,
}

impl OrderType {
    /// `ASC NULLS LAST`, PostgreSQL's default for ascending order.
    pub const ASC: OrderType = OrderType {
        descending: false,
        nulls_first: false,
    };
    /// `DESC NULLS FIRST`, PostgreSQL's default for descending order.
    pub const DESC: OrderType = OrderType {
        descending: true,
        nulls_first: true,
    };
}

impl Default for OrderType {
    fn default() -> Self {
        OrderType::ASC
    }
}

/// The type of a key column, needed to decode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `boolean`
    Bool,
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
    /// `varchar` / `text` (UTF-8)
    Str,
    /// `bytea`
    Bytes,
}

/// One typed key value.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyDatum {
    /// SQL NULL.
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
    /// `varchar` / `text`
    Str(String),
    /// `bytea`
    Bytes(Vec<u8>),
}

/// Why an encoded key could not be decoded.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a datum.
    #[error("memcomparable key truncated while decoding column {column}")]
    Truncated {
        /// Index of the column being decoded.
        column: usize,
    },
    /// A byte that no valid encoding produces.
    #[error("invalid memcomparable encoding in column {column}: {detail}")]
    Invalid {
        /// Index of the column being decoded.
        column: usize,
        /// What was wrong.
        detail: &'static str,
    },
    /// Bytes were left after the last column.
    #[error("{0} trailing bytes after the last key column")]
    Trailing(usize),
}

const TAG_NULL_FIRST: u8 = 0x00;
const TAG_VALUE: u8 = 0x01;
const TAG_NULL_LAST: u8 = 0x02;
const STR_GROUP: usize = 8;
const STR_MORE: u8 = 9;

fn null_tag(order: OrderType) -> u8 {
    // Encoding happens ascending and descending inverts it, so "first" flips with direction.
    if order.nulls_first != order.descending {
        TAG_NULL_FIRST
    } else {
        TAG_NULL_LAST
    }
}

/// Appends the encoding of `datum` in `order` to `buf`.
pub fn encode_datum(buf: &mut Vec<u8>, datum: &KeyDatum, order: OrderType) {
    match datum {
        KeyDatum::Null => encode_null(buf, order),
        KeyDatum::Bool(v) => encode_bool(buf, *v, order),
        KeyDatum::Int16(v) => encode_i16(buf, *v, order),
        KeyDatum::Int32(v) => encode_i32(buf, *v, order),
        KeyDatum::Int64(v) => encode_i64(buf, *v, order),
        KeyDatum::Float32(v) => encode_f32(buf, *v, order),
        KeyDatum::Float64(v) => encode_f64(buf, *v, order),
        KeyDatum::Str(s) => encode_bytes(buf, s.as_bytes(), order),
        KeyDatum::Bytes(b) => encode_bytes(buf, b, order),
    }
}

/// Appends a tagged value: `write` appends the ascending encoding, which descending inverts.
fn encode_value_with(buf: &mut Vec<u8>, order: OrderType, write: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.push(TAG_VALUE);
    write(buf);
    if order.descending {
        buf[start..].iter_mut().for_each(|b| *b = !*b);
    }
}

/// Appends a NULL of any type.
pub fn encode_null(buf: &mut Vec<u8>, order: OrderType) {
    let tag = null_tag(order);
    buf.push(if order.descending { !tag } else { tag });
}

/// Appends a boolean.
pub fn encode_bool(buf: &mut Vec<u8>, v: bool, order: OrderType) {
    encode_value_with(buf, order, |b| b.push(u8::from(v)));
}

/// Appends a `smallint`.
pub fn encode_i16(buf: &mut Vec<u8>, v: i16, order: OrderType) {
    encode_value_with(buf, order, |b| {
        b.extend_from_slice(&((v as u16) ^ (1 << 15)).to_be_bytes())
    });
}

/// Appends an `integer`.
pub fn encode_i32(buf: &mut Vec<u8>, v: i32, order: OrderType) {
    encode_value_with(buf, order, |b| {
        b.extend_from_slice(&((v as u32) ^ (1 << 31)).to_be_bytes())
    });
}

/// Appends a `bigint`.
pub fn encode_i64(buf: &mut Vec<u8>, v: i64, order: OrderType) {
    encode_value_with(buf, order, |b| {
        b.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes())
    });
}

/// Appends a `real`.
pub fn encode_f32(buf: &mut Vec<u8>, v: f32, order: OrderType) {
    encode_value_with(buf, order, |b| {
        b.extend_from_slice(&order_f32(v).to_be_bytes())
    });
}

/// Appends a `double precision`.
pub fn encode_f64(buf: &mut Vec<u8>, v: f64, order: OrderType) {
    encode_value_with(buf, order, |b| {
        b.extend_from_slice(&order_f64(v).to_be_bytes())
    });
}

/// Appends a string or byte string.
pub fn encode_bytes(buf: &mut Vec<u8>, v: &[u8], order: OrderType) {
    encode_value_with(buf, order, |b| encode_byte_groups(b, v));
}

/// Maps a float to an unsigned integer with the same order; -0.0 equals 0.0 and every NaN is
/// one value greater than +inf, as PostgreSQL orders them.
fn order_f64(v: f64) -> u64 {
    let v = if v.is_nan() {
        f64::NAN
    } else if v == 0.0 {
        0.0
    } else {
        v
    };
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn order_f32(v: f32) -> u32 {
    let v = if v.is_nan() {
        f32::NAN
    } else if v == 0.0 {
        0.0
    } else {
        v
    };
    let bits = v.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | (1 << 31)
    }
}

/// Groups of 8 bytes, each followed by a marker: 9 if more groups follow, else the count of
/// significant bytes in the (zero-padded) group. Shorter strings sort before their extensions.
fn encode_byte_groups(buf: &mut Vec<u8>, bytes: &[u8]) {
    let mut chunks = bytes.chunks(STR_GROUP).peekable();
    if chunks.peek().is_none() {
        buf.extend_from_slice(&[0; STR_GROUP]);
        buf.push(0);
        return;
    }
    while let Some(chunk) = chunks.next() {
        buf.extend_from_slice(chunk);
        buf.extend(std::iter::repeat_n(0, STR_GROUP - chunk.len()));
        let more = chunks.peek().is_some();
        buf.push(if more { STR_MORE } else { chunk.len() as u8 });
    }
}

/// Encodes a row of key datums, one [`OrderType`] per column.
pub fn encode_row(datums: &[KeyDatum], orders: &[OrderType]) -> Vec<u8> {
    assert_eq!(datums.len(), orders.len(), "one order type per key column");
    let mut buf = Vec::with_capacity(datums.len() * 9);
    for (datum, order) in datums.iter().zip(orders) {
        encode_datum(&mut buf, datum, *order);
    }
    buf
}

/// Decodes a row encoded by [`encode_row`]; the whole input must be consumed.
pub fn decode_row(
    mut input: &[u8],
    types: &[KeyType],
    orders: &[OrderType],
) -> Result<Vec<KeyDatum>, DecodeError> {
    let mut row = Vec::with_capacity(types.len());
    for (column, (ty, order)) in types.iter().zip(orders).enumerate() {
        let (datum, used) = decode_datum(input, *ty, *order, column)?;
        row.push(datum);
        input = &input[used..];
    }
    if input.is_empty() {
        Ok(row)
    } else {
        Err(DecodeError::Trailing(input.len()))
    }
}

/// Decodes one datum from the start of `input`; returns it and the bytes it took.
pub fn decode_datum(
    input: &[u8],
    ty: KeyType,
    order: OrderType,
    column: usize,
) -> Result<(KeyDatum, usize), DecodeError> {
    let flip = |b: u8| if order.descending { !b } else { b };
    let truncated = DecodeError::Truncated { column };
    let tag = flip(*input.first().ok_or(truncated.clone())?);
    if tag == null_tag(order) {
        return Ok((KeyDatum::Null, 1));
    }
    if tag != TAG_VALUE {
        return Err(DecodeError::Invalid {
            column,
            detail: "bad NULL tag",
        });
    }
    let body = &input[1..];
    let fixed = |n: usize| -> Result<Vec<u8>, DecodeError> {
        let bytes = body.get(..n).ok_or(DecodeError::Truncated { column })?;
        Ok(bytes.iter().map(|b| flip(*b)).collect())
    };
    let (datum, used) = match ty {
        KeyType::Bool => match fixed(1)?[0] {
            0 => (KeyDatum::Bool(false), 1),
            1 => (KeyDatum::Bool(true), 1),
            _ => {
                return Err(DecodeError::Invalid {
                    column,
                    detail: "bad boolean",
                });
            }
        },
        KeyType::Int16 => {
            let v = u16::from_be_bytes(fixed(2)?.try_into().unwrap()) ^ (1 << 15);
            (KeyDatum::Int16(v as i16), 2)
        }
        KeyType::Int32 => {
            let v = u32::from_be_bytes(fixed(4)?.try_into().unwrap()) ^ (1 << 31);
            (KeyDatum::Int32(v as i32), 4)
        }
        KeyType::Int64 => {
            let v = u64::from_be_bytes(fixed(8)?.try_into().unwrap()) ^ (1 << 63);
            (KeyDatum::Int64(v as i64), 8)
        }
        KeyType::Float32 => {
            let bits = u32::from_be_bytes(fixed(4)?.try_into().unwrap());
            let bits = if bits >> 31 == 1 {
                bits & !(1 << 31)
            } else {
                !bits
            };
            (KeyDatum::Float32(f32::from_bits(bits)), 4)
        }
        KeyType::Float64 => {
            let bits = u64::from_be_bytes(fixed(8)?.try_into().unwrap());
            let bits = if bits >> 63 == 1 {
                bits & !(1 << 63)
            } else {
                !bits
            };
            (KeyDatum::Float64(f64::from_bits(bits)), 8)
        }
        KeyType::Str | KeyType::Bytes => {
            let (bytes, used) = decode_bytes(body, flip, column)?;
            let datum = if ty == KeyType::Str {
                KeyDatum::Str(String::from_utf8(bytes).map_err(|_| DecodeError::Invalid {
                    column,
                    detail: "string is not UTF-8",
                })?)
            } else {
                KeyDatum::Bytes(bytes)
            };
            (datum, used)
        }
    };
    Ok((datum, used + 1))
}

fn decode_bytes(
    body: &[u8],
    flip: impl Fn(u8) -> u8,
    column: usize,
) -> Result<(Vec<u8>, usize), DecodeError> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let group = body
            .get(pos..pos + STR_GROUP + 1)
            .ok_or(DecodeError::Truncated { column })?;
        let marker = flip(group[STR_GROUP]);
        pos += STR_GROUP + 1;
        match marker {
            STR_MORE => out.extend(group[..STR_GROUP].iter().map(|b| flip(*b))),
            n if usize::from(n) <= STR_GROUP => {
                out.extend(group[..usize::from(n)].iter().map(|b| flip(*b)));
                return Ok((out, pos));
            }
            _ => {
                return Err(DecodeError::Invalid {
                    column,
                    detail: "bad string group marker",
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    fn datum_strategy() -> impl Strategy<Value = (KeyType, KeyDatum)> {
        prop_oneof![
            Just((KeyType::Int64, KeyDatum::Null)),
            any::<bool>().prop_map(|v| (KeyType::Bool, KeyDatum::Bool(v))),
            any::<i16>().prop_map(|v| (KeyType::Int16, KeyDatum::Int16(v))),
            any::<i32>().prop_map(|v| (KeyType::Int32, KeyDatum::Int32(v))),
            any::<i64>().prop_map(|v| (KeyType::Int64, KeyDatum::Int64(v))),
            any::<f64>().prop_map(|v| (KeyType::Float64, KeyDatum::Float64(v))),
            any::<f32>().prop_map(|v| (KeyType::Float32, KeyDatum::Float32(v))),
            ".{0,20}".prop_map(|v| (KeyType::Str, KeyDatum::Str(v))),
            proptest::collection::vec(any::<u8>(), 0..20)
                .prop_map(|v| (KeyType::Bytes, KeyDatum::Bytes(v))),
        ]
    }

    /// PostgreSQL order of two datums of the same type, NULLs last, NaN greatest.
    fn pg_cmp(a: &KeyDatum, b: &KeyDatum) -> Ordering {
        use KeyDatum::*;
        let f = |x: f64, y: f64| match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => x.partial_cmp(&y).unwrap(),
        };
        match (a, b) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Greater,
            (_, Null) => Ordering::Less,
            (Bool(x), Bool(y)) => x.cmp(y),
            (Int16(x), Int16(y)) => x.cmp(y),
            (Int32(x), Int32(y)) => x.cmp(y),
            (Int64(x), Int64(y)) => x.cmp(y),
            (Float32(x), Float32(y)) => f(f64::from(*x), f64::from(*y)),
            (Float64(x), Float64(y)) => f(*x, *y),
            (Str(x), Str(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Bytes(x), Bytes(y)) => x.cmp(y),
            _ => unreachable!("same type"),
        }
    }

    fn same_value(a: &KeyDatum, b: &KeyDatum) -> bool {
        match (a, b) {
            (KeyDatum::Float64(x), KeyDatum::Float64(y)) => (x.is_nan() && y.is_nan()) || x == y,
            (KeyDatum::Float32(x), KeyDatum::Float32(y)) => (x.is_nan() && y.is_nan()) || x == y,
            _ => a == b,
        }
    }

    fn orders() -> impl Strategy<Value = OrderType> {
        (any::<bool>(), any::<bool>()).prop_map(|(descending, nulls_first)| OrderType {
            descending,
            nulls_first,
        })
    }

    proptest! {
        #[test]
        fn order_is_preserved((ty, a) in datum_strategy(), b_seed in datum_strategy(), order in orders()) {
            // Give b the same type as a (or NULL) so the comparison is meaningful.
            let b = if std::mem::discriminant(&b_seed.1) == std::mem::discriminant(&a)
                || b_seed.1 == KeyDatum::Null { b_seed.1 } else { KeyDatum::Null };
            // NULL placement is absolute (NULLS FIRST/LAST); direction orders the values.
            let expected = match (a == KeyDatum::Null, b == KeyDatum::Null) {
                (true, true) => Ordering::Equal,
                (true, false) if order.nulls_first => Ordering::Less,
                (true, false) => Ordering::Greater,
                (false, true) if order.nulls_first => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) if order.descending => pg_cmp(&a, &b).reverse(),
                (false, false) => pg_cmp(&a, &b),
            };
            let mut ea = Vec::new();
            encode_datum(&mut ea, &a, order);
            let mut eb = Vec::new();
            encode_datum(&mut eb, &b, order);
            prop_assert_eq!(ea.cmp(&eb), expected, "{:?} vs {:?} in {:?}", a, b, order);
            let (decoded, used) = decode_datum(&ea, ty, order, 0).unwrap();
            prop_assert_eq!(used, ea.len());
            prop_assert!(same_value(&decoded, &a) || (a == KeyDatum::Float64(-0.0)) || (a == KeyDatum::Float32(-0.0)));
        }

        #[test]
        fn rows_roundtrip(cols in proptest::collection::vec((datum_strategy(), orders()), 0..6)) {
            let types: Vec<_> = cols.iter().map(|((t, _), _)| *t).collect();
            let datums: Vec<_> = cols.iter().map(|((_, d), _)| d.clone()).collect();
            let ords: Vec<_> = cols.iter().map(|(_, o)| *o).collect();
            let enc = encode_row(&datums, &ords);
            let dec = decode_row(&enc, &types, &ords).unwrap();
            for (x, y) in dec.iter().zip(&datums) {
                prop_assert!(same_value(x, y) || matches!(y, KeyDatum::Float64(v) if *v == 0.0) || matches!(y, KeyDatum::Float32(v) if *v == 0.0));
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_row(&bytes, &[KeyType::Str, KeyType::Int64, KeyType::Float32], &[OrderType::ASC, OrderType::DESC, OrderType::ASC]);
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        let enc = encode_row(&[KeyDatum::Str("hello world".into())], &[OrderType::ASC]);
        let err = decode_row(&enc[..5], &[KeyType::Str], &[OrderType::ASC]).unwrap_err();
        assert_eq!(err, DecodeError::Truncated { column: 0 });
    }
}
