//! PostgreSQL values <-> JSON. Parameters are sent in text format (PostgreSQL parses them for the
//! type it inferred); results arrive in binary format and are converted per type. The mapping is
//! documented in README.md; a type not listed there is refused with `unsupported_type`.

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::{Map, Number, Value};
use std::error::Error;
use std::fmt::Write as _;
use tokio_postgres::types::{Format, FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

/// A JSON parameter, bound as text for whatever type PostgreSQL inferred.
#[derive(Debug)]
pub struct JsonParam<'a>(pub &'a Value);

impl ToSql for JsonParam<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if self.0.is_null() {
            return Ok(IsNull::Yes);
        }
        out.put_slice(param_text(self.0, ty).as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// The text form of a JSON value for a parameter of type `ty`.
pub fn param_text(v: &Value, ty: &Type) -> String {
    match (v, ty.kind()) {
        (Value::String(s), _) => s.clone(),
        (Value::Bool(b), _) => b.to_string(),
        (Value::Number(n), _) => n.to_string(),
        (Value::Array(items), Kind::Array(_)) => array_literal(items),
        (other, _) => other.to_string(),
    }
}

fn array_literal(items: &[Value]) -> String {
    let mut s = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        match item {
            Value::Null => s.push_str("NULL"),
            Value::Array(inner) => s.push_str(&array_literal(inner)),
            Value::String(t) => quote_elem(&mut s, t),
            other => quote_elem(&mut s, &other.to_string()),
        }
    }
    s.push('}');
    s
}

fn quote_elem(out: &mut String, t: &str) {
    out.push('"');
    for c in t.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The raw bytes of any column, to be decoded by [`decode`].
pub struct Raw<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("type {0} is not supported by postgate: cast the column, e.g. to text")]
    Unsupported(String),
    #[error("malformed value of type {0}")]
    Malformed(String),
}

/// The name shown in `columns[].type`: `int4`, `text[]`, an enum's own name.
pub fn type_name(ty: &Type) -> String {
    match ty.kind() {
        Kind::Array(elem) => format!("{}[]", elem.name()),
        _ => ty.name().to_string(),
    }
}

/// A binary value of type `ty` as JSON.
pub fn decode(ty: &Type, raw: Option<&[u8]>) -> Result<Value, DecodeError> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    let bad = || DecodeError::Malformed(ty.name().to_string());
    let v = match *ty {
        Type::BOOL => Value::Bool(*raw.first().ok_or_else(bad)? != 0),
        Type::INT2 => Value::from(i16::from_be_bytes(fixed(raw).ok_or_else(bad)?)),
        Type::INT4 => Value::from(i32::from_be_bytes(fixed(raw).ok_or_else(bad)?)),
        Type::OID | Type::XID | Type::CID => {
            Value::from(u32::from_be_bytes(fixed(raw).ok_or_else(bad)?))
        }
        Type::INT8 => Value::String(i64::from_be_bytes(fixed(raw).ok_or_else(bad)?).to_string()),
        Type::FLOAT4 => float(f32::from_be_bytes(fixed(raw).ok_or_else(bad)?) as f64),
        Type::FLOAT8 => float(f64::from_be_bytes(fixed(raw).ok_or_else(bad)?)),
        Type::NUMERIC => Value::String(numeric(raw).ok_or_else(bad)?),
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::XML
        | Type::CHAR
        | Type::REGCLASS
        | Type::REGTYPE
        | Type::REGPROC => Value::String(utf8(raw).ok_or_else(bad)?),
        Type::JSON => serde_json::from_slice(raw).map_err(|_| bad())?,
        Type::JSONB => match raw.split_first() {
            Some((1, rest)) => serde_json::from_slice(rest).map_err(|_| bad())?,
            _ => return Err(bad()),
        },
        Type::UUID => Value::String(uuid(raw).ok_or_else(bad)?),
        Type::BYTEA => Value::String(format!("\\x{}", hex::encode(raw))),
        Type::DATE => {
            Value::String(date(i32::from_be_bytes(fixed(raw).ok_or_else(bad)?)).ok_or_else(bad)?)
        }
        Type::TIMESTAMP => Value::String(
            timestamp(i64::from_be_bytes(fixed(raw).ok_or_else(bad)?), false).ok_or_else(bad)?,
        ),
        Type::TIMESTAMPTZ => Value::String(
            timestamp(i64::from_be_bytes(fixed(raw).ok_or_else(bad)?), true).ok_or_else(bad)?,
        ),
        Type::TIME => {
            Value::String(time(i64::from_be_bytes(fixed(raw).ok_or_else(bad)?)).ok_or_else(bad)?)
        }
        Type::TIMETZ => Value::String(timetz(raw).ok_or_else(bad)?),
        Type::INTERVAL => Value::String(interval(raw).ok_or_else(bad)?),
        Type::INET | Type::CIDR => Value::String(inet(raw).ok_or_else(bad)?),
        Type::RECORD => record(raw, None)?,
        _ => match ty.kind() {
            Kind::Enum(_) => Value::String(utf8(raw).ok_or_else(bad)?),
            Kind::Domain(base) => decode(base, Some(raw))?,
            Kind::Array(elem) => array(elem, raw)?,
            Kind::Composite(fields) => {
                let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
                record(raw, Some(&names))?
            }
            _ => return Err(DecodeError::Unsupported(ty.name().to_string())),
        },
    };
    Ok(v)
}

