//! Scalar functions bound by name and argument count, with PostgreSQL's argument and result
//! types: math, text and comparison functions (see `dataflow::func`).

use dataflow::expr::{BinaryOp, Expr};
use dataflow::func::{Func, MathFunc};
use dataflow::types::{DataType, Datum};

use super::expr::{coerce, unify};
use crate::PlanResult;

/// `func` of `args`, each coerced to the type at its position in `types`, giving `ty`.
fn call(func: Func, args: Vec<Expr>, types: &[DataType], ty: DataType) -> PlanResult<Expr> {
    let args = args
        .into_iter()
        .zip(types)
        .map(|(a, t)| coerce(a, *t))
        .collect::<PlanResult<Vec<_>>>()?;
    Ok(Expr::Func { func, args, ty })
}

/// The builtin function `name` of `args`, if there is one of that name and arity.
pub(crate) fn bind_builtin(name: &str, args: Vec<Expr>) -> Option<PlanResult<Expr>> {
    use DataType::{Boolean, Float64, Int32, Timestamptz, Varchar};
    let n = args.len();
    let text = |count: usize| vec![Varchar; count];
    Some(match (name, n) {
        ("log", 1) => call(Func::Math(MathFunc::Log10), args, &[Float64], Float64),
        ("log", 2) => call(Func::Math(MathFunc::Log), args, &[Float64; 2], Float64),
        (name, n) if MathFunc::by_name(name).is_some_and(|(_, arity)| arity == n) => {
            let (math, _) = MathFunc::by_name(name).expect("checked");
            call(Func::Math(math), args, &[Float64; 2][..n], Float64)
        }
        ("mod", 2) => {
            let mut args = args.into_iter();
            let (l, r) = (args.next().expect("two"), args.next().expect("two"));
            super::expr::bind_binary(&sqlparser::ast::BinaryOperator::Modulo, l, r)
        }
        // As round: numeric stays numeric, as does trunc(x, digits) of an integer.
        ("trunc", 1 | 2) => {
            let arg_ty = args[0].data_type();
            let ty = if arg_ty == DataType::Decimal || (n == 2 && arg_ty.is_integer()) {
                DataType::Decimal
            } else {
                Float64
            };
            call(Func::Trunc, args, &[ty, Int32], ty)
        }
        ("greatest" | "least", 1..) => unify(args.iter()).and_then(|ty| {
            let func = if name == "greatest" {
                Func::Greatest
            } else {
                Func::Least
            };
            call(func, args, &vec![ty; n], ty)
        }),
        // nullif(a, b): NULL where a = b, else a (of a's type).
        ("nullif", 2) => {
            let mut args = args.into_iter();
            let (a, b) = (args.next().expect("two"), args.next().expect("two"));
            let ty = a.data_type();
            super::expr::bind_binary(&sqlparser::ast::BinaryOperator::Eq, a.clone(), b).map(
                |equal| Expr::Case {
                    branches: vec![(equal, Expr::literal(Datum::Null, ty))],
                    otherwise: Some(Box::new(a)),
                    ty,
                },
            )
        }
        ("strpos", 2) => call(Func::Strpos, args, &text(2), Int32),
        ("btrim" | "ltrim" | "rtrim", 1 | 2) => call(
            Func::Trim {
                leading: name != "rtrim",
                trailing: name != "ltrim",
            },
            args,
            &text(n),
            Varchar,
        ),
        ("left" | "right", 2) => {
            let func = if name == "left" {
                Func::Left
            } else {
                Func::Right
            };
            call(func, args, &[Varchar, Int32], Varchar)
        }
        ("repeat", 2) => call(Func::Repeat, args, &[Varchar, Int32], Varchar),
        ("reverse", 1) => call(Func::Reverse, args, &text(1), Varchar),
        ("lpad" | "rpad", 2 | 3) => call(
            Func::Pad {
                left: name == "lpad",
            },
            args,
            &[Varchar, Int32, Varchar],
            Varchar,
        ),
        ("initcap", 1) => call(Func::Initcap, args, &text(1), Varchar),
        ("octet_length", 1) => call(Func::OctetLength, args, &text(1), Int32),
        ("bit_length", 1) => call(Func::OctetLength, args, &text(1), Int32)
            .map(|bytes| Expr::binary(BinaryOp::Mul, bytes, Expr::literal(Datum::Int32(8), Int32))),
        ("starts_with", 2) => call(Func::StartsWith, args, &text(2), Boolean),
        ("ascii", 1) => call(Func::Ascii, args, &text(1), Int32),
        ("chr", 1) => call(Func::Chr, args, &[Int32], Varchar),
        ("translate", 3) => call(Func::Translate, args, &text(3), Varchar),
        ("regexp_replace", 3 | 4) => call(Func::RegexpReplace, args, &text(n), Varchar),
        ("string_to_array", 2) => {
            call(Func::StringToArray, args, &text(2), DataType::list(Varchar))
        }
        ("md5", 1) => call(Func::Md5, args, &text(1), Varchar),
        ("concat_ws", 1..) => call(Func::ConcatWs, args, &text(n), Varchar),
        ("to_timestamp", 1) => call(Func::ToTimestamp, args, &[Float64], Timestamptz),
        _ => return None,
    })
}
