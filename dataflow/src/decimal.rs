//! `numeric`: exact decimals with a per-value scale, plus PostgreSQL's NaN and ±Infinity.
//!
//! Finite values are `rust_decimal` numbers: a 96-bit mantissa and a scale of 0 to 28.
//! Values keep their scale (`1.50 * 2` is `3.00`), except group keys: `1.1` and `1.10` are one
//! group, shown normalized (`1.1`) whichever row came first, as in RisingWave. Results that do
//! not fit are "numeric out of range".
//! Values compare by magnitude (`1.1 = 1.10`); NaN equals itself and sorts above everything,
//! as in PostgreSQL.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal as Finite, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A `numeric` value.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum Decimal {
    /// A finite number.
    Finite(Finite),
    /// Not a number.
    NaN,
    /// `Infinity`
    PositiveInf,
    /// `-Infinity`
    NegativeInf,
}

/// Bytes of the stored form: `rust_decimal`'s 16-byte serialization, whose first byte (the low
/// flag bits) is always zero for finite values; a non-zero first byte marks a special value.
pub const ENCODED_LEN: usize = 16;
const TAG_NAN: u8 = 1;
const TAG_POS_INF: u8 = 2;
const TAG_NEG_INF: u8 = 3;

fn out_of_range() -> Error {
    Error::OutOfRange("Numeric".into())
}

impl Decimal {
    /// Zero.
    pub const ZERO: Decimal = Decimal::Finite(Finite::ZERO);

    /// The 16-byte stored form.
    pub fn to_bytes(self) -> [u8; ENCODED_LEN] {
        match self {
            Decimal::Finite(d) => d.serialize(),
            special => {
                let mut b = [0; ENCODED_LEN];
                b[0] = match special {
                    Decimal::NaN => TAG_NAN,
                    Decimal::PositiveInf => TAG_POS_INF,
                    _ => TAG_NEG_INF,
                };
                b
            }
        }
    }

