//! Stored values: a put with bytes, or a tombstone.

use bytes::{BufMut, Bytes};

const TAG_DELETE: u8 = 0;
const TAG_PUT: u8 = 1;

/// One version's value: the bytes written, or a tombstone left by a delete.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// The key holds these bytes.
    Put(Bytes),
    /// The key was deleted.
    Delete,
}

impl Value {
    /// Whether this is a tombstone.
    pub fn is_delete(&self) -> bool {
        matches!(self, Value::Delete)
    }

    /// The bytes of a put.
    pub fn as_put(&self) -> Option<&Bytes> {
        match self {
            Value::Put(b) => Some(b),
            Value::Delete => None,
        }
    }

    /// Bytes the encoded form takes.
    pub fn encoded_len(&self) -> usize {
        1 + self.as_put().map_or(0, Bytes::len)
    }

    /// Appends the encoded form (`tag | bytes`) to `buf`.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        match self {
            Value::Put(b) => {
                buf.put_u8(TAG_PUT);
                buf.put_slice(b);
            }
            Value::Delete => buf.put_u8(TAG_DELETE),
        }
    }

    /// Decodes [`Value::encode_into`], sharing `encoded`'s buffer; `None` if it is malformed.
    pub fn decode(encoded: &Bytes) -> Option<Value> {
        match *encoded.first()? {
            TAG_PUT => Some(Value::Put(encoded.slice(1..))),
            TAG_DELETE if encoded.len() == 1 => Some(Value::Delete),
            _ => None,
        }
    }
}

impl From<Option<Bytes>> for Value {
    fn from(v: Option<Bytes>) -> Self {
        v.map_or(Value::Delete, Value::Put)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_rejects_garbage() {
        for v in [
            Value::Put(Bytes::from_static(b"x")),
            Value::Put(Bytes::new()),
            Value::Delete,
        ] {
            let mut buf = Vec::new();
            v.encode_into(&mut buf);
            assert_eq!(buf.len(), v.encoded_len());
            assert_eq!(Value::decode(&Bytes::from(buf)), Some(v));
        }
        assert_eq!(Value::decode(&Bytes::from_static(b"")), None);
        assert_eq!(Value::decode(&Bytes::from_static(&[7])), None);
        assert_eq!(Value::decode(&Bytes::from_static(&[0, 1])), None);
    }
}
