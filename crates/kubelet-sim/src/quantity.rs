//! Kubernetes resource quantities (`500m`, `1.5Gi`, `2e3`, `128974848`), parsed exactly enough to
//! compare, sum and divide them: the value is kept in nano-units as an `i128`.

use std::fmt;

/// A parsed quantity, in units of 10⁻⁹ (so `1m` = 1,000,000 and `1Ki` = 1,024,000,000,000).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(pub i128);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}"
)]
pub struct QuantityError(pub String);

const NANO: i128 = 1_000_000_000;

impl Quantity {
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let err = || QuantityError(s.to_string());
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        if number.is_empty() {
            return Err(err());
        }
        let (negative, digits) = match number.as_bytes()[0] {
            b'-' => (true, &number[1..]),
            b'+' => (false, &number[1..]),
            _ => (false, number),
        };
        let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
        if int_part.is_empty() && frac_part.is_empty()
            || !int_part
                .bytes()
                .chain(frac_part.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        // mantissa × 10^-frac_len
        let mut mantissa: i128 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .ok_or_else(err)?;
        }
        let frac_len = i32::try_from(frac_part.len()).map_err(|_| err())?;
        let (multiplier, exp10): (i128, i32) = match suffix {
            "" => (1, 0),
            "n" => (1, -9),
            "u" => (1, -6),
            "m" => (1, -3),
            "k" => (1, 3),
            "M" => (1, 6),
            "G" => (1, 9),
            "T" => (1, 12),
            "P" => (1, 15),
            "E" => (1, 18),
            "Ki" => (1 << 10, 0),
            "Mi" => (1 << 20, 0),
            "Gi" => (1 << 30, 0),
            "Ti" => (1 << 40, 0),
            "Pi" => (1 << 50, 0),
            "Ei" => (1 << 60, 0),
            other if other.starts_with(['e', 'E']) => {
                (1, other[1..].parse::<i32>().map_err(|_| err())?)
            }
            _ => return Err(err()),
        };
        // value in nano-units = mantissa × multiplier × 10^(exp10 - frac_len + 9)
        let exp = exp10 - frac_len + 9;
        let mut value = mantissa.checked_mul(multiplier).ok_or_else(err)?;
        if exp >= 0 {
            value = value
                .checked_mul(10i128.checked_pow(exp.unsigned_abs()).ok_or_else(err)?)
                .ok_or_else(err)?;
        } else {
            let div = 10i128.checked_pow(exp.unsigned_abs()).ok_or_else(err)?;
            // Kubernetes rounds sub-nano precision up.
            value = (value + div - 1) / div;
        }
        Ok(Quantity(if negative { -value } else { value }))
    }

    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    /// The value in whole units, rounded up (as `resourceFieldRef` with divisor 1 does).
    pub fn ceil_units(&self) -> i128 {
        self.ceil_div(Quantity(NANO))
    }

    /// The value in milli-units, rounded up.
    pub fn ceil_milli(&self) -> i128 {
        self.ceil_div(Quantity(NANO / 1000))
    }

    /// `self / divisor`, rounded up (Kubernetes' `resourceFieldRef` divisor rule).
    pub fn ceil_div(&self, divisor: Quantity) -> i128 {
        if divisor.0 <= 0 {
            return 0;
        }
        let q = self.0 / divisor.0;
        if self.0 % divisor.0 > 0 { q + 1 } else { q }
    }

    pub fn from_units(units: i128) -> Quantity {
        Quantity(units.saturating_mul(NANO))
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;
    fn add(self, o: Quantity) -> Quantity {
        Quantity(self.0.saturating_add(o.0))
    }
}

impl fmt::Display for Quantity {
    /// A canonical form: whole units when exact, else milli-units (`1`, `250m`), which is how
    /// Kubernetes prints cpu and is valid for every resource.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % NANO == 0 {
            write!(f, "{}", self.0 / NANO)
        } else {
            write!(f, "{}m", self.ceil_milli())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> i128 {
        Quantity::parse(s).map(|q| q.0).unwrap_or(i128::MIN)
    }

    #[test]
    fn parses_kubernetes_forms() {
        assert_eq!(q("1"), NANO);
        assert_eq!(q("500m"), NANO / 2);
        assert_eq!(q("0.5"), NANO / 2);
        assert_eq!(q("1Ki"), 1024 * NANO);
        assert_eq!(q("1.5Gi"), 1_610_612_736 * NANO);
        assert_eq!(q("2e3"), 2000 * NANO);
        assert_eq!(q("128974848"), 128_974_848 * NANO);
        assert_eq!(q("129M"), 129_000_000 * NANO);
        assert_eq!(q("1n"), 1);
        assert_eq!(q("-1"), -NANO);
        assert!(Quantity::parse("abc").is_err());
        assert!(Quantity::parse("1Xi").is_err());
        assert!(Quantity::parse("").is_err());
    }

    #[test]
    fn equal_values_compare_equal_across_forms() {
        assert_eq!(Quantity::parse("1000m"), Quantity::parse("1"));
        assert_eq!(Quantity::parse("1024Mi"), Quantity::parse("1Gi"));
    }

    #[test]
    fn rounding_and_display() {
        assert_eq!(Quantity::parse("250m").map(|q| q.ceil_units()), Ok(1));
        assert_eq!(
            Quantity::parse("1Mi").map(|q| q.ceil_div(Quantity::from_units(1024))),
            Ok(1024)
        );
        assert_eq!(
            Quantity::parse("250m").map(|q| q.to_string()),
            Ok("250m".to_string())
        );
        assert_eq!(
            Quantity::parse("2").map(|q| q.to_string()),
            Ok("2".to_string())
        );
    }
}