    /// Reads the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Decimal> {
        let b: [u8; ENCODED_LEN] = bytes
            .try_into()
            .map_err(|_| Error::CorruptState("numeric value is not 16 bytes".into()))?;
        Ok(match b[0] {
            0 if b[2] <= 28 => Decimal::Finite(Finite::deserialize(b)),
            TAG_NAN => Decimal::NaN,
            TAG_POS_INF => Decimal::PositiveInf,
            TAG_NEG_INF => Decimal::NegativeInf,
            _ => return Err(Error::CorruptState("bad numeric value".into())),
        })
    }

    /// The same value with the smallest scale that holds it (`1.10` → `1.1`).
    pub fn normalized(self) -> Decimal {
        match self {
            Decimal::Finite(d) => Decimal::Finite(d.normalize()),
            special => special,
        }
    }

    /// Whether the value is finite.
    pub fn is_finite(self) -> bool {
        matches!(self, Decimal::Finite(_))
    }

    fn sign(self) -> Ordering {
        match self {
            Decimal::Finite(d) if d.is_zero() => Ordering::Equal,
            Decimal::Finite(d) if d.is_sign_negative() => Ordering::Less,
            Decimal::NegativeInf => Ordering::Less,
            _ => Ordering::Greater,
        }
    }

    fn inf(sign: Ordering) -> Decimal {
        if sign == Ordering::Less {
            Decimal::NegativeInf
        } else {
            Decimal::PositiveInf
        }
    }

    /// `self + other`.
    pub fn checked_add(self, other: Decimal) -> Result<Decimal> {
        use Decimal::*;
        Ok(match (self, other) {
            (Finite(a), Finite(b)) => Finite(a.checked_add(b).ok_or_else(out_of_range)?),
            (NaN, _) | (_, NaN) => NaN,
            (PositiveInf, NegativeInf) | (NegativeInf, PositiveInf) => NaN,
            (inf @ (PositiveInf | NegativeInf), _) | (_, inf) => inf,
        })
    }

    /// `self - other`.
    pub fn checked_sub(self, other: Decimal) -> Result<Decimal> {
        self.checked_add(-other)
    }

    /// `self * other`.
    pub fn checked_mul(self, other: Decimal) -> Result<Decimal> {
        use Decimal::*;
        Ok(match (self, other) {
            (Finite(a), Finite(b)) => Finite(a.checked_mul(b).ok_or_else(out_of_range)?),
            (NaN, _) | (_, NaN) => NaN,
            (a, b) if a.sign() == Ordering::Equal || b.sign() == Ordering::Equal => NaN,
            (a, b) => Decimal::inf(if a.sign() == b.sign() {
                Ordering::Greater
            } else {
                Ordering::Less
            }),
        })
    }

    /// `self / other`; dividing by zero is an error.
    pub fn checked_div(self, other: Decimal) -> Result<Decimal> {
        use Decimal::*;
        Ok(match (self, other) {
            (NaN, _) | (_, NaN) => NaN,
            (_, b) if b.sign() == Ordering::Equal => return Err(Error::DivisionByZero),
            (Finite(a), Finite(b)) => Finite(a.checked_div(b).ok_or_else(out_of_range)?),
            (Finite(_), _) => Decimal::ZERO,
            (_, Finite(b)) => Decimal::inf(if b.is_sign_negative() {
                self.sign().reverse()
            } else {
                self.sign()
            }),
            _ => NaN,
        })
    }

    /// `self % other`, with the sign of `self`; modulo zero is an error.
    pub fn checked_rem(self, other: Decimal) -> Result<Decimal> {
        use Decimal::*;
        Ok(match (self, other) {
            (NaN, _) | (_, NaN) => NaN,
            (_, b) if b.sign() == Ordering::Equal => return Err(Error::DivisionByZero),
            (Finite(a), Finite(b)) => Finite(a.checked_rem(b).ok_or_else(out_of_range)?),
            (Finite(_), _) => self,
            _ => NaN,
        })
    }

    /// `abs(self)`.
    pub fn abs(self) -> Decimal {
        match self {
            Decimal::Finite(d) => Decimal::Finite(d.abs()),
            Decimal::NegativeInf => Decimal::PositiveInf,
            other => other,
        }
    }

    /// Rounds to `digits` decimals, halves away from zero; a negative `digits` rounds to a
    /// power of ten (`round(1234.5, -2)` is 1200).
    pub fn round(self, digits: i32) -> Result<Decimal> {
        self.round_with(digits, RoundingStrategy::MidpointAwayFromZero)
    }

    /// Truncates to `digits` decimals (toward zero); a negative `digits` truncates to a power
    /// of ten.
    pub fn trunc(self, digits: i32) -> Result<Decimal> {
        self.round_with(digits, RoundingStrategy::ToZero)
    }

    fn round_with(self, digits: i32, strategy: RoundingStrategy) -> Result<Decimal> {
        let Decimal::Finite(d) = self else {
            return Ok(self);
        };
        if digits >= 0 {
            let dp = u32::try_from(digits).unwrap_or(u32::MAX).min(28);
            return Ok(Decimal::Finite(d.round_dp_with_strategy(dp, strategy)));
        }
        let places = digits.unsigned_abs();
        if places > 28 {
            return Ok(Decimal::ZERO);
        }
        let factor = Finite::from_i128_with_scale(10i128.pow(places), 0);
        let scaled = d.checked_div(factor).ok_or_else(out_of_range)?;
        let rounded = scaled.round_dp_with_strategy(0, strategy);
        Ok(Decimal::Finite(
            rounded.checked_mul(factor).ok_or_else(out_of_range)?,
        ))
    }

    /// The smallest integer not below the value.
    pub fn ceil(self) -> Decimal {
        match self {
            Decimal::Finite(d) => Decimal::Finite(d.ceil()),
            other => other,
        }
    }

    /// The largest integer not above the value.
    pub fn floor(self) -> Decimal {
        match self {
            Decimal::Finite(d) => Decimal::Finite(d.floor()),
            other => other,
        }
    }

    /// The value rounded (halves away from zero) to an integer, if one fits in `i64`.
    pub fn to_i64(self) -> Result<i64> {
        match self {
            Decimal::Finite(d) => d
                .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
                .to_i64()
                .ok_or_else(|| Error::OutOfRange("bigint".into())),
            Decimal::NaN => Err(Error::OutOfRange(
                "cannot convert NaN to integer: it".into(),
            )),
            _ => Err(Error::OutOfRange(
                "cannot convert infinity to integer: it".into(),
            )),
        }
    }

    /// The nearest double.
    pub fn to_f64(self) -> f64 {
        match self {
            Decimal::Finite(d) => d.to_string().parse().unwrap_or(f64::NAN),
            Decimal::NaN => f64::NAN,
            Decimal::PositiveInf => f64::INFINITY,
            Decimal::NegativeInf => f64::NEG_INFINITY,
        }
    }

    /// The decimal of a double's shortest exact text (`0.1` stays `0.1`).
    pub fn from_f64(v: f64) -> Result<Decimal> {
        if v.is_nan() {
            return Ok(Decimal::NaN);
        }
        if v.is_infinite() {
            return Ok(Decimal::inf(if v > 0.0 {
                Ordering::Greater
            } else {
                Ordering::Less
            }));
        }
        match Finite::from_str(&v.to_string()) {
            Ok(d) => Ok(Decimal::Finite(d)),
            // Below the smallest representable step: rounds to zero.
            Err(_) if v.abs() < 1.0 => Ok(Decimal::ZERO),
            Err(_) => Err(out_of_range()),
        }
    }

    /// The key bytes of the value: byte strings that sort as the values do, equal for equal
    /// values whatever their scale (`1.1` and `1.10` share one key).
    pub fn key_bytes(self) -> Vec<u8> {
        let d = match self {
            Decimal::NegativeInf => return vec![1],
            Decimal::PositiveInf => return vec![5],
            Decimal::NaN => return vec![6],
            Decimal::Finite(d) if d.is_zero() => return vec![3],
            Decimal::Finite(d) => d.normalize(),
        };
        let negative = d.is_sign_negative();
        let digits = d.mantissa().unsigned_abs().to_string();
        // value = 0.d1d2...dn × 10^exponent
        let exponent = digits.len() as i32 - d.scale() as i32;
        let flip = |b: u8| if negative { !b } else { b };
        let mut out = Vec::with_capacity(digits.len() + 3);
        out.push(if negative { 2 } else { 4 });
        out.push(flip((exponent + 64) as u8));
        out.extend(digits.bytes().map(|c| flip(c - b'0' + 1)));
        out.push(flip(0));
        out
    }

    /// Reads [`Decimal::key_bytes`] back (normalized: the scale is the smallest exact one).
    pub fn from_key_bytes(bytes: &[u8]) -> Option<Decimal> {
        let (&tag, rest) = bytes.split_first()?;
        let negative = match tag {
            1 => return Some(Decimal::NegativeInf),
            3 => return Some(Decimal::ZERO),
            5 => return Some(Decimal::PositiveInf),
            6 => return Some(Decimal::NaN),
            2 => true,
            4 => false,
            _ => return None,
        };
        let flip = |b: u8| if negative { !b } else { b };
        let (&exp, rest) = rest.split_first()?;
        let exponent = i32::from(flip(exp)) - 64;
        let mut mantissa: i128 = 0;
        let mut n = 0i32;
        for b in rest.iter().map(|b| flip(*b)) {
            if b == 0 {
                break;
            }
            mantissa = mantissa.checked_mul(10)? + i128::from(b.checked_sub(1)?);
            n += 1;
        }
        let mut scale = n - exponent;
        while scale < 0 {
            mantissa = mantissa.checked_mul(10)?;
            scale += 1;
        }
        let d = Finite::try_from_i128_with_scale(
            if negative { -mantissa } else { mantissa },
            u32::try_from(scale).ok()?,
        )
        .ok()?;
        Some(Decimal::Finite(d))
    }

    /// PostgreSQL's binary `numeric` wire form: base-10000 digits with weight, sign and scale.
    pub fn to_pg_binary(self) -> Vec<u8> {
        let (sign, d) = match self {
            Decimal::NaN => (0xC000u16, Finite::ZERO),
            Decimal::PositiveInf => (0xD000, Finite::ZERO),
            Decimal::NegativeInf => (0xF000, Finite::ZERO),
            Decimal::Finite(d) => (if d.is_sign_negative() { 0x4000 } else { 0 }, d),
        };
        let dscale = d.scale() as u16;
        let mut digits: Vec<i16> = Vec::new();
        let mut weight: i16 = -1;
        if self.is_finite() && !d.is_zero() {
            // Pad the fraction to a whole number of base-10000 digits, then split.
            let scale = d.scale() as usize;
            let frac_groups = scale.div_ceil(4);
            let mut m = d.mantissa().unsigned_abs() * 10u128.pow((frac_groups * 4 - scale) as u32);
            let mut groups = Vec::new();
            while m > 0 {
                groups.push((m % 10_000) as i16);
                m /= 10_000;
            }
            weight = groups.len() as i16 - frac_groups as i16 - 1;
            groups.reverse();
            while groups.last() == Some(&0) {
                groups.pop();
            }
            let leading = groups.iter().take_while(|g| **g == 0).count();
            weight -= leading as i16;
            digits = groups[leading..].to_vec();
        }
        let mut out = Vec::with_capacity(8 + digits.len() * 2);
        out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
        for g in digits {
            out.extend_from_slice(&g.to_be_bytes());
        }
        out
    }

    /// Reads PostgreSQL's binary `numeric` wire form.
    pub fn from_pg_binary(b: &[u8]) -> Result<Decimal> {
        let bad = || Error::InvalidInput("invalid binary numeric".into());
        let word = |i: usize| -> Result<u16> {
            Ok(u16::from_be_bytes(
                b.get(i..i + 2).ok_or_else(bad)?.try_into().expect("two"),
            ))
        };
        let ndigits = word(0)? as usize;
        let weight = word(2)? as i16;
        let sign = word(4)?;
        let dscale = u32::from(word(6)?);
        match sign {
            0xC000 => return Ok(Decimal::NaN),
            0xD000 => return Ok(Decimal::PositiveInf),
            0xF000 => return Ok(Decimal::NegativeInf),
            0 | 0x4000 => {}
            _ => return Err(bad()),
        }
        let mut text = String::new();
        for i in 0..ndigits {
            text.push_str(&format!("{:04}", word(8 + i * 2)?));
        }
        // The digits stand for 0.text × 10000^(weight + 1).
        let int_digits = (i32::from(weight) + 1) * 4;
        let value = if int_digits <= 0 {
            format!("0.{}{text}", "0".repeat(int_digits.unsigned_abs() as usize))
        } else if int_digits as usize >= text.len() {
            format!("{text}{}", "0".repeat(int_digits as usize - text.len()))
        } else {
            let (i, f) = text.split_at(int_digits as usize);
            format!("{i}.{f}")
        };
        let mut d = Finite::from_str(&value).map_err(|_| out_of_range())?;
        d = d.round_dp(dscale);
        d.rescale(dscale.min(28));
        if sign == 0x4000 {
            d.set_sign_negative(true);
        }
        Ok(Decimal::Finite(d))
    }
}

