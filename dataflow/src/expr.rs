//! Scalar expressions, evaluated a whole column at a time with Arrow kernels.
//!
//! Expressions arrive typed: the binder has resolved every column, inserted implicit casts so
//! both sides of an operator share a type, and computed each node's result type.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryBuilder, RecordBatch, Scalar,
    new_null_array,
};
use arrow::compute::kernels::{boolean, cmp, numeric};
use arrow::compute::{CastOptions, cast_with_options, is_not_null, is_null};
use arrow::datatypes::{Float32Type, Float64Type};
use serde::{Deserialize, Serialize};

use crate::types::{DataType, Datum, Decimal, array_from_datums};
use crate::{Error, Result};

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (integer division truncates)
    Div,
    /// `%`
    Mod,
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND` (three-valued)
    And,
    /// `OR` (three-valued)
    Or,
    /// `||` on strings
    Concat,
    /// `~`: the string matches the regular expression
    RegexMatch,
    /// `!~`: the string does not match the regular expression
    RegexNotMatch,
    /// `LIKE` (`%` any run, `_` one character, `\` escapes)
    Like,
    /// `ILIKE`: `LIKE` ignoring case
    ILike,
}

impl BinaryOp {
    /// Whether the result is boolean.
    pub fn is_predicate(self) -> bool {
        !matches!(
            self,
            BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::Mod
                | BinaryOp::Concat
        )
    }
}

/// A typed scalar expression over the columns of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// Column `index` of the input.
    Column {
        /// Position in the input.
        index: usize,
        /// Its type.
        ty: DataType,
    },
    /// A constant.
    Literal {
        /// The value (may be NULL).
        value: Datum,
        /// Its type.
        ty: DataType,
    },
    /// `left op right`; both sides have the same type.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `NOT e`
    Not(Box<Expr>),
    /// `-e`
    Negate(Box<Expr>),
    /// `e IS NULL`
    IsNull(Box<Expr>),
    /// `e IS NOT NULL`
    IsNotNull(Box<Expr>),
    /// `CAST(e AS to)`
    Cast {
        /// The value.
        expr: Box<Expr>,
        /// The target type.
        to: DataType,
    },
    /// `CASE WHEN c THEN v ... ELSE e END`
    Case {
        /// Conditions and values, in order.
        branches: Vec<(Expr, Expr)>,
        /// The value when no condition holds (NULL if absent).
        otherwise: Option<Box<Expr>>,
        /// The result type.
        ty: DataType,
    },
    /// A scalar function call; arguments are already of the types the function takes.
    Func {
        /// The function.
        func: crate::func::Func,
        /// Arguments.
        args: Vec<Expr>,
        /// The result type.
        ty: DataType,
    },
    /// `COALESCE(a, b, ...)`
    Coalesce {
        /// Candidates, in order.
        args: Vec<Expr>,
        /// The result type.
        ty: DataType,
    },
}

/// A column or a constant: constants stay one value wide so kernels can broadcast them.
enum Value {
    Array(ArrayRef),
    Scalar(ArrayRef),
}

impl Value {
    fn into_array(self, len: usize) -> Result<ArrayRef> {
        match self {
            Value::Array(a) => Ok(a),
            Value::Scalar(s) if s.is_null(0) => Ok(new_null_array(s.data_type(), len)),
            Value::Scalar(s) => {
                let indices = arrow::array::UInt32Array::from(vec![0u32; len]);
                Ok(arrow::compute::take(s.as_ref(), &indices, None)?)
            }
        }
    }

    fn datum(&self) -> Box<dyn arrow::array::Datum + '_> {
        match self {
            Value::Array(a) => Box::new(a),
            Value::Scalar(s) => Box::new(Scalar::new(s)),
        }
    }
}

impl Expr {
    /// A reference to input column `index` of type `ty`.
    pub fn column(index: usize, ty: DataType) -> Expr {
        Expr::Column { index, ty }
    }

    /// Each column of an input of `types`, in order.
    pub fn columns(types: &[DataType]) -> Vec<Expr> {
        types
            .iter()
            .enumerate()
            .map(|(i, ty)| Expr::column(i, *ty))
            .collect()
    }

    /// A constant.
    pub fn literal(value: Datum, ty: DataType) -> Expr {
        Expr::Literal { value, ty }
    }

    /// `left op right`.
    pub fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
        Expr::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        }
    }

    /// The same node over `f` of each direct sub-expression.
    pub fn map_children(self, f: &mut impl FnMut(Expr) -> Expr) -> Expr {
        let mut map = |e: Box<Expr>| Box::new(f(*e));
        match self {
            Expr::Column { .. } | Expr::Literal { .. } => self,
            Expr::Binary { op, left, right } => Expr::Binary {
                op,
                left: map(left),
                right: map(right),
            },
            Expr::Not(e) => Expr::Not(map(e)),
            Expr::Negate(e) => Expr::Negate(map(e)),
            Expr::IsNull(e) => Expr::IsNull(map(e)),
            Expr::IsNotNull(e) => Expr::IsNotNull(map(e)),
            Expr::Cast { expr, to } => Expr::Cast {
                expr: map(expr),
                to,
            },
            Expr::Case {
                branches,
                otherwise,
                ty,
            } => Expr::Case {
                branches: branches.into_iter().map(|(c, v)| (f(c), f(v))).collect(),
                otherwise: otherwise.map(|e| Box::new(f(*e))),
                ty,
            },
            Expr::Coalesce { args, ty } => Expr::Coalesce {
                args: args.into_iter().map(&mut *f).collect(),
                ty,
            },
            Expr::Func { func, args, ty } => Expr::Func {
                func,
                args: args.into_iter().map(f).collect(),
                ty,
            },
        }
    }

    /// The same expression over other input positions: column `i` becomes column `f(i)`.
    pub fn map_columns(self, f: &impl Fn(usize) -> usize) -> Expr {
        match self {
            Expr::Column { index, ty } => Expr::Column {
                index: f(index),
                ty,
            },
            other => other.map_children(&mut |e| e.map_columns(f)),
        }
    }

    /// The expression with every column `i` replaced by `columns[i]`.
    pub fn substitute(self, columns: &[Expr]) -> Expr {
        match self {
            Expr::Column { index, .. } => columns[index].clone(),
            other => other.map_children(&mut |e| e.substitute(columns)),
        }
    }

    /// Whether the value never decreases as column `column` grows, reading no other column:
    /// the column itself, plus or minus a constant, its time window's start, widening casts.
    pub fn is_monotone_in(&self, column: usize) -> bool {
        let constant = |e: &Expr| e.input_columns().is_empty() && !e.is_volatile();
        match self {
            Expr::Column { index, .. } => *index == column,
            Expr::Binary {
                op: BinaryOp::Add,
                left,
                right,
            } => {
                (left.is_monotone_in(column) && constant(right))
                    || (constant(left) && right.is_monotone_in(column))
            }
            Expr::Binary {
                op: BinaryOp::Sub,
                left,
                right,
            } => left.is_monotone_in(column) && constant(right),
            Expr::Func {
                func:
                    crate::func::Func::AddInterval
                    | crate::func::Func::WindowStart
                    | crate::func::Func::DateTrunc(_),
                args,
                ..
            } => match args.split_first() {
                // The time first; the rest (an interval, a window size) constant.
                Some((time, rest)) => time.is_monotone_in(column) && rest.iter().all(constant),
                None => false,
            },
            Expr::Cast { expr, to } => {
                (to.is_numeric()
                    || matches!(
                        to,
                        DataType::Date | DataType::Timestamp | DataType::Timestamptz
                    ))
                    && expr.is_monotone_in(column)
            }
            _ => false,
        }
    }

    /// For an expression monotone in `column` (see [`Expr::is_monotone_in`]), its value where
    /// the column is `value`: a bound on its values for rows whose column is at least `value`.
    pub fn monotone_bound(&self, column: usize, value: &Datum) -> Option<Datum> {
        if !self.is_monotone_in(column) {
            return None;
        }
        fn with_value(e: Expr, column: usize, value: &Datum) -> Expr {
            match e {
                Expr::Column { index, ty } if index == column => Expr::literal(value.clone(), ty),
                other => other.map_children(&mut |c| with_value(c, column, value)),
            }
        }
        with_value(self.clone(), column, value)
            .eval_constant()
            .ok()
            .filter(|d| !d.is_null())
    }

    /// The conjuncts of a predicate: `a AND (b AND c)` gives `a`, `b`, `c`.
    pub fn conjuncts(self) -> Vec<Expr> {
        match self {
            Expr::Binary {
                op: BinaryOp::And,
                left,
                right,
            } => {
                let mut out = left.conjuncts();
                out.extend(right.conjuncts());
                out
            }
            other => vec![other],
        }
    }

    /// The conjunction of `predicates` (`None` for none).
    pub fn and_all(predicates: impl IntoIterator<Item = Expr>) -> Option<Expr> {
        predicates
            .into_iter()
            .reduce(|a, b| Expr::binary(BinaryOp::And, a, b))
    }

    /// The direct sub-expressions.
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Column { .. } | Expr::Literal { .. } => vec![],
            Expr::Binary { left, right, .. } => vec![left, right],
            Expr::Not(e)
            | Expr::Negate(e)
            | Expr::IsNull(e)
            | Expr::IsNotNull(e)
            | Expr::Cast { expr: e, .. } => vec![e],
            Expr::Case {
                branches,
                otherwise,
                ..
            } => branches
                .iter()
                .flat_map(|(c, v)| [c, v])
                .chain(otherwise.as_deref())
                .collect(),
            Expr::Func { args, .. } | Expr::Coalesce { args, .. } => args.iter().collect(),
        }
    }

    /// The input columns the expression reads, ascending, without repeats.
    pub fn input_columns(&self) -> Vec<usize> {
        fn walk(e: &Expr, out: &mut Vec<usize>) {
            if let Expr::Column { index, .. } = e {
                out.push(*index);
            }
            for c in e.children() {
                walk(c, out);
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether evaluating twice may give different results (`random()`, `now()`).
    pub fn is_volatile(&self) -> bool {
        matches!(
            self,
            Expr::Func {
                func: crate::func::Func::Random | crate::func::Func::Now,
                ..
            }
        ) || self.children().into_iter().any(Expr::is_volatile)
    }

    /// Whether the expression reads the clock (`now()`).
    pub fn reads_clock(&self) -> bool {
        matches!(
            self,
            Expr::Func {
                func: crate::func::Func::Now,
                ..
            }
        ) || self.children().into_iter().any(Expr::reads_clock)
    }

    /// The type of the result.
    pub fn data_type(&self) -> DataType {
        match self {
            Expr::Column { ty, .. }
            | Expr::Literal { ty, .. }
            | Expr::Case { ty, .. }
            | Expr::Func { ty, .. }
            | Expr::Coalesce { ty, .. } => *ty,
            Expr::Binary { op, left, .. } => {
                if op.is_predicate() {
                    DataType::Boolean
                } else {
                    left.data_type()
                }
            }
            Expr::Not(_) | Expr::IsNull(_) | Expr::IsNotNull(_) => DataType::Boolean,
            Expr::Negate(e) => e.data_type(),
            Expr::Cast { to, .. } => *to,
        }
    }

    /// Evaluates over every row of `batch`.
    pub fn eval(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        self.eval_value(batch)?.into_array(batch.num_rows())
    }

    /// The value of an expression without column references.
    pub fn eval_constant(&self) -> Result<Datum> {
        let one_row = RecordBatch::try_new_with_options(
            Arc::new(arrow::datatypes::Schema::empty()),
            vec![],
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
        )?;
        Ok(Datum::from_array(self.eval(&one_row)?.as_ref(), 0))
    }

    /// Evaluates a predicate; NULL counts as false.
    pub fn eval_mask(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let array = self.eval(batch)?;
        let mask = array.as_boolean();
        Ok(match mask.nulls() {
            // NULL is not true: fold the null bitmap into the values.
            Some(nulls) => BooleanArray::new(mask.values() & nulls.inner(), None),
            None => mask.clone(),
        })
    }

    fn eval_value(&self, batch: &RecordBatch) -> Result<Value> {
        let rows = batch.num_rows();
        Ok(match self {
            Expr::Column { index, .. } => Value::Array(Arc::clone(batch.column(*index))),
            Expr::Literal { value, ty } => Value::Scalar(value.to_array(*ty, 1)),
            Expr::Binary { op, left, right } => {
                let (l, r) = (left.eval_value(batch)?, right.eval_value(batch)?);
                let scalar = matches!((&l, &r), (Value::Scalar(_), Value::Scalar(_)));
                let out = binary(*op, &l, &r, left.data_type(), rows)?;
                if scalar {
                    Value::Scalar(out)
                } else {
                    Value::Array(out)
                }
            }
            Expr::Not(e) => {
                let a = e.eval(batch)?;
                Value::Array(Arc::new(boolean::not(a.as_boolean())?))
            }
            Expr::Negate(e) if e.data_type() == DataType::Decimal => Value::Array(decimal_array(
                decimals(&e.eval(batch)?).map(|v| v.map(|d| -d)),
            )),
            Expr::Negate(e) => Value::Array(numeric::neg(&e.eval(batch)?)?),
            Expr::IsNull(e) => Value::Array(Arc::new(is_null(&e.eval(batch)?)?)),
            Expr::IsNotNull(e) => Value::Array(Arc::new(is_not_null(&e.eval(batch)?)?)),
            Expr::Cast { expr, to } => {
                let from = expr.data_type();
                let a = expr.eval(batch)?;
                Value::Array(cast(&a, from, *to)?)
            }
            // Each condition and value is evaluated only for the rows that reach it, as in
            // PostgreSQL: `CASE WHEN x <> 0 THEN 1 / x END` divides no row by zero.
            Expr::Case {
                branches,
                otherwise,
                ty,
            } => {
                let mut undecided = Undecided::new(batch);
                for (cond, value) in branches {
                    if undecided.is_empty() {
                        break;
                    }
                    let mask = cond.eval_mask(undecided.batch())?;
                    undecided.decide(&mask, |rows| value.eval(rows))?;
                }
                if let Some(e) = otherwise
                    && !undecided.is_empty()
                {
                    let all = BooleanArray::from(vec![true; undecided.batch().num_rows()]);
                    undecided.decide(&all, |rows| e.eval(rows))?;
                }
                Value::Array(undecided.finish(*ty)?)
            }
            Expr::Func { func, args, ty } => {
                let arrays = args
                    .iter()
                    .map(|a| a.eval(batch))
                    .collect::<Result<Vec<_>>>()?;
                Value::Array(crate::func::eval(*func, &arrays, *ty, rows)?)
            }
            // Each argument is evaluated only for the rows whose earlier ones are NULL.
            Expr::Coalesce { args, ty } => {
                let mut undecided = Undecided::new(batch);
                for arg in args {
                    if undecided.is_empty() {
                        break;
                    }
                    let v = arg.eval(undecided.batch())?;
                    let present = is_not_null(&v)?;
                    undecided.decide(&present, |_| {
                        Ok(if present.true_count() == v.len() {
                            v.clone()
                        } else {
                            arrow::compute::filter(&v, &present)?
                        })
                    })?;
                }
                Value::Array(undecided.finish(*ty)?)
            }
        })
    }
}

/// The rows of a batch that no branch of a CASE (argument of a COALESCE) has decided yet,
/// and the values of those decided, for evaluating branches only on the rows they decide.
struct Undecided {
    /// The undecided rows.
    batch: RecordBatch,
    /// Their positions in the whole batch.
    positions: Vec<usize>,
    /// Each decided row's value: (piece, index in the piece), by position.
    picks: Vec<Option<(usize, usize)>>,
    /// Values of the rows each decision took.
    pieces: Vec<ArrayRef>,
}

impl Undecided {
    fn new(batch: &RecordBatch) -> Self {
        let rows = batch.num_rows();
        Undecided {
            batch: batch.clone(),
            positions: (0..rows).collect(),
            picks: vec![None; rows],
            pieces: Vec::new(),
        }
    }

    fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Decides the undecided rows where `mask` (over them, NULL-free) is true, with the values
    /// `values` gives over just those rows.
    fn decide(
        &mut self,
        mask: &BooleanArray,
        values: impl FnOnce(&RecordBatch) -> Result<ArrayRef>,
    ) -> Result<()> {
        let taken = mask.true_count();
        if taken == 0 {
            return Ok(());
        }
        let all = taken == self.positions.len();
        let rows = if all {
            self.batch.clone()
        } else {
            arrow::compute::filter_record_batch(&self.batch, mask)?
        };
        let piece = self.pieces.len();
        self.pieces.push(values(&rows)?);
        let mut next = 0;
        let mut left = Vec::with_capacity(self.positions.len() - taken);
        for (i, position) in self.positions.iter().enumerate() {
            if mask.value(i) {
                self.picks[*position] = Some((piece, next));
                next += 1;
            } else {
                left.push(*position);
            }
        }
        if !all {
            let rest = boolean::not(mask)?;
            self.batch = arrow::compute::filter_record_batch(&self.batch, &rest)?;
        }
        self.positions = left;
        Ok(())
    }

    /// The values of all rows, NULL (of type `ty`) for those still undecided.
    fn finish(mut self, ty: DataType) -> Result<ArrayRef> {
        // One decision took every row, in order.
        if self.pieces.len() == 1 && self.positions.is_empty() {
            return Ok(self.pieces.pop().expect("one"));
        }
        let null = self.pieces.len();
        self.pieces.push(new_null_array(&ty.to_arrow(), 1));
        let picks: Vec<(usize, usize)> =
            self.picks.iter().map(|p| p.unwrap_or((null, 0))).collect();
        let pieces: Vec<&dyn Array> = self.pieces.iter().map(|p| p.as_ref()).collect();
        Ok(arrow::compute::interleave(&pieces, &picks)?)
    }
}

fn binary(op: BinaryOp, l: &Value, r: &Value, operand: DataType, rows: usize) -> Result<ArrayRef> {
    if operand == DataType::Decimal {
        return decimal_binary(op, &expand(l, rows)?, &expand(r, rows)?);
    }
    // Arrays and structs compare as their key bytes do (element by element); the operand
    // type given for those bytes only matters to arithmetic.
    if matches!(operand, DataType::List(_) | DataType::Struct(_)) {
        let key = |v: &Value| -> Result<Value> {
            Ok(Value::Array(crate::batch::sortable(&expand(v, rows)?)))
        };
        return binary(op, &key(l)?, &key(r)?, DataType::Varchar, rows);
    }
    let (ld, rd) = (l.datum(), r.datum());
    let (ld, rd) = (ld.as_ref(), rd.as_ref());
    Ok(match op {
        BinaryOp::Add => numeric::add(ld, rd)?,
        BinaryOp::Sub => numeric::sub(ld, rd)?,
        BinaryOp::Mul => numeric::mul(ld, rd)?,
        BinaryOp::Div | BinaryOp::Mod => {
            // PostgreSQL rejects division by zero for floats too, where IEEE gives infinity.
            if matches!(operand, DataType::Float32 | DataType::Float64) {
                let zero = Datum::Float64(0.0).to_array(DataType::Float64, 1);
                let zero = cast(&zero, DataType::Float64, operand)?;
                if cmp::eq(rd, &Scalar::new(zero))?.true_count() > 0 {
                    return Err(Error::DivisionByZero);
                }
            }
            if op == BinaryOp::Div {
                numeric::div(ld, rd)?
            } else {
                numeric::rem(ld, rd)?
            }
        }
        BinaryOp::Eq => Arc::new(cmp::eq(ld, rd)?),
        BinaryOp::NotEq => Arc::new(cmp::neq(ld, rd)?),
        BinaryOp::Lt => Arc::new(cmp::lt(ld, rd)?),
        BinaryOp::LtEq => Arc::new(cmp::lt_eq(ld, rd)?),
        BinaryOp::Gt => Arc::new(cmp::gt(ld, rd)?),
        BinaryOp::GtEq => Arc::new(cmp::gt_eq(ld, rd)?),
        BinaryOp::And | BinaryOp::Or => {
            let (la, ra) = (expand(l, rows)?, expand(r, rows)?);
            let (la, ra) = (la.as_boolean(), ra.as_boolean());
            Arc::new(if op == BinaryOp::And {
                boolean::and_kleene(la, ra)?
            } else {
                boolean::or_kleene(la, ra)?
            })
        }
        BinaryOp::Like => Arc::new(arrow::compute::kernels::comparison::like(ld, rd)?),
        BinaryOp::ILike => Arc::new(arrow::compute::kernels::comparison::ilike(ld, rd)?),
        BinaryOp::RegexMatch | BinaryOp::RegexNotMatch => {
            let (la, ra) = (expand(l, rows)?, expand(r, rows)?);
            let matched = arrow::compute::kernels::regexp::regexp_is_match(
                la.as_string::<i32>(),
                ra.as_string::<i32>(),
                None::<&arrow::array::StringArray>,
            )?;
            Arc::new(if op == BinaryOp::RegexMatch {
                matched
            } else {
                boolean::not(&matched)?
            })
        }
        BinaryOp::Concat => {
            let (la, ra) = (expand(l, rows)?, expand(r, rows)?);
            Arc::new(
                arrow::compute::kernels::concat_elements::concat_elements_utf8(
                    la.as_string::<i32>(),
                    ra.as_string::<i32>(),
                )?,
            )
        }
    })
}

/// The values of a `numeric` array (`None` for NULL).
pub(crate) fn decimals(array: &ArrayRef) -> impl Iterator<Item = Option<Decimal>> + '_ {
    let a = array.as_fixed_size_binary();
    (0..a.len()).map(move |i| {
        a.is_valid(i)
            .then(|| Decimal::from_bytes(a.value(i)).expect("numeric arrays hold valid values"))
    })
}

/// A `numeric` array of `values`.
pub(crate) fn decimal_array(values: impl Iterator<Item = Option<Decimal>>) -> ArrayRef {
    let mut b = FixedSizeBinaryBuilder::new(crate::decimal::ENCODED_LEN as i32);
    for v in values {
        match v {
            Some(d) => b.append_value(d.to_bytes()).expect("equal widths"),
            None => b.append_null(),
        }
    }
    Arc::new(b.finish())
}

/// Arithmetic and comparison of `numeric` values, a row at a time (no Arrow kernel knows
/// per-value scales).
fn decimal_binary(op: BinaryOp, l: &ArrayRef, r: &ArrayRef) -> Result<ArrayRef> {
    let pairs = decimals(l).zip(decimals(r));
    if op.is_predicate() {
        let out: BooleanArray = pairs
            .map(|(a, b)| {
                let (a, b) = (a?, b?);
                Some(match op {
                    BinaryOp::Eq => a == b,
                    BinaryOp::NotEq => a != b,
                    BinaryOp::Lt => a < b,
                    BinaryOp::LtEq => a <= b,
                    BinaryOp::Gt => a > b,
                    _ => a >= b,
                })
            })
            .collect();
        return Ok(Arc::new(out));
    }
    let values = pairs
        .map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => Ok(Some(match op {
                BinaryOp::Add => a.checked_add(b)?,
                BinaryOp::Sub => a.checked_sub(b)?,
                BinaryOp::Mul => a.checked_mul(b)?,
                BinaryOp::Div => a.checked_div(b)?,
                BinaryOp::Mod => a.checked_rem(b)?,
                other => {
                    return Err(Error::Internal(format!("{other:?} on numeric")));
                }
            })),
            _ => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(decimal_array(values.into_iter()))
}

/// Casts to and from `numeric`.
fn cast_decimal(array: &ArrayRef, from: DataType, to: DataType) -> Result<ArrayRef> {
    if to == DataType::Decimal {
        let values = (0..array.len())
            .map(|i| {
                if array.is_null(i) {
                    return Ok(None);
                }
                Ok(Some(match Datum::from_array(array.as_ref(), i) {
                    Datum::Int16(v) => Decimal::from(i64::from(v)),
                    Datum::Int32(v) => Decimal::from(i64::from(v)),
                    Datum::Int64(v) => Decimal::from(v),
                    Datum::Float32(v) => Decimal::from_f64(f64::from(v))?,
                    Datum::Float64(v) => Decimal::from_f64(v)?,
                    Datum::Varchar(s) => s.parse()?,
                    Datum::Bool(b) => Decimal::from(i64::from(b)),
                    _ => {
                        return Err(Error::InvalidInput(format!(
                            "cannot cast {from} to numeric"
                        )));
                    }
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(decimal_array(values.into_iter()));
    }
    let values: Vec<Option<Decimal>> = decimals(array).collect();
    Ok(match to {
        DataType::Float32 | DataType::Float64 => {
            let doubles: arrow::array::Float64Array =
                values.iter().map(|v| v.map(Decimal::to_f64)).collect();
            let doubles: ArrayRef = Arc::new(doubles);
            cast(&doubles, DataType::Float64, to)?
        }
        DataType::Varchar => Arc::new(
            values
                .iter()
                .map(|v| v.map(|d| d.to_string()))
                .collect::<arrow::array::StringArray>(),
        ),
        t if t.is_integer() => {
            let ints = values
                .iter()
                .map(|v| v.map(Decimal::to_i64).transpose())
                .collect::<Result<arrow::array::Int64Array>>()?;
            let ints: ArrayRef = Arc::new(ints);
            cast(&ints, DataType::Int64, to)?
        }
        other => {
            return Err(Error::InvalidInput(format!(
                "cannot cast numeric to {other}"
            )));
        }
    })
}

fn expand(v: &Value, rows: usize) -> Result<ArrayRef> {
    match v {
        Value::Array(a) => Ok(Arc::clone(a)),
        Value::Scalar(s) => Value::Scalar(Arc::clone(s)).into_array(rows),
    }
}

/// A time written as `HH:MM` (as PostgreSQL accepts it) with `:00` seconds added, which the
/// Arrow parser needs; other text is returned as it is.
fn with_seconds(s: &str) -> String {
    let s = s.trim();
    // The time part starts after the date's separator (or at the start of a bare time).
    let time_start = s.find(['T', ' ']).map_or(0, |i| i + 1);
    let time = &s[time_start..];
    let end = time
        .find(|c: char| !(c.is_ascii_digit() || c == ':'))
        .unwrap_or(time.len());
    let clock = &time[..end];
    if clock.matches(':').count() == 1 && clock.len() >= 4 {
        let at = time_start + end;
        format!("{}:00{}", &s[..at], &s[at..])
    } else {
        s.to_string()
    }
}

/// Casts with PostgreSQL's rules where they differ from Arrow's: failures are errors, and
/// floats round to the nearest integer (ties to even) instead of truncating.
pub fn cast(array: &ArrayRef, from: DataType, to: DataType) -> Result<ArrayRef> {
    if from == to {
        return Ok(Arc::clone(array));
    }
    // A JSON number or boolean casts to a number or boolean through its text.
    if from == DataType::Jsonb && (to == DataType::Boolean || to.is_numeric()) {
        let texts = array
            .as_string::<i64>()
            .iter()
            .map(|s| {
                let Some(s) = s else { return Ok(None) };
                match crate::json::Json::parse(s)? {
                    json @ (crate::json::Json::Number(_) | crate::json::Json::Bool(_)) => {
                        Ok(Some(json.to_string()))
                    }
                    other => Err(Error::InvalidValue(format!(
                        "cannot cast jsonb {} to type {to}",
                        other.type_name()
                    ))),
                }
            })
            .collect::<Result<arrow::array::StringArray>>()?;
        return cast(&(Arc::new(texts) as ArrayRef), DataType::Varchar, to);
    }
    if from == DataType::Decimal || to == DataType::Decimal {
        return cast_decimal(array, from, to);
    }
    match (from, to) {
        (DataType::List(a), DataType::List(b)) => {
            let list = array.as_list::<i32>();
            return Ok(Arc::new(arrow::array::ListArray::new(
                Arc::new(arrow::datatypes::Field::new_list_field(
                    b.get().to_arrow(),
                    true,
                )),
                list.offsets().clone(),
                cast(list.values(), a.get(), b.get())?,
                list.nulls().cloned(),
            )));
        }
        (DataType::Varchar, DataType::List(e)) => {
            let parsed = array
                .as_string::<i32>()
                .iter()
                .map(|s| s.map_or(Ok(Datum::Null), |s| crate::text::parse_array(s, e.get())))
                .collect::<Result<Vec<_>>>()?;
            return Ok(array_from_datums(to, parsed.iter()));
        }
        (DataType::Varchar, DataType::Bytea | DataType::Jsonb) => {
            let parsed = array
                .as_string::<i32>()
                .iter()
                .map(|s| {
                    Ok(match s {
                        None => Datum::Null,
                        Some(s) if to == DataType::Bytea => {
                            Datum::Bytea(crate::text::parse_bytea(s)?)
                        }
                        Some(s) => Datum::Jsonb(crate::json::normalize(s)?),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(array_from_datums(to, parsed.iter()));
        }
        // Structs cast field by field, by position.
        (DataType::Struct(a), DataType::Struct(b)) => {
            if a.fields().len() != b.fields().len() {
                return Err(Error::InvalidValue(format!(
                    "cannot cast type \"{from}\" to \"{to}\""
                )));
            }
            let fields = array.as_struct();
            let children = fields
                .columns()
                .iter()
                .zip(a.fields().iter().zip(b.fields()))
                .map(|(c, ((_, f), (_, t)))| cast(c, *f, *t))
                .collect::<Result<Vec<_>>>()?;
            let arrow::datatypes::DataType::Struct(target) = to.to_arrow() else {
                unreachable!("structs are Arrow structs")
            };
            return Ok(Arc::new(arrow::array::StructArray::new(
                target,
                children,
                fields.nulls().cloned(),
            )));
        }
        (DataType::List(_) | DataType::Struct(_) | DataType::Bytea | DataType::Jsonb, _)
        | (_, DataType::List(_) | DataType::Struct(_) | DataType::Bytea | DataType::Jsonb)
            if to != DataType::Varchar =>
        {
            return Err(Error::InvalidInput(format!("cannot cast {from} to {to}")));
        }
        // PostgreSQL's text forms, where Arrow's differ.
        (
            DataType::Float32
            | DataType::Float64
            | DataType::Date
            | DataType::Time
            | DataType::Timestamp
            | DataType::Timestamptz
            | DataType::Interval
            | DataType::Bytea
            | DataType::Jsonb
            | DataType::List(_)
            | DataType::Struct(_),
            DataType::Varchar,
        ) => {
            return Ok(Arc::new(
                (0..array.len())
                    .map(|i| Datum::from_array(array.as_ref(), i).to_text())
                    .collect::<arrow::array::StringArray>(),
            ));
        }
        _ => {}
    }
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let integer = matches!(to, DataType::Int16 | DataType::Int32 | DataType::Int64);
    let rounded: ArrayRef = match from {
        DataType::Varchar
            if matches!(
                to,
                DataType::Time | DataType::Timestamp | DataType::Timestamptz
            ) =>
        {
            Arc::new(
                array
                    .as_string::<i32>()
                    .iter()
                    .map(|s| s.map(with_seconds))
                    .collect::<arrow::array::StringArray>(),
            )
        }
        DataType::Float64 if integer => Arc::new(
            array
                .as_primitive::<Float64Type>()
                .unary::<_, Float64Type>(f64::round_ties_even),
        ),
        DataType::Float32 if integer => Arc::new(
            array
                .as_primitive::<Float32Type>()
                .unary::<_, Float32Type>(f32::round_ties_even),
        ),
        _ => Arc::clone(array),
    };
    cast_with_options(&rounded, &to.to_arrow(), &options).map_err(|e| match e {
        // PostgreSQL's "integer out of range".
        arrow::error::ArrowError::CastError(_) if integer && from != DataType::Varchar => {
            Error::OutOfRange(to.to_string())
        }
        _ if from == DataType::Varchar => {
            text_cast_error(array, &rounded, to, &options).unwrap_or_else(|| e.into())
        }
        other => other.into(),
    })
}

/// PostgreSQL's error for the first text of `original` that does not read as `to` (tried
/// one at a time in its `prepared` form): out of range for an integer that does not fit,
/// invalid input syntax otherwise.
fn text_cast_error(
    original: &ArrayRef,
    prepared: &ArrayRef,
    to: DataType,
    options: &CastOptions,
) -> Option<Error> {
    let (original, prepared) = (original.as_string::<i32>(), prepared.as_string::<i32>());
    let bad = (0..prepared.len()).find(|i| {
        prepared.is_valid(*i) && {
            let one: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![prepared.value(*i)]));
            cast_with_options(&one, &to.to_arrow(), options).is_err()
        }
    })?;
    let text = original.value(bad);
    if to.is_integer() && text.trim().parse::<i128>().is_ok() {
        return Some(Error::OutOfRange(to.to_string()));
    }
    Some(Error::InvalidText {
        ty: to.to_string(),
        value: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::StreamChunk;

    fn batch() -> RecordBatch {
        StreamChunk::from_pretty(
            " I I F T B
             + 1 10 1.5 a t
             + 2 0 -2.5 b f
             + . 3 . . .",
        )
        .data()
        .clone()
    }

    fn col(i: usize, ty: DataType) -> Expr {
        Expr::column(i, ty)
    }

    fn values(e: &Expr) -> Vec<Datum> {
        let a = e.eval(&batch()).unwrap();
        (0..a.len())
            .map(|i| Datum::from_array(a.as_ref(), i))
            .collect()
    }

    #[test]
    fn arithmetic_comparison_and_three_valued_logic() {
        use BinaryOp::*;
        let i64c = |i| col(i, DataType::Int64);
        let sum = Expr::binary(
            Add,
            i64c(0),
            Expr::literal(Datum::Int64(100), DataType::Int64),
        );
        assert_eq!(
            values(&sum),
            vec![Datum::Int64(101), Datum::Int64(102), Datum::Null]
        );
        let gt = Expr::binary(Gt, i64c(1), i64c(0));
        assert_eq!(
            values(&gt),
            vec![Datum::Bool(true), Datum::Bool(false), Datum::Null]
        );
        // NULL AND false is false; NULL OR true is true.
        let and = Expr::binary(And, gt.clone(), col(4, DataType::Boolean));
        assert_eq!(
            values(&and),
            vec![Datum::Bool(true), Datum::Bool(false), Datum::Null]
        );
        let or = Expr::binary(Or, gt, Expr::literal(Datum::Bool(true), DataType::Boolean));
        assert_eq!(values(&or), vec![Datum::Bool(true); 3]);
        let concat = Expr::binary(
            Concat,
            col(3, DataType::Varchar),
            Expr::literal(Datum::Varchar("!".into()), DataType::Varchar),
        );
        assert_eq!(values(&concat)[0], Datum::Varchar("a!".into()));
        let mask = Expr::binary(Gt, i64c(1), i64c(0))
            .eval_mask(&batch())
            .unwrap();
        assert_eq!(mask, BooleanArray::from(vec![true, false, false]));
    }

    #[test]
    fn sql_errors() {
        use BinaryOp::*;
        let div = Expr::binary(Div, col(0, DataType::Int64), col(1, DataType::Int64));
        assert!(matches!(div.eval(&batch()), Err(Error::DivisionByZero)));
        let fdiv = Expr::binary(
            Div,
            col(2, DataType::Float64),
            Expr::literal(Datum::Float64(0.0), DataType::Float64),
        );
        assert!(matches!(fdiv.eval(&batch()), Err(Error::DivisionByZero)));
        let overflow = Expr::binary(
            Mul,
            col(0, DataType::Int64),
            Expr::literal(Datum::Int64(i64::MAX), DataType::Int64),
        );
        assert!(matches!(overflow.eval(&batch()), Err(Error::OutOfRange(_))));
        let bad = Expr::Cast {
            expr: Box::new(col(3, DataType::Varchar)),
            to: DataType::Int32,
        };
        // The first text that is not a number, as PostgreSQL words it.
        assert_eq!(
            bad.eval(&batch()).unwrap_err().to_string(),
            "invalid input syntax for type integer: \"a\""
        );
        assert_eq!(bad.eval(&batch()).unwrap_err().sqlstate(), "22P02");
        let big = Expr::Cast {
            expr: Box::new(Expr::literal(
                Datum::Varchar("99999999999".into()),
                DataType::Varchar,
            )),
            to: DataType::Int32,
        };
        assert_eq!(
            big.eval(&batch()).unwrap_err().to_string(),
            "integer out of range"
        );
        let regex = |pattern: &str| {
            Expr::binary(
                BinaryOp::RegexMatch,
                col(3, DataType::Varchar),
                Expr::literal(Datum::Varchar(pattern.into()), DataType::Varchar),
            )
        };
        assert_eq!(
            values(&regex("^[a]$")),
            vec![Datum::Bool(true), Datum::Bool(false), Datum::Null]
        );
        assert_eq!(regex("(").eval(&batch()).unwrap_err().sqlstate(), "2201B");
    }

    #[test]
    fn case_and_coalesce_evaluate_a_branch_only_for_the_rows_reaching_it() {
        let x = || col(0, DataType::Int64);
        let int = |v: i64| Expr::literal(Datum::Int64(v), DataType::Int64);
        // Rows of x: 1, 2, NULL (see `batch`); 6 / (x - 1) fails for the first only.
        let reciprocal = Expr::binary(
            BinaryOp::Div,
            int(6),
            Expr::binary(BinaryOp::Sub, x(), int(1)),
        );
        let guarded = Expr::Case {
            branches: vec![
                (Expr::binary(BinaryOp::Eq, x(), int(1)), int(-1)),
                (
                    Expr::binary(BinaryOp::Gt, reciprocal.clone(), int(3)),
                    int(100),
                ),
            ],
            otherwise: Some(Box::new(reciprocal.clone())),
            ty: DataType::Int64,
        };
        assert_eq!(
            values(&guarded),
            vec![Datum::Int64(-1), Datum::Int64(100), Datum::Null]
        );
        assert!(reciprocal.eval(&batch()).is_err());
        let coalesce = Expr::Coalesce {
            args: vec![
                Expr::Case {
                    branches: vec![(Expr::binary(BinaryOp::Eq, x(), int(1)), int(7))],
                    otherwise: None,
                    ty: DataType::Int64,
                },
                reciprocal,
            ],
            ty: DataType::Int64,
        };
        assert_eq!(
            values(&coalesce),
            vec![Datum::Int64(7), Datum::Int64(6), Datum::Null]
        );
    }

    #[test]
    fn casts_case_and_coalesce() {
        let round = Expr::Cast {
            expr: Box::new(col(2, DataType::Float64)),
            to: DataType::Int32,
        };
        assert_eq!(
            values(&round),
            vec![Datum::Int32(2), Datum::Int32(-2), Datum::Null]
        );
        let case = Expr::Case {
            branches: vec![(
                Expr::binary(
                    BinaryOp::Eq,
                    col(0, DataType::Int64),
                    Expr::literal(Datum::Int64(1), DataType::Int64),
                ),
                Expr::literal(Datum::Varchar("one".into()), DataType::Varchar),
            )],
            otherwise: Some(Box::new(col(3, DataType::Varchar))),
            ty: DataType::Varchar,
        };
        assert_eq!(
            values(&case),
            vec![
                Datum::Varchar("one".into()),
                Datum::Varchar("b".into()),
                Datum::Null
            ]
        );
        let coalesce = Expr::Coalesce {
            args: vec![col(0, DataType::Int64), col(1, DataType::Int64)],
            ty: DataType::Int64,
        };
        assert_eq!(
            values(&coalesce),
            vec![Datum::Int64(1), Datum::Int64(2), Datum::Int64(3)]
        );
    }
}
