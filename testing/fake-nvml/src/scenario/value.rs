//! Time-varying scenario values (`VALUE` in the scenario format).

use std::f64::consts::TAU;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, de::value::MapAccessDeserializer};

/// A reading that may vary with scenario time `t` (seconds since the
/// 0→1 `nvmlInit`).
///
/// In JSON a value is one of
///
/// * a number — a constant;
/// * `{"sine": {"base": 60, "amplitude": 30, "period_s": 20, "phase_s": 0}}` —
///   `base + amplitude · sin(2π · (t + phase_s) / period_s)`;
/// * `{"steps": [[0, 10], [5, 90], [10, 0]]}` — piecewise constant: the value
///   of the last step whose time is `<= t` (before the first step, the first
///   step's value).
///
/// ```
/// use nvidia_ml::scenario::Value;
///
/// let v: Value = serde_json::from_str(r#"{"steps": [[0, 10], [5, 90]]}"#).unwrap();
/// assert_eq!(v.at(4.9), 10.0);
/// assert_eq!(v.at(5.0), 90.0);
/// // ∫0..10 = 5·10 + 5·90
/// assert_eq!(v.integral(0.0, 10.0), 500.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A constant.
    Const(f64),
    /// A sine wave.
    Sine(Sine),
    /// Piecewise-constant steps, `(time_s, value)`, sorted by strictly
    /// increasing time (checked when a scenario is loaded).
    Steps(Vec<(f64, f64)>),
}

/// Parameters of [`Value::Sine`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sine {
    /// Mean value.
    pub base: f64,
    /// Peak deviation from `base`.
    pub amplitude: f64,
    /// Period in seconds; must be > 0.
    pub period_s: f64,
    /// Time shift in seconds (so GPUs can run out of phase).
    #[serde(default)]
    pub phase_s: f64,
}

impl Value {
    /// The value at scenario time `t`.
    pub fn at(&self, t: f64) -> f64 {
        match self {
            Value::Const(c) => *c,
            Value::Sine(s) => s.base + s.amplitude * (TAU * (t + s.phase_s) / s.period_s).sin(),
            Value::Steps(steps) => {
                let mut v = steps.first().map_or(0.0, |s| s.1);
                for &(at, value) in steps {
                    if at <= t {
                        v = value;
                    } else {
                        break;
                    }
                }
                v
            }
        }
    }

    /// The exact integral `∫ a..b value(t) dt` (negative when `b < a`).
    pub fn integral(&self, a: f64, b: f64) -> f64 {
        if b < a {
            return -self.integral(b, a);
        }
        match self {
            Value::Const(c) => c * (b - a),
            Value::Sine(s) => {
                let w = TAU / s.period_s;
                let anti = |t: f64| s.base * t - s.amplitude / w * (w * (t + s.phase_s)).cos();
                anti(b) - anti(a)
            }
            Value::Steps(steps) => {
                let mut total = 0.0;
                for (i, &(at, value)) in steps.iter().enumerate() {
                    let start = if i == 0 { f64::NEG_INFINITY } else { at };
                    let end = steps.get(i + 1).map_or(f64::INFINITY, |s| s.0);
                    let lo = start.max(a);
                    let hi = end.min(b);
                    if hi > lo {
                        total += value * (hi - lo);
                    }
                }
                total
            }
        }
    }

    /// The mean over `[a, b]`; the value at `b` when the interval is empty
    /// (as with a frozen clock).
    pub fn mean(&self, a: f64, b: f64) -> f64 {
        if b > a {
            self.integral(a, b) / (b - a)
        } else {
            self.at(b)
        }
    }

    /// The smallest value this can take.
    pub fn min(&self) -> f64 {
        match self {
            Value::Const(c) => *c,
            Value::Sine(s) => s.base - s.amplitude.abs(),
            Value::Steps(steps) => steps.iter().map(|s| s.1).fold(f64::INFINITY, f64::min),
        }
    }

    /// The largest value this can take.
    pub fn max(&self) -> f64 {
        match self {
            Value::Const(c) => *c,
            Value::Sine(s) => s.base + s.amplitude.abs(),
            Value::Steps(steps) => steps.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// The value at `t` as NVML's `unsigned int`: rounded to nearest and
    /// clamped to `0..=u32::MAX` (NaN reads 0).
    pub fn u32_at(&self, t: f64) -> u32 {
        // `as` saturates float→int casts, which is exactly the clamp wanted.
        self.at(t).round() as u32
    }

    /// The value at `t` as `unsigned long long`, rounded and clamped.
    pub fn u64_at(&self, t: f64) -> u64 {
        self.at(t).round() as u64
    }

    /// The value at `t` as a percentage: rounded and clamped to `0..=100`.
    pub fn percent_at(&self, t: f64) -> u32 {
        self.u32_at(t).min(100)
    }

    /// Checks the value's parameters; `Err` says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Value::Const(c) if !c.is_finite() => Err(format!("{c} is not a finite number")),
            Value::Const(_) => Ok(()),
            Value::Sine(s) => {
                if ![s.base, s.amplitude, s.period_s, s.phase_s]
                    .iter()
                    .all(|x| x.is_finite())
                {
                    Err("sine parameters must be finite numbers".into())
                } else if s.period_s <= 0.0 {
                    Err(format!("sine period_s must be > 0, got {}", s.period_s))
                } else {
                    Ok(())
                }
            }
            Value::Steps(steps) => {
                if steps.is_empty() {
                    return Err("steps must not be empty".into());
                }
                if steps.iter().any(|s| !s.0.is_finite() || !s.1.is_finite()) {
                    return Err("step times and values must be finite numbers".into());
                }
                if let Some(w) = steps.windows(2).find(|w| w[1].0 <= w[0].0) {
                    return Err(format!(
                        "step times must strictly increase, but {} follows {}",
                        w[1].0, w[0].0
                    ));
                }
                Ok(())
            }
        }
    }
}