impl std::ops::Neg for Decimal {
    type Output = Decimal;

    fn neg(self) -> Decimal {
        match self {
            Decimal::Finite(d) => Decimal::Finite(-d),
            Decimal::NaN => Decimal::NaN,
            Decimal::PositiveInf => Decimal::NegativeInf,
            Decimal::NegativeInf => Decimal::PositiveInf,
        }
    }
}

impl From<i64> for Decimal {
    fn from(v: i64) -> Decimal {
        Decimal::Finite(Finite::from(v))
    }
}

impl FromStr for Decimal {
    type Err = Error;

    /// Parses PostgreSQL's input forms: `12.50`, `-1e3`, `NaN`, `Infinity`, `-inf`.
    fn from_str(s: &str) -> Result<Decimal> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        match lower.as_str() {
            "nan" => return Ok(Decimal::NaN),
            "infinity" | "+infinity" | "inf" | "+inf" => return Ok(Decimal::PositiveInf),
            "-infinity" | "-inf" => return Ok(Decimal::NegativeInf),
            _ => {}
        }
        let invalid =
            || Error::InvalidInput(format!("invalid input syntax for type numeric: \"{s}\""));
        if !is_numeric_literal(t) {
            return Err(invalid());
        }
        let parsed = if lower.contains('e') {
            Finite::from_scientific(t)
        } else {
            Finite::from_str(t)
        };
        // The text is well formed, so a failure means it does not fit.
        parsed.map(Decimal::Finite).map_err(|_| out_of_range())
    }
}

