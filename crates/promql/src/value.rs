//! Values PromQL expressions evaluate to.

use sightline_model::Labels;

use crate::Millis;

/// One (timestamp, value) point of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t: Millis,
    pub v: f64,
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
