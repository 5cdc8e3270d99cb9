//! Values PromQL expressions evaluate to.

use sightline_model::Labels;

use crate::Millis;

/// One (timestamp, value) point of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t: Millis,
    pub v: f64,
}

/// A (timestamp, value) pair as range functions read it: a [`Point`] of a range
/// vector, or a stored sample as the store decoded it (so a rollup hands a series'
/// samples to a function without copying them).
pub(crate) trait Sample: Copy {
    fn t(self) -> Millis;
    fn v(self) -> f64;
}

impl Sample for Point {
    #[inline]
    fn t(self) -> Millis {
        self.t
    }

    #[inline]
    fn v(self) -> f64 {
        self.v
    }
}

impl Sample for (Millis, f64) {
    #[inline]
    fn t(self) -> Millis {
        self.0
    }

    #[inline]
    fn v(self) -> f64 {
        self.1
    }
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    pub labels: Labels,
    pub t: Millis,
    pub v: f64,
}

/// One series of a range vector (matrix).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<Point>,
}

/// The result of evaluating an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { t: Millis, v: f64 },
    String { t: Millis, s: String },
    Vector(Vec<VectorSample>),
    Matrix(Vec<Series>),
}

impl Value {
    /// Prometheus' `resultType` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