/// `[+-]digits[.digits][e[+-]digits]`, with at least one digit before the exponent.
fn is_numeric_literal(t: &str) -> bool {
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    !(int.is_empty() && frac.is_empty()) && digits(int) && digits(frac) && exponent_ok
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decimal::Finite(d) => d.fmt(f),
            Decimal::NaN => f.write_str("NaN"),
            Decimal::PositiveInf => f.write_str("Infinity"),
            Decimal::NegativeInf => f.write_str("-Infinity"),
        }
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        use Decimal::*;
        let rank = |d: &Decimal| match d {
            NegativeInf => 0,
            Finite(_) => 1,
            PositiveInf => 2,
            NaN => 3,
        };
        match (self, other) {
            (Finite(a), Finite(b)) => a.cmp(b),
            _ => rank(self).cmp(&rank(other)),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Decimal) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl Hash for Decimal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key_bytes().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn keeps_scale_and_parses_postgres_forms() {
        assert_eq!(d("1.10").to_string(), "1.10");
        assert_eq!(d("1.10").normalized().to_string(), "1.1");
        assert_eq!(d("1.5").checked_mul(d("2.5")).unwrap().to_string(), "3.75");
        assert_eq!(
            d("0.50").checked_add(d("0.25")).unwrap().to_string(),
            "0.75"
        );
        assert_eq!(d("-1e3").to_string(), "-1000");
        assert_eq!(d(" NaN ").to_string(), "NaN");
        assert_eq!(d("-inf").to_string(), "-Infinity");
        assert_eq!(d("1.1"), d("1.10"));
        assert!(matches!(
            "abc".parse::<Decimal>(),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            "1..2".parse::<Decimal>(),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            "1e40".parse::<Decimal>(),
            Err(Error::OutOfRange(_))
        ));
        assert_eq!(
            d("1").checked_div(d("3")).unwrap().to_string(),
            "0.3333333333333333333333333333"
        );
        assert!(matches!(
            d("79228162514264337593543950335").checked_add(d("1")),
            Err(Error::OutOfRange(_))
        ));
    }

    #[test]
    fn special_values_follow_postgres() {
        let inf = Decimal::PositiveInf;
        assert_eq!(inf.checked_add(-inf).unwrap(), Decimal::NaN);
        assert_eq!(inf.checked_mul(d("-2")).unwrap(), Decimal::NegativeInf);
        assert_eq!(d("5").checked_div(inf).unwrap(), Decimal::ZERO);
        assert!(matches!(
            d("5").checked_div(d("0.0")),
            Err(Error::DivisionByZero)
        ));
        assert!(Decimal::NaN > inf && inf > d("1e20") && Decimal::NegativeInf < d("-1e20"));
        assert_eq!(d("2.5").round(0).unwrap(), d("3"));
        assert_eq!(d("-2.5").round(0).unwrap(), d("-3"));
        assert_eq!(d("1234.5").round(-2).unwrap(), d("1200"));
        assert_eq!(d("-2.5").to_i64().unwrap(), -3);
        assert!(Decimal::NaN.to_i64().is_err());
        assert_eq!(Decimal::from_f64(0.1).unwrap().to_string(), "0.1");
    }

    #[test]
    fn stored_and_wire_forms_roundtrip() {
        for s in [
            "0",
            "1.10",
            "-0.0001",
            "12345678.9",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e20",
        ] {
            let v = d(s);
            let back = Decimal::from_bytes(&v.to_bytes()).unwrap();
            assert_eq!(back.to_string(), v.to_string());
            let wire = Decimal::from_pg_binary(&v.to_pg_binary()).unwrap();
            assert_eq!(wire.to_string(), v.to_string(), "{s}");
        }
        // 12345678.9 is 1234|5678.9000 in base 10000: weight 1, scale 1.
        assert_eq!(
            d("12345678.9").to_pg_binary(),
            [0, 3, 0, 1, 0, 0, 0, 1, 4, 210, 22, 46, 35, 40]
        );
        assert!(Decimal::from_bytes(&[9; 16]).is_err());
    }

    fn arb_decimal() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::Finite(Finite::new(m, s))),
            (any::<i128>(), 0u32..=28).prop_map(|(m, s)| {
                Decimal::Finite(Finite::from_i128_with_scale(
                    m % 79228162514264337593543950335,
                    s,
                ))
            }),
            Just(Decimal::NaN),
            Just(Decimal::PositiveInf),
            Just(Decimal::NegativeInf),
        ]
    }

    proptest! {
        #[test]
        fn key_bytes_sort_like_values(a in arb_decimal(), b in arb_decimal()) {
            prop_assert_eq!(a.key_bytes().cmp(&b.key_bytes()), a.cmp(&b));
            prop_assert_eq!(Decimal::from_key_bytes(&a.key_bytes()), Some(a));
        }
    }
}
