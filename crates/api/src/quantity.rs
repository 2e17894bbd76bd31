//! Kubernetes resource quantities (`100m`, `1.5Gi`, `2e3`): parsing and comparison, as
//! apimachinery's `resource.Quantity` accepts them. Values are kept in thousandths ("milli" units,
//! rounded up like `MilliValue`), which is exact for every suffix Kubernetes allows.

use std::fmt;

/// The wording apimachinery uses for a malformed quantity.
pub const QUANTITY_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A parsed quantity in thousandths of the base unit (cores, bytes, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{QUANTITY_FORMAT}")]
    Format,
    #[error("quantity is too large")]
    TooLarge,
}

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    /// The value in thousandths (`MilliValue`).
    pub fn milli(&self) -> i128 {
        self.0
    }

    /// The value in whole units, rounded up (`Value`).
    pub fn value(&self) -> i128 {
        (self.0 + 999).div_euclid(1000)
    }

    pub fn from_milli(milli: i128) -> Quantity {
        Quantity(milli)
    }

    pub fn is_negative(&self) -> bool {
        self.0 < 0
    }

    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let s = s.trim();
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let split = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (number, suffix) = body.split_at(split);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(QuantityError::Format);
        }
        // The number as an integer mantissa and a count of decimal places.
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        let digits = format!("{int_part}{frac_part}");
        let mantissa: i128 = digits.trim_start_matches('0').parse().or_else(|_| {
            if digits.chars().all(|c| c == '0') {
                Ok(0)
            } else {
                Err(QuantityError::TooLarge)
            }
        })?;
        let scale = frac_part.len() as u32;
        // The suffix as (base-2 exponent, base-10 exponent).
        let (pow2, pow10): (u32, i32) = match suffix {
            "" => (0, 0),
            "Ki" => (10, 0),
            "Mi" => (20, 0),
            "Gi" => (30, 0),
            "Ti" => (40, 0),
            "Pi" => (50, 0),
            "Ei" => (60, 0),
            "n" => (0, -9),
            "u" => (0, -6),
            "m" => (0, -3),
            "k" => (0, 3),
            "M" => (0, 6),
            "G" => (0, 9),
            "T" => (0, 12),
            "P" => (0, 15),
            "E" => (0, 18),
            exp if exp.starts_with(['e', 'E']) => {
                let e: i32 = exp[1..].parse().map_err(|_| QuantityError::Format)?;
                if !(-30..=30).contains(&e) {
                    return Err(QuantityError::TooLarge);
                }
                (0, e)
            }
            _ => return Err(QuantityError::Format),
        };
        // milli = mantissa * 2^pow2 * 10^(pow10 + 3) / 10^scale, rounded up.
        let mut num = mantissa
            .checked_mul(1i128 << pow2)
            .ok_or(QuantityError::TooLarge)?;
        let exp10 = pow10 + 3 - scale as i32;
        let milli = if exp10 >= 0 {
            num = num
                .checked_mul(10i128.pow(exp10 as u32))
                .ok_or(QuantityError::TooLarge)?;
            num
        } else {
            let div = 10i128.pow((-exp10) as u32);
            (num + div - 1) / div
        };
        Ok(Quantity(if negative { -milli } else { milli }))
    }
}

impl fmt::Display for Quantity {
    /// A canonical-enough rendering: whole units when exact, else milli units.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % 1000 == 0 {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_quantities() {
        let q = |s: &str| Quantity::parse(s).map(|q| q.milli());
        assert_eq!(q("100m"), Ok(100));
        assert_eq!(q("1"), Ok(1000));
        assert_eq!(q("0.5"), Ok(500));
        assert_eq!(q("1Ki"), Ok(1024 * 1000));
        assert_eq!(q("1.5Gi"), Ok(1_610_612_736_000));
        assert_eq!(q("2e3"), Ok(2_000_000));
        assert_eq!(q("1k"), Ok(1_000_000));
        assert_eq!(q("1n"), Ok(1), "sub-milli values round up");
        assert_eq!(q("-1"), Ok(-1000));
        assert_eq!(q("0"), Ok(0));
        for bad in ["", "abc", "1x", "1..2", "Mi", "1Gb"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
        assert!(Quantity::parse("2").ok() > Quantity::parse("1500m").ok());
        assert_eq!(Quantity::parse("1500m").map(|q| q.value()), Ok(2));
    }
}