fn fixed<const N: usize>(raw: &[u8]) -> Option<[u8; N]> {
    raw.try_into().ok()
}

fn utf8(raw: &[u8]) -> Option<String> {
    String::from_utf8(raw.to_vec()).ok()
}

fn float(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A length-prefixed value (-1 = NULL).
    fn value(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.i32()?;
        if len < 0 {
            return Some(None);
        }
        Some(Some(self.take(len as usize)?))
    }
}

/// numeric's binary form: base-10000 digits, weight of the first, sign, display scale.
fn numeric(raw: &[u8]) -> Option<String> {
    let mut r = Reader(raw);
    let ndigits = r.i16()?;
    let weight = r.i16()? as i32;
    let sign = r.u16()?;
    let dscale = r.u16()? as i32;
    let mut digits = Vec::with_capacity(ndigits.max(0) as usize);
    for _ in 0..ndigits {
        digits.push(r.i16()?);
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    }
    let digit = |i: i32| -> i16 {
        if i < 0 {
            0
        } else {
            digits.get(i as usize).copied().unwrap_or(0)
        }
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                let _ = write!(s, "{}", digit(i));
            } else {
                let _ = write!(s, "{:04}", digit(i));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let groups = (dscale + 3) / 4;
        for g in 0..groups {
            let _ = write!(frac, "{:04}", digit(weight + 1 + g));
        }
        frac.truncate(dscale as usize);
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}

fn uuid(raw: &[u8]) -> Option<String> {
    if raw.len() != 16 {
        return None;
    }
    let h = hex::encode(raw);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

fn date(days: i32) -> Option<String> {
    match days {
        i32::MAX => Some("infinity".into()),
        i32::MIN => Some("-infinity".into()),
        _ => {
            let d = pg_epoch()
                .date()
                .checked_add_signed(Duration::try_days(days as i64)?)?;
            Some(d.format("%Y-%m-%d").to_string())
        }
    }
}

fn timestamp(micros: i64, tz: bool) -> Option<String> {
    match micros {
        i64::MAX => return Some("infinity".into()),
        i64::MIN => return Some("-infinity".into()),
        _ => {}
    }
    let t = pg_epoch().checked_add_signed(Duration::microseconds(micros))?;
    if tz {
        Some(
            DateTime::<chrono::Utc>::from_naive_utc_and_offset(t, chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        )
    } else {
        Some(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
    }
}

fn time(micros: i64) -> Option<String> {
    if micros == 86_400_000_000 {
        return Some("24:00:00".into());
    }
    let t = NaiveTime::from_num_seconds_from_midnight_opt(
        u32::try_from(micros / 1_000_000).ok()?,
        u32::try_from((micros % 1_000_000) * 1000).ok()?,
    )?;
    Some(t.format("%H:%M:%S%.f").to_string())
}

fn timetz(raw: &[u8]) -> Option<String> {
    let mut r = Reader(raw);
    let t = time(r.i64()?)?;
    let west = r.i32()?; // seconds west of UTC
    let east = -west;
    let sign = if east < 0 { '-' } else { '+' };
    let a = east.unsigned_abs();
    Some(format!("{t}{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60))
}

/// ISO 8601 duration, each part with its own sign as PostgreSQL keeps them apart.
fn interval(raw: &[u8]) -> Option<String> {
    let mut r = Reader(raw);
    let micros = r.i64()?;
    let days = r.i32()?;
    let months = r.i32()?;
    let mut s = String::from("P");
    let (y, m) = (months / 12, months % 12);
    if y != 0 {
        let _ = write!(s, "{y}Y");
    }
    if m != 0 {
        let _ = write!(s, "{m}M");
    }
    if days != 0 {
        let _ = write!(s, "{days}D");
    }
    if micros != 0 {
        let neg = micros < 0;
        let a = micros.unsigned_abs();
        let (h, rest) = (a / 3_600_000_000, a % 3_600_000_000);
        let (mi, us) = (rest / 60_000_000, rest % 60_000_000);
        let sign = if neg { "-" } else { "" };
        s.push('T');
        if h != 0 {
            let _ = write!(s, "{sign}{h}H");
        }
        if mi != 0 {
            let _ = write!(s, "{sign}{mi}M");
        }
        if us != 0 {
            let (sec, frac) = (us / 1_000_000, us % 1_000_000);
            if frac == 0 {
                let _ = write!(s, "{sign}{sec}S");
            } else {
                let f = format!("{frac:06}");
                let _ = write!(s, "{sign}{sec}.{}S", f.trim_end_matches('0'));
            }
        }
    }
    if s == "P" {
        s.push_str("T0S");
    }
    Some(s)
}

fn inet(raw: &[u8]) -> Option<String> {
    let mut r = Reader(raw);
    let head = r.take(4)?;
    let (family, bits, is_cidr, n) = (head[0], head[1], head[2], head[3] as usize);
    let addr = r.take(n)?;
    let (text, max) = match family {
        2 => (
            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(addr).ok()?).to_string(),
            32,
        ),
        3 => (
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(addr).ok()?).to_string(),
            128,
        ),
        _ => return None,
    };
    if is_cidr != 0 || bits != max {
        Some(format!("{text}/{bits}"))
    } else {
        Some(text)
    }
}

fn array(elem: &Type, raw: &[u8]) -> Result<Value, DecodeError> {
    let bad = || DecodeError::Malformed(format!("{}[]", elem.name()));
    let mut r = Reader(raw);
    let ndim = r.i32().ok_or_else(bad)?;
    let _has_null = r.i32().ok_or_else(bad)?;
    let _elem_oid = r.i32().ok_or_else(bad)?;
    if ndim == 0 {
        return Ok(Value::Array(vec![]));
    }
    if !(1..=6).contains(&ndim) {
        return Err(bad());
    }
    let mut dims = Vec::new();
    for _ in 0..ndim {
        let len = r.i32().ok_or_else(bad)?;
        let _lbound = r.i32().ok_or_else(bad)?;
        dims.push(usize::try_from(len).map_err(|_| bad())?);
    }
    fn build(
        elem: &Type,
        dims: &[usize],
        r: &mut Reader<'_>,
        bad: &dyn Fn() -> DecodeError,
    ) -> Result<Value, DecodeError> {
        let mut out = Vec::with_capacity(dims[0].min(1 << 16));
        for _ in 0..dims[0] {
            if dims.len() == 1 {
                let v = r.value().ok_or_else(bad)?;
                out.push(decode(elem, v)?);
            } else {
                out.push(build(elem, &dims[1..], r, bad)?);
            }
        }
        Ok(Value::Array(out))
    }
    build(elem, &dims, &mut r, &bad)
}

/// A row value: an object when the field names are known (composite types), else an array.
fn record(raw: &[u8], names: Option<&[&str]>) -> Result<Value, DecodeError> {
    let bad = || DecodeError::Malformed("record".into());
    let mut r = Reader(raw);
    let n = r.i32().ok_or_else(bad)?;
    let mut values = Vec::new();
    for _ in 0..n {
        let oid = r.i32().ok_or_else(bad)? as u32;
        let v = r.value().ok_or_else(bad)?;
        let ty = Type::from_oid(oid)
            .ok_or_else(|| DecodeError::Unsupported(format!("record field of type oid {oid}")))?;
        values.push(decode(&ty, v)?);
    }
    match names {
        Some(names) if names.len() == values.len() => {
            let mut m = Map::new();
            for (k, v) in names.iter().zip(values) {
                m.insert((*k).to_string(), v);
            }
            Ok(Value::Object(m))
        }
        _ => Ok(Value::Array(values)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [ndigits as u16, weight as u16, sign, dscale] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numeric_text() {
        assert_eq!(numeric(&num(2, 0, 0, 2, &[12, 3400])).unwrap(), "12.34");
        assert_eq!(numeric(&num(1, -1, 0x4000, 5, &[5])).unwrap(), "-0.00050");
        assert_eq!(numeric(&num(1, 1, 0, 0, &[1])).unwrap(), "10000");
        assert_eq!(numeric(&num(0, 0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(numeric(&num(1, -2, 0, 8, &[1])).unwrap(), "0.00000001");
    }

    #[test]
    fn param_texts() {
        let ty = Type::INT4_ARRAY;
        assert_eq!(
            param_text(&serde_json::json!([1, null, 3]), &ty),
            "{\"1\",NULL,\"3\"}"
        );
        assert_eq!(
            param_text(&serde_json::json!(["a\"b", "c\\"]), &Type::TEXT_ARRAY),
            "{\"a\\\"b\",\"c\\\\\"}"
        );
        assert_eq!(
            param_text(&serde_json::json!({"a": 1}), &Type::JSONB),
            "{\"a\":1}"
        );
        assert_eq!(param_text(&serde_json::json!(true), &Type::BOOL), "true");
    }

    #[test]
    fn intervals_and_times() {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(3_723_500_000i64).to_be_bytes());
        raw.extend_from_slice(&2i32.to_be_bytes());
        raw.extend_from_slice(&14i32.to_be_bytes());
        assert_eq!(interval(&raw).unwrap(), "P1Y2M2DT1H2M3.5S");
        assert_eq!(time(3_600_000_001).unwrap(), "01:00:00.000001");
        assert_eq!(date(0).unwrap(), "2000-01-01");
        assert_eq!(timestamp(0, true).unwrap(), "2000-01-01T00:00:00Z");
    }
}