impl From<f64> for Value {
    fn from(c: f64) -> Self {
        Value::Const(c)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum TaggedValue {
    Sine(Sine),
    Steps(Vec<(f64, f64)>),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;

        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    r#"a number, {"sine": {"base", "amplitude", "period_s", "phase_s"}} or {"steps": [[t, v], ...]}"#,
                )
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Const(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Const(v as f64))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(Value::Const(v as f64))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
                // Going through the tagged enum keeps serde's precise messages
                // ("unknown variant `sin`, expected `sine` or `steps`").
                Ok(
                    match TaggedValue::deserialize(MapAccessDeserializer::new(map))? {
                        TaggedValue::Sine(s) => Value::Sine(s),
                        TaggedValue::Steps(s) => Value::Steps(s),
                    },
                )
            }
        }

        deserializer.deserialize_any(ValueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).expect("valid value")
    }

    #[test]
    fn constant() {
        let v = parse("42");
        assert_eq!(v.at(0.0), 42.0);
        assert_eq!(v.at(1e6), 42.0);
        assert_eq!(v.integral(2.0, 5.0), 126.0);
        assert_eq!(parse("-3.5").at(1.0), -3.5);
    }

    #[test]
    fn sine_value_and_exact_integral() {
        let v = parse(r#"{"sine": {"base": 60, "amplitude": 30, "period_s": 20, "phase_s": 5}}"#);
        // phase 5 of 20 = quarter period: sin(π/2) = 1 at t = 0.
        assert!((v.at(0.0) - 90.0).abs() < 1e-9);
        assert!((v.at(10.0) - 30.0).abs() < 1e-9);
        // Over whole periods the sine part integrates to zero.
        assert!((v.integral(0.0, 40.0) - 60.0 * 40.0).abs() < 1e-9);
        // Over a half period starting at the peak-centred window:
        // ∫ from -5..5 of 30·cos(2πt/20) = 30·20/π·sin(π/2)·... check numerically.
        let numeric: f64 = (0..100_000)
            .map(|i| v.at(3.0 + (i as f64 + 0.5) * 7.0 / 100_000.0) * 7.0 / 100_000.0)
            .sum();
        assert!((v.integral(3.0, 10.0) - numeric).abs() < 1e-6);
        assert_eq!(v.min(), 30.0);
        assert_eq!(v.max(), 90.0);
    }

    #[test]
    fn steps_value_and_integral() {
        let v = parse(r#"{"steps": [[2, 10], [5, 90], [10, 0]]}"#);
        assert_eq!(v.at(0.0), 10.0, "before the first step: first value");
        assert_eq!(v.at(4.999), 10.0);
        assert_eq!(v.at(5.0), 90.0);
        assert_eq!(v.at(10.0), 0.0);
        assert_eq!(v.at(100.0), 0.0);
        assert_eq!(v.integral(0.0, 12.0), 5.0 * 10.0 + 5.0 * 90.0);
        assert_eq!(v.integral(6.0, 7.0), 90.0);
        assert_eq!(v.integral(7.0, 6.0), -90.0);
        assert_eq!(v.mean(5.0, 10.0), 90.0);
        assert_eq!(v.mean(3.0, 3.0), 10.0);
    }

    #[test]
    fn integer_conversions_round_and_clamp() {
        assert_eq!(Value::Const(49.5).u32_at(0.0), 50);
        assert_eq!(Value::Const(49.4).u32_at(0.0), 49);
        assert_eq!(Value::Const(-7.0).u32_at(0.0), 0);
        assert_eq!(Value::Const(1e20).u32_at(0.0), u32::MAX);
        assert_eq!(Value::Const(130.0).percent_at(0.0), 100);
        assert_eq!(Value::Const(-1.0).percent_at(0.0), 0);
        assert_eq!(Value::Const(1e12).u64_at(0.0), 1_000_000_000_000);
    }

    #[test]
    fn bad_values_are_reported() {
        let err = serde_json::from_str::<Value>(r#"{"sin": {"base": 1}}"#)
            .expect_err("unknown variant")
            .to_string();
        assert!(err.contains("unknown variant `sin`"), "{err}");
        let err =
            serde_json::from_str::<Value>(r#"{"sine": {"base": 1, "amplitude": 1, "period": 3}}"#)
                .expect_err("unknown field")
                .to_string();
        assert!(err.contains("unknown field `period`"), "{err}");
        let err = serde_json::from_str::<Value>(r#""fast""#)
            .expect_err("string")
            .to_string();
        assert!(err.contains("a number"), "{err}");
        assert!(parse(r#"{"steps": []}"#).check().is_err());
        assert!(parse(r#"{"steps": [[1, 1], [1, 2]]}"#).check().is_err());
        assert!(
            parse(r#"{"sine": {"base": 1, "amplitude": 1, "period_s": 0}}"#)
                .check()
                .is_err()
        );
        assert!(parse(r#"{"steps": [[0, 1], [3, 2]]}"#).check().is_ok());
    }
}
